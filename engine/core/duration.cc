#include "engine/core/duration.h"

#include <cctype>
#include <cstdio>

namespace runbook {

std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  long long total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
    long long n = 0;
    while (i < text.size() && isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + (text[i] - '0');
      if (n > 1000000000LL) return std::nullopt;
      ++i;
    }
    std::string unit;
    while (i < text.size() && isalpha(static_cast<unsigned char>(text[i]))) unit += text[i++];
    long long scale;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60 * 1000;
    else if (unit == "h") scale = 3600 * 1000;
    else return std::nullopt;
    total += n * scale;
  }
  return std::chrono::milliseconds(total);
}

std::string FormatDuration(std::chrono::milliseconds d) {
  long long ms = d.count();
  char buf[64];
  if (ms < 1000) {
    snprintf(buf, sizeof buf, "%lldms", ms);
  } else if (ms < 60 * 1000 && ms % 1000 == 0) {
    snprintf(buf, sizeof buf, "%llds", ms / 1000);
  } else if (ms < 60 * 1000) {
    snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  } else if (ms < 3600 * 1000) {
    snprintf(buf, sizeof buf, "%lldm%llds", ms / 60000, (ms / 1000) % 60);
  } else {
    snprintf(buf, sizeof buf, "%lldh%lldm", ms / 3600000, (ms / 60000) % 60);
  }
  return buf;
}

}  // namespace runbook
