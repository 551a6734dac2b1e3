// Rollback: undo completed steps newest first, journaling
// each undo so that a crash during rollback resumes the rollback.
#include <algorithm>
#include <functional>

#include "engine/core/duration.h"
#include "engine/core/interrupt.h"
#include "engine/exec/internal.h"
#include "engine/exec/undo_plan.h"

namespace runbook {

namespace {

// "inc.sub[2]" -> {"inc", "sub"}; the [n] of a foreach instance dropped.
// "move[2].copy" -> {"move[2]", "copy"}: one part per scope, each with its
// foreach instance if it has one ("[2]" holds no dot).
std::vector<std::string> SplitId(const std::string& step_id) {
  const std::string& id = step_id;
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = id.find('.', start);
    parts.push_back(id.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

bool IsInstance(const std::string& step_id) { return step_id.back() == ']'; }

// How long one rollback (its checks and its undos) waits in all for
// systems that are away for a moment: a server restarting or in crash
// recovery ("the database system is starting up"), a lost connection, a
// port-forward starting again. One that stays away costs a minute once.
constexpr Millis kUndoPatience{60000};

// Runs `attempt` again while it fails as unavailable (Status kUnavailable),
// pausing 1 s, 2 s, 4 s, 8 s, 8 s ... while the pause fits in `*patience`
// (what is left of kUndoPatience; the pauses and the failed attempts after
// the first are taken from it) and before `deadline`; never once the journal
// refuses (a lock lost, a journal write failed: MayAct): then its status is
// returned. Each pause is journaled (an "undo.retry" event) before it starts,
// so the run's record shows why its rollback took a minute.
// A rollback is most needed just after something went away, and an undo may
// be run again: a rollback killed part-way runs it again.
Status Patiently(const ExecEnv& env, StepJournal& journal, const StepRecord& rec,
                 const std::string& what, SteadyTime deadline, Millis* patience,
                 const std::function<Status()>& attempt) {
  Millis pause{1000};
  for (bool again = false;; again = true) {
    const SteadyTime start = env.clock->Steady();
    Status s = attempt();
    if (again) *patience -= std::chrono::duration_cast<Millis>(env.clock->Steady() - start);
    if (s.code() != Status::Code::kUnavailable || pause > *patience ||
        env.clock->Steady() + pause > deadline) {
      return s;
    }
    if (Status may = journal.MayAct(rec); !may.ok()) return may;
    const std::string why = what + ": " + env.redactor->Redact(s.message()) + "; trying again in " +
                            FormatDuration(pause);
    if (Status j = journal.Append(EventKind::kUndoRetry, rec.step_id, why); !j.ok()) return j;
    env.reporter->Log(rec.step_id, LogLevel::kWarn, why);
    env.clock->Sleep(pause);
    *patience -= pause;
    pause = std::min(pause * 2, Millis(8000));
  }
}

bool NeedsUndo(const Registry& registry, const StepRecord& rec, bool was_failed) {
  for (const UndoEntry& e : rec.undo) {
    if ((was_failed && e.state.is_null()) || ChangedNothing(e)) continue;
    const Primitive* prim = registry.Find(e.primitive);
    if (!prim || !prim->Plan(e.args).nothing_to_undo()) return true;
  }
  return false;
}

}  // namespace

bool Executor::Impl::AnyUndone() {
  auto lock = journal_.lock();
  for (const auto& [id, rec] : journal_.records()) {
    if (rec->status == StepStatus::kUndone && !nothing_undone_.count(id)) return true;
  }
  return false;
}

const StepSpec* Executor::Impl::FindSpec(const std::string& step_id, Scope** scope_out) {
  std::vector<std::string> parts = SplitId(step_id);
  Scope* scope = &root_;
  std::string prefix;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string name = parts[i].substr(0, parts[i].find('['));
    const StepSpec* s = scope->rb->FindStep(name);
    if (!s) return nullptr;
    if (i + 1 == parts.size()) {
      *scope_out = scope;
      return s;
    }
    if (s->action.kind != ActionKind::kInclude) return nullptr;
    // Rebuild the child's scope: its params come from the include's args.
    prefix += parts[i] + ".";
    auto lock = journal_.lock();
    auto& child = child_scopes_[prefix];
    if (!child) {
      // An include inside a foreach: its params may name the item.
      const Value* item = nullptr;
      const auto& records = journal_.records();
      auto instance = records.find(prefix.substr(0, prefix.size() - 1));
      if (parts[i].find('[') != std::string::npos && instance != records.end() &&
          !instance->second->item.is_null()) {
        item = &instance->second->item;
      }
      Result<Value> args = ExpandTemplates(Lua(), s->action.args, s->action.pos,
                                           MakeEnv(*scope, item),
                                           env_.clock->Steady() + std::chrono::seconds(10));
      if (!args.ok()) return nullptr;
      std::string path = args->value("runbook", "");
      const Runbook* rb = scope->rb->FindInclude(path);
      if (!rb) return nullptr;
      child = std::make_unique<Scope>();
      child->rb = rb;
      child->prefix = prefix;
      Value params = args->value("params", Value::object());
      for (const auto& p : rb->params) {
        if (params.contains(p.name)) child->params[p.name] = params[p.name];
        else if (p.default_value) child->params[p.name] = *p.default_value;
      }
    }
    scope = child.get();
  }
  return nullptr;
}

std::vector<StepRecord*> Executor::Impl::UndoOrder(bool log) {
  // No step runs while a rollback orders them.
  UndoPlan plan = PlanUndo(journal_.records(), root_.rb->steps, lift_boundaries_);
  if (plan.kept_by.empty()) return plan.steps;
  kept_until_ = plan.kept_until;
  if (log) {
    env_.reporter->Log("", LogLevel::kInfo,
                       "a rollback boundary was passed: the steps up to '" + plan.kept_by +
                           "' are kept (a second runbook rollback " + run_.id +
                           " undoes them once '" + kept_until_ + "' is undone)");
    kept_steps_ = true;
  }
  return plan.steps;
}

// What undoing `rec` would run: nothing (false), its rollback action
// (*has_action), or its recorded undo entries.
bool Executor::Impl::WillUndo(StepRecord* rec, const StepSpec* spec, bool* has_action) {
  const bool was_failed = rec->status == StepStatus::kFailed || rec->status == StepStatus::kRunning;
  if (spec && spec->rollback == RollbackMode::kNone) return false;
  *has_action = spec && spec->rollback == RollbackMode::kAction && !was_failed;
  // A step whose calls all reported they changed nothing (exec whose
  // `creates` existed) has nothing to undo: undoing would destroy what an
  // earlier run made.
  if (StepChangedNothing(*rec)) return false;
  // Foreach parents and include steps hold no undo of their own; log and
  // sleep have nothing to undo.
  if (spec && spec->foreach && !IsInstance(rec->step_id)) return false;
  return *has_action || NeedsUndo(*env_.registry, *rec, was_failed);
}

// Asks every undo the rollback would run whether it would destroy what it
// did not write; "" when none would, else why (and nothing may be undone).
std::string Executor::Impl::CheckUndos(const std::vector<StepRecord*>& order) {
  std::string why;
  undos_checked_.clear();
  for (StepRecord* rec : order) {
    Scope* scope = nullptr;
    const StepSpec* spec = FindSpec(rec->step_id, &scope);
    if (!spec || spec->rollback == RollbackMode::kAuto) undos_checked_.insert(rec->step_id);
  }
  checking_undos_ = true;
  for (StepRecord* rec : order) {
    Scope* scope = nullptr;
    const StepSpec* spec = FindSpec(rec->step_id, &scope);
    // Every recorded undo is asked, even one with nothing to undo: a guard
    // (pg.fallback without replication) has nothing to undo but a lot to lose.
    if (spec && spec->rollback != RollbackMode::kAuto) continue;
    Scope fallback;
    fallback.rb = root_.rb;
    Scope* sc = scope ? scope : &fallback;
    Value env = MakeEnv(*sc, rec->item.is_null() ? nullptr : &rec->item, &rec->result);
    SteadyTime deadline = env_.clock->Steady() + std::chrono::minutes(10);
    for (size_t i = rec->undo.size(); i-- > 0;) {
      const UndoEntry& e = rec->undo[i];
      Primitive* prim = env_.registry->Find(e.primitive);
      if (!prim || e.state.is_null()) continue;
      Status s =
          Patiently(env_, journal_, *rec, "checking the undo", deadline, &undo_patience_, [&] {
            StepContextImpl ctx(this, sc, spec, rec, env, deadline, i, e.state);
            ctx.undoing = true;
            return prim->CheckUndo(ctx, e.args, e.state);
          });
      if (!s.ok()) {
        why += (why.empty() ? "" : "; ") + rec->step_id + ": " + env_.redactor->Redact(s.message());
      }
    }
  }
  checking_undos_ = false;
  return why;
}

bool Executor::Impl::DoRollback() {
  if (opts_.dry_run) {
    // A rehearsal changed nothing: show what a real run would undo.
    const auto& records = journal_.records();
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
      if (it->second->status == StepStatus::kSucceeded && !it->second->undo.empty()) {
        env_.reporter->Log(it->first, LogLevel::kInfo, "a real run would undo this step");
      }
    }
    return true;
  }
  // An undo acts: without a journal to record it, none may run (a resume
  // would then skip steps whose effects the undo removed).
  if (!journal_.ok()) return false;
  // What an earlier rollback of this run found nothing of to undo (a
  // resumed or repeated rollback) is not counted as undone either.
  if (Result<std::vector<Event>> events = journal_.Events(EventKind::kUndoOk); events.ok()) {
    nothing_undone_ = StepsWithNothingUndone(*events);
  }
  std::vector<StepRecord*> order = UndoOrder();
  // The decision to roll back is recorded first: killed during the checks
  // below, a resume goes on rolling back (it does not retry what failed).
  const RunStatus before = run_.status;
  run_.status = RunStatus::kRollingBack;
  if (!journal_.Note(env_.store->UpdateRun(run_.id, RunStatus::kRollingBack, ""))) return false;
  env_.reporter->Log("", LogLevel::kInfo, "rolling back, newest step first");
  undo_patience_ = kUndoPatience;
  // Before anything is undone: would an undo destroy what others wrote?
  if (!opts_.accept_data_loss) {
    rollback_refused_ = CheckUndos(order);
    if (!rollback_refused_.empty()) {
      env_.reporter->Log("", LogLevel::kError, "rollback refused, nothing was undone: " +
                                                   rollback_refused_);
      // The run stays as it was (a failed run's Finish records the refusal).
      if (before != RunStatus::kRollingBack) {
        run_.status = before;
        journal_.Note(env_.store->UpdateRun(run_.id, before, ""));
      }
      return false;
    }
  }
  bool all_ok = true;
  for (StepRecord* rec : order) {
    Scope* scope = nullptr;
    const StepSpec* spec = FindSpec(rec->step_id, &scope);
    bool was_failed = rec->status == StepStatus::kFailed || rec->status == StepStatus::kRunning;
    bool has_action = false;
    if (!WillUndo(rec, spec, &has_action)) {
      if (spec && spec->rollback == RollbackMode::kNone) {
        env_.reporter->Log(rec->step_id, LogLevel::kInfo, "not undone (rollback: none)");
      }
      continue;
    }
    // Whether anything was reverted: a rollback action always acts; an undo
    // unless it says it found nothing (NothingToUndo). An undo interrupted
    // earlier may have acted before it was.
    bool acted =
        rec->status == StepStatus::kUndoing || rec->status == StepStatus::kUndoFailed || has_action;
    const SteadyTime undo_start = env_.clock->Steady();
    // What the report shows: the undo's own duration (the record keeps the
    // step's, which estimates later runs).
    auto report = [&](const std::string& detail, bool nothing = false) {
      StepRecord shown = *rec;
      if (nothing) shown.status = StepStatus::kSkipped;  // not "undone": nothing was
      shown.duration_ms =
          std::chrono::duration_cast<Millis>(env_.clock->Steady() - undo_start).count();
      Report(shown, detail);
    };
    if (!journal_.UndoStart(rec).ok()) return false;  // nothing more may act
    Status st;
    Scope fallback;
    fallback.rb = root_.rb;
    Scope* sc = scope ? scope : &fallback;
    Value env = MakeEnv(*sc, rec->item.is_null() ? nullptr : &rec->item, &rec->result);
    SteadyTime deadline = spec && spec->timeout ? env_.clock->Steady() + *spec->timeout
                                                : SteadyTime::max();
    if (has_action) {
      const ActionSpec& a = *spec->rollback_action;
      Primitive* prim = env_.registry->Find(a.name);
      Result<Value> args = ExpandTemplates(Lua(), a.args, a.pos, env,
                                           env_.clock->Steady() + std::chrono::seconds(10));
      if (!prim) st = Status::Failed("unknown rollback action " + a.name);
      else if (!args.ok()) st = args.status();
      else {
        // Tried again only when running it twice is harmless.
        const bool again = prim->idempotent(*args);
        st = Patiently(env_, journal_, *rec, "the rollback action",
                       again ? deadline : env_.clock->Steady(), &undo_patience_, [&] {
                         StepContextImpl ctx(this, sc, spec, rec, env, deadline, 0, nullptr);
                         ctx.undoing = true;
                         if (Status held = LockWhereActs(ctx, *prim, *args); !held.ok()) {
                           return held;
                         }
                         Result<Value> r = prim->Apply(ctx, *args);
                         return r.ok() ? CheckDeclaredResult(*prim, *r) : r.status();
                       });
      }
    } else {
      bool irreversible_left = false;
      for (size_t i = rec->undo.size(); i-- > 0 && st.ok();) {
        const UndoEntry& e = rec->undo[i];
        if ((was_failed && e.state.is_null()) || ChangedNothing(e)) continue;
        Primitive* prim = env_.registry->Find(e.primitive);
        if (!prim) {
          st = Status::Failed("unknown primitive " + e.primitive);
          break;
        }
        PlanEffect eff = prim->Plan(e.args);
        if (eff.nothing_to_undo()) continue;
        if (!eff.reversible() && e.state.is_null()) {
          irreversible_left = true;
          continue;
        }
        st = Patiently(env_, journal_, *rec, "the undo", deadline, &undo_patience_, [&] {
          StepContextImpl ctx(this, sc, spec, rec, env, deadline, i, e.state);
          ctx.undoing = true;
          if (Status held = LockWhereActs(ctx, *prim, e.args); !held.ok()) return held;
          Status u = prim->Undo(ctx, e.args, e.state);
          acted = acted || !ctx.changed().has_value() || *ctx.changed();
          return u;
        });
      }
      if (st.ok() && irreversible_left) {
        env_.reporter->Log(rec->step_id, LogLevel::kWarn,
                           "irreversible: left as it is (give the step a rollback: action)");
        journal_.Irreversible(rec);
        continue;
      }
    }
    if (!st.ok() && ActingStopped()) {  // the run's lock lost meanwhile (interrupt.h)
      st = Status::Failed("stopped while undoing (" + WhyActingStopped() + "): " + st.message());
    }
    if (st.ok()) {
      journal_.Undone(rec, acted);
      report(acted ? "" : kNothingToUndo, !acted);
      if (!acted) nothing_undone_.insert(rec->step_id);
    } else {
      all_ok = false;
      journal_.UndoFailed(rec, st.message());
      report(rec->undo_error);
      // This undo could not reach a state the older ones may act on (writers
      // restarted on a database that lacks their writes): stop here. Past a
      // rollback boundary every failure is such a one: the way back (the
      // switch, the reverse cutover, the writers) is a sequence, and going on
      // after a broken step can split the writes between the two databases.
      if (st.code() == Status::Code::kHalt || kept_steps_) {
        env_.reporter->Log(rec->step_id, LogLevel::kError,
                           "the rollback stops here: nothing older is undone");
        break;
      }
    }
  }
  return all_ok;
}

}  // namespace runbook
