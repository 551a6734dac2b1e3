// The runbook model: plain structs the parser fills and the executor reads.
// No YAML, Lua or libpq types here. Values that may hold templates
// ("${{ }}") are kept as written; the executor expands them.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/status.h"
#include "engine/core/value.h"

namespace runbook {

// Where each part of a Value came from: JSON pointer ("/tables/0") -> Pos.
// The pointer "" is the value itself.
using PosMap = std::map<std::string, Pos>;

enum class ParamType { kString, kInt, kNumber, kBool, kList, kMap };
const char* ParamTypeName(ParamType t);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  std::optional<Value> default_value;
  bool required = false;  // no default and must be given
  bool secret = false;    // never printed or stored: shows as ***
  std::string env;        // environment variable that supplies the value
  std::string description;
  Pos pos;
};

struct ConnectionSpec {
  std::string name;
  std::string type;  // "postgres", "kube", "ssh"
  Value config;      // an object; a scalar form is normalised to the type's scalar_arg
  PosMap positions;
  Pos pos;
};

struct Window {
  std::string timezone = "UTC";
  std::vector<int> days;  // 0 = Sunday ... 6 = Saturday; empty: every day
  int start_minute = 0;   // minutes after local midnight
  int end_minute = 0;     // may be <= start: the window crosses midnight
  Pos pos;
};

enum class OnFailure { kRollback, kStop };

// What an action is to the executor: a primitive it calls through the
// registry, or one of the two kinds it runs itself.
enum class ActionKind {
  kPrimitive,  // pg.copy, exec, log, ...: Primitive::Apply
  kLua,        // lua: its chunk's nested calls are the step's undo entries
  kInclude,    // include: another runbook's steps, as children of this step
};
ActionKind ActionKindOf(const std::string& action_name);

struct ActionSpec {
  std::string name;  // "pg.copy", "exec", "lua", ...
  ActionKind kind = ActionKind::kPrimitive;
  Value args;        // an object (scalar forms normalised)
  PosMap positions;
  Pos pos;
};

enum class RollbackMode { kAuto, kNone, kAction };

struct StepSpec {
  std::string id;
  std::string description;
  ActionSpec action;
  std::optional<std::string> when;  // Lua expression
  Pos when_pos;
  std::optional<Value> foreach;     // a list, or a template string yielding one
  Pos foreach_pos;
  int concurrency = 1;
  int retries = 0;
  std::chrono::milliseconds retry_delay{1000};
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::string> assert_expr;  // Lua expression over `result`
  Pos assert_pos;
  RollbackMode rollback = RollbackMode::kAuto;
  std::optional<ActionSpec> rollback_action;
  std::optional<bool> idempotent;   // overrides the primitive's default
  std::optional<std::string> approve;  // message: wait for approval before acting
  bool continue_on_error = false;
  // A later step's id: once it has run, a rollback stops before this step
  // (this step and those before it are kept). The switch of a blue-green
  // upgrade: after it, green holds the application's writes, and undoing
  // how green was built would destroy them.
  std::string rollback_boundary;
  Pos pos;
};

struct Runbook {
  int format = 1;
  std::string name;
  std::string description;
  std::vector<ParamSpec> params;
  std::vector<ConnectionSpec> connections;
  std::string lock;  // defaults to name
  std::optional<Window> window;
  OnFailure on_failure = OnFailure::kRollback;
  std::vector<StepSpec> steps;

  std::string path;    // as given on the command line
  std::string source;  // the file's text
  // Runbooks this one includes, by resolved path (shared: a runbook included
  // twice is parsed once).
  std::map<std::string, std::shared_ptr<const Runbook>> includes;

  const StepSpec* FindStep(const std::string& id) const;
  // The runbook an include step of this one loaded for its `runbook`
  // argument, as written (relative to this file's directory), or nullptr.
  const Runbook* FindInclude(const std::string& runbook_arg) const;
  const ParamSpec* FindParam(const std::string& name) const;
  const ConnectionSpec* FindConnection(const std::string& name) const;
};

// The absolute, normalised form of `path` (the key of Runbook::includes).
std::string AbsolutePath(const std::string& path);
// The file an `include` step of the runbook at `including_path` names: a
// relative `runbook_arg` is relative to the including file's directory.
std::string ResolveIncludePath(const std::string& including_path, const std::string& runbook_arg);

}  // namespace runbook
