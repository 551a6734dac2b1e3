// StepJournal: the step records of one run and every transition of them,
// redacted, written to the StateStore before the next side effect. It owns
// the records (the executor reads and changes their fields under lock()),
// what a transition sets on a record, and the first failed write: after it
// nothing more may act, rollback included.
//
// Thread-safe: a foreach's workers, and pg.copy's threads noting their own
// writes, journal concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/redact.h"
#include "engine/core/status.h"
#include "engine/exec/reporter.h"
#include "engine/state/store.h"

namespace runbook {

class StepJournal {
 public:
  // Not owned. `reporter` (may be null) is told of a failed write, once
  // per write, as an error of its step.
  StepJournal(StateStore* store, Clock* clock, Redactor* redactor, Reporter* reporter)
      : store_(store), clock_(clock), redactor_(redactor), reporter_(reporter) {}

  // The run whose steps this journal keeps (set before the first write).
  void set_run_id(const std::string& id) { run_id_ = id; }
  // Asked before each transition that precedes acting (a step's durable
  // start, a Lua step's call, an undo start: then not written) and after an
  // undo record (written all the same: it may narrow what a step that acted
  // made): an error (a run lock in a target that another engine took) is kept
  // as a failed write is, and nothing more may act.
  // Set before the first step; called from any worker.
  void set_guard(std::function<Status()> guard) { guard_ = std::move(guard); }
  const std::string& run_id() const { return run_id_; }

  // The run's records as the store has them (resume, rollback); replaces
  // any this journal held.
  Status Load();
  // The record of `step_id`, an empty one (kPending) if it had none.
  StepRecord* Record(const std::string& step_id);
  // The record of `step_id`, or null.
  StepRecord* Find(const std::string& step_id);
  // Every record, by step id. Read or change them under lock() while
  // workers may run; the map itself changes only through Record and Load.
  const std::map<std::string, std::unique_ptr<StepRecord>>& records() const { return records_; }
  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mu_); }

  // --- A step's transitions. Each sets what it names on the record, redacts
  // what the record holds, and writes the record with its event in one
  // transaction. A failed write is kept (ok(), error()) and returned.
  //
  // `durable` false skips the wait for the disk: allowed only when no
  // external side effect can follow before the next durable write (which
  // makes this one durable too: one log, in order). Durable: the start of a
  // step that may act, undo records, undo starts, run transitions. Not:
  // results, failures after an attempt, retries, and the start of probes;
  // a power loss then loses at most steps that changed nothing since the
  // last sync, and resume runs them again.

  // An attempt starts: kRunning; the event says rec->change.
  Status Start(StepRecord* rec, bool durable = true);
  // It ended as `status` (kSucceeded, kUnknown or kSkipped); `why` is what
  // the terminal shows beside it. The error of an earlier attempt is cleared.
  Status Finish(StepRecord* rec, StepStatus status, const std::string& why, bool durable = false);
  // It failed: kFailed with `error`, finished now.
  Status Fail(StepRecord* rec, const std::string& error, bool durable = true);
  // An attempt failed with rec->error and attempt `message` follows.
  Status Retry(StepRecord* rec, const std::string& message);
  // It waits for an approval (kWaiting).
  Status Wait(StepRecord* rec, const std::string& message);
  // An included runbook paused (kWaiting) or stopped for a decision
  // (kRunning: resume decides again) inside it.
  Status Pause(StepRecord* rec, bool waiting, const std::string& message);
  // A Lua step calls primitive `name` (its undo entry exists already).
  Status Call(StepRecord* rec, const std::string& name);
  // Undo entry `entry` of the step keeps `state`: written before the
  // primitive acts.
  Status RecordUndo(StepRecord* rec, size_t entry, const Value& state, bool durable);
  // Its undo (or rollback action) starts: kUndoing.
  Status UndoStart(StepRecord* rec);
  // Undone: kUndone. `acted` false: the undo found nothing of the step's to
  // revert (the event says kNothingToUndo).
  Status Undone(StepRecord* rec, bool acted);
  // Its undo failed: kUndoFailed with `error`.
  Status UndoFailed(StepRecord* rec, const std::string& error);
  // Nothing can undo it: it stays kSucceeded, left as it is.
  Status Irreversible(StepRecord* rec);
  // The record as the caller changed it, with an event of `kind` (the
  // transitions above are this with what they set).
  Status Put(StepRecord* rec, EventKind kind, const std::string& message, bool durable = true);

  // --- Events of the run that change no step.
  // Appends one (redacted) of step `step_id` ("" for the run's own).
  Status Append(EventKind kind, const std::string& step_id, const std::string& message);
  // The run's events of `kind`, oldest first.
  Result<std::vector<Event>> Events(EventKind kind);

  // No write of this run has failed.
  bool ok();
  // Whether this run may still act for `rec`: no write failed and the guard
  // (the run's locks) holds. A guard's refusal is kept as the failure.
  Status MayAct(const StepRecord& rec);
  // The first failed write (ok when none did).
  Status error();
  // That failure was the guard's refusal (a run lock in a target lost),
  // not a write to the store.
  bool guard_refused();
  // A run lock found lost by a watch while a step acted (not by the guard):
  // kept as the guard's refusal, unless a failure is kept already; every
  // later guard refuses with it. From any thread; nothing is written or
  // reported.
  void Refuse(const Status& why);
  // Keeps `s` as the journal's failure when it is one (a run transition
  // written by the caller); returns s.ok().
  bool Note(const Status& s);

 private:
  Status Write(StepRecord* rec, EventKind kind, const std::string& message, bool durable);
  Status Guard(const StepRecord& rec);

  StateStore* store_;
  Clock* clock_;
  Redactor* redactor_;
  Reporter* reporter_;
  std::string run_id_;
  std::function<Status()> guard_;
  std::mutex mu_;  // guards records_, the StepRecords in them, error_
  std::map<std::string, std::unique_ptr<StepRecord>> records_;
  Status error_;
  bool guard_refused_ = false;  // error_ is the guard's refusal
};

}  // namespace runbook
