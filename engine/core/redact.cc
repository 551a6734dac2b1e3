#include "engine/core/redact.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace runbook {
namespace {

constexpr size_t kShort = 3;  // secrets shorter than this are matched as whole words only

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64(const std::string& in, bool pad) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kB64[(n >> s) & 63];
  }
  size_t rest = in.size() - i;
  if (rest) {
    uint32_t n = uint8_t(in[i]) << 16;
    if (rest == 2) n |= uint8_t(in[i + 1]) << 8;
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    if (rest == 2) out += kB64[(n >> 6) & 63];
    if (pad) out += rest == 1 ? "==" : "=";
  }
  return out;
}

// The base64 characters that depend on `secret` alone wherever it sits in a
// longer value: for each of the three alignments, the whole 3-byte groups
// that hold only secret bytes.
std::vector<std::string> Base64Cores(const std::string& secret) {
  std::vector<std::string> out;
  for (size_t offset = 0; offset < 3; ++offset) {
    const size_t skip = offset ? 3 - offset : 0;  // bytes before the first whole group
    if (secret.size() < skip + 3) continue;
    const size_t groups = (secret.size() - skip) / 3;
    out.push_back(Base64(secret.substr(skip, groups * 3), false));
  }
  return out;
}

std::string Hex(const std::string& in) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : in) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string PercentEncoded(const std::string& in) {
  static const char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || std::strchr("-._~", c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  return out;
}

std::string ReplaceAll(std::string text, const std::string& from, const char* to) {
  size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += std::strlen(to);
  }
  return text;
}

bool WordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A short secret only where it stands as a word of its own.
std::string ReplaceWords(std::string text, const std::string& word) {
  size_t pos = 0;
  while ((pos = text.find(word, pos)) != std::string::npos) {
    const bool before = pos == 0 || !WordChar(text[pos - 1]);
    const bool after = pos + word.size() >= text.size() || !WordChar(text[pos + word.size()]);
    if (before && after) {
      text.replace(pos, word.size(), "***");
      pos += 3;
    } else {
      pos += 1;
    }
  }
  return text;
}

bool IEquals(const std::string& text, size_t at, const char* word) {
  for (size_t i = 0; word[i]; ++i) {
    if (at + i >= text.size() ||
        std::tolower(static_cast<unsigned char>(text[at + i])) != word[i]) {
      return false;
    }
  }
  return true;
}

// password=VALUE and password = 'VALUE' of libpq conninfo strings, in one
// linear pass (std::regex recursed per character and overflowed the stack
// on long inputs).
std::string MaskConninfoPasswords(const std::string& in) {
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    if (!IEquals(in, i, "password")) {
      out += in[i++];
      continue;
    }
    size_t j = i + 8;
    while (j < in.size() && (in[j] == ' ' || in[j] == '\t')) ++j;
    if (j >= in.size() || in[j] != '=') {
      out += in[i++];
      continue;
    }
    ++j;
    while (j < in.size() && (in[j] == ' ' || in[j] == '\t')) ++j;
    out += in.substr(i, j - i);
    size_t end = j;
    if (end < in.size() && in[end] == '\'') {
      for (++end; end < in.size() && in[end] != '\''; ++end) {
        if (in[end] == '\\') ++end;
      }
      if (end < in.size()) ++end;
    } else {
      while (end < in.size() && !std::isspace(static_cast<unsigned char>(in[end])) &&
             in[end] != '\'' && in[end] != '"') {
        ++end;
      }
    }
    if (end > j) out += "***";
    i = end;
  }
  return out;
}

// scheme://user:PASSWORD@host: the password part, in one linear pass.
std::string MaskUriPasswords(const std::string& in) {
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    size_t sep = in.find("://", i);
    if (sep == std::string::npos) break;
    size_t start = sep + 3;
    size_t colon = start;
    while (colon < in.size() && !std::strchr(":/@ \t\n", in[colon])) ++colon;
    out += in.substr(i, colon - i);
    i = colon;
    if (colon >= in.size() || in[colon] != ':' || colon == start) continue;
    size_t at = colon + 1;
    while (at < in.size() && !std::strchr("@/ \t\n", in[at])) ++at;
    if (at < in.size() && in[at] == '@' && at > colon + 1) {
      out += ":***@";
      i = at + 1;
    }
  }
  out += in.substr(i);
  return out;
}

}  // namespace

void Redactor::Add(const std::string& secret) {
  if (secret.empty() || secret == "***") return;
  std::lock_guard<std::mutex> lock(mu_);
  if (secret.size() < kShort) {
    short_.insert(secret);
    return;
  }
  // A secret also leaves the engine encoded: inside a JSON string (a result
  // dumped into an error message), a shell-quoted word (the plan text of
  // exec: 'it'\''s'), percent-encoded in a URI, hex (bytea output), and
  // base64 (Kubernetes Secret data), whole or inside a longer value.
  std::string json = Value(secret).dump(-1, ' ', false, Value::error_handler_t::replace);
  json = json.substr(1, json.size() - 2);
  std::string shell;
  for (char c : secret) shell += c == '\'' ? std::string("'\\''") : std::string(1, c);
  for (const std::string& form : {secret, json, shell, PercentEncoded(secret), Hex(secret),
                                  Base64(secret, true)}) {
    if (form.size() >= kShort) secrets_.insert(form);
  }
  for (const std::string& core : Base64Cores(secret)) {
    if (core.size() >= 8) secrets_.insert(core);  // shorter ones would hit unrelated text
  }
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
    for (const auto& s : short_) out = ReplaceWords(out, s);
  }
  if (out.find("://") != std::string::npos) out = MaskUriPasswords(out);
  bool has_password = false;
  for (size_t i = 0; i < out.size() && !has_password; ++i) has_password = IEquals(out, i, "password");
  if (has_password) out = MaskConninfoPasswords(out);
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

void Redactor::AddValue(const Value& v) {
  if (v.is_string()) {
    Add(v.get<std::string>());
  } else if (v.is_array() || v.is_object()) {
    for (const auto& item : v) AddValue(item);
    if (!v.empty()) Add(v.dump());
  } else if (!v.is_null() && !v.is_boolean()) {
    Add(v.dump());
  }
}

}  // namespace runbook
