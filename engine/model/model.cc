#include "engine/model/model.h"

namespace runbook {

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
