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
    // A field (cfg.params.x, obj:steps()) is not the global; a..params is.
    if (at > 0 &&
        (expr[at - 1] == ':' || (expr[at - 1] == '.' && (at < 2 || expr[at - 2] != '.')))) {
      continue;
    }
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

namespace {

// Lua's tokens, as far as ReadsGlobal needs them: names and keywords,
// operators ("==" apart from "="), every string and comment skipped.
// The "=" count of a long bracket at `i` ("[[" 0, "[==[" 2), or -1.
int LongBracketLevel(const std::string& code, size_t i) {
  if (i >= code.size() || code[i] != '[') return -1;
  size_t j = SkipWhile(code, i + 1, [](char c) { return c == '='; });
  return j < code.size() && code[j] == '[' ? static_cast<int>(j - i - 1) : -1;
}

// Just past the long bracket opened at `i` (the end of the code if unclosed).
size_t SkipLongBracket(const std::string& code, size_t i, int level) {
  std::string close = "]" + std::string(static_cast<size_t>(level), '=') + "]";
  size_t end = code.find(close, i + static_cast<size_t>(level) + 2);
  return end == std::string::npos ? code.size() : end + close.size();
}

std::vector<std::string> LuaTokens(const std::string& code) {
  std::vector<std::string> out;
  auto long_bracket = [&](size_t i) { return LongBracketLevel(code, i); };
  auto skip_long = [&](size_t i, int level) { return SkipLongBracket(code, i, level); };
  for (size_t i = 0; i < code.size();) {
    const char c = code[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (code.compare(i, 2, "--") == 0) {
      int level = long_bracket(i + 2);
      i = level >= 0 ? skip_long(i + 2, level) : code.find('\n', i);
      if (i == std::string::npos) i = code.size();
    } else if (c == '"' || c == '\'') {
      for (++i; i < code.size() && code[i] != c && code[i] != '\n'; ++i) {
        if (code[i] == '\\') ++i;
      }
      ++i;
      out.push_back("\"\"");
    } else if (long_bracket(i) >= 0) {
      i = skip_long(i, long_bracket(i));
      out.push_back("\"\"");
    } else if (IsNameStart(c)) {
      size_t end = SkipWhile(code, i, IsWordChar);
      out.push_back(code.substr(i, end - i));
      i = end;
    } else {
      size_t len = 1;
      for (const char* two : {"==", "~=", "<=", ">=", "..", "::"}) {
        if (code.compare(i, 2, two) == 0) len = 2;
      }
      out.push_back(code.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace

std::string BlankLuaProse(const std::string& code) {
  std::string out = code;
  auto blank = [&](size_t from, size_t to) {
    for (size_t k = from; k < to && k < out.size(); ++k) {
      if (out[k] != '\n') out[k] = ' ';
    }
  };
  // A string right after '[' is a key (steps["x"]): it stays.
  auto is_key = [&](size_t i) {
    size_t k = i;
    while (k > 0 && std::isspace(static_cast<unsigned char>(code[k - 1]))) --k;
    return k > 0 && code[k - 1] == '[';
  };
  for (size_t i = 0; i < code.size();) {
    const char c = code[i];
    if (c == '"' || c == '\'') {
      const size_t open = i;
      for (++i; i < code.size() && code[i] != c && code[i] != '\n'; ++i) {
        if (code[i] == '\\') ++i;
      }
      if (!is_key(open)) blank(open + 1, i);
      ++i;
    } else if (c == '[' && LongBracketLevel(code, i) >= 0) {
      const size_t end = SkipLongBracket(code, i, LongBracketLevel(code, i));
      blank(i, end);
      i = end;
    } else if (code.compare(i, 2, "--") == 0) {
      const int level = LongBracketLevel(code, i + 2);
      size_t end = level >= 0 ? SkipLongBracket(code, i + 2, level) : code.find('\n', i);
      if (end == std::string::npos) end = code.size();
      blank(i, end);
      i = end;
    } else {
      ++i;
    }
  }
  return out;
}

bool ReadsGlobal(const std::string& code, const std::string& name) {
  if (code.find(name) == std::string::npos) return false;
  const std::vector<std::string> t = LuaTokens(code);
  auto is_name = [&](size_t k) { return IsNameStart(t[k][0]); };
  bool read = false;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != name) continue;
    // Declared here? `local a, name`, `for k, name in`, `function f(a, name)`.
    size_t j = i;  // the first name of the list `name` is in
    // (a name list is short: the walk is bounded, so many reads stay linear)
    for (int n = 0; n < 32 && j >= 2 && t[j - 1] == "," && is_name(j - 2); ++n) j -= 2;
    const std::string before = j > 0 ? t[j - 1] : "";
    if (before == "local" || before == "for" || before == "function") return false;
    if (before == "(") {
      for (size_t k = j - 1; k-- > 0 && (is_name(k) || t[k] == "." || t[k] == ":");) {
        if (t[k] == "function") return false;
      }
    }
    const std::string prev = i > 0 ? t[i - 1] : "";
    const std::string next = i + 1 < t.size() ? t[i + 1] : "";
    if (prev == "." || prev == ":" || prev == "::" || prev == "goto" || next == "=") continue;
    read = true;
  }
  return read;
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
