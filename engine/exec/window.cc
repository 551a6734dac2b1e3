#include "engine/exec/window.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace runbook {
namespace {

std::mutex tz_mu;

const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

// Local broken-down time of `secs` in `tz`.
struct tm LocalTime(const std::string& tz, time_t secs) {
  std::lock_guard<std::mutex> lock(tz_mu);
  const char* old = getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", tz.c_str(), 1);
  tzset();
  struct tm tm;
  localtime_r(&secs, &tm);
  if (old) setenv("TZ", saved.c_str(), 1);
  else unsetenv("TZ");
  tzset();
  return tm;
}

std::string Hhmm(int minute) {
  char buf[16];
  snprintf(buf, sizeof buf, "%02d:%02d", minute / 60, minute % 60);
  return buf;
}

}  // namespace

WindowState CheckWindow(const Window& w, int64_t now_ms) {
  WindowState out;
  std::string days;
  for (int d : w.days) days += std::string(days.empty() ? "" : ",") + kDayNames[d % 7];
  out.description = (days.empty() ? std::string("daily") : days) + " " + Hhmm(w.start_minute) +
                    "-" + Hhmm(w.end_minute) + " " + w.timezone;
  time_t now = static_cast<time_t>(now_ms / 1000);
  struct tm tm = LocalTime(w.timezone, now);
  int minute = tm.tm_hour * 60 + tm.tm_min;
  int length = w.end_minute - w.start_minute;
  if (length <= 0) length += 24 * 60;  // crosses midnight
  // The occurrence that started today, or yesterday (for windows that cross
  // midnight). Its day is the day it started.
  for (int back = 0; back <= 1; ++back) {
    int start_day = ((tm.tm_wday - back) % 7 + 7) % 7;
    int since_start = minute + back * 24 * 60 - w.start_minute;
    if (since_start < 0 || since_start >= length) continue;
    bool day_ok = w.days.empty();
    for (int d : w.days) day_ok = day_ok || d == start_day;
    if (!day_ok) continue;
    out.inside = true;
    int64_t left_ms = (static_cast<int64_t>(length - since_start) * 60 - tm.tm_sec) * 1000 -
                      now_ms % 1000;
    out.end_ms = now_ms + left_ms;
    return out;
  }
  return out;
}

}  // namespace runbook
