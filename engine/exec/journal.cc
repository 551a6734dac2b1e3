// StepJournal: a run's step records and their transitions.
#include "engine/exec/journal.h"

namespace runbook {

namespace {

EventKind EndEvent(StepStatus status) {
  switch (status) {
    case StepStatus::kUnknown:
      return EventKind::kStepUnknown;
    case StepStatus::kSkipped:
      return EventKind::kStepSkip;
    case StepStatus::kFailed:
      return EventKind::kStepFail;
    default:
      return EventKind::kStepOk;
  }
}

}  // namespace

Status StepJournal::Load() {
  Result<std::vector<StepRecord>> steps = store_->GetSteps(run_id_);
  if (!steps.ok()) return steps.status();
  std::lock_guard<std::mutex> lock(mu_);
  records_.clear();
  for (StepRecord& s : *steps) {
    const std::string id = s.step_id;  // (the right side is evaluated first)
    records_[id] = std::make_unique<StepRecord>(std::move(s));
  }
  return Status::Ok();
}

StepRecord* StepJournal::Record(const std::string& step_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = records_[step_id];
  if (!slot) {
    slot = std::make_unique<StepRecord>();
    slot->run_id = run_id_;
    slot->step_id = step_id;
  }
  return slot.get();
}

StepRecord* StepJournal::Find(const std::string& step_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(step_id);
  return it == records_.end() ? nullptr : it->second.get();
}

Status StepJournal::Write(StepRecord* rec, EventKind kind, const std::string& message,
                          bool durable) {
  Event e;
  e.run_id = run_id_;
  e.step_id = rec->step_id;
  e.at_ms = clock_->NowMs();
  e.kind = EventKindName(kind);
  e.message = redactor_->Redact(message);
  Status s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rec->change = redactor_->Redact(rec->change);
    rec->error = redactor_->Redact(rec->error);
    rec->undo_error = redactor_->Redact(rec->undo_error);
    s = store_->PutStep(rec, &e, durable);
    if (!s.ok() && error_.ok()) error_ = s;  // the journal is the promise: nothing more may act
  }
  if (!s.ok() && reporter_) reporter_->Log(rec->step_id, LogLevel::kError, s.message());
  return s;
}

Status StepJournal::Put(StepRecord* rec, EventKind kind, const std::string& message, bool durable) {
  return Write(rec, kind, message, durable);
}

Status StepJournal::MayAct(const StepRecord& rec) {
  if (!ok()) return error();
  return Guard(rec);
}

Status StepJournal::Guard(const StepRecord& rec) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (guard_refused_) return error_;  // a lock found lost stays lost for this engine
  }
  if (!guard_) return Status::Ok();
  Status s = guard_();
  if (s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.ok()) {
      error_ = s;
      guard_refused_ = true;
    }
  }
  if (reporter_) reporter_->Log(rec.step_id, LogLevel::kError, redactor_->Redact(s.message()));
  return s;
}

void StepJournal::Refuse(const Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.ok()) return;
  error_ = why;
  guard_refused_ = true;
}

Status StepJournal::Start(StepRecord* rec, bool durable) {
  if (durable) {
    if (Status g = Guard(*rec); !g.ok()) return g;
  }
  rec->status = StepStatus::kRunning;
  return Write(rec, EventKind::kStepStart, rec->change, durable);
}

Status StepJournal::Finish(StepRecord* rec, StepStatus status, const std::string& why,
                           bool durable) {
  rec->status = status;
  rec->error.clear();
  return Write(rec, EndEvent(status), why, durable);
}

Status StepJournal::Fail(StepRecord* rec, const std::string& error, bool durable) {
  rec->status = StepStatus::kFailed;
  rec->error = error;
  rec->finished_ms = clock_->NowMs();
  return Write(rec, EventKind::kStepFail, error, durable);
}

Status StepJournal::Retry(StepRecord* rec, const std::string& message) {
  rec->status = StepStatus::kRunning;
  return Write(rec, EventKind::kStepRetry, message, /*durable=*/false);
}

Status StepJournal::Wait(StepRecord* rec, const std::string& message) {
  rec->status = StepStatus::kWaiting;
  return Write(rec, EventKind::kStepWait, message, /*durable=*/true);
}

Status StepJournal::Pause(StepRecord* rec, bool waiting, const std::string& message) {
  rec->status = waiting ? StepStatus::kWaiting : StepStatus::kRunning;
  return Write(rec, EventKind::kStepPause, message, /*durable=*/true);
}

Status StepJournal::Call(StepRecord* rec, const std::string& name) {
  if (Status g = Guard(*rec); !g.ok()) return g;
  return Write(rec, EventKind::kStepCall, name, /*durable=*/true);
}

Status StepJournal::RecordUndo(StepRecord* rec, size_t entry, const Value& state, bool durable) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (entry >= rec->undo.size()) return Status::Internal("undo entry out of range");
    rec->undo[entry].state = redactor_->Redact(state);
  }
  // Written whatever the guard says: a record narrowed after acting ("the
  // database was not ours") must reach the journal; one before acting is
  // refused by the guard's error all the same.
  if (Status s = Write(rec, EventKind::kStepUndoRecorded, "", durable); !s.ok()) return s;
  return Guard(*rec);
}

Status StepJournal::UndoStart(StepRecord* rec) {
  if (Status g = Guard(*rec); !g.ok()) return g;
  rec->status = StepStatus::kUndoing;
  return Write(rec, EventKind::kUndoStart, "", /*durable=*/true);
}

Status StepJournal::Undone(StepRecord* rec, bool acted) {
  rec->status = StepStatus::kUndone;
  rec->undo_error.clear();
  return Write(rec, EventKind::kUndoOk, acted ? "" : kNothingToUndo, /*durable=*/true);
}

Status StepJournal::UndoFailed(StepRecord* rec, const std::string& error) {
  rec->status = StepStatus::kUndoFailed;
  rec->undo_error = error;
  return Write(rec, EventKind::kUndoFail, error, /*durable=*/true);
}

Status StepJournal::Irreversible(StepRecord* rec) {
  rec->status = StepStatus::kSucceeded;
  return Write(rec, EventKind::kUndoIrreversible, "", /*durable=*/true);
}

Status StepJournal::Append(EventKind kind, const std::string& step_id, const std::string& message) {
  Event e;
  e.run_id = run_id_;
  e.step_id = step_id;
  e.at_ms = clock_->NowMs();
  e.kind = EventKindName(kind);
  e.message = redactor_->Redact(message);
  std::lock_guard<std::mutex> lock(mu_);
  Status s = store_->AppendEvent(e);
  if (!s.ok() && error_.ok()) error_ = s;
  return s;
}

Result<std::vector<Event>> StepJournal::Events(EventKind kind) {
  Result<std::vector<Event>> all = store_->GetEvents(run_id_);
  if (!all.ok()) return all.status();
  std::vector<Event> out;
  for (Event& e : *all) {
    if (e.Is(kind)) out.push_back(std::move(e));
  }
  return out;
}

bool StepJournal::ok() {
  std::lock_guard<std::mutex> lock(mu_);
  return error_.ok();
}

bool StepJournal::guard_refused() {
  std::lock_guard<std::mutex> lock(mu_);
  return guard_refused_;
}

Status StepJournal::error() {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

bool StepJournal::Note(const Status& s) {
  if (s.ok()) return true;
  std::lock_guard<std::mutex> lock(mu_);
  if (error_.ok()) error_ = s;
  return false;
}

}  // namespace runbook
