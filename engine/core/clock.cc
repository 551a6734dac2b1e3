#include "engine/core/clock.h"

#include <cstdlib>
#include <ctime>
#include <thread>

namespace runbook {
namespace {

class RealClock : public Clock {
 public:
  RealClock() {
    const char* fake = std::getenv("RUNBOOK_FAKE_NOW");
    if (fake && *fake) {
      int64_t real = std::chrono::duration_cast<Millis>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
      offset_ms_ = std::atoll(fake) * 1000 - real;
    }
  }
  int64_t NowMs() override {
    return std::chrono::duration_cast<Millis>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() +
           offset_ms_;
  }
  SteadyTime Steady() override { return std::chrono::steady_clock::now(); }
  void Sleep(Millis ms) override { std::this_thread::sleep_for(ms); }

 private:
  int64_t offset_ms_ = 0;
};

}  // namespace

Clock& Clock::Real() {
  static RealClock clock;
  return clock;
}

std::string FormatUtc(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace runbook
