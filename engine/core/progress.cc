#include "engine/core/progress.h"

#include <cstdio>

namespace runbook {

std::string DescribeProgress(const ProgressInfo& p) {
  char buf[160];
  const double mib = 1048576.0;
  std::string out = p.what.empty() ? "" : p.what + ": ";
  if (p.total_bytes > 0) {
    std::snprintf(buf, sizeof buf, "%.1f of %.1f MiB", p.done_bytes / mib, p.total_bytes / mib);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", p.done_bytes / mib);
  }
  out += buf;
  if (p.done_rows > 0) out += ", " + std::to_string(p.done_rows) + " rows";
  if (p.seconds > 0) {
    const double rate = p.done_bytes / p.seconds;
    std::snprintf(buf, sizeof buf, ", %.1f MiB/s", rate / mib);
    out += buf;
    // The total may be an estimate (a table's size on disk): never a negative time left.
    if (p.total_bytes > 0 && rate > 0) {
      const double left = std::max(0.0, (p.total_bytes - p.done_bytes) / rate);
      std::snprintf(buf, sizeof buf, ", about %.0f s left", left);
      out += buf;
    }
  }
  return out;
}

}  // namespace runbook
