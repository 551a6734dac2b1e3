// Small, linear scanners for the shapes runbook text takes (names,
// numbers; templates have their own in engine/lua/template.h). They replace std::regex, whose libstdc++ matcher
// recurses once per character and overflowed the stack on long inputs (a
// 100,000-digit scalar, a 50,000-character timezone).
#pragma once

#include <functional>
#include <string>

namespace runbook {

bool IsAsciiDigit(char c);
bool IsAsciiAlnum(char c);
bool IsIdentStart(char c);  // A-Z a-z _
bool IsIdentChar(char c);   // A-Z a-z 0-9 _

// Non-empty, first character `first`, every other `rest`.
bool MatchesName(const std::string& s, const std::function<bool(char)>& first,
                 const std::function<bool(char)>& rest);

// YAML 1.2 core schema numbers as written: [-+]?[0-9]+, 0o[0-7]+,
// 0x[0-9a-fA-F]+, and [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsDecimalInt(const std::string& s);
bool IsOctalInt(const std::string& s);
bool IsHexInt(const std::string& s);
bool IsFloat(const std::string& s);

}  // namespace runbook
