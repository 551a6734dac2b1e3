// The state store: the journal of runs and steps that makes resume and
// rollback possible, and the run locks. Two implementations keep the same
// contract (tests/engine/state_test.cc runs one suite on both):
//   - a SQLite file (the default): WAL mode with synchronous=FULL, created
//     with mode 0600 (parents 0700); run locks are flock(2)s beside it
//     (engine/state/lock.h), so they cover the runs of this machine;
//   - a PostgreSQL database (`--state postgresql://...`, engine/state/
//     pg_store.h), shared by every engine that acts on the same targets: run
//     locks are leases with fencing tokens.
// When a method returns ok, the change survives SIGKILL and power loss.
//
// Nothing secret may reach it: callers pass values already redacted.
// Thread-safe: one connection guarded by a mutex (steps of a foreach with
// concurrency write from several threads).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/core/status.h"
#include "engine/core/value.h"

namespace runbook {

enum class RunStatus {
  kRunning, kSucceeded, kFailed, kPaused, kStopped, kRollingBack, kRolledBack, kRollbackFailed,
};
enum class StepStatus {
  kPending, kRunning, kSucceeded, kFailed, kSkipped, kUnknown, kWaiting, kUndoing, kUndone,
  kUndoFailed,
};
const char* RunStatusName(RunStatus s);
const char* StepStatusName(StepStatus s);
std::optional<RunStatus> ParseRunStatus(const std::string& s);
std::optional<StepStatus> ParseStepStatus(const std::string& s);

struct RunRecord {
  std::string id;
  std::string runbook_name;
  std::string runbook_path;   // absolute
  std::string digest;         // sha256 over the runbook and its includes
  Value sources;              // {path: text} of the runbook and includes (redacted)
  Value params;               // redacted: secret params are "***"
  std::string params_digest;  // sha256 of the non-secret params
  bool dry_run = false;
  std::string lock_key;
  RunStatus status = RunStatus::kRunning;
  std::string error;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  Value options;              // run options worth keeping (--ignore-window, --yes, log format)
};

// One invocation of a primitive inside a step, with what it recorded before
// acting. A step holds a list: a Lua step may call several primitives.
struct UndoEntry {
  std::string primitive;
  Value args;   // redacted
  Value state;  // what RecordUndo stored
  // What the call reported (StepContext::SetChanged); unset: unknown,
  // treated as changed. false: nothing to undo.
  std::optional<bool> changed;
};
// The call changed nothing: its undo has nothing to do.
inline bool ChangedNothing(const UndoEntry& e) { return e.changed == false; }

struct StepRecord {
  std::string run_id;
  std::string step_id;      // "copy", "copy[2]", "inc.sub"
  int64_t seq = 0;          // order of first start within the run (set by the store)
  int64_t done_seq = 0;     // order of success (rollback goes newest first)
  StepStatus status = StepStatus::kPending;
  int attempts = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int64_t duration_ms = 0;
  std::string action;       // primitive name
  std::string change;       // the effect, for the report (redacted)
  Value result;             // redacted
  Value tables = Value::array();  // Table values for the report
  std::string error;
  std::vector<UndoEntry> undo;
  std::string undo_error;
  Value item;               // the foreach item of this instance (null otherwise), redacted
};

// "move[2] (app_orders)": the step id and, for a foreach instance, its item
// by value: a scalar, or an object's name (or id, database, host, ...)
// field, else its first scalar field; at most 40 characters of it.
std::string StepLabel(const StepRecord& s);

// Every call of the step reported it changed nothing (a step with no call
// recorded, a Lua step that called nothing, is not known to have changed
// nothing): its rollback: action and its undos have nothing to do.
bool StepChangedNothing(const StepRecord& s);

// What an event of the journal says happened. Stored by name (EventKindName)
// so that a report or `status` of another binary's version still reads it.
enum class EventKind {
  // A step's transitions (StepJournal, engine/exec/journal.h).
  kStepStart,         // an attempt starts (message: what it will change)
  kStepOk,            // it succeeded (message: why it is shown so, if anything)
  kStepUnknown,       // a rehearsal could not tell its result
  kStepSkip,          // when: false, before --from
  kStepFail,          // it failed (message: the error)
  kStepRetry,         // an attempt failed and another follows
  kStepWait,          // it waits for an approval
  kStepPause,         // an included runbook paused or stopped inside it
  kStepCall,          // a Lua step calls a primitive (message: its name)
  kStepUndoRecorded,  // what its undo needs is kept (before it acts)
  kUndoStart,         // its undo starts
  kUndoOk,            // undone (message: kNothingToUndo when nothing was)
  kUndoFail,          // its undo failed (message: the error)
  kUndoIrreversible,  // nothing can undo it: left as it is
  kUndoRetry,         // its undo, or the check before it, met a system away: tried again
  // Of the run.
  kOwnWrite,      // a row the run itself wrote ("<where> <id>": a key, no value)
  kPlanNote,      // a rehearsal's plan: what a step would make or remove
  kRollbackLift,  // a second rollback undoes what a rollback boundary kept
  // Of a fleet (`runbook fleet`).
  kTargetStart,
  kTargetEnd,
  kFleetResume,
  kWaveWait,
  kWaveApproved,
};
const char* EventKindName(EventKind k);

struct Event {
  int64_t id = 0;
  std::string run_id;
  std::string step_id;
  int64_t at_ms = 0;
  std::string kind;     // EventKindName: "step.start", "step.ok", "undo.ok", ...
  std::string message;  // redacted

  bool Is(EventKind k) const { return kind == EventKindName(k); }
};

// The message of an "undo.ok" event whose undo found nothing of its step's
// to revert (NothingToUndo): the step is kUndone, yet nothing was undone.
inline constexpr char kNothingToUndo[] = "nothing to undo";
// The steps whose last "undo.ok" event says kNothingToUndo.
std::set<std::string> StepsWithNothingUndone(const std::vector<Event>& events);

// A fleet (`runbook fleet`) is kept as a run record whose options hold
// "fleet" (its definition: targets, waves, limits), with one step record
// per target ("targets[3]", item {name}, result {status, run, wave, ...}).
inline bool IsFleet(const RunRecord& r) {
  return r.options.is_object() && r.options.contains("fleet") && r.options["fleet"].is_object();
}

struct Approval {
  std::string run_id, step_id, by;
  int64_t at_ms = 0;
};

// A run lock held by this engine; released when destroyed.
class StoreLock {
 public:
  virtual ~StoreLock() = default;
  // Ok while the lock is this engine's as far as it knows; once another
  // engine took it over (a lease), or it could not be renewed for long
  // enough that another may, an error saying so. From any thread: cheap.
  virtual Status Held() const { return Status::Ok(); }
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  // Opens (creating if needed) the store at `location`: a PostgreSQL URI
  // (postgresql://... or postgres://..., libpq's conventions: service files,
  // .pgpass, PG* variables, sslmode) or a SQLite file path.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& location);
  // Where the store is, for messages: the file, or the server and database
  // (never a password).
  virtual const std::string& path() const = 0;

  virtual Status CreateRun(const RunRecord& run) = 0;
  virtual Status UpdateRun(const std::string& run_id, RunStatus status,
                           const std::string& error) = 0;
  virtual Result<RunRecord> GetRun(const std::string& run_id) = 0;  // NotFound if absent
  virtual Result<std::vector<RunRecord>> ListRuns(int limit) = 0;   // newest first

  // Writes the whole step row and, if given, one event, in one transaction.
  // A new step gets the next seq; done_seq is assigned when status becomes
  // kSucceeded for the first time.
  // `durable` false commits without waiting for the disk (SQLite:
  // synchronous=NORMAL, PostgreSQL: synchronous_commit=off, for this one
  // transaction): the commit is ordered in the log and becomes durable with
  // the next durable commit. The executor uses it only for transitions that
  // no external side effect follows before a durable commit does (see
  // StepJournal, engine/exec/journal.h).
  virtual Status PutStep(StepRecord* step, const Event* event = nullptr, bool durable = true) = 0;
  virtual Result<std::vector<StepRecord>> GetSteps(const std::string& run_id) = 0;  // by seq
  virtual Result<std::optional<StepRecord>> GetStep(const std::string& run_id,
                                                    const std::string& step_id) = 0;

  virtual Status AppendEvent(const Event& e) = 0;
  virtual Result<std::vector<Event>> GetEvents(const std::string& run_id) = 0;

  virtual Status RecordApproval(const Approval& a) = 0;
  virtual Result<std::optional<Approval>> GetApproval(const std::string& run_id,
                                                      const std::string& step_id) = 0;
  // Whether WaitForApproval is told of a new approval by the store (a
  // PostgreSQL store: LISTEN/NOTIFY) rather than answering at once, so
  // that a waiting engine need not poll.
  virtual bool NotifiesApprovals() const { return false; }
  // The approval of the step, waiting up to `max` for one to be recorded
  // by any engine on this store; nullopt if none came. The default answers
  // at once (GetApproval): its caller polls.
  virtual Result<std::optional<Approval>> WaitForApproval(const std::string& run_id,
                                                          const std::string& step_id,
                                                          std::chrono::milliseconds /*max*/) {
    return GetApproval(run_id, step_id);
  }

  // Latest duration of each step id over earlier runs (rehearsals included)
  // of the runbook `runbook_name`, for the maintenance-window fit check.
  virtual Result<std::map<std::string, int64_t>> RecentDurations(
      const std::string& runbook_name) = 0;

  // Takes the run lock `key` for run `run_id`. Fails with
  // Status::Unavailable naming the holder when another engine holds it.
  // While a PostgreSQL store's lock is held, every write of this store
  // checks that the lease is still this engine's: one taken over (this
  // engine was presumed dead) fails the write, so the engine stops before
  // its next side effect.
  virtual Result<std::unique_ptr<StoreLock>> AcquireLock(const std::string& key,
                                                         const std::string& run_id) = 0;
  // Whether a live engine holds the lock `key` now (without taking it): a
  // run the store says is running whose lock nobody holds was interrupted.
  virtual bool LockHeld(const std::string& key) = 0;
};

// Whether `location` names a PostgreSQL state store rather than a file.
bool IsPostgresLocation(const std::string& location);

// A new run id: "20261121-145238-4f2a" (UTC time plus 4 random hex digits).
std::string NewRunId(int64_t now_ms);

// The default store location: $RUNBOOK_STATE, else $XDG_STATE_HOME/runbook/state.db,
// else ~/.local/state/runbook/state.db.
std::string DefaultStatePath();

}  // namespace runbook
