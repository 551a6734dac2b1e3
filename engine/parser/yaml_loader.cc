// The one adapter over yaml-cpp: YAML text -> Node. yaml-cpp exceptions are
// caught here and nowhere else.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>

#include "engine/parser/node.h"

namespace runbook {
namespace {

// Aliases can make a small file expand into a huge (or, with yaml-cpp, a
// cyclic) tree; a runbook never needs anything near these.
constexpr int kMaxDepth = 128;
constexpr size_t kMaxNodes = 1000000;

class Converter {
 public:
  Converter(const std::string& path, const std::string& text, std::vector<Diagnostic>* diags)
      : path_(path), text_(text), diags_(diags) {}

  Node Convert(const YAML::Node& y, int depth) {
    Node n;
    n.pos = ToPos(y.Mark());
    if (depth > kMaxDepth || ++count_ > kMaxNodes) {
      if (!too_big_) Error(n.pos, "the document nests or expands too deeply (aliases?)");
      too_big_ = true;
      return n;
    }
    switch (y.Type()) {
      case YAML::NodeType::Scalar: ConvertScalar(y, &n); break;
      case YAML::NodeType::Sequence:
        n.kind = Node::kSeq;
        for (const auto& item : y) n.items.push_back(Convert(item, depth + 1));
        break;
      case YAML::NodeType::Map: ConvertMap(y, &n, depth); break;
      default: n.kind = Node::kNull; break;
    }
    return n;
  }

 private:
  Pos ToPos(const YAML::Mark& m) const {
    if (m.line < 0) return Pos{path_, 1, 1};
    return Pos{path_, m.line + 1, m.column + 1};
  }

  void Error(const Pos& pos, const std::string& msg) { diags_->push_back({pos, "", msg, ""}); }

  void ConvertScalar(const YAML::Node& y, Node* n) {
    n->kind = Node::kScalar;
    n->scalar = y.Scalar();
    n->quoted = y.Tag() != "?";  // "!" for quoted scalars, the tag for tagged ones
    size_t at = static_cast<size_t>(y.Mark().pos);
    if (y.Mark().pos >= 0 && at < text_.size() && (text_[at] == '|' || text_[at] == '>')) {
      n->content_pos = BlockContentPos(at, n->pos.line + 1);
    }
  }

  // A block scalar's content starts on the line after its indicator; the
  // column is that line's indentation.
  Pos BlockContentPos(size_t indicator, int line) const {
    size_t eol = text_.find('\n', indicator);
    int col = 1;
    if (eol != std::string::npos) {
      for (size_t i = eol + 1; i < text_.size() && text_[i] == ' '; ++i) ++col;
      if (eol + col < text_.size() && text_[eol + col] == '\n') col = 1;  // blank line
    }
    return Pos{path_, line, col};
  }

  // An empty value (`key:` and nothing) is marked at the next token, which
  // may be lines away; point at the key instead.
  bool IsImplicitNull(const YAML::Node& y) const {
    if (!y.IsNull()) return false;
    if (y.Mark().pos < 0 || static_cast<size_t>(y.Mark().pos) >= text_.size()) return true;
    std::string at = text_.substr(static_cast<size_t>(y.Mark().pos), 4);
    return at[0] != '~' && at != "null" && at != "Null" && at != "NULL";
  }

  // Duplicate keys are errors. `<<: *anchor` (YAML merge keys, which
  // yaml-cpp 0.7 leaves to the application) adds the keys the map does not
  // have itself; in a list of maps, earlier maps win.
  void ConvertMap(const YAML::Node& y, Node* n, int depth) {
    n->kind = Node::kMap;
    std::map<std::string, Pos> seen;
    std::vector<Node> merges;
    for (const auto& kv : y) {
      Node key = Convert(kv.first, depth + 1);
      Node value = Convert(kv.second, depth + 1);
      if (IsImplicitNull(kv.second)) value.pos = key.pos;
      if (!key.IsScalar()) {
        Error(key.pos, "map keys must be scalars, got " + DescribeNode(key));
        continue;
      }
      if (key.scalar == "<<" && !key.quoted) {
        merges.push_back(std::move(value));
        continue;
      }
      auto [it, fresh] = seen.emplace(key.scalar, key.pos);
      if (!fresh) {
        Error(key.pos, "duplicate key '" + key.scalar + "' (first at line " +
                           std::to_string(it->second.line) + ")");
        continue;
      }
      n->entries.emplace_back(std::move(key), std::move(value));
    }
    for (const Node& m : merges) {
      if (m.IsMap()) MergeFrom(m, &seen, n);
      for (const Node& item : m.items) {
        if (item.IsMap()) MergeFrom(item, &seen, n);
      }
      bool maps = m.IsMap() || (m.IsSeq() && std::all_of(m.items.begin(), m.items.end(),
                                                         [](const Node& i) { return i.IsMap(); }));
      if (!maps) Error(m.pos, "'<<' merges a map or a list of maps, got " + DescribeNode(m));
    }
  }

  static void MergeFrom(const Node& from, std::map<std::string, Pos>* seen, Node* into) {
    for (const auto& entry : from.entries) {
      if (seen->emplace(entry.first.scalar, entry.first.pos).second) into->entries.push_back(entry);
    }
  }

  const std::string& path_;
  const std::string& text_;
  std::vector<Diagnostic>* diags_;
  size_t count_ = 0;
  bool too_big_ = false;
};

}  // namespace

std::optional<Node> LoadYamlTree(const std::string& path, const std::string& text,
                                 std::vector<Diagnostic>* diags) {
  size_t before = diags->size();
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Pos pos{path, e.mark.line >= 0 ? e.mark.line + 1 : 0, e.mark.column >= 0 ? e.mark.column + 1 : 0};
    diags->push_back({pos, "", "YAML syntax error: " + e.msg, ""});
    return std::nullopt;
  }
  Node tree = Converter(path, text, diags).Convert(root, 0);
  if (diags->size() != before) return std::nullopt;
  return tree;
}

}  // namespace runbook
