// StepContext: everything a primitive sees of the run while it acts
// (implemented by the executor; binding tests may implement it themselves).
#pragma once

#include <string>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/process.h"
#include "engine/core/progress.h"
#include "engine/core/redact.h"
#include "engine/core/resources.h"
#include "engine/core/status.h"
#include "engine/core/value.h"

namespace runbook {

// A connection as the runbook declares it, templates already expanded.
struct Connection {
  std::string name;
  std::string type;  // "postgres", "kube", "ssh"
  Value config;      // always an object (scalar forms are normalised)
};

enum class LogLevel { kDebug, kInfo, kWarn, kError };

class ConnectionType;

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
  // The connection type named `type` ("kube"), or null: what routes a
  // connection `via:` another (engine/core/route.h).
  virtual const ConnectionType* FindConnectionType(const std::string& /*type*/) const {
    return nullptr;
  }
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
  // What this call did, for the rollback: true, it changed something (its
  // undo runs); false, it found everything already as asked (rollback
  // passes over it, its undo and the step's rollback: action alike). Not
  // called: unknown, treated as changed. The engine adds it to the call's
  // result as `changed`, for Lua; a primitive does not put it there itself.
  // "Nothing changed" after an earlier attempt of the same call (a retry, a
  // resume after a kill) that may have made it (it said so, or was killed,
  // or had recorded its undo state) is counted as changed.
  virtual void SetChanged(bool /*changed*/) {}
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

}  // namespace runbook
