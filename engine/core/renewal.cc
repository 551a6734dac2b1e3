#include "engine/core/renewal.h"

#include <cstdlib>  // getenv

namespace runbook {

Result<std::chrono::seconds> LeaseLength() {
  const char* v = std::getenv("RUNBOOK_LEASE_SECONDS");
  if (!v || !*v) return std::chrono::seconds(30);
  long secs = 0;
  for (const char* c = v; *c; ++c) {
    if (*c < '0' || *c > '9' || secs > 86400) {
      secs = -1;
      break;
    }
    secs = secs * 10 + (*c - '0');
  }
  if (secs < 3 || secs > 86400) {
    return Status::Invalid("RUNBOOK_LEASE_SECONDS must be a number of seconds from 3 to 86400");
  }
  return std::chrono::seconds(secs);
}

RenewalThread::RenewalThread(std::chrono::milliseconds first, Renew renew)
    : renew_(std::move(renew)), thread_([this, first] { Loop(first); }) {}

void RenewalThread::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RenewalThread::Loop(std::chrono::milliseconds pause) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, pause, [this] { return stop_; })) return;
    }
    std::optional<std::chrono::milliseconds> next = renew_();
    if (!next) return;
    pause = *next;
  }
}

}  // namespace runbook
