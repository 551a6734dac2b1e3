#include "engine/model/model.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace runbook {

ActionKind ActionKindOf(const std::string& action_name) {
  if (action_name == "lua") return ActionKind::kLua;
  if (action_name == "include") return ActionKind::kInclude;
  return ActionKind::kPrimitive;
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  if (ec) return path;
  fs::path canonical = fs::weakly_canonical(abs, ec);
  return (ec ? abs.lexically_normal() : canonical).string();
}

std::string ResolveIncludePath(const std::string& including_path, const std::string& runbook_arg) {
  fs::path target(runbook_arg);
  if (target.is_absolute()) return target.lexically_normal().string();
  return (fs::path(including_path).parent_path() / target).lexically_normal().string();
}

const Runbook* Runbook::FindInclude(const std::string& runbook_arg) const {
  auto it = includes.find(AbsolutePath(ResolveIncludePath(path, runbook_arg)));
  return it == includes.end() ? nullptr : it->second.get();
}

const char* ParamTypeName(ParamType t) {
  switch (t) {
    case ParamType::kString: return "string";
    case ParamType::kInt: return "int";
    case ParamType::kNumber: return "number";
    case ParamType::kBool: return "bool";
    case ParamType::kList: return "list";
    case ParamType::kMap: return "map";
  }
  return "?";
}

const StepSpec* Runbook::FindStep(const std::string& id) const {
  for (const auto& s : steps) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

const ParamSpec* Runbook::FindParam(const std::string& n) const {
  for (const auto& p : params) {
    if (p.name == n) return &p;
  }
  return nullptr;
}

const ConnectionSpec* Runbook::FindConnection(const std::string& n) const {
  for (const auto& c : connections) {
    if (c.name == n) return &c;
  }
  return nullptr;
}

}  // namespace runbook
