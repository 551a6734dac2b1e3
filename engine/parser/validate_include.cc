// include: {runbook: FILE, params: {...}} — loads FILE (relative to the
// including file), once per run of the parser, refusing cycles.
#include <algorithm>
#include <filesystem>

#include "engine/parser/validator.h"

namespace fs = std::filesystem;

namespace runbook {

// Paths in messages: relative to the outermost runbook's directory.
std::string Validator::Display(const std::string& path) const {
  if (ctx_->stack.empty()) return path;
  fs::path root_dir = fs::path(ctx_->stack.front()).parent_path();
  std::string rel = fs::path(path).lexically_relative(root_dir).string();
  return rel.empty() ? path : rel;
}

void Validator::Include(const Node& key, const Node& value, const Value& args) {
  const Node* at = value.IsMap() ? value.Find("runbook") : &value;
  Pos pos = at ? at->pos : key.pos;
  if (!args.contains("runbook") || !args["runbook"].is_string()) {
    Error(pos, "include: 'runbook' must be a path");
    return;
  }
  std::string target = args["runbook"].get<std::string>();
  if (HasTemplate(target)) {
    Error(pos, "include: 'runbook' must be a plain path (includes are loaded before the run)");
    return;
  }
  std::string path = ResolveIncludePath(path_, target);
  std::string abs = AbsolutePath(path);
  auto on_stack = std::find(ctx_->stack.begin(), ctx_->stack.end(), abs);
  if (on_stack != ctx_->stack.end()) {
    std::string chain;
    for (auto it = on_stack; it != ctx_->stack.end(); ++it) chain += Display(*it) + " -> ";
    Error(key.pos, "include cycle: " + chain + Display(abs));
    return;
  }
  std::shared_ptr<const Runbook> child;
  auto cached = ctx_->cache.find(abs);
  if (cached != ctx_->cache.end()) {
    child = cached->second;
  } else {
    std::error_code ec;
    if (!fs::is_regular_file(abs, ec)) {
      Error(pos, "include: runbook '" + target + "' not found (looked for " + path + ")");
      return;
    }
    child = LoadRunbookWith(path, registry_, ctx_, diags_);
  }
  if (!child) {
    failed_ = true;  // its own diagnostics say why
    return;
  }
  // A boundary keeps the steps before it when a rollback passes the switch
  // it names; the including runbook's rollback does not look inside an
  // include for one, so it would be silently ignored there.
  for (const StepSpec& s : child->steps) {
    if (!s.rollback_boundary.empty()) {
      Error(pos, "include: runbook '" + target + "' has a rollback_boundary (step '" + s.id +
                     "'), which only a top-level runbook may have: move that step into this "
                     "runbook, or run '" + target + "' on its own");
      return;
    }
  }
  rb_->includes[abs] = child;
  IncludeParams(*child, target, value, args, key.pos);
}

// Given params must exist in the child and fit their types; the child's
// required params must be given (unless an environment variable may supply
// them at run time).
void Validator::IncludeParams(const Runbook& child, const std::string& shown, const Node& value,
                              const Value& args, const Pos& anchor) {
  const Node* params = value.IsMap() ? value.Find("params") : nullptr;
  if (params && !params->IsMap()) return;  // a template: checked when expanded
  std::vector<std::string> names;
  for (const auto& p : child.params) names.push_back(p.name);
  static const Node kNone;
  for (const auto& [k, v] : (params ? *params : kNone).entries) {
    const ParamSpec* spec = child.FindParam(k.scalar);
    if (!spec) {
      Error(k.pos, "include: '" + shown + "' has no param '" + k.scalar + "'",
            Suggest(k.scalar, names));
      continue;
    }
    if (v.IsScalar() && HasTemplate(v.scalar)) continue;
    Value converted;
    std::string problem = ParamValueFromNode(spec->type, v, &converted);
    if (!problem.empty()) Error(v.pos, "include: param '" + k.scalar + "': " + problem);
  }
  for (const auto& p : child.params) {
    if (!p.required || !p.env.empty()) continue;
    if (!params || !params->Find(p.name)) {
      Error(anchor, "include: '" + shown + "' needs param '" + p.name + "'");
    }
  }
}

}  // namespace runbook
