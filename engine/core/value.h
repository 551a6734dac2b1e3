// Value: the dynamic type of step arguments, results and journal entries.
// It is nlohmann::json so that what the engine passes around is exactly what
// the state store keeps. UNKNOWN (a rehearsal could not know a result) is a
// tagged object so that it survives the store and is recognised anywhere.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace runbook {

using Value = nlohmann::ordered_json;

// The UNKNOWN marker of a rehearsal: {"$unknown": "<why>"}.
Value MakeUnknown(const std::string& why);
bool IsUnknown(const Value& v);
// True if v or anything inside it is UNKNOWN.
bool ContainsUnknown(const Value& v);

// A table a step produced for the report (a count comparison, say).
struct Table {
  std::string title;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
};
Value TableToValue(const Table& t);
Table TableFromValue(const Value& v);

}  // namespace runbook
