// What a primitive's (or a connection kind's) arguments look like, and the
// check of a step's arguments against it: the validator, `plan`, the JSON
// Schema, the docs and the executor all read the same Schema.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/result_shape.h"
#include "engine/core/value.h"

namespace runbook {

// kSize: a count of bytes, or a string such as 64MB or 1GiB (byte_size.h).
enum class ArgType {
  kAny,
  kString,
  kInt,
  kNumber,
  kBool,
  kList,
  kMap,
  kDuration,
  kSize,
  kConnection
};
const char* ArgTypeName(ArgType t);

// What a string argument must look like beyond its type. Values that become
// words of a program's argv are checked so that none can be read as an
// option or change what the program acts on: runbook values are data, never
// syntax (a kubectl name "--selector=..." once deleted every Deployment).
enum class ArgForm {
  kAny,
  kKubeName,    // an object name: RFC 1123 (a-z, 0-9, '-', '.'; starts and ends alphanumeric)
  kKubeKind,    // a resource type: deployment, deployments.apps, Deployment, jobs.batch/v1
  kKubeObject,  // NAME or TYPE/NAME, each part as above
  kNotOption,   // anything not starting with '-' (file paths and the like)
};
// "" when `value` has form `form`, else what it must look like.
std::string ArgFormError(ArgForm form, const std::string& value);

struct ArgSpec {
  std::string name;
  ArgType type = ArgType::kAny;
  bool required = false;
  std::string help;
  std::vector<std::string> choices;  // allowed values of a string argument
  std::string conn_type;             // kConnection: "postgres", "kube", "ssh" ("" = any)
  ArgForm form = ArgForm::kAny;      // strings, and each string of a list
};

// `a` with form `f`: WithForm(Arg("name", ...), ArgForm::kKubeName).
inline ArgSpec WithForm(ArgSpec a, ArgForm f) {
  a.form = f;
  return a;
}

struct Schema {
  std::string help;
  std::vector<ArgSpec> args;
  // Each group: exactly one of these argument names must be given.
  std::vector<std::vector<std::string>> one_of;
  // The argument a scalar form sets: `sleep: 30s` is `sleep: {duration: 30s}`.
  std::string scalar_arg;
  // What it returns (primitives only; every one declares it).
  std::optional<FieldSpec> result;

  const ArgSpec* Find(const std::string& name) const;
};

// One problem with a step's arguments. `arg` is the top-level argument it
// concerns ("" for the whole map) so the validator can point at its line.
struct ArgError {
  std::string arg;
  std::string message;     // "expected int, got string"
  std::string suggestion;  // nearest valid name for an unknown argument
};

// Checks args (already normalised from a scalar form) against a schema:
// unknown, missing, one_of, types, choices. A string holding a template
// ("${{ }}") is accepted for any type: it is checked when it is expanded.
std::vector<ArgError> CheckArgs(const Schema& schema, const Value& args);

// The nearest candidate within a small edit distance, or "".
std::string Suggest(const std::string& word, const std::vector<std::string>& candidates);

// True if s contains "${{".
bool HasTemplate(const std::string& s);

}  // namespace runbook
