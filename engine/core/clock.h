// Clock: the engine's only source of time, so unit tests can fake it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace runbook {

using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch (journal, windows).
  virtual int64_t NowMs() = 0;
  // Monotonic time (deadlines, durations).
  virtual SteadyTime Steady() = 0;
  // Sleeps until `ms` passed or `until` is reached, whichever is first.
  virtual void Sleep(Millis ms) = 0;

  // The process-wide real clock. RUNBOOK_FAKE_NOW (epoch seconds) shifts
  // wall-clock time for end-to-end tests of maintenance windows; nothing
  // else reads it.
  static Clock& Real();
};

// "2026-11-21T14:52:38Z" for epoch milliseconds.
std::string FormatUtc(int64_t ms);

}  // namespace runbook
