// connections: {NAME: {TYPE: config-map | scalar}}

#include "engine/parser/validator.h"
#include "engine/core/text.h"

namespace runbook {
namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  if (names.empty()) return "none registered";
  std::string all;
  for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
  return all;
}

}  // namespace

void Validator::Connections(const Node& n) {
  if (n.IsNull()) return;
  if (!n.IsMap()) {
    Error(n.pos, "connections must be a map of NAME: {TYPE: config}, got " + DescribeNode(n));
    return;
  }
  // Names and types first: a connection may go through another (`via:`).
  for (const auto& [k, v] : n.entries) {
    if (!v.IsMap()) continue;
    for (const auto& [type, config] : v.entries) {
      if (registry_.FindConnectionType(type.scalar)) {
        connection_types_.emplace(k.scalar, type.scalar);
        break;
      }
    }
  }
  for (const auto& [k, v] : n.entries) ConnectionEntry(k, v);
}

void Validator::ConnectionEntry(const Node& key, const Node& value) {
  const std::string& name = key.scalar;
  std::string subject = "connection '" + name + "': ";
  std::vector<std::string> types = registry_.ConnectionTypeNames();
  if (!MatchesName(name, IsIdentChar, [](char c) { return IsIdentChar(c) || c == '-'; })) {
    Error(key.pos, "bad connection name '" + name + "': use letters, digits, '-' and '_'");
  }
  if (!value.IsMap() || value.entries.empty()) {
    Error(value.pos, subject + "expected a map {TYPE: config} with TYPE one of " +
                         JoinNames(types) + ", got " + DescribeNode(value));
    return;
  }
  const std::pair<Node, Node>* chosen = nullptr;
  for (const auto& entry : value.entries) {
    const std::string& type = entry.first.scalar;
    if (!registry_.FindConnectionType(type)) {
      Error(entry.first.pos, subject + "unknown connection type '" + type + "' (one of " +
                                 JoinNames(types) + ")",
            Suggest(type, types));
    } else if (chosen) {
      Error(entry.first.pos, subject + "has two types, '" + chosen->first.scalar + "' and '" +
                                 type + "'");
    } else {
      chosen = &entry;
    }
  }
  if (!chosen) return;
  const Node& type_key = chosen->first;
  const Node& config = chosen->second;
  const Schema& schema = registry_.FindConnectionType(type_key.scalar)->schema();
  ConnectionSpec spec;
  spec.name = name;
  spec.type = type_key.scalar;
  spec.pos = key.pos;
  if (config.IsScalar() && !schema.scalar_arg.empty()) {
    spec.config = Value::object();
    spec.positions[""] = config.pos;
    spec.config[schema.scalar_arg] =
        ToValue(config, &spec.positions, "/" + JsonPointerToken(schema.scalar_arg));
  } else if (config.IsNull()) {
    spec.config = Value::object();
    spec.positions[""] = type_key.pos;
  } else {
    spec.config = ToValue(config, &spec.positions);
  }
  ReportArgErrors(CheckArgs(schema, spec.config), subject + spec.type, config, type_key.pos);
  CheckConnectionRefs(schema, spec.config, config, type_key.pos, subject, name);
  // Connections are opened when a step first uses them, so their templates
  // may read params and any step's result.
  RefScope scope{&all_ids_, ""};
  CheckTemplates(config, scope);
  spec.config = RewriteTemplateIds(spec.config, all_ids_);
  rb_->connections.push_back(std::move(spec));
}

// Arguments of type connection that name one (not a template) must name a
// connection of this file, of the right type.
void Validator::CheckConnectionRefs(const Schema& schema, const Value& args, const Node& value,
                                    const Pos& anchor, const std::string& label,
                                    const std::string& self) {
  if (!args.is_object()) return;
  std::vector<std::string> names;
  for (const auto& [n, t] : connection_types_) names.push_back(n);
  for (const ArgSpec& spec : schema.args) {
    if (spec.type != ArgType::kConnection || !args.contains(spec.name)) continue;
    const Value& v = args[spec.name];
    if (!v.is_string() || HasTemplate(v.get<std::string>())) continue;
    std::string target = v.get<std::string>();
    const Node* at = value.IsMap() ? value.Find(spec.name) : &value;
    Pos pos = at ? at->pos : anchor;
    auto it = connection_types_.find(target);
    if (!self.empty() && target == self) {
      Error(pos, label + "argument '" + spec.name + "': a connection cannot go through itself");
    } else if (it == connection_types_.end()) {
      Error(pos, label + "argument '" + spec.name + "': unknown connection '" + target + "'",
            Suggest(target, names));
    } else if (!spec.conn_type.empty() && it->second != spec.conn_type) {
      Error(pos, label + "argument '" + spec.name + "': connection '" + target + "' is " + it->second +
                     ", expected " + spec.conn_type);
    }
  }
}

}  // namespace runbook
