// connections: {NAME: {TYPE: config-map | scalar}}

#include "engine/core/text.h"
#include "engine/lua/template.h"
#include "engine/parser/validator.h"

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
  in_connection_ = true;
  CheckTemplates(config, scope);
  in_connection_ = false;
  spec.config = RewriteTemplateIds(spec.config, all_ids_);
  rb_->connections.push_back(std::move(spec));
}

namespace {

// Every `${{ }}` expression in the strings of v.
void Expressions(const Value& v, std::vector<std::string>* out) {
  if (v.is_string()) {
    Result<std::vector<TemplatePart>> parts = SplitTemplate(v.get<std::string>());
    if (!parts.ok()) return;
    for (const TemplatePart& p : *parts) {
      if (p.is_expr) out->push_back(p.text);
    }
  } else if (v.is_structured()) {
    for (const Value& e : v) Expressions(e, out);
  }
}

// The connections `args` names literally through arguments of type connection.
std::vector<std::string> NamedConnections(const Schema& schema, const Value& args) {
  std::vector<std::string> out;
  if (!args.is_object()) return out;
  for (const ArgSpec& spec : schema.args) {
    auto it = args.find(spec.name);
    if (spec.type != ArgType::kConnection || it == args.end() || !it->is_string()) continue;
    if (!HasTemplate(it->get<std::string>())) out.push_back(it->get<std::string>());
  }
  return out;
}

}  // namespace

void Validator::CheckConnectionOrder() {
  // The connections each connection goes through (via:), to open them too.
  std::map<std::string, std::vector<std::string>> through;
  for (const ConnectionSpec& c : rb_->connections) {
    if (const ConnectionType* type = registry_.FindConnectionType(c.type)) {
      through[c.name] = NamedConnections(type->schema(), c.config);
    }
    auto via = c.config.find("via");  // a name, typed as a string (pg's via:)
    if (via != c.config.end() && via->is_string() && !HasTemplate(via->get<std::string>())) {
      through[c.name].push_back(via->get<std::string>());
    }
  }
  // The index of the first step that opens each connection (by its action:
  // a rollback action runs after every step before the failure).
  std::map<std::string, size_t> first;
  for (size_t i = 0; i < rb_->steps.size(); ++i) {
    const ActionSpec& a = rb_->steps[i].action;
    const Primitive* prim = registry_.Find(a.name);
    if (!prim) continue;
    std::vector<std::string> open = NamedConnections(prim->schema(), a.args);
    for (size_t k = 0; k < open.size() && k < 64; ++k) {  // a via chain is short
      if (!first.emplace(open[k], i).second) continue;
      for (const std::string& via : through[open[k]]) open.push_back(via);
    }
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < rb_->steps.size(); ++i) index.emplace(rb_->steps[i].id, i);
  for (const ConnectionSpec& c : rb_->connections) {
    auto opened = first.find(c.name);
    if (opened == first.end()) continue;
    std::vector<std::string> exprs;
    Expressions(c.config, &exprs);
    std::set<std::string> read;
    for (const std::string& e : exprs) {
      for (const std::string& name : ReferencedSteps(e)) read.insert(ForeachBase(name));
    }
    for (const std::string& name : read) {
      auto at = index.find(name);
      if (at == index.end() || at->second < opened->second) continue;
      const std::string& by = rb_->steps[opened->second].id;
      Error(c.pos, "connection '" + c.name + "' reads steps." + name + ", but step '" + by +
                       "' opens it " + (by == name ? "itself" : "before '" + name + "' has run") +
                       ": the result would be nil. Use the connection only after '" + name + "'");
    }
  }
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
