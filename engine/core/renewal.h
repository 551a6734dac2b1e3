// What the run locks held outside this process share (a PostgreSQL state
// store's lease, a Kubernetes Lease in a target): their length, and the
// thread that renews them while the run lives.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/core/status.h"

namespace runbook {

// A lock's length: $RUNBOOK_LEASE_SECONDS when set (whole seconds, 3 to
// 86400), else 30 s. A value that is not such a number is an error that
// names the variable: a lock must not quietly last other than asked.
Result<std::chrono::seconds> LeaseLength();

// Calls `renew` on a thread of its own: first after `first`, then after
// each pause `renew` returns, until it returns nullopt (nothing left to
// renew) or Stop. `renew` runs with no lock of this class held.
class RenewalThread {
 public:
  using Renew = std::function<std::optional<std::chrono::milliseconds>()>;

  RenewalThread(std::chrono::milliseconds first, Renew renew);
  ~RenewalThread() { Stop(); }
  RenewalThread(const RenewalThread&) = delete;
  RenewalThread& operator=(const RenewalThread&) = delete;

  // No call starts after it returns; a call under way is waited for.
  void Stop();

 private:
  void Loop(std::chrono::milliseconds pause);

  Renew renew_;
  std::mutex mu_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the rest is ready
};

}  // namespace runbook
