// Durations as runbooks write them: 500ms, 30s, 10m, 2h (and combinations
// such as 1h30m).
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace runbook {

// Returns nullopt for anything that is not a valid duration.
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text);
// The shortest exact form: 1500 -> "1.5s", 90000 -> "1m30s".
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace runbook
