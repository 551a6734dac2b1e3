// Sizes as runbooks write them: a count of bytes (0, 1048576) or a number
// with PostgreSQL's units (kB, MB, GB, TB: powers of 1024, as in
// postgresql.conf) or their IEC spellings (KiB, MiB, GiB, TiB).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace runbook {

// Returns nullopt for anything that is not a valid size (a negative number,
// an unknown unit, a fraction, more than 2^62 bytes).
std::optional<int64_t> ParseByteSize(const std::string& text);

}  // namespace runbook
