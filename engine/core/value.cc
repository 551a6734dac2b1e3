#include "engine/core/value.h"

namespace runbook {

static const char kUnknownKey[] = "$unknown";

Value MakeUnknown(const std::string& why) { return Value{{kUnknownKey, why}}; }

bool IsUnknown(const Value& v) {
  return v.is_object() && v.size() == 1 && v.contains(kUnknownKey);
}

bool ContainsUnknown(const Value& v) {
  if (IsUnknown(v)) return true;
  if (v.is_structured()) {
    for (const auto& item : v) {
      if (ContainsUnknown(item)) return true;
    }
  }
  return false;
}

Value TableToValue(const Table& t) {
  return Value{{"title", t.title}, {"columns", t.columns}, {"rows", t.rows}};
}

Table TableFromValue(const Value& v) {
  Table t;
  t.title = v.value("title", "");
  if (v.contains("columns")) t.columns = v["columns"].get<std::vector<std::string>>();
  if (v.contains("rows")) t.rows = v["rows"].get<std::vector<std::vector<std::string>>>();
  return t;
}

}  // namespace runbook
