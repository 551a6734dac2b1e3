// The primitive registry: the one interface through which every action a
// runbook can name (built-ins, pg.*, kube.*, ssh.*) reaches the engine.
//
// A binding implements Primitive once per action and ConnectionType once per
// connection kind, and registers them in a Registry. The core never names a
// binding; the validator, `plan`, the JSON Schema, the Lua API and the
// executor all read the same Registry.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/process.h"
#include "engine/core/redact.h"
#include "engine/core/status.h"
#include "engine/core/value.h"

namespace runbook {

enum class ArgType { kAny, kString, kInt, kNumber, kBool, kList, kMap, kDuration, kConnection };
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

// `a` with form `f`: WithForm(KArg("name", ...), ArgForm::kKubeName).
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

  const ArgSpec* Find(const std::string& name) const;
};

// How a primitive takes part in a rehearsal (`run --dry-run`).
enum class Rehearsal {
  kUndeclared,  // refused in a rehearsal
  kProbe,       // read-only: runs for real
  kSimulate,    // Apply runs with dry_run(): the server checks, keeps nothing
  kSkip,        // cannot be rehearsed: Apply is not called, the result is UNKNOWN
};
const char* RehearsalName(Rehearsal r);

// PlanEffect::undo of an action that changes nothing (log, sleep): rollback
// passes over it silently.
inline constexpr char kNothingToUndo[] = "nothing to undo";
// True for kNothingToUndo and its variants ("nothing to undo (read-only)").
inline bool NothingToUndo(const std::string& undo_text) {
  return undo_text.rfind(kNothingToUndo, 0) == 0;
}

// What `plan` shows for one step.
struct PlanEffect {
  std::string text;        // the exact effect: SQL, argv, remote command
  bool reversible = true;  // false: `plan` marks the step irreversible
  std::string undo;        // what `rollback: auto` would do
};

// A connection as the runbook declares it, templates already expanded.
struct Connection {
  std::string name;
  std::string type;  // "postgres", "kube", "ssh"
  Value config;      // always an object (scalar forms are normalised)
};

// Live things a binding keeps for the length of a run (a libpq connection, a
// port-forward). Destroyed, in reverse order of creation, when the run ends.
class Resource {
 public:
  virtual ~Resource() = default;
};

class Resources {
 public:
  ~Resources();
  // Returns the resource under `key`, creating it with `make` if absent.
  // Thread-safe; `make` runs under the lock, so keep it short or accept that
  // concurrent users of one key wait.
  Result<Resource*> GetOrCreate(const std::string& key,
                                const std::function<Result<std::unique_ptr<Resource>>()>& make);
  void Drop(const std::string& key);
  void Clear();

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, std::unique_ptr<Resource>>> items_;
};

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct ProgressInfo {
  int64_t done_bytes = 0, total_bytes = 0;  // 0 total: unknown (may be an estimate)
  int64_t done_rows = 0;
  double seconds = 0;  // since the work began; 0: unknown
  std::string what;    // "public.pgbench_accounts"
};

// "public.t: 120.3 of 752.7 MiB, 1234567 rows, 95.2 MiB/s, about 7 s left":
// the rate when `seconds` is known, the time left when the total is too.
std::string DescribeProgress(const ProgressInfo& p);

// What a primitive sees of the run while it acts. Implemented by the
// executor; unit tests of bindings may implement it themselves.
class StepContext {
 public:
  virtual ~StepContext() = default;
  virtual const std::string& run_id() const = 0;
  virtual const std::string& step_id() const = 0;
  // True in a rehearsal: a probe must not write, a simulation must keep nothing.
  virtual bool dry_run() const = 0;
  // `runbook rollback --accept-data-loss`: undos may destroy what others
  // wrote (CheckUndo is not asked).
  virtual bool accept_data_loss() const { return false; }
  // The step's deadline (steady clock); SteadyTime::max() when none. Pass
  // what remains down to libpq / libssh / subprocess timeouts.
  virtual SteadyTime deadline() const = 0;
  // Durably records what Undo and Check will need, *before* the side effect
  // it protects. Each call replaces the previous record of this invocation.
  virtual Status RecordUndo(const Value& state) = 0;
  virtual Result<Connection> GetConnection(const std::string& name) = 0;
  virtual Resources& resources() = 0;
  virtual void Log(LogLevel level, const std::string& message) = 0;
  virtual void Progress(const ProgressInfo& info) = 0;
  // A table for the report (count comparison, collation status, ...).
  virtual void AddTable(const Table& table) = 0;
  virtual Redactor& redactor() = 0;
  virtual ProcessRunner& processes() = 0;
  virtual Clock& clock() = 0;
  // Calls another primitive as part of this step (Lua's pg.query{...});
  // its undo record joins this step's.
  virtual Result<Value> Invoke(const std::string& primitive, const Value& args) = 0;
  // Runs another runbook's steps as children of this step (include).
  virtual Result<Value> RunChild(const std::string& runbook_path, const Value& params) = 0;
  // Waits for (or records) an approval; Status code kPaused when the run must
  // pause until `runbook approve`.
  virtual Status Approve(const std::string& message) = 0;
  // Runs Lua code of this step (lua:) with the step's params/steps/item in
  // scope; primitives it calls join this step.
  virtual Result<Value> RunLua(const std::string& /*code*/) {
    return Status::Failed("Lua is not available here");
  }
  // What an earlier attempt of this same invocation recorded (a retry, or a
  // resume after a crash), or null. RecordUndo replaces the record, and the
  // record starts as the earlier one, so a primitive whose second attempt
  // sees a state its first attempt changed must merge: keep the earlier
  // "before" values (kube.scale keeps the first replica count; pg.copy keeps
  // every table an earlier attempt created).
  virtual Value PreviousUndo() { return nullptr; }
  // Transactions this run committed itself, by where (a binding's key for a
  // database): an undo that refuses to destroy what others wrote since
  // (pg.copy's) must not count the run's own later writes (a step that
  // clears a stale lock on the copy). Noted durably *before* the commit.
  virtual Status NoteOwnWrite(const std::string& /*where*/, const std::string& /*id*/) {
    return Status::Ok();
  }
  virtual Result<std::vector<std::string>> OwnWrites(const std::string& /*where*/) {
    return std::vector<std::string>{};
  }
  // Inside CheckUndo: whether this rollback also asks the CheckUndo of step
  // `step_id` (a step with `rollback: none`, or kept by a rollback boundary,
  // is not asked: what it guards is nobody's to skip). True elsewhere.
  virtual bool ChecksUndoOf(const std::string& /*step_id*/) const { return true; }
};

enum class CheckOutcome { kDone, kNotDone, kCannotTell };
struct CheckResult {
  CheckOutcome outcome = CheckOutcome::kCannotTell;
  Value result;  // kDone: the step's result, as if it had just run
};

// One action a runbook can name. Implementations are stateless: everything a
// run needs lives in the StepContext, the args and the undo record.
class Primitive {
 public:
  virtual ~Primitive() = default;
  virtual std::string name() const = 0;  // "pg.copy"
  virtual const Schema& schema() const = 0;
  virtual Rehearsal rehearsal(const Value& args) const = 0;
  // Why a rehearsal skips this call (shown with the UNKNOWN result).
  virtual std::string skip_reason(const Value& /*args*/) const { return "cannot be rehearsed"; }
  // Safe to run again after it may have partly run (default: no).
  virtual bool idempotent(const Value& /*args*/) const { return false; }
  // Args have been checked against schema(); unresolved templates still
  // read "${{ ... }}".
  virtual PlanEffect Plan(const Value& args) const = 0;
  virtual Result<Value> Apply(StepContext& ctx, const Value& args) = 0;
  // Undoes Apply from what it recorded. Must tolerate being run twice (a
  // crash during rollback runs it again). Status::Halt: the rollback must
  // not go on (what is older would act on a state this undo could not
  // reach: writers restarted on a database that lacks their writes).
  virtual Status Undo(StepContext& /*ctx*/, const Value& /*args*/, const Value& /*undo_state*/) {
    return Status::Failed(name() + " cannot be undone");
  }
  // Before a rollback undoes anything: would this undo destroy what it did
  // not write (rows the application wrote since)? Then a failure saying
  // what and how much, and the whole rollback is refused, nothing changed,
  // unless the operator accepted the loss (ctx.accept_data_loss()).
  virtual Status CheckUndo(StepContext& /*ctx*/, const Value& /*args*/,
                           const Value& /*undo_state*/) {
    return Status::Ok();
  }
  // Did an interrupted Apply already take effect? (resume)
  virtual CheckResult Check(StepContext& /*ctx*/, const Value& /*args*/,
                            const Value& /*undo_state*/) {
    return {};
  }
};

class ConnectionType {
 public:
  virtual ~ConnectionType() = default;
  virtual std::string name() const = 0;  // "postgres"
  // Schema of the map form; scalar_arg is what a plain string sets.
  virtual const Schema& schema() const = 0;
  // One line for `plan`, with no secret in it.
  virtual std::string Describe(const Value& config) const = 0;
  // Registers the secrets a config holds (passwords) with the redactor.
  virtual void CollectSecrets(const Value& /*config*/, Redactor& /*r*/) const {}
};

class Registry {
 public:
  void Add(std::unique_ptr<Primitive> p);
  void AddConnectionType(std::unique_ptr<ConnectionType> c);
  Primitive* Find(const std::string& name) const;
  const ConnectionType* FindConnectionType(const std::string& name) const;
  std::vector<std::string> Names() const;  // sorted
  std::vector<std::string> ConnectionTypeNames() const;

 private:
  std::map<std::string, std::unique_ptr<Primitive>> primitives_;
  std::map<std::string, std::unique_ptr<ConnectionType>> connection_types_;
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
