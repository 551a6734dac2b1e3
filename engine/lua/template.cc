#include "engine/lua/template.h"

#include <cctype>
#include <regex>

namespace runbook {

Result<std::vector<TemplatePart>> SplitTemplate(const std::string& s) {
  std::vector<TemplatePart> parts;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t open = s.find("${{", pos);
    if (open == std::string::npos) {
      parts.push_back({false, s.substr(pos), static_cast<int>(pos)});
      break;
    }
    if (open > pos) parts.push_back({false, s.substr(pos, open - pos), static_cast<int>(pos)});
    size_t close = s.find("}}", open + 3);
    if (close == std::string::npos) {
      return Status::Invalid("unterminated '${{' at offset " + std::to_string(open));
    }
    std::string expr = s.substr(open + 3, close - open - 3);
    size_t b = expr.find_first_not_of(" \t\n");
    size_t e = expr.find_last_not_of(" \t\n");
    expr = b == std::string::npos ? "" : expr.substr(b, e - b + 1);
    if (expr.empty()) return Status::Invalid("empty '${{ }}' at offset " + std::to_string(open));
    parts.push_back({true, expr, static_cast<int>(open)});
    pos = close + 2;
  }
  return parts;
}

bool IsSingleExpression(const std::string& s) {
  Result<std::vector<TemplatePart>> parts = SplitTemplate(s);
  return parts.ok() && parts->size() == 1 && (*parts)[0].is_expr;
}

std::string RewriteDashedIds(const std::string& expr, const std::set<std::string>& step_ids) {
  static const std::regex kDotted(R"(\bsteps\.([A-Za-z0-9_][A-Za-z0-9_-]*))");
  std::string out;
  auto begin = std::sregex_iterator(expr.begin(), expr.end(), kDotted);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[1].str();
    if (name.find('-') == std::string::npos) continue;
    // Longest known id that is a prefix of the dashed run of characters.
    std::string match;
    for (const auto& id : step_ids) {
      if (id.size() > match.size() && name.compare(0, id.size(), id) == 0 &&
          (id.size() == name.size() || name[id.size()] == '-')) {
        match = id;
      }
    }
    if (match.empty() || match.find('-') == std::string::npos) continue;
    size_t at = it->position(0);
    out += expr.substr(last, at - last);
    out += "steps[\"" + match + "\"]";
    last = at + 6 + match.size();
  }
  out += expr.substr(last);
  return out;
}

static std::set<std::string> Referenced(const std::string& expr, const std::string& root) {
  std::set<std::string> out;
  std::regex dotted("\\b" + root + R"(\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))");
  std::regex indexed("\\b" + root + R"(\s*\[\s*["']([^"']+)["']\s*\])");
  for (const auto* re : {&dotted, &indexed}) {
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), *re);
         it != std::sregex_iterator(); ++it) {
      out.insert((*it)[1].str());
    }
  }
  return out;
}

std::set<std::string> ReferencedSteps(const std::string& expr) { return Referenced(expr, "steps"); }
std::set<std::string> ReferencedParams(const std::string& expr) {
  return Referenced(expr, "params");
}

}  // namespace runbook
