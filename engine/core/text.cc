#include "engine/core/text.h"

namespace runbook {

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlnum(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsAsciiDigit(c); }

bool MatchesName(const std::string& s, const std::function<bool(char)>& first,
                 const std::function<bool(char)>& rest) {
  if (s.empty() || !first(s[0])) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    if (!rest(s[i])) return false;
  }
  return true;
}

namespace {

// Digits from `i` on; returns how many.
size_t Digits(const std::string& s, size_t i, bool (*ok)(char)) {
  size_t n = 0;
  while (i + n < s.size() && ok(s[i + n])) ++n;
  return n;
}

bool Octal(char c) { return c >= '0' && c <= '7'; }
bool Hex(char c) { return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

bool IsDecimalInt(const std::string& s) {
  size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
  size_t n = Digits(s, i, IsAsciiDigit);
  return n > 0 && i + n == s.size();
}

bool IsOctalInt(const std::string& s) {
  return s.size() > 2 && s[0] == '0' && s[1] == 'o' && Digits(s, 2, Octal) == s.size() - 2;
}

bool IsHexInt(const std::string& s) {
  return s.size() > 2 && s[0] == '0' && s[1] == 'x' && Digits(s, 2, Hex) == s.size() - 2;
}

bool IsFloat(const std::string& s) {
  size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
  size_t whole = Digits(s, i, IsAsciiDigit);
  i += whole;
  size_t frac = 0;
  bool dot = i < s.size() && s[i] == '.';
  if (dot) {
    frac = Digits(s, i + 1, IsAsciiDigit);
    i += 1 + frac;
  }
  if (whole == 0 && frac == 0) return false;  // ".", "", "-"
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '-' || s[j] == '+')) ++j;
    size_t exp = Digits(s, j, IsAsciiDigit);
    if (exp == 0) return false;
    i = j + exp;
  }
  return i == s.size();
}

}  // namespace runbook
