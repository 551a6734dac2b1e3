// Maintenance windows: is `now` inside, and when does the
// current occurrence end?
#pragma once

#include <cstdint>
#include <string>

#include "engine/model/model.h"

namespace runbook {

struct WindowState {
  bool inside = false;
  int64_t end_ms = 0;       // inside: when this occurrence closes
  std::string description;  // "sat,sun 02:00-04:00 Asia/Singapore"
};

// Uses the zoneinfo database through TZ/localtime_r (serialised by a mutex).
WindowState CheckWindow(const Window& w, int64_t now_ms);

}  // namespace runbook
