// RunbookJsonSchema: the runbook format as JSON Schema (draft 2020-12), for
// editors. Generated from the Registry so it names exactly the actions and
// connection types the validator accepts.
#include "engine/parser/parser.h"

namespace runbook {
namespace {

Value Ref(const std::string& def) { return Value{{"$ref", "#/$defs/" + def}}; }

// Any argument may be a template instead of its type.
Value OrTemplate(Value t) { return Value{{"anyOf", Value::array({std::move(t), Ref("template")})}}; }

Value ArgSchema(const ArgSpec& arg) {
  Value t;
  switch (arg.type) {
    case ArgType::kAny: t = Value::object(); break;
    case ArgType::kString:
      t = arg.choices.empty() ? Value{{"type", {"string", "number"}}}
                              : OrTemplate(Value{{"enum", arg.choices}});
      break;
    case ArgType::kInt: t = OrTemplate({{"type", "integer"}}); break;
    case ArgType::kNumber: t = OrTemplate({{"type", "number"}}); break;
    case ArgType::kBool: t = OrTemplate({{"type", "boolean"}}); break;
    case ArgType::kList: t = OrTemplate({{"type", "array"}}); break;
    case ArgType::kMap: t = OrTemplate({{"type", "object"}}); break;
    case ArgType::kDuration: t = OrTemplate(Ref("duration")); break;
    case ArgType::kSize:
      t = OrTemplate(Ref("size"));
      break;
    case ArgType::kConnection: t = {{"type", "string"}}; break;
  }
  std::string help = arg.help;
  if (arg.type == ArgType::kConnection) {
    help += std::string(help.empty() ? "" : " ") + "(the name of a " +
            (arg.conn_type.empty() ? std::string("") : arg.conn_type + " ") + "connection)";
  }
  if (!help.empty()) t["description"] = help;
  return t;
}

// The map form of a Schema, plus its scalar form when it has one.
Value ArgsSchema(const Schema& schema) {
  Value obj = {{"type", "object"}, {"properties", Value::object()}};
  Value required = Value::array();
  for (const ArgSpec& arg : schema.args) {
    obj["properties"][arg.name] = ArgSchema(arg);
    if (arg.required) required.push_back(arg.name);
  }
  if (!required.empty()) obj["required"] = required;
  obj["additionalProperties"] = false;
  Value groups = Value::array();
  for (const auto& group : schema.one_of) {
    Value choices = Value::array();
    for (const auto& name : group) choices.push_back({{"required", {name}}});
    groups.push_back({{"oneOf", choices}});
  }
  if (!groups.empty()) obj["allOf"] = groups;
  Value out = obj;
  if (const ArgSpec* scalar = schema.Find(schema.scalar_arg)) {
    out = {{"anyOf", Value::array({obj, ArgSchema(*scalar)})}};
  }
  if (!schema.help.empty()) out["description"] = schema.help;
  return out;
}

Value ParamSchema() {
  Value p = {{"type", "object"}, {"additionalProperties", false}};
  p["properties"] = {
      {"type", {{"enum", {"string", "int", "number", "bool", "list", "map"}}}},
      {"default", Value::object()},
      {"required", {{"type", "boolean"}}},
      {"secret", {{"type", "boolean"}, {"description", "never printed or stored: shows as ***"}}},
      {"env", {{"type", "string"}, {"pattern", "^[A-Za-z_][A-Za-z0-9_]*$"}}},
      {"description", {{"type", "string"}}},
  };
  return p;
}

Value WindowSchema() {
  const char* time = "^([01]?[0-9]|2[0-3]):[0-5][0-9]$";
  Value w = {{"type", "object"}, {"additionalProperties", false}, {"required", {"start", "end"}}};
  w["properties"] = {
      {"timezone", {{"type", "string"}, {"description", "a tz database name, e.g. Asia/Singapore"}}},
      {"days", {{"type", "array"}, {"items", {{"enum", {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}}}}}},
      {"start", {{"type", "string"}, {"pattern", time}}},
      {"end", {{"type", "string"}, {"pattern", time}}},
  };
  return w;
}

Value ActionProperties(const Registry& registry) {
  Value props = Value::object();
  for (const auto& name : registry.Names()) props[name] = Ref("action." + name);
  return props;
}

Value StepSchema(const Registry& registry) {
  Value props = {
      {"id", {{"type", "string"}, {"pattern", "^[A-Za-z0-9][A-Za-z0-9_-]*$"}}},
      {"description", {{"type", "string"}}},
      {"when", {{"type", {"string", "boolean"}}, {"description", "Lua expression; false skips"}}},
      {"foreach", {{"anyOf", {{{"type", "array"}}, Ref("template")}}}},
      {"concurrency", {{"type", "integer"}, {"minimum", 1}}},
      {"retries", {{"type", "integer"}, {"minimum", 0}}},
      {"retry_delay", Ref("duration")},
      {"timeout", Ref("duration")},
      {"assert", {{"type", "string"}, {"description", "Lua expression over `result`"}}},
      {"rollback", Ref("rollback")},
      {"idempotent", {{"type", "boolean"}}},
      {"approve", {{"type", "string"}, {"description", "wait for approval before acting"}}},
      {"continue_on_error", {{"type", "boolean"}}},
      {"rollback_boundary", {{"type", "string"}}},
  };
  // Exactly one action. A name that is also a step key (approve) counts as
  // the action only when no other action is there.
  Value one_action = Value::array();
  Value others = Value::array();
  std::vector<std::string> shared;
  for (const auto& name : registry.Names()) {
    if (props.contains(name)) {
      shared.push_back(name);
    } else {
      one_action.push_back({{"required", {name}}});
      others.push_back({{"required", {name}}});
    }
  }
  for (const auto& name : shared) {
    one_action.push_back({{"required", {name}}, {"not", {{"anyOf", others}}}});
  }
  for (const auto& name : registry.Names()) props[name] = Ref("action." + name);
  return {{"type", "object"},         {"required", {"id"}},   {"properties", props},
          {"additionalProperties", false}, {"oneOf", one_action}};
}

Value Defs(const Registry& registry) {
  Value defs = Value::object();
  defs["template"] = {{"type", "string"}, {"pattern", "\\$\\{\\{"}};
  defs["duration"] = {{"type", "string"}, {"pattern", "^([0-9]+(ms|s|m|h))+$"}};
  defs["size"] = {
      {"anyOf", Value::array({Value{{"type", "integer"}, {"minimum", 0}},
                              Value{{"type", "string"},
                                    {"pattern", "^[0-9]+ ?(B|kB|MB|GB|TB|KiB|MiB|GiB|TiB)?$"}}})}};
  defs["param"] = ParamSchema();
  defs["window"] = WindowSchema();
  defs["step"] = StepSchema(registry);
  defs["rollback"] = {{"anyOf", {{{"enum", {"auto", "none"}}},
                                 {{"type", "object"},
                                  {"minProperties", 1},
                                  {"maxProperties", 1},
                                  {"properties", ActionProperties(registry)},
                                  {"additionalProperties", false}}}}};
  Value conn_props = Value::object();
  for (const auto& name : registry.ConnectionTypeNames()) {
    defs["connection." + name] = ArgsSchema(registry.FindConnectionType(name)->schema());
    conn_props[name] = Ref("connection." + name);
  }
  defs["connection"] = {{"type", "object"},        {"minProperties", 1},   {"maxProperties", 1},
                        {"properties", conn_props}, {"additionalProperties", false}};
  for (const auto& name : registry.Names()) {
    defs["action." + name] = ArgsSchema(registry.Find(name)->schema());
  }
  return defs;
}

}  // namespace

Value RunbookJsonSchema(const Registry& registry) {
  Value s = Value::object();
  s["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  s["title"] = "runbook";
  s["description"] = "A declarative runbook (format 1); see `runbook schema`.";
  s["type"] = "object";
  s["required"] = {"format", "name", "steps"};
  s["properties"] = {
      {"format", {{"const", 1}}},
      {"name", {{"type", "string"}, {"pattern", "^[a-z0-9][a-z0-9_-]*$"}}},
      {"description", {{"type", "string"}}},
      {"params", {{"type", "object"},
                  {"propertyNames", {{"pattern", "^[A-Za-z_][A-Za-z0-9_]*$"}}},
                  {"additionalProperties", Ref("param")}}},
      {"connections", {{"type", "object"}, {"additionalProperties", Ref("connection")}}},
      {"lock", {{"type", "string"}, {"description", "run-lock key; default: the name"}}},
      {"window", Ref("window")},
      {"on_failure", {{"enum", {"rollback", "stop"}}}},
      {"steps", {{"type", "array"}, {"minItems", 1}, {"items", Ref("step")}}},
  };
  s["additionalProperties"] = false;
  s["$defs"] = Defs(registry);
  return s;
}

}  // namespace runbook
