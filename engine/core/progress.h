// How a long step says how far it is.
#pragma once

#include <cstdint>
#include <string>

namespace runbook {

struct ProgressInfo {
  int64_t done_bytes = 0, total_bytes = 0;  // 0 total: unknown (may be an estimate)
  int64_t done_rows = 0;
  double seconds = 0;  // since the work began; 0: unknown
  std::string what;    // "public.pgbench_accounts"
};

// "public.t: 120.3 of 752.7 MiB, 1234567 rows, 95.2 MiB/s, about 7 s left":
// the rate when `seconds` is known, the time left when the total is too.
std::string DescribeProgress(const ProgressInfo& p);

}  // namespace runbook
