#include "engine/core/result_shape.h"

#include <cstdlib>
#include <utility>

namespace runbook {

const char* FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kAny:
      return "any";
    case FieldType::kString:
      return "string";
    case FieldType::kInt:
      return "int";
    case FieldType::kNumber:
      return "number";
    case FieldType::kBool:
      return "bool";
    case FieldType::kList:
      return "list";
    case FieldType::kMap:
      return "map";
  }
  return "?";
}

FieldSpec Field(std::string name, FieldType type, std::string help) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  f.help = std::move(help);
  return f;
}

FieldSpec Optional(FieldSpec f) {
  f.optional = true;
  return f;
}

FieldSpec MapField(std::string name, std::string help, std::vector<FieldSpec> fields, bool open) {
  FieldSpec f = Field(std::move(name), FieldType::kMap, std::move(help));
  f.fields = std::move(fields);
  f.open = open;
  return f;
}

FieldSpec ListField(std::string name, FieldType item, std::string help) {
  FieldSpec f = Field(std::move(name), FieldType::kList, std::move(help));
  f.item = item;
  return f;
}

FieldSpec ListOfMaps(std::string name, std::string help, std::vector<FieldSpec> fields, bool open) {
  FieldSpec f = ListField(std::move(name), FieldType::kMap, std::move(help));
  f.fields = std::move(fields);
  f.open = open;
  return f;
}

FieldSpec MapResult(std::vector<FieldSpec> fields, bool open) {
  return MapField("", "", std::move(fields), open);
}

FieldSpec ListResult(std::string help, std::vector<FieldSpec> item_fields, bool open) {
  return ListOfMaps("", std::move(help), std::move(item_fields), open);
}

FieldSpec AnyResult(std::string help) { return Field("", FieldType::kAny, std::move(help)); }

namespace {

const char* JsonType(const Value& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "int";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "list";
  return "map";
}

bool HasType(FieldType t, const Value& v) {
  switch (t) {
    case FieldType::kAny:
      return true;
    case FieldType::kString:
      return v.is_string();
    case FieldType::kInt:
      return v.is_number_integer();
    case FieldType::kNumber:
      return v.is_number();
    case FieldType::kBool:
      return v.is_boolean();
    case FieldType::kList:
      return v.is_array();
    case FieldType::kMap:
      return v.is_object();
  }
  return false;
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

void CheckMap(const std::vector<FieldSpec>& fields, bool open, const std::string& path,
              const Value& v, std::vector<std::string>& out);

// `v` against type `t` (and `fields` when it is a map) at `path`.
void CheckValue(FieldType t, const FieldSpec& spec, const std::string& path, const Value& v,
                std::vector<std::string>& out) {
  const std::string where = path.empty() ? "result" : path;
  if (IsUnknown(v)) return;  // a rehearsal's UNKNOWN stands for any value
  if (!HasType(t, v)) {
    out.push_back(where + ": expected " + FieldTypeName(t) + ", got " + JsonType(v));
    return;
  }
  if (t == FieldType::kMap) CheckMap(spec.fields, spec.open, path, v, out);
  if (t == FieldType::kList) {
    for (size_t i = 0; i < v.size(); ++i) {
      CheckValue(spec.item, spec, path + "[" + std::to_string(i) + "]", v[i], out);
    }
  }
}

void CheckMap(const std::vector<FieldSpec>& fields, bool open, const std::string& path,
              const Value& v, std::vector<std::string>& out) {
  for (const FieldSpec& f : fields) {
    const std::string at = Join(path, f.name);
    auto it = v.find(f.name);
    if (it == v.end() || it->is_null()) {
      if (!f.optional) out.push_back(at + ": missing");
      continue;
    }
    CheckValue(f.type, f, at, *it, out);
  }
  if (open) return;
  for (auto it = v.begin(); it != v.end(); ++it) {
    bool known = false;
    for (const FieldSpec& f : fields) known = known || f.name == it.key();
    if (!known) out.push_back(Join(path, it.key()) + ": not documented");
  }
}

}  // namespace

std::vector<std::string> CheckResultShape(const FieldSpec& spec, const Value& result) {
  std::vector<std::string> out;
  if (result.is_null() && (spec.optional || spec.type == FieldType::kAny)) return out;
  CheckValue(spec.type, spec, "", result, out);
  return out;
}

bool CheckResultsEnabled() {
  const char* v = std::getenv("RUNBOOK_CHECK_RESULTS");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

}  // namespace runbook
