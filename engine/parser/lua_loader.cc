// `.lua` runbooks: a sandboxed chunk returns a table with the same structure
// as a YAML runbook; it becomes the same Node tree the validator reads.
// Lua tables carry no source positions, so they are found in the source
// text: a key where `key =` or `["key"] =` is written, a step where its
// `id = "..."` is, each within the part of the text of the table that holds
// it. Anything not found points at its parent (at worst the file's line 1).
#include <cctype>

#include "engine/lua/runtime.h"
#include "engine/parser/node.h"

namespace runbook {
namespace {

class Locator {
 public:
  Locator(const std::string& path, const std::string& text) : path_(path), text_(text) {}

  Pos At(size_t offset) const {
    Pos p{path_, 1, 1};
    for (size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++p.line;
        p.col = 1;
      } else if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) {
        ++p.col;
      }
    }
    return p;
  }

  // Where `key = ` or `["key"] = ` is written in [from, to), or npos.
  size_t Key(const std::string& key, size_t from, size_t to) const {
    for (size_t i = text_.find(key, from); i != std::string::npos && i < to;
         i = text_.find(key, i + 1)) {
      size_t end = i + key.size();
      if (i > 0 && (text_[i - 1] == '"' || text_[i - 1] == '\'')) {
        // ["key"] =
        char q = text_[i - 1];
        if (end < text_.size() && text_[end] == q && i >= 2 && text_[i - 2] == '[' &&
            Assigns(end + 1, true)) {
          return i - 2;
        }
        continue;
      }
      if (i > 0 && (Ident(text_[i - 1]) || text_[i - 1] == '.')) continue;
      if (end < text_.size() && Ident(text_[end])) continue;
      if (Assigns(end, false)) return i;
    }
    return std::string::npos;
  }

  // Where a table holding `id = "value"` starts its id, in [from, to).
  size_t Id(const std::string& value, size_t from, size_t to) const {
    for (size_t at = Key("id", from, to); at != std::string::npos; at = Key("id", at + 1, to)) {
      size_t i = text_.find('=', at) + 1;
      while (i < text_.size() && std::isspace(static_cast<unsigned char>(text_[i]))) ++i;
      if (i < text_.size() && (text_[i] == '"' || text_[i] == '\'') &&
          text_.compare(i + 1, value.size(), value) == 0 && i + 1 + value.size() < text_.size() &&
          text_[i + 1 + value.size()] == text_[i]) {
        return at;
      }
    }
    return std::string::npos;
  }

  size_t size() const { return text_.size(); }

 private:
  static bool Ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

  // `=` (not `==`) after optional blanks (and the closing `]`).
  bool Assigns(size_t i, bool bracket) const {
    if (bracket) {
      if (i >= text_.size() || text_[i] != ']') return false;
      ++i;
    }
    while (i < text_.size() && (text_[i] == ' ' || text_[i] == '\t')) ++i;
    return i < text_.size() && text_[i] == '=' && (i + 1 >= text_.size() || text_[i + 1] != '=');
  }

  const std::string& path_;
  const std::string& text_;
};

Node ToNode(const Value& v, const Pos& pos, const Locator& loc, size_t from, size_t to) {
  Node n;
  n.pos = pos;
  if (v.is_null()) return n;
  if (v.is_object() || (v.is_array() && v.empty())) {
    // An empty Lua table is taken as an empty map (params = {}, env = {}).
    n.kind = Node::kMap;
    for (auto it = v.begin(); it != v.end(); ++it) {
      size_t at = loc.Key(it.key(), from, to);
      Pos here = at == std::string::npos ? pos : loc.At(at);
      Node key;
      key.kind = Node::kScalar;
      key.scalar = it.key();
      key.quoted = true;
      key.pos = here;
      n.entries.emplace_back(
          std::move(key), ToNode(it.value(), here, loc, at == std::string::npos ? from : at, to));
    }
    return n;
  }
  if (v.is_array()) {
    n.kind = Node::kSeq;
    // Items with an id (steps) are found by it, in order; each one's text
    // runs to the next one's.
    std::vector<size_t> starts(v.size(), std::string::npos);
    size_t cursor = from;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i].is_object() && v[i].contains("id") && v[i]["id"].is_string()) {
        starts[i] = loc.Id(v[i]["id"].get<std::string>(), cursor, to);
        if (starts[i] != std::string::npos) cursor = starts[i] + 1;
      }
    }
    for (size_t i = 0; i < v.size(); ++i) {
      size_t begin = starts[i] == std::string::npos ? from : starts[i];
      size_t end = to;
      for (size_t k = i + 1; k < v.size(); ++k) {
        if (starts[k] != std::string::npos) {
          end = starts[k];
          break;
        }
      }
      Pos here = starts[i] == std::string::npos ? pos : loc.At(starts[i]);
      n.items.push_back(ToNode(v[i], here, loc, begin, end));
    }
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
  Locator loc(path, text);
  return ToNode(*r, origin, loc, 0, loc.size());
}

}  // namespace runbook
