#include "engine/core/redact.h"

#include <regex>

namespace runbook {

void Redactor::Add(const std::string& secret) {
  if (secret.size() < 3 || secret == "***") return;
  // A secret also leaves the engine escaped: inside a JSON string (a result
  // dumped into an error message) and inside a shell-quoted word (the plan
  // text of exec: 'it'\''s'). Those forms are masked too.
  std::string json = Value(secret).dump(-1, ' ', false, Value::error_handler_t::replace);
  json = json.substr(1, json.size() - 2);
  std::string shell;
  for (char c : secret) shell += c == '\'' ? std::string("'\\''") : std::string(1, c);
  std::lock_guard<std::mutex> lock(mu_);
  secrets_.insert(secret);
  secrets_.insert(json);
  secrets_.insert(shell);
}

static std::string ReplaceAll(std::string text, const std::string& from, const char* to) {
  size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += 3;
  }
  return text;
}

std::string Redactor::Redact(const std::string& text) const {
  std::string out = text;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Longest first, so a secret containing another is replaced whole.
    std::vector<std::string> ordered(secrets_.begin(), secrets_.end());
    std::sort(ordered.begin(), ordered.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const auto& s : ordered) out = ReplaceAll(out, s, "***");
  }
  if (out.find("password") == std::string::npos && out.find("://") == std::string::npos) {
    return out;
  }
  static const std::regex kConninfo(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"]+))",
                                    std::regex::icase);
  static const std::regex kUri(R"(([a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@/\s]+)(@))",
                               std::regex::icase);
  out = std::regex_replace(out, kConninfo, "$1***");
  out = std::regex_replace(out, kUri, "$1***$3");
  return out;
}

Value Redactor::Redact(const Value& v) const {
  if (v.is_string()) return Redact(v.get<std::string>());
  if (v.is_array()) {
    Value out = Value::array();
    for (const auto& item : v) out.push_back(Redact(item));
    return out;
  }
  if (v.is_object()) {
    Value out = Value::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = Redact(it.value());
    return out;
  }
  return v;
}

}  // namespace runbook
