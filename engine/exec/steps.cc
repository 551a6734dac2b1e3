// Running steps: when, approvals, foreach, the resume decision, attempts
// with retries and timeouts, assert, and the journal around each of them.
#include <atomic>
#include <thread>

#include "engine/core/duration.h"
#include "engine/core/interrupt.h"
#include "engine/core/rehearsal_plan.h"
#include "engine/exec/internal.h"

namespace runbook {

namespace {

constexpr auto kExprBudget = std::chrono::seconds(10);

bool Finished(StepStatus s) {
  return s == StepStatus::kSucceeded || s == StepStatus::kSkipped || s == StepStatus::kUnknown;
}

std::string Quoted(const std::string& id) { return "step '" + id + "'"; }

}  // namespace

FlowResult Executor::Impl::RunSteps(Scope& scope) {
  bool before_from = !opts_.from_step.empty() && scope.prefix.empty() && !resuming_;
  for (size_t i = 0; i < scope.rb->steps.size(); ++i) {
    const StepSpec& s = scope.rb->steps[i];
    std::string id = scope.prefix + s.id;
    if (before_from && s.id == opts_.from_step) before_from = false;
    StepRecord* rec = Record(id);
    if (before_from && !Finished(rec->status)) {
      journal_.Finish(rec, StepStatus::kSkipped, "before --from " + opts_.from_step,
                      /*durable=*/true);
      Report(*rec, "before --from " + opts_.from_step);
    }
    if (Finished(rec->status)) {
      scope.steps[s.id] = Value{{"status", StepStatusName(rec->status)}, {"result", rec->result}};
      continue;
    }
    if (scope.prefix.empty()) {
      std::string why;
      if (!WindowAllows(scope, i, &why)) return {Flow::kWindow, why};
    }
    FlowResult f = RunStep(scope, s, i);
    if (f.flow != Flow::kOk) return f;
  }
  return {};
}

bool Executor::Impl::WindowAllows(const Scope& scope, size_t index, std::string* why) {
  if (window_end_ms_ == 0 || opts_.dry_run || opts_.ignore_window) return true;
  int64_t now = env_.clock->NowMs();
  int64_t need = 0;
  for (size_t i = index; i < scope.rb->steps.size(); ++i) {
    auto it = durations_.find(scope.rb->steps[i].id);
    if (it != durations_.end()) need += it->second;
  }
  if (now + need <= window_end_ms_) return true;
  *why = "the maintenance window closes in " +
         FormatDuration(Millis(std::max<int64_t>(0, window_end_ms_ - now))) +
         " but the remaining steps took " + FormatDuration(Millis(need)) +
         " in earlier runs; stopping before " + Quoted(scope.rb->steps[index].id);
  return false;
}

FlowResult Executor::Impl::RunStep(Scope& scope, const StepSpec& s, size_t index) {
  std::string id = scope.prefix + s.id;
  StepRecord* rec = Record(id);
  Value env = MakeStepEnv(scope, s, nullptr);
  auto skip = [&](StepStatus status, const std::string& why, const Value& result) {
    rec->action = s.action.name;
    rec->result = result;
    journal_.Finish(rec, status, why, /*durable=*/true);
    Report(*rec, why);
    scope.steps[s.id] = Value{{"status", StepStatusName(status)}, {"result", result}};
    return FlowResult{};
  };
  if (s.when && !s.foreach) {
    Result<Value> w = Lua().Eval(*s.when, s.when_pos, env, env_.clock->Steady() + kExprBudget,
                                 nullptr);
    if (!w.ok()) return FailStep(rec, "when: " + w.status().message());
    if (IsUnknown(*w)) return skip(StepStatus::kUnknown, "when depends on an UNKNOWN result", *w);
    if (w->is_null() || (w->is_boolean() && !w->get<bool>())) {
      return skip(StepStatus::kSkipped, "when is false", nullptr);
    }
  }
  if (s.approve) {
    Status a = Approve(rec, *s.approve);
    if (a.code() == Status::Code::kPaused) return {Flow::kPaused, a.message()};
    if (!a.ok()) return FailStep(rec, a.message());
    // Approved (maybe after a long wait, or a slow answer at the prompt):
    // the remaining steps must still fit in the window. If not, the run
    // pauses before acting, keeping the approval for the next window (no
    // rollback: nothing of this step was done).
    std::string why;
    if (scope.prefix.empty() && !WindowAllows(scope, index, &why)) {
      return {Flow::kPaused, "paused: step " + Quoted(id) + " was approved, but " + why +
                                 "; the approval stays: runbook resume " + run_.id +
                                 " in the next window"};
    }
  }
  if (s.foreach) {
    Result<Value> items = ExpandTemplates(Lua(), *s.foreach, s.foreach_pos, env,
                                          env_.clock->Steady() + kExprBudget);
    if (items.ok() && IsUnknown(*items)) {
      return skip(StepStatus::kUnknown, "foreach depends on an UNKNOWN result", *items);
    }
    if (!items.ok() || !items->is_array()) {
      return FailStep(rec, s.foreach_pos.ToString() + ": foreach: " +
                               (items.ok() ? "expected a list, got " + items->dump()
                                           : items.status().message()));
    }
    return RunForeach(scope, s, *items);
  }
  StepStatus status;
  Value result;
  FlowResult f = RunInstance(scope, s, id, nullptr, &status, &result);
  if (f.flow == Flow::kOk || (status == StepStatus::kFailed && s.continue_on_error)) {
    scope.steps[s.id] = Value{{"status", StepStatusName(status)}, {"result", result}};
    return {};
  }
  return f;
}

FlowResult Executor::Impl::RunForeach(Scope& scope, const StepSpec& s, const Value& items) {
  std::string id = scope.prefix + s.id;
  StepRecord* parent = Record(id);
  parent->action = s.action.name;
  parent->change = "for each of " + std::to_string(items.size()) + " items";
  if (parent->started_ms == 0) parent->started_ms = env_.clock->NowMs();
  if (!journal_.ok() || !journal_.Start(parent).ok()) {
    return {Flow::kFailed, Quoted(id) + ": cannot write the journal; nothing was done"};
  }
  auto start = env_.clock->Steady();
  size_t n = items.size();
  std::vector<StepStatus> statuses(n, StepStatus::kPending);
  std::vector<Value> results(n);
  std::vector<FlowResult> flows(n);
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  auto worker = [&]() {
    for (;;) {
      size_t i = next++;
      if (i >= n || stop) return;
      std::string item_id = id + "[" + std::to_string(i + 1) + "]";
      flows[i] = RunInstance(scope, s, item_id, &items[i], &statuses[i], &results[i]);
      bool failed = flows[i].flow != Flow::kOk &&
                    !(statuses[i] == StepStatus::kFailed && s.continue_on_error);
      if (failed) stop = true;
    }
  };
  int workers = std::max(1, std::min<int>(s.concurrency, static_cast<int>(n)));
  if (workers == 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
  }
  FlowResult worst;
  StepStatus overall = StepStatus::kSucceeded;
  for (size_t i = 0; i < n; ++i) {
    if (statuses[i] == StepStatus::kUnknown && overall == StepStatus::kSucceeded) {
      overall = StepStatus::kUnknown;
    }
    if (flows[i].flow != Flow::kOk && worst.flow == Flow::kOk &&
        !(statuses[i] == StepStatus::kFailed && s.continue_on_error)) {
      worst = flows[i];
    }
    if (statuses[i] == StepStatus::kFailed) overall = StepStatus::kFailed;
  }
  Value all(results);
  std::string too_big;  // the items' results together cannot be read by Lua
  if (worst.flow == Flow::kOk) {
    if (Status fits = Lua().CheckFits(all); !fits.ok()) {
      too_big = "the items' results together: " + fits.message();
      overall = StepStatus::kFailed;
      parent->error = too_big;
      worst = {Flow::kFailed, Quoted(id) + ": " + too_big};
      all = nullptr;
    }
  }
  parent->status = worst.flow == Flow::kPaused ? StepStatus::kWaiting : overall;
  parent->result = std::move(all);
  parent->duration_ms =
      std::chrono::duration_cast<Millis>(env_.clock->Steady() - start).count();
  parent->finished_ms = env_.clock->NowMs();
  journal_.Put(parent,
               parent->status == StepStatus::kFailed    ? EventKind::kStepFail
               : parent->status == StepStatus::kWaiting ? EventKind::kStepPause
               : parent->status == StepStatus::kUnknown ? EventKind::kStepUnknown
                                                        : EventKind::kStepOk,
               too_big);
  if (worst.flow != Flow::kOk) {
    if (!too_big.empty()) Report(*parent, too_big);
    return worst;
  }
  scope.steps[s.id] = Value{{"status", StepStatusName(overall)}, {"result", parent->result}};
  Report(*parent, std::to_string(n) + " items");
  return {};
}

FlowResult Executor::Impl::RunInstance(Scope& scope, const StepSpec& s, const std::string& id,
                                       const Value* item, StepStatus* status, Value* result) {
  StepRecord* rec = Record(id);
  *status = rec->status;
  *result = rec->result;
  if (Finished(rec->status)) return {};
  auto fail = [&](const std::string& msg) {
    *status = StepStatus::kFailed;
    return FailStep(rec, msg);
  };
  auto finish_as = [&](StepStatus st, const Value& res, const std::string& why) {
    *status = st;
    rec->result = env_.redactor->Redact(res);
    *result = res;
    rec->finished_ms = env_.clock->NowMs();
    journal_.Finish(rec, st, why);
    Report(*rec, why);
    return FlowResult{};
  };
  Value env = MakeStepEnv(scope, s, item);
  if (item) rec->item = env_.redactor->Redact(*item);
  auto expr_deadline = env_.clock->Steady() + kExprBudget;
  if (s.when && s.foreach) {
    Result<Value> w = Lua().Eval(*s.when, s.when_pos, env, expr_deadline, nullptr);
    if (!w.ok()) return fail("when: " + w.status().message());
    if (IsUnknown(*w)) return finish_as(StepStatus::kUnknown, *w, "when depends on UNKNOWN");
    if (w->is_null() || (w->is_boolean() && !w->get<bool>())) {
      return finish_as(StepStatus::kSkipped, nullptr, "when is false");
    }
  }
  Primitive* prim = env_.registry->Find(s.action.name);
  if (!prim) return fail(s.action.pos.ToString() + ": unknown action '" + s.action.name + "'");
  rec->action = s.action.name;
  Result<Value> args = ExpandTemplates(Lua(), s.action.args, s.action.pos, env, expr_deadline);
  if (!args.ok()) return fail(args.status().message());
  // An argument whose template yields nil is left out (a conditional
  // argument: `jobs: "${{ parallel and 4 or nil }}"`).
  if (args->is_object() && s.action.args.is_object()) {
    for (auto it = s.action.args.begin(); it != s.action.args.end(); ++it) {
      if (it.value().is_string() && HasTemplate(it.value().get<std::string>()) &&
          args->contains(it.key()) && (*args)[it.key()].is_null()) {
        args->erase(it.key());
      }
    }
  }
  if (ContainsUnknown(*args)) {
    return finish_as(StepStatus::kUnknown, MakeUnknown("arguments depend on an UNKNOWN result"),
                     "arguments depend on an UNKNOWN result");
  }
  std::vector<ArgError> errors = CheckArgs(prim->schema(), *args);
  if (!errors.empty()) {
    Pos at = s.action.pos;
    auto p = s.action.positions.find("/" + errors[0].arg);
    if (p != s.action.positions.end()) at = p->second;
    return fail(at.ToString() + ": " + errors[0].message + " (after expanding templates)");
  }
  rec->change = prim->Plan(*args).text;

  if (rec->status == StepStatus::kRunning && resuming_) {
    // The engine died inside this step. Decide whether running it again is safe.
    if (opts_.mark_done.count(id)) {
      return finish_as(StepStatus::kSucceeded, Value{{"marked_done", true}},
                       "marked done by a human (--mark-done)");
    }
    // Its children outlived it: neither a check nor a second run may race them.
    if (!opts_.dry_run) {
      if (FlowResult f = WaitForOrphans(s, rec); f.flow != Flow::kOk) return f;
    }
    bool safe = opts_.retry_steps.count(id) > 0 || s.idempotent.value_or(prim->idempotent(*args)) ||
                (s.action.kind == ActionKind::kLua && rec->undo.empty());
    if (!safe) {
      Value state = rec->undo.empty() ? Value() : rec->undo[0].state;
      StepContextImpl ctx(this, &scope, &s, rec, env, SteadyTime::max(), 0, state);
      CheckResult c = prim->Check(ctx, *args, state);
      if (c.outcome == CheckOutcome::kDone) {
        // The interrupted attempt made it: this run's change, as a result says.
        Value res = c.result;
        if (Status declared = CheckDeclaredResult(*prim, res); !declared.ok()) {
          return fail(declared.message());
        }
        if (res.is_object()) res["changed"] = !StepChangedNothing(*rec);
        return finish_as(StepStatus::kSucceeded, res, "already took effect (checked)");
      }
      if (c.outcome == CheckOutcome::kCannotTell) {
        std::string msg = Quoted(id) +
                          " was running when the engine stopped; it is not idempotent and " +
                          prim->name() + " cannot tell whether it took effect. Check the system, "
                          "then: runbook resume " + run_.id + " --retry-step " + id +
                          " (run it again) or --mark-done " + id + " (it took effect)";
        Report(*rec, "needs a decision");
        return {Flow::kDecision, msg};
      }
    }
  }
  if (opts_.dry_run) {
    Rehearsal mode = prim->rehearsal(*args);
    if (mode == Rehearsal::kUndeclared) {
      return fail(prim->name() + " declares no rehearsal mode, so it is refused in a dry run");
    }
    if (mode == Rehearsal::kSkip) {
      if (RehearsalPlan* plan = PlanOf(resources_, true)) {
        for (const std::string& key : prim->SkippedWouldMake(*args)) plan->Note(key, id);
      }
      return finish_as(StepStatus::kUnknown, MakeUnknown(prim->skip_reason(*args)),
                       "not rehearsed: " + prim->skip_reason(*args));
    }
  }
  Value out;
  FlowResult f = Attempts(scope, s, rec, prim, *args, env, &out);
  *status = rec->status;
  *result = out;
  return f;
}

FlowResult Executor::Impl::WaitForOrphans(const StepSpec& s, StepRecord* rec) {
  constexpr auto kMaxWait = std::chrono::seconds(30);
  const auto wait = s.timeout ? std::min<std::chrono::milliseconds>(*s.timeout, kMaxWait)
                              : std::chrono::milliseconds(kMaxWait);
  const auto until = env_.clock->Steady() + wait;
  for (bool told = false;; told = true) {
    std::vector<std::string> left = ProcessesWithEnv(kStepTokenVar, run_.id + "/" + rec->step_id);
    if (left.empty()) return {Flow::kOk, ""};
    std::string list;
    for (const auto& p : left) list += (list.empty() ? "" : "; ") + p;
    if (env_.clock->Steady() >= until) {
      Report(*rec, "needs a decision");
      return {Flow::kDecision,
              Quoted(rec->step_id) + " was running when the engine stopped, and what it started "
              "still runs (" + env_.redactor->Redact(list) + "). Running the step again now "
              "would do it twice: wait for it to end (or stop it), then runbook resume " +
              run_.id};
    }
    if (!told) {
      env_.reporter->Log(rec->step_id, LogLevel::kWarn,
                         "waiting for what the interrupted attempt started: " +
                             env_.redactor->Redact(list));
    }
    env_.clock->Sleep(std::chrono::milliseconds(200));
  }
}

FlowResult Executor::Impl::Attempts(Scope& scope, const StepSpec& s, StepRecord* rec,
                                    Primitive* prim, const Value& args, const Value& env,
                                    Value* out) {
  const std::string& id = rec->step_id;
  int max_attempts = 1 + std::max(0, s.retries);
  Value previous = rec->undo.empty() ? Value() : rec->undo[0].state;
  auto start = env_.clock->Steady();
  if (rec->started_ms == 0) rec->started_ms = env_.clock->NowMs();
  // The engine died during an attempt of this step: that attempt may have
  // made the change this one finds already made.
  const bool interrupted = resuming_ && rec->status == StepStatus::kRunning && rec->attempts > 0;
  // An earlier attempt of this step (a retry, a resume) may have made the
  // change this one finds made: then "nothing changed" is this run's change.
  bool earlier_acted = false;
  for (int attempt = 1;; ++attempt) {
    if (s.action.kind != ActionKind::kLua && !rec->undo.empty()) {
      earlier_acted = earlier_acted || MayHaveActed(rec->undo[0], interrupted && attempt == 1);
    }
    rec->attempts++;
    rec->status = StepStatus::kRunning;
    // The record starts as the earlier attempt's, so nothing it protects is
    // lost if this attempt dies before recording again.
    // (A Lua step's entries are its nested calls; RunLua matches them.)
    if (s.action.kind != ActionKind::kLua) {
      auto lock = journal_.lock();
      rec->undo = {UndoEntry{prim->name(), env_.redactor->Redact(args), previous}};
    }
    env_.reporter->StepStarted(id, rec->change);
    // A step that may act starts durably (and so does everything before it).
    const bool may_act = !opts_.dry_run && prim->rehearsal(args) != Rehearsal::kProbe;
    // An earlier write that failed (a step's outcome, say) stops the run
    // too, even if this one would succeed: the journal has a hole.
    if (!journal_.ok() || !journal_.Start(rec, may_act).ok()) {
      return {Flow::kFailed, Quoted(id) + ": cannot write the journal; nothing was done"};
    }
    // A rehearsal's attempt plans afresh: what an earlier attempt of this
    // step (a retry, before a resume) noted it would make or remove is
    // taken back, so it is not mistaken for an earlier step's.
    if (RehearsalPlan* plan = PlanOf(resources_, opts_.dry_run)) plan->Forget(id);
    SteadyTime deadline = s.timeout ? env_.clock->Steady() + *s.timeout : SteadyTime::max();
    StepContextImpl ctx(this, &scope, &s, rec, env, deadline, 0, previous);
    // A Lua step's entries are its calls' (Invoke), not its own.
    ctx.records_changed = s.action.kind != ActionKind::kLua;
    ctx.interrupted = interrupted && attempt == 1;
    ctx.earlier_acted = earlier_acted;
    if (may_act) {
      if (Status held = LockWhereActs(ctx, *prim, args); !held.ok()) {
        return FailStep(rec, "not run: " + held.message(), /*durable=*/false);
      }
    }
    Result<Value> r = prim->Apply(ctx, args);
    if (!r.ok() && !opts_.dry_run && ActingStopped()) {
      // The run lost its lock while this step acted, and its action was
      // stopped: not tried again; nothing more acts here (an undo neither).
      rec->duration_ms = std::chrono::duration_cast<Millis>(env_.clock->Steady() - start).count();
      return FailStep(rec,
                      "stopped while acting (" + WhyActingStopped() + "): " + r.status().message(),
                      /*durable=*/false);
    }
    // A rehearsal's probe that found missing what an earlier rehearsed step
    // would have made: nothing a real run would stop at, nothing known.
    std::string not_yet;
    if (opts_.dry_run && !r.ok() && r.status().code() == Status::Code::kNotYet) {
      not_yet = "not probed: " + r.status().message();
      r = MakeUnknown(r.status().message());
    } else if (opts_.dry_run && r.ok() && IsUnknown(*r) && !ctx.unknown_why.empty()) {
      not_yet = ctx.unknown_why;  // Lua that read an UNKNOWN call's result
      r = MakeUnknown(ctx.unknown_why);
    }
    // A result off its declaration (tests only): the action took effect, so
    // it fails without a retry.
    bool off_declaration = false;
    if (r.ok()) {
      if (Status declared = CheckDeclaredResult(*prim, *r); !declared.ok()) {
        r = declared;
        off_declaration = true;
      }
    }
    ctx.AddChanged(&r);
    if (ctx.child_flow.flow != Flow::kOk && ctx.child_flow.flow != Flow::kFailed) {
      journal_.Pause(rec, ctx.child_flow.flow == Flow::kPaused, ctx.child_flow.message);
      return ctx.child_flow;
    }
    if (r.ok() && s.timeout && env_.clock->Steady() > deadline) {
      r = Status::Timeout("took longer than its timeout " + FormatDuration(*s.timeout));
    }
    // A result later Lua could not read fails here, where it is made, not
    // at every later step (and every resume) that reads it.
    if (r.ok()) {
      if (Status fits = Lua().CheckFits(*r); !fits.ok()) r = fits;
    }
    if (r.ok() && s.assert_expr) {
      Value aenv = env;
      aenv["result"] = *r;
      Result<Value> a = Lua().Eval(*s.assert_expr, s.assert_pos, aenv,
                                   env_.clock->Steady() + kExprBudget, nullptr);
      if (!a.ok()) {
        r = Status::Failed("assert: " + a.status().message());
      } else if (IsUnknown(*a)) {
        rec->status = StepStatus::kUnknown;
      } else if (a->is_null() || (a->is_boolean() && !a->get<bool>())) {
        r = Status::Failed(s.assert_pos.ToString() + ": assert failed: " + *s.assert_expr +
                           " (result: " + env_.redactor->Redact(r->dump()).substr(0, 300) + ")");
      }
    }
    rec->duration_ms = std::chrono::duration_cast<Millis>(env_.clock->Steady() - start).count();
    rec->finished_ms = env_.clock->NowMs();
    if (r.ok()) {
      if (opts_.dry_run && IsUnknown(*r)) rec->status = StepStatus::kUnknown;
      rec->result = env_.redactor->Redact(*r);
      *out = *r;
      const std::string why = !not_yet.empty()                      ? not_yet
                              : IsUnknown(*r)                       ? r->value("$unknown", "")
                              : rec->status == StepStatus::kUnknown ? "assert depends on UNKNOWN"
                                                                    : "";
      journal_.Finish(
          rec, rec->status == StepStatus::kUnknown ? StepStatus::kUnknown : StepStatus::kSucceeded,
          why);
      Report(*rec, why);
      return {};
    }
    if (r.status().code() == Status::Code::kPaused) {
      journal_.Wait(rec, r.status().message());
      Report(*rec, "waiting for approval");
      return {Flow::kPaused, r.status().message()};
    }
    rec->error = r.status().message();
    previous = rec->undo.empty() ? Value() : rec->undo[0].state;
    if (attempt < max_attempts && !off_declaration) {
      Millis delay = s.retry_delay * (1LL << std::min(attempt - 1, 20));
      journal_.Retry(rec, "attempt " + std::to_string(attempt) + " failed: " + rec->error);
      env_.reporter->Log(id, LogLevel::kWarn,
                         "attempt " + std::to_string(attempt) + " of " +
                             std::to_string(max_attempts) + " failed: " + rec->error +
                             "; retrying in " + FormatDuration(delay));
      env_.clock->Sleep(delay);
      continue;
    }
    return FailStep(rec, r.status().message(), /*durable=*/false);
  }
}

FlowResult Executor::Impl::FailStep(StepRecord* rec, const std::string& error, bool durable) {
  journal_.Fail(rec, error, durable);
  Report(*rec, rec->error);
  return {Flow::kFailed, Quoted(rec->step_id) + ": " + rec->error};
}

Status Executor::Impl::Approve(StepRecord* rec, const std::string& message) {
  const std::string& id = rec->step_id;
  if (opts_.dry_run) {
    env_.reporter->Log(id, LogLevel::kInfo, "a real run would wait for approval: " + message);
    return Status::Ok();
  }
  if (auto a = env_.store->GetApproval(run_.id, id); a.ok() && a->has_value()) {
    return Status::Ok();
  }
  auto record = [&](const std::string& by) {
    Approval a{run_.id, id, by, env_.clock->NowMs()};
    Status s = env_.store->RecordApproval(a);
    env_.reporter->Log(id, LogLevel::kInfo, "approved by " + by + ": " + message);
    return s;
  };
  if (opts_.yes) {
    return record((env_.prompter ? env_.prompter->Who() : std::string("unknown")) + " (--yes)");
  }
  if (env_.prompter) {
    std::optional<bool> yes = env_.prompter->Ask("Approve step '" + id + "': " + message);
    if (yes && *yes) return record(env_.prompter->Who());
    if (yes) return Status::Failed("approval refused at the prompt");
  }
  journal_.Wait(rec, message);
  std::string closed;  // the maintenance window closed while it waited
  if (opts_.approval_wait.count() > 0 && journal_.ok()) {
    // A run in a pod or CI job waits for an approval given anywhere: a
    // store that is told of approvals (PostgreSQL: LISTEN/NOTIFY) wakes it
    // at once, and is asked again each second in case a notification was
    // lost (behind a transaction pooler); SQLite is read 5 times a second.
    env_.reporter->Log(id, LogLevel::kInfo,
                       "waiting up to " + FormatDuration(opts_.approval_wait) +
                           " for: runbook approve " + run_.id + " " + id + " (" + message + ")");
    const bool told = env_.store->NotifiesApprovals();
    const auto step = told ? std::chrono::milliseconds(1000) : std::chrono::milliseconds(200);
    const SteadyTime until = env_.clock->Steady() + opts_.approval_wait;
    const bool windowed = window_end_ms_ != 0 && !opts_.ignore_window;
    // Bounded by count too: a store that waits in real time (PostgreSQL)
    // does not move a test's fake clock.
    bool said = false;  // the store's first error was logged
    for (int64_t n = 2 * (opts_.approval_wait / step) + 10; n > 0 && env_.clock->Steady() < until;
         --n) {
      if (windowed && env_.clock->NowMs() >= window_end_ms_) break;
      auto slice = std::min<std::chrono::milliseconds>(
          step,
          std::chrono::duration_cast<std::chrono::milliseconds>(until - env_.clock->Steady()) +
              std::chrono::milliseconds(1));
      // Never past the window's end: an approval then would come too late.
      if (windowed) {
        slice = std::min(slice, std::chrono::milliseconds(window_end_ms_ - env_.clock->NowMs()));
      }
      Result<std::optional<Approval>> a = Status::Ok();
      if (told) {
        a = env_.store->WaitForApproval(run_.id, id, slice);
      } else {
        env_.clock->Sleep(slice);
        a = env_.store->GetApproval(run_.id, id);
      }
      if (a.ok() && a->has_value()) {
        env_.reporter->Log(id, LogLevel::kInfo, "approved by " + (*a)->by + ": " + message);
        if (windowed && env_.clock->NowMs() >= window_end_ms_) break;  // kept for resume
        return Status::Ok();
      }
      if (!a.ok()) {
        if (!said) {
          env_.reporter->Log(
              id, LogLevel::kWarn,
              "cannot read the approval (" + a.status().message() + "); still waiting");
          said = true;
        }
        if (told) env_.clock->Sleep(slice);  // the store is away: do not spin
      }
    }
    if (windowed && env_.clock->NowMs() >= window_end_ms_) {
      closed =
          "; the maintenance window closed while it waited (an approval given stays: "
          "resume in the next window)";
    }
  }
  return Status::Paused("paused: step '" + id + "' waits for approval (" + message + ")" + closed +
                        ". Approve with: runbook approve " + run_.id + " " + id +
                        ", then: runbook resume " + run_.id);
}

FlowResult Executor::Impl::RunChild(Scope& parent, const std::string& instance_id,
                                    const std::string& path, const Value& params, Value* result) {
  const Runbook* child = parent.rb->FindInclude(path);
  if (!child) return {Flow::kFailed, "include: runbook " + path + " was not loaded"};
  auto scope = std::make_unique<Scope>();
  scope->rb = child;
  scope->prefix = instance_id + ".";  // "inc." or, inside a foreach, "inc[2]."
  for (const auto& p : child->params) {
    if (params.contains(p.name)) scope->params[p.name] = params[p.name];
    else if (p.default_value) scope->params[p.name] = *p.default_value;
    else return {Flow::kFailed, "include " + path + ": missing param '" + p.name + "'"};
  }
  RegisterSecrets(*child, scope->params);
  FlowResult f = RunSteps(*scope);
  *result = Value{{"steps", scope->steps}};
  auto lock = journal_.lock();
  child_scopes_[scope->prefix] = std::move(scope);
  return f;
}

}  // namespace runbook
