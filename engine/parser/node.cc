#include "engine/parser/node.h"
#include "engine/core/text.h"

#include <cerrno>
#include <cstdlib>

namespace runbook {

Node::Node() = default;
Node::~Node() = default;
Node::Node(const Node&) = default;
Node::Node(Node&&) noexcept = default;
Node& Node::operator=(const Node&) = default;
Node& Node::operator=(Node&&) noexcept = default;

const std::pair<Node, Node>* Node::FindEntry(const std::string& key) const {
  for (const auto& e : entries) {
    if (e.first.IsScalar() && e.first.scalar == key) return &e;
  }
  return nullptr;
}

const Node* Node::Find(const std::string& key) const {
  const auto* e = FindEntry(key);
  return e ? &e->second : nullptr;
}

std::string DescribeNode(const Node& n) {
  switch (n.kind) {
    case Node::kNull: return "nothing";
    case Node::kSeq: return "a list";
    case Node::kMap: return "a map";
    case Node::kScalar: break;
  }
  if (n.quoted) return "a string";
  Value v = PlainScalarValue(n.scalar);
  if (v.is_boolean()) return "a bool";
  if (v.is_number_integer()) return "an int";
  if (v.is_number()) return "a number";
  if (v.is_null()) return "nothing";
  return "a string";
}

const Pos& ContentPos(const Node& n) { return n.content_pos.line > 0 ? n.content_pos : n.pos; }

static Value ParseInteger(const std::string& text, int base, size_t skip, bool negative) {
  errno = 0;
  char* end = nullptr;
  std::string digits = text.substr(skip);
  long long v = std::strtoll(digits.c_str(), &end, base);
  if (errno == ERANGE || *end != '\0') {
    if (base == 10) return std::strtod(text.c_str(), nullptr);  // too big: a number
    return text;
  }
  return negative ? -v : v;
}

Value PlainScalarValue(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (IsDecimalInt(text)) {
    bool neg = text[0] == '-';
    size_t skip = (text[0] == '-' || text[0] == '+') ? 1 : 0;
    return ParseInteger(text, 10, skip, neg);
  }
  if (IsOctalInt(text)) return ParseInteger(text, 8, 2, false);
  if (IsHexInt(text)) return ParseInteger(text, 16, 2, false);
  if (IsFloat(text)) return std::strtod(text.c_str(), nullptr);
  return text;
}

std::string JsonPointerToken(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

Value ToValue(const Node& n, PosMap* positions, const std::string& prefix) {
  if (positions) (*positions)[prefix] = n.kind == Node::kScalar ? ContentPos(n) : n.pos;
  switch (n.kind) {
    case Node::kNull: return nullptr;
    case Node::kScalar: return n.quoted ? Value(n.scalar) : PlainScalarValue(n.scalar);
    case Node::kSeq: {
      Value out = Value::array();
      for (size_t i = 0; i < n.items.size(); ++i) {
        out.push_back(ToValue(n.items[i], positions, prefix + "/" + std::to_string(i)));
      }
      return out;
    }
    case Node::kMap: {
      Value out = Value::object();
      for (const auto& [k, v] : n.entries) {
        out[k.scalar] = ToValue(v, positions, prefix + "/" + JsonPointerToken(k.scalar));
      }
      return out;
    }
  }
  return nullptr;
}

}  // namespace runbook
