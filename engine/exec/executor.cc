// Run, resume and rollback entry points and the run's lifecycle.
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "engine/core/duration.h"
#include "engine/core/holder.h"
#include "engine/core/interrupt.h"
#include "engine/core/process.h"
#include "engine/core/rehearsal_plan.h"
#include "engine/core/sha256.h"
#include "engine/exec/internal.h"
#include "engine/lua/template.h"

namespace runbook {

namespace fs = std::filesystem;

Executor::Executor(ExecEnv env) : impl_(new Impl(env)) {}
Executor::~Executor() = default;

RunOutcome Executor::Run(std::shared_ptr<const Runbook> rb, const Value& params,
                         const RunOptions& opts) {
  return impl_->Run(std::move(rb), params, opts);
}
RunOutcome Executor::Resume(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                            const Value& secret_params, const RunOptions& opts) {
  return impl_->Resume(run_id, std::move(rb), secret_params, opts);
}
RunOutcome Executor::Rollback(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                              const Value& secret_params, const RunOptions& opts) {
  return impl_->Rollback(run_id, std::move(rb), secret_params, opts);
}
const std::string& Executor::run_id() const { return impl_->run_.id; }

static void CollectSources(const Runbook& rb, std::map<std::string, std::string>* out) {
  std::error_code ec;
  std::string path = fs::weakly_canonical(fs::absolute(rb.path), ec).string();
  if ((*out).count(path)) return;
  (*out)[path] = rb.source;
  for (const auto& [p, child] : rb.includes) CollectSources(*child, out);
}

Value RunbookSources(const Runbook& rb) {
  std::map<std::string, std::string> sources;
  CollectSources(rb, &sources);
  Value out = Value::object();
  for (const auto& [p, text] : sources) out[p] = text;
  return out;
}

std::string RunbookDigest(const Runbook& rb) {
  std::map<std::string, std::string> sources;
  CollectSources(rb, &sources);
  return SourcesDigest(sources);
}

std::string SourcesDigest(const std::map<std::string, std::string>& sources) {
  std::string all;
  for (const auto& [p, text] : sources) all += p + "\n" + Sha256Hex(text) + "\n";
  return Sha256Hex(all);
}

// "what changed": the first differing lines of each changed file.
static std::string DescribeChanges(const Value& before, const Value& now) {
  std::ostringstream out;
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!before.contains(it.key())) {
      out << "\n  " << it.key() << ": new file";
      continue;
    }
    if (before[it.key()] == it.value()) continue;
    std::istringstream a(before[it.key()].get<std::string>()), b(it.value().get<std::string>());
    std::string la, lb;
    int line = 0, shown = 0;
    while (shown < 5) {
      bool ga = static_cast<bool>(std::getline(a, la));
      bool gb = static_cast<bool>(std::getline(b, lb));
      if (!ga && !gb) break;
      ++line;
      if (ga && gb && la == lb) continue;
      out << "\n  " << it.key() << ":" << line << ": was '" << (ga ? la : "<end>") << "', now '"
          << (gb ? lb : "<end>") << "'";
      ++shown;
    }
  }
  for (auto it = before.begin(); it != before.end(); ++it) {
    if (!now.contains(it.key())) out << "\n  " << it.key() << ": no longer included";
  }
  return out.str();
}

bool Executor::Impl::LiftJournaled() {
  Result<std::vector<Event>> lifts = journal_.Events(EventKind::kRollbackLift);
  return lifts.ok() && !lifts->empty();
}

void Executor::Impl::JournalPlan(bool resuming) {
  RehearsalPlan* plan = PlanOf(resources_, opts_.dry_run);
  if (!plan) return;
  if (resuming) {
    Result<std::vector<Event>> notes = journal_.Events(EventKind::kPlanNote);
    if (notes.ok()) {
      for (const Event& e : *notes) plan->Replay(e.message, e.step_id);
    }
  }
  plan->SetJournal([this](const std::string& line, const std::string& step_id) {
    // A key that holds a secret (a database or file named by a secret
    // param) is not kept: a resumed rehearsal forgets that one note.
    if (env_.redactor->Redact(line) != line) return;
    journal_.Append(EventKind::kPlanNote, step_id, line);
  });
}

Value Executor::Impl::MakeEnv(const Scope& scope, const Value* item, const Value* result) const {
  Value env = Value::object();
  env["params"] = scope.params;
  env["steps"] = scope.steps;
  // run.now: seconds since the epoch when the expression is evaluated (the
  // sandbox has no clock; a soak time or a timestamp annotation needs one).
  env["run"] = Value{{"id", run_.id}, {"dry_run", opts_.dry_run},
                     {"now", env_.clock->NowMs() / 1000}};
  if (item) env["item"] = *item;
  if (result) env["result"] = *result;
  return env;
}

namespace {

void TemplateStrings(const Value& v, std::vector<std::string>* out) {
  if (v.is_string()) {
    if (HasTemplate(v.get<std::string>())) out->push_back(v.get<std::string>());
  } else if (v.is_structured()) {
    for (const auto& child : v) TemplateStrings(child, out);
  }
}

// Step ids named by the expressions of `s` (a superset: every id that occurs
// in them), or nullopt if an expression reads `steps` other than as
// steps.ID or steps["ID"] (pairs(steps), steps[name]).
std::optional<std::set<std::string>> StepRefs(const Runbook& rb, const StepSpec& s) {
  if (s.action.kind != ActionKind::kPrimitive) return std::nullopt;
  std::vector<std::string> texts;
  if (s.when) texts.push_back(*s.when);
  if (s.assert_expr) texts.push_back(*s.assert_expr);
  if (s.foreach) TemplateStrings(*s.foreach, &texts);
  TemplateStrings(s.action.args, &texts);
  if (s.rollback_action) TemplateStrings(s.rollback_action->args, &texts);
  std::set<std::string> ids;
  for (const auto& text : texts) {
    if (text.find("steps") == std::string::npos) continue;
    if (ReadsStepsDynamically(text)) return std::nullopt;
    for (const auto& other : rb.steps) {
      if (text.find(other.id) != std::string::npos) ids.insert(other.id);
    }
  }
  return ids;
}

}  // namespace

Value Executor::Impl::MakeStepEnv(const Scope& scope, const StepSpec& s, const Value* item) {
  const std::optional<std::set<std::string>>* refs;
  {
    std::lock_guard<std::mutex> lock(refs_mu_);
    auto it = step_refs_.find(&s);
    if (it == step_refs_.end()) it = step_refs_.emplace(&s, StepRefs(*scope.rb, s)).first;
    refs = &it->second;  // map nodes are stable
  }
  if (!refs->has_value()) return MakeEnv(scope, item);
  Value steps = Value::object();
  for (const auto& id : **refs) {
    auto found = scope.steps.find(id);
    if (found != scope.steps.end()) steps[id] = *found;
  }
  Value env = Value::object();
  env["params"] = scope.params;
  env["steps"] = std::move(steps);
  // run.now: seconds since the epoch when the expression is evaluated (the
  // sandbox has no clock; a soak time or a timestamp annotation needs one).
  env["run"] = Value{{"id", run_.id}, {"dry_run", opts_.dry_run},
                     {"now", env_.clock->NowMs() / 1000}};
  if (item) env["item"] = *item;
  return env;
}

LuaRuntime& Executor::Impl::Lua() {
  // One runtime per thread (foreach workers run their own).
  thread_local std::unique_ptr<LuaRuntime> lua;
  thread_local const Registry* made_for = nullptr;
  if (!lua || made_for != env_.registry) {
    lua = std::make_unique<LuaRuntime>(env_.registry);
    made_for = env_.registry;
  }
  return *lua;
}

void Executor::Impl::RegisterSecrets(const Runbook& rb, const Value& params) {
  for (const auto& p : rb.params) {
    if (!p.secret || !params.contains(p.name)) continue;
    env_.redactor->AddValue(params[p.name]);
  }
}

namespace {

// `v` without the strings that hold templates (their values are
// registered when the connection is opened).
Value WithoutTemplates(const Value& v) {
  if (v.is_string()) return HasTemplate(v.get<std::string>()) ? Value() : v;
  if (v.is_object()) {
    Value out = Value::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = WithoutTemplates(it.value());
    return out;
  }
  return v;
}

}  // namespace

void Executor::Impl::RegisterLiteralSecrets(const Runbook& rb) {
  RegisterRunbookLiteralSecrets(rb, *env_.registry, *env_.redactor);
}

void RegisterRunbookLiteralSecrets(const Runbook& rb, const Registry& registry,
                                   Redactor& redactor) {
  for (const auto& c : rb.connections) {
    if (const ConnectionType* type = registry.FindConnectionType(c.type)) {
      type->CollectSecrets(WithoutTemplates(c.config), redactor);
    }
  }
  for (const auto& [path, child] : rb.includes) {
    RegisterRunbookLiteralSecrets(*child, registry, redactor);
  }
}

Value Executor::Impl::RedactParams(const Runbook& rb, const Value& params,
                                   Value* withheld) const {
  Value out = params;
  *withheld = Value::array();
  for (const auto& p : rb.params) {
    if (!out.contains(p.name)) continue;
    if (p.secret) {
      out[p.name] = "***";
      continue;
    }
    // Stored as given, so that resume and rollback use the same value; one
    // that holds a secret (a dsn with its password) is stored masked and
    // must be given again.
    Value shown = env_.redactor->Redact(out[p.name]);
    if (shown != out[p.name]) {
      out[p.name] = shown;
      withheld->push_back(p.name);
    }
  }
  return out;
}

bool Executor::Impl::RestoreParams(const Runbook& rb, const Value& given, std::string* why) {
  root_.params = run_.params;
  std::set<std::string> withheld;
  if (run_.options.is_object() && run_.options.contains("withheld_params")) {
    for (const auto& n : run_.options["withheld_params"]) withheld.insert(n.get<std::string>());
  }
  bool ok = true;
  for (const auto& p : rb.params) {
    const bool must = p.secret || withheld.count(p.name);
    if (given.contains(p.name)) {
      if (!must && run_.params.contains(p.name) && run_.params[p.name] != given[p.name]) {
        *why += (why->empty() ? "" : "\n") +
                ("run " + run_.id + ": param '" + p.name + "' was " + run_.params[p.name].dump() +
                 " when the run started; a run keeps its params "
                 "(start a new run to change it)");
        ok = false;
        continue;
      }
      root_.params[p.name] = given[p.name];
    } else if (must) {
      *why += (why->empty() ? "" : "\n") +
              ("run " + run_.id + ": " + (p.secret ? "secret param" : "param") + " '" + p.name +
               "' " + (p.secret ? "is not stored" : "held a secret, so it is not stored") +
               "; supply it again (" + (p.env.empty() ? "-p" : "env " + p.env + " or -p") + ")");
      ok = false;  // every missing one is named, not only the first
    }
  }
  return ok;
}

Result<Connection> Executor::Impl::ResolveConnection(const Scope& scope, const std::string& name) {
  const ConnectionSpec* spec = scope.rb->FindConnection(name);
  if (!spec) return Status::NotFound("no connection '" + name + "' in " + scope.rb->path);
  auto deadline = env_.clock->Steady() + std::chrono::seconds(10);
  Result<Value> config = ExpandTemplates(Lua(), spec->config, spec->pos, MakeEnv(scope, nullptr),
                                         deadline);
  if (!config.ok()) return config.status().Prefixed("connection '" + name + "'");
  if (ContainsUnknown(*config)) {
    return Status::Failed("connection '" + name + "' depends on an UNKNOWN rehearsal result");
  }
  if (const ConnectionType* type = env_.registry->FindConnectionType(spec->type)) {
    type->CollectSecrets(*config, *env_.redactor);
  }
  return Connection{name, spec->type, *config};
}

// Exit 4 says another run holds the lock; a store that cannot be reached
// or written is another matter.
static ExitCode LockExit(const Status& s) {
  return s.code() == Status::Code::kUnavailable ? ExitCode::kLocked : ExitCode::kInternal;
}

Status Executor::Impl::AcquireLock(const Runbook& rb, const Value& params, bool on_targets) {
  std::string key = rb.lock.empty() ? rb.name : rb.lock;
  if (HasTemplate(key)) {
    Scope s;
    s.rb = &rb;
    s.params = params;
    Result<Value> v = ExpandTemplates(Lua(), Value(key), Pos{rb.path}, MakeEnv(s, nullptr),
                                      env_.clock->Steady() + std::chrono::seconds(10));
    if (!v.ok()) return v.status().Prefixed("lock");
    key = v->is_string() ? v->get<std::string>() : v->dump();
  }
  run_.lock_key = key;
  AllowActing();  // whatever an earlier run of this process lost
  Result<std::unique_ptr<StoreLock>> lock = env_.store->AcquireLock(key, run_.id);
  if (!lock.ok()) return lock.status();
  lock_ = std::move(*lock);
  if (!on_targets) return Status::Ok();
  // The store's lock keeps out the engines that share the store; this keeps
  // out those with another one (a laptop's file, CI's). A connection whose
  // config needs a later step's result or an item is not known yet.
  Scope scope;
  scope.rb = &rb;
  scope.params = params;
  const std::string holder = EngineHolder(run_.id);
  for (const ConnectionSpec& spec : rb.connections) {
    const ConnectionType* type = env_.registry->FindConnectionType(spec.type);
    if (!type) continue;
    Result<Connection> c = ResolveConnection(scope, spec.name);
    if (!c.ok()) continue;
    Result<std::unique_ptr<TargetLock>> t =
        type->LockTarget(spec.name, c->config, {key, env_.redactor->Redact(key), holder});
    if (!t.ok() && t.status().code() == Status::Code::kUnavailable) {
      return Status::Unavailable(env_.redactor->Redact(t.status().message()));
    }
    if (!t.ok()) {
      // Said once the run has started (its first line names the run).
      lock_warnings_.push_back(t.status().message() +
                               "; only engines sharing this state store are kept out");
      continue;
    }
    locked_at_.insert(spec.type + " " + c->config.dump());
    if (*t) target_locks_.push_back(std::move(*t));
  }
  journal_.set_guard([this] {
    std::lock_guard<std::mutex> lock(locks_mu_);
    for (const std::unique_ptr<TargetLock>& l : target_locks_) {
      if (Status s = l->Held(); !s.ok()) return s;
    }
    return Status::Ok();
  });
  WatchLocks();
  return Status::Ok();
}

Status Executor::Impl::LockWhereActs(StepContext& ctx, const Primitive& prim, const Value& args) {
  if (opts_.dry_run || !lock_watch_) return Status::Ok();  // no lock taken in targets
  for (const ArgSpec& a : prim.schema().args) {
    if (a.type != ArgType::kConnection || !args.is_object() || !args.contains(a.name) ||
        !args[a.name].is_string()) {
      continue;
    }
    Result<Connection> c = ctx.GetConnection(args[a.name].get<std::string>());
    if (!c.ok()) continue;  // the step says why
    const ConnectionType* type = env_.registry->FindConnectionType(c->type);
    if (!type) continue;
    const Value there = type->ActsIn(c->config, args);
    if (there == c->config) continue;  // the connection's own lock covers it
    const std::string at = c->type + " " + there.dump();
    {
      std::lock_guard<std::mutex> lock(locks_mu_);
      if (!locked_at_.insert(at).second) continue;
    }
    Result<std::unique_ptr<TargetLock>> t = type->LockTarget(
        c->name, there,
        {run_.lock_key, env_.redactor->Redact(run_.lock_key), EngineHolder(run_.id)});
    if (!t.ok() && t.status().code() == Status::Code::kUnavailable) {
      {
        std::lock_guard<std::mutex> lock(locks_mu_);
        locked_at_.erase(at);  // a resume tries again
      }
      Status held = Status::Unavailable(env_.redactor->Redact(t.status().message()));
      journal_.Refuse(held);
      return held;
    }
    if (!t.ok()) {
      ctx.Log(LogLevel::kWarn,
              t.status().message() + "; only engines sharing this state store are kept out there");
      continue;
    }
    if (*t) {
      std::lock_guard<std::mutex> lock(locks_mu_);
      target_locks_.push_back(std::move(*t));
    }
  }
  return Status::Ok();
}

void Executor::Impl::WatchLocks() {
  static constexpr Millis kEvery(500);  // (static: the lambda needs no capture)
  lock_watch_ = std::make_unique<RenewalThread>(kEvery, [this]() -> std::optional<Millis> {
    bool in_store = false;
    Status lost = lock_ ? lock_->Held() : Status::Ok();
    if (!lost.ok()) {
      in_store = true;
    } else {
      std::lock_guard<std::mutex> lock(locks_mu_);
      for (const std::unique_ptr<TargetLock>& l : target_locks_) {
        if (lost = l->Held(); !lost.ok()) break;
      }
    }
    // Said twice in a row (half a second apart): a renewal late for a
    // moment that then succeeds does not stop the run.
    const bool confirmed = !lost.ok() && lock_doubted_;
    lock_doubted_ = !lost.ok();
    if (!confirmed) return kEvery;
    // The journal is told, so that nothing more acts here (an undo
    // included) even if the lock comes back; then the step that acts stops.
    store_lease_lost_ = in_store;
    journal_.Refuse(lost);
    StopActing(env_.redactor->Redact(lost.message()));
    return std::nullopt;
  });
}

void Executor::Impl::EndLockWatch() {
  lock_watch_.reset();
  AllowActing();
}

Executor::Impl::~Impl() { EndLockWatch(); }

void Executor::Impl::StartReport(const std::string& what) {
  env_.reporter->RunStarted(run_, what);
  for (const std::string& w : lock_warnings_) env_.reporter->Log("", LogLevel::kWarn, w);
  lock_warnings_.clear();
}

void Executor::Impl::Report(const StepRecord& rec, const std::string& detail) {
  env_.reporter->StepFinished(rec, detail);
}

RunOutcome Executor::Impl::Run(std::shared_ptr<const Runbook> rb, const Value& params,
                               const RunOptions& opts) {
  opts_ = opts;
  root_rb_ = rb;
  root_.rb = rb.get();
  root_.params = params;
  RegisterSecrets(*rb, params);
  RegisterLiteralSecrets(*rb);  // a password written into a connection map
  int64_t now = env_.clock->NowMs();
  run_.id = NewRunId(now);
  journal_.set_run_id(run_.id);
  if (rb->window && !opts_.dry_run && !opts_.ignore_window) {
    WindowState w = CheckWindow(*rb->window, now);
    if (!w.inside) {
      return Refuse(ExitCode::kOutsideWindow,
                    rb->path + ": outside the maintenance window (" + w.description +
                        "); nothing was run. Use --ignore-window to run anyway.");
    }
    window_end_ms_ = w.end_ms;
  }
  if (Status s = AcquireLock(*rb, params, !opts_.dry_run); !s.ok()) {
    return Refuse(LockExit(s), rb->path + ": " + s.message());
  }
  std::error_code ec;
  run_.runbook_name = rb->name;
  run_.runbook_path = fs::weakly_canonical(fs::absolute(rb->path), ec).string();
  run_.digest = RunbookDigest(*rb);
  run_.sources = env_.redactor->Redact(RunbookSources(*rb));
  Value withheld;
  run_.params = RedactParams(*rb, params, &withheld);
  run_.params_digest = Sha256Hex(run_.params.dump());
  run_.dry_run = opts_.dry_run;
  run_.status = RunStatus::kRunning;
  run_.created_ms = run_.updated_ms = now;
  run_.options = opts_.options_to_store;
  if (!withheld.empty()) run_.options["withheld_params"] = withheld;
  if (Status s = env_.store->CreateRun(run_); !s.ok()) {
    return Refuse(ExitCode::kInternal, s.message());
  }
  if (auto d = env_.store->RecentDurations(rb->name); d.ok()) durations_ = *d;
  JournalPlan(false);
  StartReport(opts_.dry_run ? "rehearsal" : "run");
  return Finish(RunSteps(root_));
}

RunOutcome Executor::Impl::Resume(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                                  const Value& secret_params, const RunOptions& opts) {
  Result<RunRecord> run = env_.store->GetRun(run_id);
  if (!run.ok()) return Refuse(ExitCode::kInvalid, run.status().message());
  run_ = *run;
  journal_.set_run_id(run_.id);
  switch (run_.status) {
    case RunStatus::kSucceeded:
      return Refuse(ExitCode::kOk, "run " + run_id + " already succeeded; nothing to resume");
    case RunStatus::kRolledBack:
      return Refuse(ExitCode::kInvalid,
                    "run " + run_id + " was rolled back; start a new run instead");
    default:
      break;
  }
  RegisterLiteralSecrets(*rb);  // before the diff below can show one
  if (RunbookDigest(*rb) != run_.digest && !opts.allow_changed) {
    return Refuse(ExitCode::kInvalid,
                  "run " + run_id +
                      ": the runbook changed since the run started; refusing to resume "
                      "(--allow-changed to resume anyway). What changed:" +
                      DescribeChanges(run_.sources, env_.redactor->Redact(RunbookSources(*rb))));
  }
  opts_ = opts;
  opts_.dry_run = run_.dry_run;
  if (run_.options.is_object() && run_.options.value("ignore_window", false)) {
    opts_.ignore_window = true;
  }
  root_rb_ = rb;
  root_.rb = rb.get();
  if (std::string why; !RestoreParams(*rb, secret_params, &why)) {
    return Refuse(ExitCode::kInvalid, why);
  }
  RegisterSecrets(*rb, root_.params);
  if (rb->window && !opts_.dry_run && !opts_.ignore_window) {
    WindowState w = CheckWindow(*rb->window, env_.clock->NowMs());
    if (!w.inside) {
      return Refuse(ExitCode::kOutsideWindow, "run " + run_id +
                                                  ": outside the maintenance window (" +
                                                  w.description + "); nothing was run");
    }
    window_end_ms_ = w.end_ms;
  }
  if (Status s = AcquireLock(*rb, root_.params, !opts_.dry_run); !s.ok()) {
    return Refuse(LockExit(s), "run " + run_id + ": " + s.message());
  }
  if (Status s = journal_.Load(); !s.ok()) return Refuse(ExitCode::kInternal, s.message());
  if (auto d = env_.store->RecentDurations(rb->name); d.ok()) durations_ = *d;
  resuming_ = true;
  if (run_.status == RunStatus::kRollingBack || run_.status == RunStatus::kRollbackFailed) {
    lift_boundaries_ = LiftJournaled();  // a second rollback, killed: it goes on past the boundary
    RestoreResults();  // the undos' templates read earlier results
    StartReport("resume rollback of");
    bool ok = DoRollback();
    return Finish({ok ? Flow::kOk : Flow::kFailed, ""});
  }
  env_.store->UpdateRun(run_.id, RunStatus::kRunning, "");
  run_.status = RunStatus::kRunning;
  JournalPlan(true);
  StartReport("resume");
  return Finish(RunSteps(root_));
}

RunOutcome Executor::Impl::Rollback(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                                    const Value& secret_params, const RunOptions& opts) {
  opts_.accept_data_loss = opts.accept_data_loss;
  Result<RunRecord> run = env_.store->GetRun(run_id);
  if (!run.ok()) return Refuse(ExitCode::kInvalid, run.status().message());
  run_ = *run;
  journal_.set_run_id(run_.id);
  // Rolled back to a boundary (green kept after a reverse cutover): a second
  // rollback undoes what the boundary kept.
  lift_boundaries_ = run_.status == RunStatus::kRolledBack;
  if (run_.dry_run) {
    return Refuse(ExitCode::kInvalid,
                  "run " + run_id + " was a rehearsal: it changed nothing to undo");
  }
  root_rb_ = rb;
  root_.rb = rb.get();
  RegisterLiteralSecrets(*rb);
  if (std::string why; !RestoreParams(*rb, secret_params, &why)) {
    return Refuse(ExitCode::kInvalid, why);
  }
  RegisterSecrets(*rb, root_.params);
  if (Status s = AcquireLock(*rb, root_.params, !opts.dry_run); !s.ok()) {
    return Refuse(LockExit(s), "run " + run_id + ": " + s.message());
  }
  if (Status s = journal_.Load(); !s.ok()) return Refuse(ExitCode::kInternal, s.message());
  RestoreResults();
  // A second rollback that was killed or failed goes on past the boundary.
  if (LiftJournaled()) lift_boundaries_ = true;
  if (lift_boundaries_ && !opts.dry_run) {
    bool left = false;
    for (StepRecord* rec : UndoOrder(/*log=*/false)) {
      Scope* scope = nullptr;
      const StepSpec* spec = FindSpec(rec->step_id, &scope);
      bool has_action = false;
      if (WillUndo(rec, spec, &has_action)) left = true;
    }
    if (!left) return Refuse(ExitCode::kOk, "run " + run_id + " is already rolled back");
  }
  if (lift_boundaries_ && !opts.dry_run) {
    // Journaled before anything is undone: a resume of this rollback, or
    // its retry after a failure, undoes what the boundary kept too.
    Status lifted = journal_.Append(
        EventKind::kRollbackLift, "",
        "a rollback of a run rolled back to its boundary: the kept steps are undone too");
    if (!lifted.ok()) {
      return Refuse(ExitCode::kRollbackFailed, "run " + run_id +
                                                   ": the journal cannot be written (" +
                                                   lifted.message() + "); nothing was undone");
    }
  }
  StartReport("rollback of");
  bool ok = DoRollback();
  const bool lost = LockLostFirst();  // then `runbook rollback` again goes on from here
  RunStatus final_status = lost ? RunStatus::kRollingBack
                           : ok ? RunStatus::kRolledBack
                                : RunStatus::kRollbackFailed;
  if (rollback_refused_.empty()) {  // refused: nothing was undone, the run stays as it was
    journal_.Note(env_.store->UpdateRun(run_.id, final_status, ok ? "" : "an undo failed"));
    run_.status = final_status;
  }
  ExitCode code = ok ? ExitCode::kOk : ExitCode::kRollbackFailed;
  std::string message = !ok           ? "rollback FAILED: a human must act (see above)"
                        : AnyUndone() ? "rolled back"
                                      : "rolled back: nothing to undo";
  if (ok && kept_steps_) {
    const StepRecord* until = journal_.Find(kept_until_);
    bool lifted = until && until->status == StepStatus::kUndone;
    message = lifted ? "rolled back to the rollback boundary: the steps before it are kept "
                       "(runbook rollback " +
                           run_.id + " again undoes them)"
                     : "rolled back to the rollback boundary: the steps before it are kept for "
                       "good, since '" +
                           kept_until_ + "' cannot be undone (irreversible)";
  }
  if (!rollback_refused_.empty()) {
    message = "rollback refused, nothing was undone: " + rollback_refused_ +
              ". Make the data safe first (roll back through the fallback, or dump it), or run "
              "runbook rollback " + run_.id + " --accept-data-loss to undo anyway";
  }
  if (Status journal = journal_.error(); !journal.ok()) {
    code = ExitCode::kRollbackFailed;
    message = "the state store could not be written (" + journal.message() +
              "): the rollback stopped before undoing anything more; make the store writable, "
              "then runbook rollback " +
              run_.id + " again";
    if (lost) {
      code = ExitCode::kLocked;
      message = LockLostMessage(true);
    } else if (journal.code() == Status::Code::kUnavailable) {
      message = journal.message() +
                ". This engine stopped its rollback before undoing "
                "anything more; the engine that holds the lease now has the run (runbook "
                "status " +
                run_.id + ")";
    }
  }
  EndLockWatch();
  env_.reporter->RunFinished(run_, static_cast<int>(code), message);
  return {code, ""};
}

void Executor::Impl::RestoreResults() {
  for (auto& [id, rec] : journal_.records()) {
    switch (rec->status) {
      case StepStatus::kSucceeded: case StepStatus::kSkipped: case StepStatus::kUndone:
      case StepStatus::kUndoing: case StepStatus::kUndoFailed:
        // An undone step's result is still what it returned: a later undo's
        // template may read it.
        root_.steps[id] = Value{{"status", StepStatusName(rec->status)}, {"result", rec->result}};
        break;
      default:
        break;
    }
  }
}

std::string Executor::Impl::LockLostMessage(bool rolling) {
  if (store_lease_lost_) {  // the run is the lease holder's now, not another run's
    return journal_.error().message() + ". This engine stopped before " +
           (rolling ? "undoing" : "acting") +
           " further, nothing was undone; the engine that holds the lease now carries the run "
           "on (runbook status " +
           run_.id + ")";
  }
  return journal_.error().message() + ". This engine stopped before " +
         (rolling ? "undoing" : "acting") +
         " further, nothing was undone: another engine acts on this target now (once it is "
         "done: runbook " +
         (rolling ? "rollback " + run_.id + " goes on"
                  : "resume " + run_.id + ", or runbook rollback " + run_.id) +
         ")";
}

RunOutcome Executor::Impl::Finish(const FlowResult& f) {
  resources_.Clear();  // close connections, port-forwards, tunnels
  RunStatus status = RunStatus::kSucceeded;
  ExitCode code = ExitCode::kOk;
  std::string message = opts_.dry_run ? "rehearsal finished: nothing was changed" : "run succeeded";
  bool rolling = run_.status == RunStatus::kRollingBack;
  switch (f.flow) {
    case Flow::kOk:
      if (rolling) {
        status = RunStatus::kRolledBack;
        code = ExitCode::kRunFailed;
        message = "rollback finished";
      }
      break;
    case Flow::kPaused:
      status = RunStatus::kPaused;
      code = ExitCode::kPaused;
      message = f.message;
      break;
    case Flow::kDecision:
      status = RunStatus::kStopped;
      code = ExitCode::kRunFailed;
      message = f.message;
      break;
    case Flow::kFailed:
    case Flow::kWindow: {
      code = f.flow == Flow::kWindow ? ExitCode::kOutsideWindow : ExitCode::kRunFailed;
      message = f.message;
      if (LockLostFirst()) {
        // Another engine acts on the target now: nothing more acts here, an
        // undo included. The run goes on (or back) from here once it is done.
        status = rolling ? RunStatus::kRollingBack : RunStatus::kStopped;
        code = ExitCode::kLocked;
        message = LockLostMessage(rolling);
      } else if (rolling) {
        status = RunStatus::kRollbackFailed;
        code = ExitCode::kRollbackFailed;
        message = "rollback FAILED: a human must act; fix the cause, then runbook rollback " +
                  run_.id;
      } else if (opts_.dry_run) {
        status = RunStatus::kFailed;
        message = "rehearsal failed: " + f.message + " (a real run would stop here" +
                  (root_rb_->on_failure == OnFailure::kRollback ? " and roll back)" : ")");
      } else if (root_rb_->on_failure == OnFailure::kStop) {
        status = RunStatus::kStopped;
        message = f.message + "; stopped (on_failure: stop). Fix, then runbook resume " +
                  run_.id + ", or undo with runbook rollback " + run_.id;
      } else {
        bool ok = DoRollback();
        status = ok ? RunStatus::kRolledBack : RunStatus::kRollbackFailed;
        if (!ok) code = ExitCode::kRollbackFailed;
        if (LockLostFirst()) {  // lost before an undo could start
          status = RunStatus::kRollingBack;
          code = ExitCode::kLocked;
          message = f.message + "; " + LockLostMessage(true);
          break;
        }
        message = f.message + (!ok           ? "; rollback FAILED: a human must act"
                               : AnyUndone() ? "; rolled back"
                                             : "; nothing to undo");
        if (!rollback_refused_.empty()) {
          message = f.message + "; rollback refused, nothing was undone: " + rollback_refused_ +
                    " (runbook rollback " + run_.id + " --accept-data-loss undoes anyway)";
        }
      }
      break;
    }
  }
  journal_.Note(env_.store->UpdateRun(run_.id, status, code == ExitCode::kOk ? "" : message));
  if (Status journal = journal_.error(); !journal.ok() && !LockLostFirst()) {
    // Whatever happened, the journal may not say it: a human must look.
    status = RunStatus::kFailed;
    code = ExitCode::kRollbackFailed;
    message = "the state store could not be written (" + journal.message() +
              "): stopped before acting further, nothing was undone; its journal may not show "
              "the last step's outcome. Make the store writable, then runbook status " +
              run_.id + " and resume or rollback";
    if (journal.code() == Status::Code::kUnavailable) {
      // Fenced: another engine took the run's lease over and runs it now.
      message = journal.message() +
                ". This engine stopped before acting further; the "
                "engine that holds the lease now carries the run on (runbook status " +
                run_.id + ")";
    }
  }
  run_.status = status;
  EndLockWatch();
  env_.reporter->RunFinished(run_, static_cast<int>(code), message);
  return {code, ""};
}

}  // namespace runbook
