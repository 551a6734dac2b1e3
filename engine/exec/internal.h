// Executor internals shared by executor.cc, steps.cc, context.cc and
// rollback.cc. Not part of the engine's interface.
#pragma once

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "engine/core/interrupt.h"
#include "engine/core/primitive.h"
#include "engine/core/renewal.h"
#include "engine/exec/executor.h"
#include "engine/exec/journal.h"
#include "engine/exec/window.h"
#include "engine/lua/runtime.h"

namespace runbook {

// One runbook level: the root, or an included runbook.
struct Scope {
  const Runbook* rb = nullptr;
  Value params = Value::object();  // resolved, secrets included (memory only)
  std::string prefix;              // "" or "inc." for the steps of `include` step inc
  Value steps = Value::object();   // id -> {status, result} for templates
};

// How a stretch of steps ended.
enum class Flow { kOk, kFailed, kPaused, kDecision, kWindow };

struct FlowResult {
  Flow flow = Flow::kOk;
  std::string message;
};

class Executor::Impl {
 public:
  explicit Impl(ExecEnv env)
      : env_(env), journal_(env.store, env.clock, env.redactor, env.reporter) {}
  ~Impl();  // ends the lock watch before the locks go

  RunOutcome Run(std::shared_ptr<const Runbook> rb, const Value& params, const RunOptions& opts);
  RunOutcome Resume(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                    const Value& secret_params, const RunOptions& opts);
  RunOutcome Rollback(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                      const Value& secret_params, const RunOptions& opts);

  // --- steps.cc
  FlowResult RunSteps(Scope& scope);
  FlowResult RunStep(Scope& scope, const StepSpec& s, size_t index);
  FlowResult RunForeach(Scope& scope, const StepSpec& s, const Value& items);
  // Runs one instance (the step, or one foreach item). Sets *status.
  FlowResult RunInstance(Scope& scope, const StepSpec& s, const std::string& id,
                         const Value* item, StepStatus* status, Value* result);
  FlowResult Attempts(Scope& scope, const StepSpec& s, StepRecord* rec, Primitive* prim,
                      const Value& args, const Value& env, Value* result);
  // Journals the step's failure with `error` and shows it; kFailed naming
  // the step.
  FlowResult FailStep(StepRecord* rec, const std::string& error, bool durable = true);
  // Approval gate of step `rec` (step key approve: or the approve action).
  Status Approve(StepRecord* rec, const std::string& message);
  // Runs an included runbook as the steps "<instance_id>.<id>" (instance_id:
  // the include step's record id, "inc" or "inc[2]" inside a foreach).
  FlowResult RunChild(Scope& parent, const std::string& instance_id, const std::string& path,
                      const Value& params, Value* result);
  bool WindowAllows(const Scope& scope, size_t index, std::string* why);
  // Before an interrupted step runs again: waits (a little) while processes
  // its killed attempt started still run; then kDecision naming them.
  FlowResult WaitForOrphans(const StepSpec& s, StepRecord* rec);

  // --- rollback.cc
  // Undoes completed steps newest first; returns true if every undo worked.
  // Refused (rollback_refused_ says why, nothing undone) when an undo would
  // destroy what others wrote, unless opts_.accept_data_loss.
  bool DoRollback();
  // The records a rollback undoes, newest first (PlanUndo); `log`: say
  // which a rollback boundary keeps, and stop the rollback there.
  std::vector<StepRecord*> UndoOrder(bool log = true);
  bool WillUndo(StepRecord* rec, const StepSpec* spec, bool* has_action);
  std::string CheckUndos(const std::vector<StepRecord*>& order);
  // The spec and scope of a recorded step id ("inc.sub[2]"), or null.
  const StepSpec* FindSpec(const std::string& step_id, Scope** scope);

  // --- executor.cc
  StepRecord* Record(const std::string& step_id) { return journal_.Record(step_id); }
  // Whether a second rollback (past the rollback boundary) was begun.
  bool LiftJournaled();
  // A rehearsal's plan journaled as events ("plan.note"); a resumed
  // rehearsal first takes back what its earlier steps planned.
  void JournalPlan(bool resuming);
  Value MakeEnv(const Scope& scope, const Value* item, const Value* result = nullptr) const;
  // MakeEnv for running step `s`, with only the earlier results its
  // expressions name (copying every result for every step is quadratic).
  // Lua and include steps, and expressions that read `steps` dynamically,
  // get them all.
  Value MakeStepEnv(const Scope& scope, const StepSpec& s, const Value* item);
  LuaRuntime& Lua();
  void RegisterSecrets(const Runbook& rb, const Value& params);
  // Passwords written literally into the connections of `rb` and what it
  // includes, before its sources are stored or printed.
  void RegisterLiteralSecrets(const Runbook& rb);
  Result<Connection> ResolveConnection(const Scope& scope, const std::string& name);
  RunOutcome Finish(const FlowResult& f);
  // A command that did not get to its steps, and why (redacted).
  RunOutcome Refuse(ExitCode code, const std::string& why) const {
    return RunOutcome::Refused(code, env_.redactor->Redact(why));
  }
  // root_.steps from the records (a rollback's undos read earlier results).
  void RestoreResults();
  // The run lock in the store and, when `on_targets` (not a rehearsal),
  // where each connection that can be resolved now leads (TargetLock).
  Status AcquireLock(const Runbook& rb, const Value& params, bool on_targets);
  void Report(const StepRecord& rec, const std::string& detail);
  // Tells the reporter the run started (`what`: "run", "resume", ...),
  // then what AcquireLock had to warn of.
  void StartReport(const std::string& what);
  // The params as the store keeps them: secret ones "***"; the others as
  // given, except those holding a secret (a dsn with its password), stored
  // masked and named in `withheld` (they must be given again on resume).
  Value RedactParams(const Runbook& rb, const Value& params, Value* withheld) const;
  // root_.params for a resume or rollback: the stored ones, plus `given`
  // (-p, env) for the secret and withheld ones; a stored param given with
  // another value, or a secret one not given, is refused (false; *why
  // names every one, a line each).
  bool RestoreParams(const Runbook& rb, const Value& given, std::string* why);

  ExecEnv env_;
  RunOptions opts_;
  RunRecord run_;
  std::shared_ptr<const Runbook> root_rb_;
  Scope root_;
  std::unique_ptr<StoreLock> lock_;
  std::mutex locks_mu_;  // guards target_locks_ (a step may add one), locked_at_
  std::vector<std::unique_ptr<TargetLock>> target_locks_;
  std::set<std::string> locked_at_;  // where a target lock was taken or tried
  // Takes the run lock where `prim` with `args` acts beyond its connections'
  // own config (ConnectionType::ActsIn: a kube step's `namespace:`), once
  // per place for the rest of the run. kUnavailable (another engine holds
  // it there): the journal refuses from now on, nothing more acts. Another
  // failure to take it is a warning, as at the start of a run.
  Status LockWhereActs(StepContext& ctx, const Primitive& prim, const Value& args);
  // A run lock in a target found lost is what stopped the journal (not a
  // store write that failed first).
  bool LockLostFirst() { return journal_.guard_refused(); }
  // What the run says when it stopped for it; `rolling`: while rolling back.
  std::string LockLostMessage(bool rolling);
  std::vector<std::string> lock_warnings_;  // redacted by the reporter
  Resources resources_;
  // The step records and their transitions; its lock() guards the records
  // and what this class keeps about them (child_scopes_).
  StepJournal journal_;
  std::mutex refs_mu_;  // guards step_refs_
  // Per step: the step ids its expressions name; nullopt: all of them.
  std::map<const StepSpec*, std::optional<std::set<std::string>>> step_refs_;
  std::map<std::string, int64_t> durations_;
  int64_t window_end_ms_ = 0;     // 0: no window to respect
  std::string rollback_refused_;  // why DoRollback undid nothing (CheckUndo)
  // While CheckUndos runs: the steps whose CheckUndo it asks.
  bool checking_undos_ = false;
  // What is left of this rollback's wait for systems away for a moment.
  Millis undo_patience_{0};
  std::set<std::string> undos_checked_;
  // Steps this rollback found nothing of to revert (shown "nothing to undo").
  std::set<std::string> nothing_undone_;
  bool lift_boundaries_ = false;  // a second rollback: boundaries whose step is undone are lifted
  bool kept_steps_ = false;       // the rollback stopped at a boundary
  std::string kept_until_;        // the step whose undo lifts that boundary
  // Whether any step of the run is undone (by this rollback or an earlier
  // attempt of it): "rolled back" only then, else "nothing to undo".
  bool AnyUndone();
  bool resuming_ = false;
  std::map<std::string, std::unique_ptr<Scope>> child_scopes_;  // for rollback
  // While the run may act: looks at its locks every second; one found lost
  // stops the step that acts (engine/core/interrupt.h) instead of letting
  // it go on until its next transition. Last: stopped before what it reads.
  void WatchLocks();
  void EndLockWatch();
  bool lock_doubted_ = false;                  // the watch's last look found one lost
  std::atomic<bool> store_lease_lost_{false};  // the lock found lost is the store's lease
  std::unique_ptr<RenewalThread> lock_watch_;
};

// The StepContext a primitive sees. One per invocation (a Lua step's nested
// calls each get their own, sharing the step's record).
class StepContextImpl : public StepContext, public LuaHost {
 public:
  StepContextImpl(Executor::Impl* ex, Scope* scope, const StepSpec* spec, StepRecord* rec,
                  Value env, SteadyTime deadline, size_t entry, Value previous)
      : ex_(ex), scope_(scope), spec_(spec), rec_(rec), env_(std::move(env)),
        deadline_(deadline), entry_(entry), previous_(std::move(previous)),
        runner_(*ex->env_.processes, kStepTokenVar, ex->run_.id + "/" + rec->step_id) {}

  const std::string& run_id() const override { return ex_->run_.id; }
  const std::string& step_id() const override { return rec_->step_id; }
  bool dry_run() const override { return ex_->opts_.dry_run; }
  bool accept_data_loss() const override { return ex_->opts_.accept_data_loss; }
  // Now, once the run stopped acting (a lock lost: interrupt.h): a wait
  // that reads its deadline afresh ends there.
  SteadyTime deadline() const override {
    return ActingStopped() ? std::min(deadline_, ex_->env_.clock->Steady()) : deadline_;
  }
  Status RecordUndo(const Value& state) override;
  Value PreviousUndo() override { return previous_; }
  Status NoteOwnWrite(const std::string& where, const std::string& id) override;
  Result<std::vector<std::string>> OwnWrites(const std::string& where) override;
  bool ChecksUndoOf(const std::string& step_id) const override {
    return !ex_->checking_undos_ || ex_->undos_checked_.count(step_id) > 0;
  }
  Result<Connection> GetConnection(const std::string& name) override {
    return ex_->ResolveConnection(*scope_, name);
  }
  const ConnectionType* FindConnectionType(const std::string& type) const override {
    return ex_->env_.registry->FindConnectionType(type);
  }
  Resources& resources() override { return ex_->resources_; }
  void Log(LogLevel level, const std::string& message) override;
  void Progress(const ProgressInfo& info) override;
  void AddTable(const Table& table) override;
  Redactor& redactor() override { return *ex_->env_.redactor; }
  // Tags every child with the step (kStepTokenVar): a resume finds what a
  // killed engine's children still do.
  ProcessRunner& processes() override { return runner_; }
  Clock& clock() override { return *ex_->env_.clock; }
  Result<Value> Invoke(const std::string& primitive, const Value& args) override;
  Result<Value> RunChild(const std::string& runbook_path, const Value& params) override;
  Status Approve(const std::string& message) override { return ex_->Approve(rec_, message); }
  Result<Value> RunLua(const std::string& code) override;

  // LuaHost
  Result<Value> CallPrimitive(const std::string& name, const Value& args) override {
    return Invoke(name, args);
  }

  // Kept in this call's undo entry when records_changed (a context made
  // for an Apply); "nothing changed" becomes changed when an earlier attempt
  // of the same call may have acted (earlier_acted).
  void SetChanged(bool changed) override;
  const std::optional<bool>& changed() const { return changed_; }
  // What the call reported, as its result's `changed` (for Lua).
  void AddChanged(Result<Value>* r) const {
    if (changed_ && r->ok() && (*r)->is_object()) (**r)["changed"] = *changed_;
  }

  // How a child runbook (include) ended, when it did not simply succeed.
  FlowResult child_flow;
  // Set by who makes the context for an Apply of a call with an undo entry.
  bool records_changed = false;
  // A rollback's context (an undo, a rollback action, the calls of a Lua
  // rollback action): no call of it records anything.
  bool undoing = false;
  // The step was running when the engine stopped (this process's first attempt).
  bool interrupted = false;
  // An earlier attempt of this same call may have made its change
  // (MayHaveActed of its entry).
  bool earlier_acted = false;
  // In a rehearsal, why the last call Lua made returned UNKNOWN ("not
  // probed: ..." for Status::NotYet, "not rehearsed: ..." for a skipped
  // primitive): the reason a Lua step that read such a result is UNKNOWN.
  std::string unknown_why;

 private:
  Executor::Impl* ex_;
  Scope* scope_;
  const StepSpec* spec_;
  StepRecord* rec_;
  Value env_;
  SteadyTime deadline_;
  size_t entry_;
  Value previous_;
  std::vector<UndoEntry> prior_entries_;  // a Lua step's calls in an earlier run
  std::optional<bool> changed_;
  TaggingRunner runner_;
};

// Whether the attempt that left undo entry `e` may have made its change: what
// it reported, else (it did not get to say) if it was killed mid-way or had
// recorded an undo state, which a primitive does just before it acts.
inline bool MayHaveActed(const UndoEntry& e, bool interrupted) {
  if (e.changed) return *e.changed;
  return interrupted || !e.state.is_null();
}

}  // namespace runbook
