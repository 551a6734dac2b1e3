#include "engine/lua/template.h"

#include <cctype>

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

namespace {

// Hand-written scanners, not std::regex: libstdc++'s matcher recurses once
// per character, so a long expression (`steps.aaaa...`) overflowed the stack.

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }

size_t SkipSpace(const std::string& s, size_t i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

// End of the run of characters from `i` that `ok` accepts.
template <typename Pred>
size_t SkipWhile(const std::string& s, size_t i, Pred ok) {
  while (i < s.size() && ok(s[i])) ++i;
  return i;
}

// Each place `word` starts at a word boundary (regex \bword), from `from`.
size_t FindWord(const std::string& s, const std::string& word, size_t from) {
  for (size_t at = s.find(word, from); at != std::string::npos; at = s.find(word, at + 1)) {
    if (at == 0 || !IsWordChar(s[at - 1])) return at;
  }
  return std::string::npos;
}

// `steps.NAME` with NAME as written (dashes included): [begin, end) of the
// whole reference and the name.
struct DottedRef {
  size_t begin, end;
  std::string name;
};

std::vector<DottedRef> DottedStepRefs(const std::string& expr) {
  std::vector<DottedRef> out;
  const std::string kSteps = "steps.";
  for (size_t at = FindWord(expr, kSteps, 0); at != std::string::npos;) {
    size_t name = at + kSteps.size();
    size_t end = SkipWhile(expr, name, [](char c) { return IsWordChar(c) || c == '-'; });
    if (end > name && expr[name] != '-') {
      out.push_back({at, end, expr.substr(name, end - name)});
      at = FindWord(expr, kSteps, end);
    } else {
      at = FindWord(expr, kSteps, at + 1);
    }
  }
  return out;
}

// root.NAME and root["NAME"] / root['NAME'] (spaces allowed around).
std::set<std::string> Referenced(const std::string& expr, const std::string& root) {
  std::set<std::string> out;
  for (size_t at = FindWord(expr, root, 0); at != std::string::npos;
       at = FindWord(expr, root, at + 1)) {
    size_t i = SkipSpace(expr, at + root.size());
    if (i >= expr.size()) break;
    if (expr[i] == '.') {
      size_t name = SkipSpace(expr, i + 1);
      if (name < expr.size() && IsNameStart(expr[name])) {
        out.insert(expr.substr(name, SkipWhile(expr, name, IsWordChar) - name));
      }
    } else if (expr[i] == '[') {
      size_t quote = SkipSpace(expr, i + 1);
      if (quote >= expr.size() || (expr[quote] != '"' && expr[quote] != '\'')) continue;
      size_t close = SkipWhile(expr, quote + 1, [](char c) { return c != '"' && c != '\''; });
      size_t bracket = SkipSpace(expr, close + 1);
      if (close > quote + 1 && bracket < expr.size() && expr[bracket] == ']') {
        out.insert(expr.substr(quote + 1, close - quote - 1));
      }
    }
  }
  return out;
}

}  // namespace

std::string RewriteDashedIds(const std::string& expr, const std::set<std::string>& step_ids) {
  std::string out;
  size_t last = 0;
  for (const DottedRef& ref : DottedStepRefs(expr)) {
    const std::string& name = ref.name;
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
    out += expr.substr(last, ref.begin - last);
    out += "steps[\"" + match + "\"]";
    last = ref.begin + 6 + match.size();
  }
  out += expr.substr(last);
  return out;
}

std::vector<std::string> DottedStepNames(const std::string& expr) {
  std::vector<std::string> out;
  for (const DottedRef& ref : DottedStepRefs(expr)) out.push_back(ref.name);
  return out;
}

bool ReadsStepsDynamically(const std::string& expr) {
  for (size_t at = FindWord(expr, "steps", 0); at != std::string::npos;
       at = FindWord(expr, "steps", at + 1)) {
    size_t after = at + 5;
    if (after < expr.size() && IsWordChar(expr[after])) continue;  // stepsX
    size_t i = SkipSpace(expr, after);
    if (i < expr.size() && expr[i] == '.') {
      size_t name = SkipSpace(expr, i + 1);
      if (name < expr.size() && IsNameStart(expr[name])) continue;
    } else if (i < expr.size() && expr[i] == '[') {
      size_t quote = SkipSpace(expr, i + 1);
      if (quote < expr.size() && (expr[quote] == '"' || expr[quote] == '\'')) continue;
    }
    return true;
  }
  return false;
}

std::string ForeachBase(const std::string& id) {
  if (id.empty() || id.back() != ']') return id;
  size_t open = id.rfind('[');
  if (open == std::string::npos || open + 2 > id.size() - 1) return id;
  for (size_t i = open + 1; i + 1 < id.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(id[i]))) return id;
  }
  return id.substr(0, open);
}

std::set<std::string> ReferencedSteps(const std::string& expr) { return Referenced(expr, "steps"); }
std::set<std::string> ReferencedParams(const std::string& expr) {
  return Referenced(expr, "params");
}

}  // namespace runbook
