// Node: the runbook as a tree with positions, before validation. Both
// loaders produce it (YAML through yaml-cpp, `.lua` runbooks through the
// sandboxed table a chunk returns); the validator reads only this.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/value.h"
#include "engine/model/model.h"
#include "engine/parser/parser.h"

namespace runbook {

struct Node {
  enum Kind { kNull, kScalar, kSeq, kMap };

  // Out of line: `entries` holds pairs of Node, which is complete only
  // there (clang with libstdc++ refuses the inline ones).
  Node();
  ~Node();
  Node(const Node&);
  Node(Node&&) noexcept;
  Node& operator=(const Node&);
  Node& operator=(Node&&) noexcept;

  Kind kind = kNull;
  std::string scalar;   // kScalar: the text as written (unescaped)
  bool quoted = false;  // kScalar: quoted or tagged, so never typed (stays a string)
  Pos pos;              // where the node starts
  // kScalar: where the text starts when that differs from pos. A block
  // scalar's (`|`, `>`) pos is its indicator; its content begins on the next
  // line, which is what the Lua runtime needs to map chunk line 1. Unset
  // (line 0) otherwise.
  Pos content_pos;
  std::vector<Node> items;                     // kSeq
  std::vector<std::pair<Node, Node>> entries;  // kMap: key node, value node

  bool IsNull() const { return kind == kNull; }
  bool IsScalar() const { return kind == kScalar; }
  bool IsSeq() const { return kind == kSeq; }
  bool IsMap() const { return kind == kMap; }

  // kMap: the entry whose key is `key`, or nullptr.
  const std::pair<Node, Node>* FindEntry(const std::string& key) const;
  // kMap: the value under `key`, or nullptr.
  const Node* Find(const std::string& key) const;
};

// "a string", "a list", "a map", "nothing", or for typed scalars "an int"...
std::string DescribeNode(const Node& n);

// Where a scalar's text begins (content_pos when set, else pos).
const Pos& ContentPos(const Node& n);

// The Value a node denotes. Plain (unquoted) scalars are typed as YAML 1.2's
// core schema says: true/false, null/~, integers, floats; everything else and
// every quoted scalar is a string. When `positions` is given, it receives
// the position of every part of the value, keyed by JSON pointer below
// `prefix` (block scalars record ContentPos).
Value ToValue(const Node& n, PosMap* positions = nullptr, const std::string& prefix = "");

// The typed value of one plain scalar's text ("12" -> 12, "true" -> true).
Value PlainScalarValue(const std::string& text);

// Escapes a map key for a JSON pointer ("a/b" -> "a~1b").
std::string JsonPointerToken(const std::string& key);

// Parses YAML text into a Node tree. yaml-cpp exceptions become a diagnostic
// with file:line:col; duplicate keys are reported too. An empty document
// yields a kNull node. Returns nullopt on any error.
std::optional<Node> LoadYamlTree(const std::string& path, const std::string& text,
                                 std::vector<Diagnostic>* diags);

// Runs a `.lua` runbook (sandboxed) and returns the table it builds as a
// Node tree with positions from the chunk. Implemented in the Lua area
// (engine/lua/lua_loader.cc); returns nullopt after adding a diagnostic.
std::optional<Node> LoadLuaRunbookTree(const std::string& path, const std::string& text,
                                       std::vector<Diagnostic>* diags);

}  // namespace runbook
