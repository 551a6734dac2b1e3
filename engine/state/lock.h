// The run lock: one holder per key at a time, released by
// the kernel when its holder dies, so a lock is never wedged. It is an
// flock(2) on "<state dir>/locks/<key>.lock"; the file records the holder's
// run id and pid for the message a second run prints.
#pragma once

#include <memory>
#include <string>

#include "engine/core/status.h"
#include "engine/state/store.h"

namespace runbook {

class RunLock final : public StoreLock {
 public:
  ~RunLock() override;  // releases
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // Fails with Status::Unavailable("lock 'KEY' is held by run RUN (pid N)")
  // when another live process holds it.
  static Result<std::unique_ptr<RunLock>> Acquire(const std::string& state_path,
                                                  const std::string& key,
                                                  const std::string& run_id);
  // Whether a live process holds the lock `key` now (without taking it): a
  // run the store says is running whose lock nobody holds was interrupted.
  static bool IsHeld(const std::string& state_path, const std::string& key);

 private:
  RunLock() = default;
  int fd_ = -1;
};

}  // namespace runbook
