// Redactor: everything that leaves the engine (logs, state store, reports,
// error messages) passes through one. It replaces every registered secret
// value with *** and, as a second line of defence, the password part of
// libpq conninfo strings and URIs. Thread-safe.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "engine/core/value.h"

namespace runbook {

class Redactor {
 public:
  // Registers a secret. Values shorter than 3 characters are not matched in
  // free text (they would mangle every message) but are still never stored:
  // secret params are masked by name before they reach the store.
  void Add(const std::string& secret);
  std::string Redact(const std::string& text) const;
  std::string Redact(const char* text) const { return Redact(std::string(text)); }
  Value Redact(const Value& v) const;

 private:
  mutable std::mutex mu_;
  std::set<std::string, std::greater<>> secrets_;  // longest first for overlaps
};

}  // namespace runbook
