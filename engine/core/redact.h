// Redactor: everything that leaves the engine (logs, state store, reports,
// error messages) passes through one. It replaces every registered secret
// value with ***, in every encoding it may travel in (as is, JSON-escaped,
// shell-quoted, percent-encoded, hex, base64 whole or inside a longer
// value), and, as a second line of defence, the password part of libpq
// conninfo strings and URIs. Linear in the text (no regex). Thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "engine/core/value.h"

namespace runbook {

class Redactor {
 public:
  // Registers a secret. One of 1 or 2 characters is masked where it stands
  // as a word of its own (inside other words it would mangle every message);
  // secret params are masked by name before they reach the store anyway.
  void Add(const std::string& secret);
  // Registers every string (and number) inside `v`: a secret param of type
  // list or map.
  void AddValue(const Value& v);
  std::string Redact(const std::string& text) const;
  std::string Redact(const char* text) const { return Redact(std::string(text)); }
  Value Redact(const Value& v) const;

 private:
  mutable std::mutex mu_;
  std::set<std::string, std::greater<>> secrets_;  // longest first for overlaps
  std::set<std::string> short_;                    // 1-2 characters: whole words only
};

}  // namespace runbook
