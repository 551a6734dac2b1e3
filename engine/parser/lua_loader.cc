// `.lua` runbooks: a sandboxed chunk returns a table with the same structure
// as a YAML runbook; it becomes the same Node tree the validator reads.
// Lua tables carry no source positions, so every node points at the file
// (line 1); messages still name the step and key.
#include "engine/lua/runtime.h"
#include "engine/parser/node.h"

namespace runbook {
namespace {

Node ToNode(const Value& v, const Pos& pos) {
  Node n;
  n.pos = pos;
  if (v.is_null()) return n;
  if (v.is_object() || (v.is_array() && v.empty())) {
    // An empty Lua table is taken as an empty map (params = {}, env = {}).
    n.kind = Node::kMap;
    for (auto it = v.begin(); it != v.end(); ++it) {
      Node key;
      key.kind = Node::kScalar;
      key.scalar = it.key();
      key.quoted = true;
      key.pos = pos;
      n.entries.emplace_back(std::move(key), ToNode(it.value(), pos));
    }
    return n;
  }
  if (v.is_array()) {
    n.kind = Node::kSeq;
    for (const auto& item : v) n.items.push_back(ToNode(item, pos));
    return n;
  }
  n.kind = Node::kScalar;
  if (v.is_string()) {
    n.scalar = v.get<std::string>();
    n.quoted = true;  // a Lua string stays a string
  } else {
    n.scalar = v.dump();  // numbers and booleans, typed again by the validator
  }
  return n;
}

}  // namespace

std::optional<Node> LoadLuaRunbookTree(const std::string& path, const std::string& text,
                                       std::vector<Diagnostic>* diags) {
  LuaRuntime lua;
  Pos origin{path, 1, 1};
  Result<Value> r = lua.Run(text, origin, Value::object(),
                            std::chrono::steady_clock::now() + std::chrono::seconds(10), nullptr);
  if (!r.ok()) {
    diags->push_back({origin, "", r.status().message(), ""});
    return std::nullopt;
  }
  if (!r->is_object()) {
    diags->push_back({origin, "", "a Lua runbook must return a table (return { format = 1, ... })",
                      ""});
    return std::nullopt;
  }
  return ToNode(*r, origin);
}

}  // namespace runbook
