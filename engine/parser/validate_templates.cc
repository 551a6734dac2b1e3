// Templates and expressions: `${{ }}` syntax, Lua syntax (compiled, never
// run), and that every params.X and steps.Y they read exists (and, for
// steps, has run by then).
#include <algorithm>
#include <vector>

#include "engine/lua/runtime.h"
#include "engine/lua/template.h"
#include "engine/parser/validator.h"

namespace runbook {
namespace {

// Where byte `offset` of a scalar's text is in the file. Exact for literal
// block scalars and single-line scalars without escapes; otherwise the
// scalar's start. The scalar's line starts are found once, so a string
// with many templates costs linear time (it was quadratic: 200,000
// templates took 20 s to validate).
class ScalarPositions {
 public:
  explicit ScalarPositions(const Node& n) : n_(n) {
    for (size_t i = 0; i < n.scalar.size(); ++i) {
      if (n.scalar[i] == '\n') newlines_.push_back(static_cast<int>(i));
    }
  }
  Pos At(int offset) const {
    if (n_.content_pos.line > 0) {
      // Lines that end before `offset`.
      auto it = std::lower_bound(newlines_.begin(), newlines_.end(), offset);
      const int lines = static_cast<int>(it - newlines_.begin());
      const int line_start = lines ? newlines_[lines - 1] + 1 : 0;
      return Pos{n_.pos.file, n_.content_pos.line + lines, n_.content_pos.col + offset - line_start};
    }
    if (n_.pos.col == 0 || !newlines_.empty()) return n_.pos;
    return Pos{n_.pos.file, n_.pos.line, n_.pos.col + (n_.quoted ? 1 : 0) + offset};
  }

 private:
  const Node& n_;
  std::vector<int> newlines_;
};

}  // namespace

std::string RewriteTemplateIds(const std::string& s, const std::set<std::string>& ids) {
  if (!HasTemplate(s)) return s;
  Result<std::vector<TemplatePart>> parts = SplitTemplate(s);
  if (!parts.ok()) return s;
  std::string out = s;
  for (auto it = parts->rbegin(); it != parts->rend(); ++it) {  // back to front: offsets hold
    if (!it->is_expr) continue;
    std::string rewritten = RewriteDashedIds(it->text, ids);
    if (rewritten == it->text) continue;
    size_t open = static_cast<size_t>(it->offset) + 3;
    size_t close = out.find("}}", open);
    out.replace(open, close - open, " " + rewritten + " ");
  }
  return out;
}

Value RewriteTemplateIds(const Value& v, const std::set<std::string>& ids) {
  if (v.is_string()) return RewriteTemplateIds(v.get<std::string>(), ids);
  if (!v.is_structured()) return v;
  Value out = v;
  for (auto it = out.begin(); it != out.end(); ++it) *it = RewriteTemplateIds(*it, ids);
  return out;
}

void Validator::CheckTemplates(const Node& n, const RefScope& scope) {
  switch (n.kind) {
    case Node::kScalar:
      if (HasTemplate(n.scalar)) CheckTemplateString(n, scope);
      break;
    case Node::kSeq:
      for (const Node& item : n.items) CheckTemplates(item, scope);
      break;
    case Node::kMap:
      for (const auto& [k, v] : n.entries) CheckTemplates(v, scope);
      break;
    case Node::kNull: break;
  }
}

void Validator::CheckTemplateString(const Node& n, const RefScope& scope) {
  Result<std::vector<TemplatePart>> parts = SplitTemplate(n.scalar);
  if (!parts.ok()) {
    Error(ContentPos(n), "bad template: " + parts.status().message());
    return;
  }
  const ScalarPositions positions(n);
  for (const TemplatePart& part : *parts) {
    if (!part.is_expr) continue;
    CheckExpr(part.text, positions.At(part.offset), "template", scope);
    // In a connection, a template inside a longer string ("host=${{ x }}")
    // that is nil fails when the connection opens (a whole-string one is
    // null: the field is unset). Exactly an optional param without a
    // default is nil whenever the param is not given.
    if (!in_connection_ || parts->size() == 1) continue;
    const std::set<std::string> read = ReferencedParams(part.text);
    const ParamSpec* p = read.size() == 1 ? rb_->FindParam(*read.begin()) : nullptr;
    if (!p || p->required || (p->default_value && !p->default_value->is_null())) continue;
    if (part.text == "params." + p->name || part.text == "params[\"" + p->name + "\"]" ||
        part.text == "params['" + p->name + "']") {
      Error(positions.At(part.offset),
            "'${{ " + part.text + " }}' is nil inside '" + n.scalar + "' when param '" + p->name +
                "' is not given (it is optional and has no default): give it a default, make "
                "it required, or write '${{ " +
                part.text + " or '' }}'");
    }
  }
}

void Validator::CheckExpr(const std::string& expr, const Pos& pos, const std::string& where,
                          const RefScope& scope) {
  std::string rewritten = RewriteDashedIds(expr, all_ids_);
  // As the runtime evaluates it (LuaRuntime::Eval).
  int line = 0;
  if (Status s = CheckLuaSyntax("return " + rewritten, &line); !s.ok()) {
    Error(pos, "Lua syntax error in " + where + ": " + s.message());
    return;
  }
  CheckRefs(rewritten, pos, where, scope);
}

void Validator::CheckRefs(const std::string& code, const Pos& pos, const std::string& where,
                          const RefScope& scope, const Pos* first_line) {
  // Where `root`.`name` (or root["name"], or the word `root`) is first
  // read: its line in a chunk, else `pos`.
  auto at = [&](const std::string& root, const std::string& name) {
    if (!first_line) return pos;
    size_t off = std::string::npos;
    for (const std::string& form :
         {root + "." + name, root + "[\"" + name, root + "['" + name, root + "[", root}) {
      if ((off = code.find(form)) != std::string::npos) break;
    }
    Pos p = *first_line;
    if (off != std::string::npos) {
      p.line +=
          static_cast<int>(std::count(code.begin(), code.begin() + static_cast<long>(off), '\n'));
    }
    return p;
  };
  if (!item_ && ReadsGlobal(code, "item")) {
    Error(at("item", ""),
          "'item' is nil in " + where + ": only a step with foreach has an item" +
              (in_connection_ ? " (a connection is resolved once, for no item)" : ""));
  }
  std::vector<std::string> params;
  for (const auto& p : rb_->params) params.push_back(p.name);
  for (const auto& name : ReferencedParams(code)) {
    if (!rb_->FindParam(name)) {
      Error(at("params", name), "unknown param '" + name + "' in " + where, Suggest(name, params));
    }
  }
  // A dashed name RewriteDashedIds left alone is an unknown id, unless it
  // starts with a known one (`steps.n-1` is a subtraction).
  std::set<std::string> done;
  for (const std::string& name : DottedStepNames(code)) {
    size_t dash = name.find('-');
    if (dash == std::string::npos || all_ids_.count(name.substr(0, dash))) continue;
    done.insert(name.substr(0, dash));
    StepRefOk(name, at("steps", name), where, scope);
  }
  for (const auto& name : ReferencedSteps(code)) {
    if (!done.count(name)) StepRefOk(name, at("steps", name), where, scope);
  }
}

void Validator::CheckLuaCode(const Value& code, const Pos& first_line, const RefScope& scope) {
  if (!code.is_string() || HasTemplate(code.get<std::string>())) return;  // expanded first
  int line = 0;
  if (Status s = CheckLuaSyntax(code.get<std::string>(), &line); !s.ok()) {
    Pos pos = first_line;
    if (line > 1) pos.line += line - 1;
    Error(pos, "Lua syntax error: " + s.message());
    return;
  }
  CheckRefs(BlankLuaProse(code.get<std::string>()), first_line, "Lua code", scope, &first_line);
}

bool Validator::StepRefOk(const std::string& name, const Pos& pos, const std::string& where,
                          const RefScope& scope) {
  if (!scope.no_steps.empty()) {
    Error(pos, "cannot read step '" + name + "' in " + where + ": " + scope.no_steps);
    return false;
  }
  std::string base = ForeachBase(name);  // foreach: ID[i]
  size_t dot = base.find('.');  // an included step: ID.sub-id
  if (!all_ids_.count(base) && dot != std::string::npos) base = base.substr(0, dot);
  if (scope.visible && scope.visible->count(base)) return true;
  if (all_ids_.count(base)) {
    if (base == step_id_) {
      Error(pos, "step '" + base + "' cannot read its own result in " + where +
                     " (only assert and rollback can)");
    } else {
      Error(pos, "step '" + base + "' runs later: " + where + " can only read earlier steps");
    }
    return false;
  }
  std::vector<std::string> ids(all_ids_.begin(), all_ids_.end());
  Error(pos, "unknown step '" + name + "' in " + where, Suggest(name, ids));
  return false;
}

}  // namespace runbook
