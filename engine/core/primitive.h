// Primitive and ConnectionType: what a binding implements, once per action
// a runbook can name and once per connection kind.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/core/route.h"
#include "engine/core/schema.h"
#include "engine/core/status.h"
#include "engine/core/step_context.h"
#include "engine/core/value.h"

namespace runbook {

// How a primitive takes part in a rehearsal (`run --dry-run`).
enum class Rehearsal {
  kUndeclared,  // refused in a rehearsal
  kProbe,       // read-only: runs for real
  kSimulate,    // Apply runs with dry_run(): the server checks, keeps nothing
  kSkip,        // cannot be rehearsed: Apply is not called, the result is UNKNOWN
};
const char* RehearsalName(Rehearsal r);

// What a rollback does with a step's effect (PlanEffect::undo_kind).
enum class UndoKind {
  kUndoes,         // Primitive::Undo reverts it from its undo record
  kNothingToUndo,  // it changes nothing (log, sleep, a query): rollback passes over it
  kIrreversible,   // nothing can revert it, unless the step has a rollback: action
};

// What `plan` shows for one step.
struct PlanEffect {
  std::string text;  // the exact effect: SQL, argv, remote command
  UndoKind undo_kind = UndoKind::kUndoes;
  std::string undo;  // what `rollback: auto` would do, or why it cannot

  bool reversible() const { return undo_kind != UndoKind::kIrreversible; }
  bool nothing_to_undo() const { return undo_kind == UndoKind::kNothingToUndo; }
};
// The PlanEffect of an action that changes nothing ("nothing to undo" or
// "nothing to undo (read-only)" as its undo text).
PlanEffect ChangesNothing(std::string text, const std::string& why = "");
// The PlanEffect of an action that nothing reverts; `why` says so to the operator.
PlanEffect Irreversible(std::string text, std::string why);

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
  // What this call would make that a rehearsal skipping it (kSkip) should
  // plan for, as RehearsalPlan keys (PlannedFileKey: exec's creates:), so a
  // later step probing it ends UNKNOWN ("step X would create it"), not
  // failed.
  virtual std::vector<std::string> SkippedWouldMake(const Value& /*args*/) const { return {}; }
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

// With RUNBOOK_CHECK_RESULTS set (the test suite sets it): a failure naming
// every way `result` differs from what `p` declares (schema().result).
// Without it, or without a declaration: Ok. `changed` is the engine's: check
// a result before it is added.
Status CheckDeclaredResult(const Primitive& p, const Value& result);

// A run lock held where a target is (ConnectionType::LockTarget); the
// destructor releases it, and so does the death of the process.
// What a run lock is taken as (ConnectionType::LockTarget).
struct TargetLockRequest {
  std::string key;        // the lock key: engines meet on it
  std::string shown_key;  // the key as others may read it (secrets redacted)
  std::string holder;     // this engine, "runbook RUN PID NONCE HOST"
};

class TargetLock {
 public:
  virtual ~TargetLock() = default;
  // Ok while the lock is this engine's as far as it knows; once it is not
  // (another engine took it, or it could not be renewed in time), an error
  // saying so. Asked before each step acts, from any thread: cheap.
  virtual Status Held() const { return Status::Ok(); }
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
  // Takes run lock `req.key` on what `config` reaches, so that an engine
  // with another state store is kept out too; `req.holder` names this engine
  // to others. nullptr: nothing taken (the type takes none, or not for this
  // config, or this run holds it there already). kUnavailable: another
  // engine holds it (the message names it); any other error: it could not be
  // taken (the caller goes on without it). Whatever the type writes where
  // others read it shows `req.shown_key`, never the key itself.
  virtual Result<std::unique_ptr<TargetLock>> LockTarget(const std::string& /*conn_name*/,
                                                         const Value& /*config*/,
                                                         const TargetLockRequest& /*req*/) const {
    return std::unique_ptr<TargetLock>();
  }
  // The rows of one read-only query on what `config` reaches, a list of maps
  // (column name to value; NULL is null), for the command line's own needs
  // (a fleet's targets from a query). The query runs in a transaction that
  // cannot write, one statement only. Errors name the connection and hold no
  // secret. kInvalid when the type cannot run queries.
  virtual Result<Value> QueryRows(const std::string& /*conn_name*/, const Value& /*config*/,
                                  const std::string& /*sql*/) const {
    return Status::Invalid(name() + " connections cannot run a query");
  }
  // Where a step with arguments `step_args` acts through a connection of
  // this type whose config is `config`: `config`, unless the step's own
  // arguments lead elsewhere (kube: its `namespace:`). Before such a step
  // acts (or is undone), the run lock is taken there too (LockTarget).
  virtual Value ActsIn(const Value& config, const Value& /*step_args*/) const { return config; }
  // Whether connections of this type carry others' traffic (`via:`).
  virtual bool routes() const { return false; }
  // Opens, or reuses for the run, a route through connection `via` (of
  // this type) to `to`, and returns the local port on 127.0.0.1 that leads
  // there (engine/core/route.h). Errors say what `to` lacks.
  virtual Result<int> OpenRoute(StepContext& /*ctx*/, const std::string& via,
                                const RouteRequest& /*to*/) const {
    return Status::Invalid("connection '" + via + "' (" + name() + ") carries no other");
  }
};

}  // namespace runbook
