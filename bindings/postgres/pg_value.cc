#include "bindings/postgres/pg_value.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

namespace runbook {
namespace {

// Type OIDs from pg_type.h (stable across releases).
constexpr Oid kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kJson = 114,
              kFloat4 = 700, kFloat8 = 701, kNumeric = 1700, kJsonb = 3802;

std::optional<int64_t> ParseInt(const char* text) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<double> ParseDouble(const char* text) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0') return std::nullopt;
  return v;
}

Value NumericToValue(const char* text) {
  if (std::strchr(text, '.') == nullptr) {
    if (auto i = ParseInt(text)) return *i;
    return text;  // NaN, Infinity, or beyond 64 bits
  }
  int digits = 0;
  bool leading = true;
  for (const char* p = text; *p; ++p) {
    if (*p < '0' || *p > '9') continue;
    if (leading && *p == '0') continue;
    leading = false;
    ++digits;
  }
  // Trailing zeros after the point count as digits here: "1.50" stays exact.
  if (digits <= 15) {
    if (auto d = ParseDouble(text)) return *d;
  }
  return text;
}

}  // namespace

Value PgFieldToValue(Oid type, const char* text, bool is_null) {
  if (is_null) return nullptr;
  switch (type) {
    case kBool:
      return text[0] == 't';
    case kInt2:
    case kInt4:
    case kInt8:
    case kOid:
      if (auto i = ParseInt(text)) return *i;
      return text;
    case kFloat4:
    case kFloat8: {
      auto d = ParseDouble(text);
      if (d && *d == *d && *d - *d == 0) return *d;  // finite
      return text;
    }
    case kNumeric:
      return NumericToValue(text);
    case kJson:
    case kJsonb: {
      Value parsed = Value::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_discarded()) return parsed;
      return text;
    }
    default:
      return text;
  }
}

Value PgRowsToValue(const PGresult* res, std::vector<std::string>* columns) {
  const int ncols = PQnfields(res);
  std::vector<std::string> names;
  std::map<std::string, int> seen;
  for (int c = 0; c < ncols; ++c) {
    std::string name = PQfname(res, c);
    int n = ++seen[name];
    if (n > 1) name += "_" + std::to_string(n);
    names.push_back(name);
  }
  Value rows = Value::array();
  const int nrows = PQntuples(res);
  for (int r = 0; r < nrows; ++r) {
    Value row = Value::object();
    for (int c = 0; c < ncols; ++c) {
      row[names[c]] = PgFieldToValue(PQftype(res, c), PQgetvalue(res, r, c),
                                     PQgetisnull(res, r, c) != 0);
    }
    rows.push_back(std::move(row));
  }
  if (columns) *columns = std::move(names);
  return rows;
}

std::optional<std::string> ValueToPgParam(const Value& v) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

std::string PgTextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace runbook
