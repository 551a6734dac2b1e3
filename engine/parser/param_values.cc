// Param values: declared (YAML nodes) and given (command-line strings).
#include <cmath>
#include <algorithm>
#include <cctype>

#include "engine/parser/validator.h"

namespace runbook {
namespace {

std::string Got(const Node& n) {
  if (n.IsScalar()) return "'" + n.scalar + "'";
  return DescribeNode(n);
}

std::string Expected(ParamType type) {
  switch (type) {
    case ParamType::kList: return "expected list such as [a, b]";
    case ParamType::kMap: return "expected map such as {k: v}";
    default: return std::string("expected ") + ParamTypeName(type);
  }
}

}  // namespace

bool ParseParamType(const std::string& name, ParamType* out) {
  for (ParamType t : {ParamType::kString, ParamType::kInt, ParamType::kNumber, ParamType::kBool,
                      ParamType::kList, ParamType::kMap}) {
    if (name == ParamTypeName(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

static bool Finite(const Value& v) { return !v.is_number_float() || std::isfinite(v.get<double>()); }

std::string ParamValueFromNode(ParamType type, const Node& n, Value* out) {
  *out = ToValue(n);
  if (n.IsNull()) return "";  // an explicit null: the param may be absent
  bool ok = false;
  switch (type) {
    case ParamType::kString:
      ok = n.IsScalar();
      if (ok) *out = n.scalar;  // `5432` is the string "5432" as written
      break;
    case ParamType::kInt: ok = n.IsScalar() && out->is_number_integer(); break;
    case ParamType::kNumber: ok = n.IsScalar() && out->is_number() && Finite(*out); break;
    case ParamType::kBool: ok = n.IsScalar() && out->is_boolean(); break;
    case ParamType::kList: ok = n.IsSeq(); break;
    case ParamType::kMap: ok = n.IsMap(); break;
  }
  return ok ? "" : Expected(type) + ", got " + Got(n);
}

std::string ParamValueFromString(ParamType type, const std::string& text, Value* out) {
  std::string got = ", got '" + text + "'";
  switch (type) {
    case ParamType::kString: *out = text; return "";
    case ParamType::kInt:
    case ParamType::kNumber: {
      Value v = PlainScalarValue(text);
      bool ok = type == ParamType::kInt ? v.is_number_integer() : v.is_number() && Finite(v);
      if (ok) *out = v;
      // 1e999 is a number to the parser and infinity to a double, which
      // JSON cannot hold (it would be stored as null).
      if (!ok && v.is_number_float()) return Expected(type) + " (finite)" + got;
      return ok ? "" : Expected(type) + got;
    }
    case ParamType::kBool: {
      std::string lower = text;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") *out = true;
      else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") *out = false;
      else return Expected(type) + " (true or false)" + got;
      return "";
    }
    case ParamType::kList:
    case ParamType::kMap: {
      std::vector<Diagnostic> ignored;
      std::optional<Node> tree = LoadYamlTree("<value>", text, &ignored);
      bool ok = tree && (type == ParamType::kList ? tree->IsSeq() : tree->IsMap());
      if (ok) *out = ToValue(*tree);
      return ok ? "" : Expected(type) + got;
    }
  }
  return "unknown type";
}

}  // namespace runbook
