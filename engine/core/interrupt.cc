#include "engine/core/interrupt.h"

#include <atomic>
#include <mutex>

namespace runbook {
namespace {

std::atomic<bool> stopped{false};
std::mutex mu;  // guards Why()

// Never destroyed: a wait on another thread may read it while the process exits.
std::string& Why() {
  static std::string* why = new std::string;
  return *why;
}

}  // namespace

void StopActing(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu);
  if (stopped.load()) return;
  Why() = why;
  stopped.store(true);
}

void AllowActing() {
  std::lock_guard<std::mutex> lock(mu);
  stopped.store(false);
  Why().clear();
}

bool ActingStopped() { return stopped.load(std::memory_order_relaxed); }

std::string WhyActingStopped() {
  std::lock_guard<std::mutex> lock(mu);
  return stopped.load() ? Why() : std::string();
}

}  // namespace runbook
