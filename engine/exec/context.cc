// StepContextImpl: what a primitive sees of the run.
#include "engine/core/rehearsal_plan.h"
#include "engine/exec/internal.h"

namespace runbook {

Status StepContextImpl::RecordUndo(const Value& state) {
  // Durable before the primitive goes on to act.
  return ex_->journal_.RecordUndo(rec_, entry_, state, /*durable=*/!ex_->opts_.dry_run);
}

// Kept as events of the run ("own_write": "<where> <id>"), written by the
// binding from what the server reported (a key and a number, no value).
Status StepContextImpl::NoteOwnWrite(const std::string& where, const std::string& id) {
  if (ex_->opts_.dry_run) return Status::Ok();
  // pg.copy's workers note theirs from their own threads.
  return ex_->journal_.Append(EventKind::kOwnWrite, rec_->step_id, where + " " + id);
}

Result<std::vector<std::string>> StepContextImpl::OwnWrites(const std::string& where) {
  Result<std::vector<Event>> events = ex_->journal_.Events(EventKind::kOwnWrite);
  if (!events.ok()) return events.status();
  std::vector<std::string> ids;
  const std::string prefix = where + " ";
  for (const Event& e : *events) {
    if (e.message.compare(0, prefix.size(), prefix) == 0) {
      ids.push_back(e.message.substr(prefix.size()));
    }
  }
  return ids;
}

void StepContextImpl::Log(LogLevel level, const std::string& message) {
  ex_->env_.reporter->Log(rec_->step_id, level, message);
}

void StepContextImpl::Progress(const ProgressInfo& info) {
  ex_->env_.reporter->Progress(rec_->step_id, info);
}

void StepContextImpl::AddTable(const Table& table) {
  Table t = table;
  for (auto& row : t.rows) {
    for (auto& cell : row) cell = ex_->env_.redactor->Redact(cell);
  }
  auto lock = ex_->journal_.lock();
  rec_->tables.push_back(TableToValue(t));
}

Result<Value> StepContextImpl::Invoke(const std::string& name, const Value& args) {
  Primitive* prim = ex_->env_.registry->Find(name);
  if (!prim) return Status::Invalid("unknown primitive '" + name + "'");
  if (ActionKindOf(name) != ActionKind::kPrimitive) {
    return Status::Invalid(name + " cannot be called from Lua");
  }
  std::vector<ArgError> errors = CheckArgs(prim->schema(), args);
  if (!errors.empty()) {
    std::string msg = name + ": " + errors[0].message;
    if (!errors[0].suggestion.empty()) msg += " (did you mean '" + errors[0].suggestion + "'?)";
    return Status::Invalid(msg);
  }
  if (ex_->opts_.dry_run) {
    Rehearsal mode = prim->rehearsal(args);
    if (mode == Rehearsal::kUndeclared) {
      return Status::Failed(name + " declares no rehearsal mode, so it is refused in a dry run");
    }
    if (mode == Rehearsal::kSkip) {
      if (RehearsalPlan* plan = PlanOf(*this)) {
        for (const std::string& key : prim->SkippedWouldMake(args)) plan->Note(key, step_id());
      }
      unknown_why = "not rehearsed: " + prim->skip_reason(args);
      return MakeUnknown(prim->skip_reason(args));
    }
  }
  size_t entry;
  Value previous;
  {
    auto lock = ex_->journal_.lock();
    entry = rec_->undo.size();
    rec_->undo.push_back(UndoEntry{name, ex_->env_.redactor->Redact(args), nullptr});
  }
  // A re-run of a Lua step after a crash: the same call in the same position
  // carries over what the earlier run recorded.
  bool carried = false;
  UndoEntry prior;
  if (const auto* before = prior_entries_.size() > entry ? &prior_entries_[entry] : nullptr;
      before && before->primitive == name) {
    carried = true;
    prior = *before;
    previous = before->state;
    auto lock = ex_->journal_.lock();
    rec_->undo[entry].state = previous;
  }
  if (Status s = ex_->journal_.Call(rec_, name); !s.ok()) return s;
  StepContextImpl nested(ex_, scope_, spec_, rec_, env_, deadline_, entry, previous);
  nested.records_changed = !undoing;
  nested.undoing = undoing;
  nested.interrupted = interrupted && carried;
  nested.earlier_acted = carried && MayHaveActed(prior, interrupted);
  if (!ex_->opts_.dry_run && prim->rehearsal(args) != Rehearsal::kProbe) {
    if (Status held = ex_->LockWhereActs(nested, *prim, args); !held.ok()) return held;
  }
  Result<Value> r = prim->Apply(nested, args);
  // A rehearsal's probe of something an earlier rehearsed step would make:
  // UNKNOWN to the Lua that called it (see RehearsalPlan).
  if (ex_->opts_.dry_run && !r.ok() && r.status().code() == Status::Code::kNotYet) {
    unknown_why = "not probed: " + r.status().message();
    Log(LogLevel::kInfo, name + ": " + unknown_why);
    return MakeUnknown(r.status().message());
  }
  if (r.ok()) {
    if (Status declared = CheckDeclaredResult(*prim, *r); !declared.ok()) r = declared;
  }
  nested.AddChanged(&r);
  return r;
}

void StepContextImpl::SetChanged(bool changed) {
  if (!records_changed) {  // an undo's or a rollback action's context: nothing to keep
    changed_ = changed;
    return;
  }
  if (!changed && earlier_acted) {
    changed = true;
    Log(LogLevel::kInfo,
        "already in effect after an earlier attempt; counted as this run's "
        "change (rollback undoes it)");
  }
  changed_ = changed;
  auto lock = ex_->journal_.lock();
  if (entry_ < rec_->undo.size()) rec_->undo[entry_].changed = changed;
}

Result<Value> StepContextImpl::RunChild(const std::string& runbook_path, const Value& params) {
  Value result;
  child_flow = ex_->RunChild(*scope_, rec_->step_id, runbook_path, params, &result);
  if (child_flow.flow == Flow::kOk) return result;
  if (child_flow.flow == Flow::kPaused) return Status::Paused(child_flow.message);
  return Status::Failed(child_flow.message);
}

Result<Value> StepContextImpl::RunLua(const std::string& code) {
  Pos origin = spec_->action.pos;
  auto it = spec_->action.positions.find("/code");
  if (it != spec_->action.positions.end()) origin = it->second;
  // The Lua budget is the step's timeout, or ten minutes of Lua time.
  SteadyTime budget = deadline_ != SteadyTime::max()
                          ? deadline_
                          : ex_->env_.clock->Steady() + std::chrono::minutes(10);
  // Nested calls start from a clean list; what an earlier run recorded is
  // matched call by call (see Invoke).
  {
    auto lock = ex_->journal_.lock();
    prior_entries_ = rec_->undo;
    rec_->undo.clear();
  }
  return ex_->Lua().Run(code, origin, env_, budget, this);
}

}  // namespace runbook
