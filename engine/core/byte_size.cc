#include "engine/core/byte_size.h"

#include <cctype>

namespace runbook {

std::optional<int64_t> ParseByteSize(const std::string& text) {
  size_t i = 0;
  int64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (n > (int64_t{1} << 62) / 10) return std::nullopt;
    n = n * 10 + (text[i++] - '0');
  }
  if (i == 0) return std::nullopt;
  while (i < text.size() && text[i] == ' ') ++i;
  const std::string unit = text.substr(i);
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "kB" || unit == "KiB") {
    shift = 10;
  } else if (unit == "MB" || unit == "MiB") {
    shift = 20;
  } else if (unit == "GB" || unit == "GiB") {
    shift = 30;
  } else if (unit == "TB" || unit == "TiB") {
    shift = 40;
  } else {
    return std::nullopt;
  }
  if (n > ((int64_t{1} << 62) >> shift)) return std::nullopt;
  return n << shift;
}

}  // namespace runbook
