// params: {NAME: {type, default, required, secret, env, description}}

#include "engine/parser/validator.h"
#include "engine/core/text.h"

namespace runbook {
namespace {

const std::vector<std::string>& ParamKeys() {
  static const std::vector<std::string> kKeys = {"type",   "default", "required",
                                                 "secret", "env",     "description"};
  return kKeys;
}

const std::vector<std::string>& TypeNames() {
  static const std::vector<std::string> kTypes = {"string", "int", "number", "bool", "list", "map"};
  return kTypes;
}

// A param without `type` takes its default's type (string when none).
ParamType InferType(const Node* def) {
  if (!def) return ParamType::kString;
  if (def->IsSeq()) return ParamType::kList;
  if (def->IsMap()) return ParamType::kMap;
  Value v = ToValue(*def);
  if (v.is_boolean()) return ParamType::kBool;
  if (v.is_number_integer()) return ParamType::kInt;
  if (v.is_number()) return ParamType::kNumber;
  return ParamType::kString;
}

}  // namespace

void Validator::Params(const Node& n) {
  if (n.IsNull()) return;
  if (!n.IsMap()) {
    Error(n.pos, "params must be a map of NAME: {type, default, ...}, got " + DescribeNode(n));
    return;
  }
  for (const auto& [k, v] : n.entries) Param(k, v);
}

void Validator::Param(const Node& key, const Node& value) {
  const std::string& name = key.scalar;
  std::string subject = "param '" + name + "': ";
  if (!MatchesName(name, IsIdentStart, IsIdentChar)) {
    Error(key.pos, "bad param name '" + name +
                       "': use letters, digits and '_', not starting with a digit");
  }
  if (!value.IsMap()) {
    Error(value.pos, "param '" + name + "' must be a map such as {type: string, default: x}, got " +
                         DescribeNode(value));
    return;
  }
  ParamSpec p;
  p.name = name;
  p.pos = key.pos;
  const Node* def = value.Find("default");
  p.type = InferType(def);
  bool required = false;
  const Node* required_node = nullptr;
  for (const auto& [k, v] : value.entries) {
    const std::string& field = k.scalar;
    if (field == "type") {
      std::string t;
      if (StringKey(v, subject + "'type'", &t) && !ParseParamType(t, &p.type)) {
        Error(v.pos, subject + "unknown type '" + t + "' (use string, int, number, bool, list, map)",
              Suggest(t, TypeNames()));
      }
    } else if (field == "required") {
      if (BoolKey(v, subject + "'required'", &required)) required_node = &k;
    } else if (field == "secret") {
      BoolKey(v, subject + "'secret'", &p.secret);
    } else if (field == "env") {
      if (StringKey(v, subject + "'env'", &p.env) && !MatchesName(p.env, IsIdentStart, IsIdentChar)) {
        Error(v.pos, subject + "bad environment variable name '" + p.env + "'");
      }
    } else if (field == "description") {
      StringKey(v, subject + "'description'", &p.description);
    } else if (field != "default") {
      Error(k.pos, subject + "unknown key '" + field + "'", Suggest(field, ParamKeys()));
    }
  }
  if (def) {
    Value d;
    std::string problem = ParamValueFromNode(p.type, *def, &d);
    if (!problem.empty()) {
      Error(def->pos, subject + "default does not match type " + ParamTypeName(p.type) + ": " +
                          problem);
    }
    p.default_value = d;
  }
  if (required && def) {
    Error(required_node->pos, subject + "required params take no default: drop one of them");
  }
  // A param with no default must be given, unless it says `required: false`:
  // then its default is null.
  bool explicitly_optional = value.Find("required") && !required;
  p.required = !def && !explicitly_optional;
  if (!def && explicitly_optional) p.default_value = Value(nullptr);
  rb_->params.push_back(std::move(p));
}

}  // namespace runbook
