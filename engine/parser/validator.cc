#include "engine/parser/validator.h"
#include "engine/core/text.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace runbook {
namespace {

const std::vector<std::string>& TopKeys() {
  static const std::vector<std::string> kKeys = {
      "format", "name",   "description", "params",     "connections",
      "lock",   "window", "on_failure",  "steps"};
  return kKeys;
}

}  // namespace

Validator::Validator(const std::string& path, const Registry& registry, LoadContext* ctx,
                     std::vector<Diagnostic>* diags)
    : path_(path), registry_(registry), ctx_(ctx), diags_(diags), first_diag_(diags->size()) {}

void Validator::Error(const Pos& pos, const std::string& message, const std::string& suggestion) {
  diags_->push_back({pos, step_, message, suggestion});
}

bool Validator::Validate(const Node& root, Runbook* rb) {
  rb_ = rb;
  if (root.IsNull()) {
    Error(Pos{path_, 1, 1}, "empty runbook (expected a map with format, name and steps)");
  } else if (!root.IsMap()) {
    Error(root.pos, "a runbook must be a map with format, name and steps, got " +
                        DescribeNode(root));
  } else {
    TopLevel(root);
  }
  SortDiagnostics();
  return !failed_ && diags_->size() == first_diag_;
}

// Checks run in a fixed order (params before steps, say); people read the
// result top to bottom: this file's problems by position, then each
// included file's, in the order they were found.
void Validator::SortDiagnostics() {
  std::map<std::string, size_t> rank{{path_, 0}};
  for (size_t i = first_diag_; i < diags_->size(); ++i) {
    rank.emplace((*diags_)[i].pos.file, rank.size());
  }
  std::stable_sort(diags_->begin() + first_diag_, diags_->end(),
                   [&](const Diagnostic& a, const Diagnostic& b) {
                     return std::make_tuple(rank[a.pos.file], a.pos.line, a.pos.col) <
                            std::make_tuple(rank[b.pos.file], b.pos.line, b.pos.col);
                   });
}

void Validator::TopLevel(const Node& root) {
  for (const auto& [k, v] : root.entries) {
    const auto& keys = TopKeys();
    if (std::find(keys.begin(), keys.end(), k.scalar) == keys.end()) {
      Error(k.pos, "unknown key '" + k.scalar + "'", Suggest(k.scalar, keys));
    }
  }
  for (const char* required : {"format", "name", "steps"}) {
    if (!root.Find(required)) Error(root.pos, std::string("missing required key '") + required + "'");
  }
  // Fixed order, whatever the file's: steps refer to params and connections.
  if (const Node* n = root.Find("steps")) CollectIds(*n);
  if (const Node* n = root.Find("format")) Format(*n);
  if (const Node* n = root.Find("name")) Name(*n);
  if (const Node* n = root.Find("description")) StringKey(*n, "'description'", &rb_->description);
  if (const Node* n = root.Find("on_failure")) ParseOnFailure(*n);
  if (const Node* n = root.Find("window")) ParseWindow(*n);
  if (const Node* n = root.Find("params")) Params(*n);
  rb_->lock = rb_->name;
  if (const Node* n = root.Find("lock")) {  // after params: a lock may name them
    if (StringKey(*n, "'lock'", &rb_->lock)) {
      RefScope scope{nullptr, "the lock is taken before any step runs"};
      CheckTemplates(*n, scope);
    }
  }
  if (const Node* n = root.Find("connections")) Connections(*n);
  if (const Node* n = root.Find("steps")) Steps(*n);
  CheckConnectionOrder();
}

void Validator::Format(const Node& n) {
  Value v = ToValue(n);
  if (!n.IsScalar() || n.quoted || !v.is_number_integer() || v.get<int64_t>() != 1) {
    std::string got = n.IsScalar() ? "'" + n.scalar + "'" : DescribeNode(n);
    Error(n.pos, "unsupported format " + got + " (this engine reads format: 1)");
  }
}

void Validator::Name(const Node& n) {
  if (!StringKey(n, "'name'", &rb_->name)) return;
  auto lower = [](char c) { return (c >= 'a' && c <= 'z') || IsAsciiDigit(c); };
  if (!MatchesName(rb_->name, lower, [&](char c) { return lower(c) || c == '_' || c == '-'; })) {
    Error(n.pos, "bad name '" + rb_->name +
                     "': use lowercase letters, digits, '-' and '_', starting with a letter or digit");
  }
}

void Validator::ParseOnFailure(const Node& n) {
  std::string v;
  if (!StringKey(n, "'on_failure'", &v)) return;
  if (v == "rollback") {
    rb_->on_failure = OnFailure::kRollback;
  } else if (v == "stop") {
    rb_->on_failure = OnFailure::kStop;
  } else {
    Error(n.pos, "on_failure must be rollback or stop, got '" + v + "'",
          Suggest(v, {"rollback", "stop"}));
  }
}

std::string Diagnostic::ToString() const {
  std::string s = pos.ToString() + ": ";
  if (!step.empty()) s += "step '" + step + "': ";
  s += message;
  if (!suggestion.empty()) s += " (did you mean '" + suggestion + "'?)";
  return s;
}

}  // namespace runbook
