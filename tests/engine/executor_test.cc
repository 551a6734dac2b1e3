// The executor with fakes of the OS seams (clock) and of primitives that
// record what they were asked to do. The state store is the real one.
#include "engine/exec/executor.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "bindings/register.h"
#include "engine/core/interrupt.h"
#include "engine/parser/parser.h"

using namespace runbook;

namespace {

class FakeClock : public Clock {
 public:
  int64_t NowMs() override { return now_ms; }
  SteadyTime Steady() override { return SteadyTime() + std::chrono::milliseconds(now_ms); }
  void Sleep(Millis ms) override {
    sleeps.push_back(ms.count());
    now_ms += ms.count();
  }
  int64_t now_ms = 1795199400LL * 1000;
  std::vector<int64_t> sleeps;
};

// What the fake primitives did, in order.
struct World {
  std::vector<std::string> log;
  std::map<std::string, int> fail_times;  // name -> failures left
  std::set<std::string> applied;          // for Check
  std::map<std::string, int> slow_ms;     // name -> how long the next apply takes
  std::map<std::string, int> undo_ms;     // name -> how long its undo takes
  std::set<std::string> as_asked;         // found as asked: report "nothing changed"
  std::set<std::string> no_record;        // records no undo state (like exec)
  std::set<std::string> acts_then_fails;  // a failure reports it changed something first
  std::set<std::string> idle_then_fails;  // a failure reports it changed nothing first
  std::map<std::string, int> undo_away;   // tag -> undos failing as unavailable (-1: always)
  std::map<std::string, int> check_away;  // tag -> undo checks failing as unavailable
  std::set<std::string> undo_fails;       // its undo fails for good
  std::map<std::string, int> apply_away;  // tag -> applies failing as unavailable
  std::string lose_lock_at;               // the undo of this tag finds the run's lock taken
  std::atomic<bool> lock_taken{false};    // what the t.lock connection's lock says
  std::atomic<int> applies{0};            // Apply calls so far (read by other threads)
};

// Counts one failure down from `left` (-1: never runs out).
bool Away(int& left) {
  if (left == 0) return false;
  if (left > 0) --left;
  return true;
}

class FakeAct : public Primitive {
 public:
  FakeAct(World* w, std::string name, Rehearsal mode, bool idempotent)
      : w_(w), name_(std::move(name)), mode_(mode), idempotent_(idempotent) {}
  std::string name() const override { return name_; }
  const Schema& schema() const override {
    static Schema s{"", {{"tag", ArgType::kString, true}, {"ms", ArgType::kInt}}, {}, "tag"};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return mode_; }
  bool idempotent(const Value&) const override { return idempotent_; }
  PlanEffect Plan(const Value& a) const override { return {name_ + " " + a.value("tag", "")}; }
  Result<Value> Apply(StepContext& ctx, const Value& a) override {
    std::string tag = a["tag"];
    if (!w_->no_record.count(tag)) {
      if (Status s = ctx.RecordUndo(Value{{"tag", tag}}); !s.ok()) return s;
    }
    if (ctx.dry_run()) {
      w_->log.push_back("rehearse " + tag);
      return Value{{"tag", tag}};
    }
    ctx.clock().Sleep(Millis(a.value("ms", 0) + w_->slow_ms[tag]));
    if (Away(w_->apply_away[tag])) {
      w_->log.push_back("away " + tag);
      return Status::Unavailable("server " + tag + " is starting up");
    }
    if (w_->fail_times[tag] > 0) {
      --w_->fail_times[tag];
      w_->log.push_back("fail " + tag);
      if (w_->acts_then_fails.count(tag)) ctx.SetChanged(true);
      if (w_->idle_then_fails.count(tag)) ctx.SetChanged(false);
      return Status::Failed(tag + " failed on purpose");
    }
    if (w_->as_asked.count(tag)) {
      w_->log.push_back("as asked " + tag);
      ctx.SetChanged(false);
      return Value{{"tag", tag}};
    }
    w_->log.push_back("apply " + tag);
    w_->applied.insert(tag);
    ++w_->applies;
    return Value{{"tag", tag}, {"n", static_cast<int>(w_->log.size())}};
  }
  Status Undo(StepContext& ctx, const Value&, const Value& state) override {
    const std::string tag = state.value("tag", "?");
    ctx.clock().Sleep(Millis(w_->undo_ms[tag]));
    if (Away(w_->undo_away[tag])) {
      w_->log.push_back("undo away " + tag);
      if (w_->lose_lock_at == tag) w_->lock_taken = true;
      return Status::Unavailable("server " + tag + " is starting up");
    }
    if (w_->undo_fails.count(tag)) {
      w_->log.push_back("undo fails " + tag);
      return Status::Failed("undo of " + tag + " failed on purpose");
    }
    w_->log.push_back("undo " + tag);
    return Status::Ok();
  }
  Status CheckUndo(StepContext&, const Value&, const Value& state) override {
    const std::string tag = state.value("tag", "?");
    if (Away(w_->check_away[tag])) {
      w_->log.push_back("check away " + tag);
      return Status::Unavailable("server " + tag + " is starting up");
    }
    return Status::Ok();
  }
  CheckResult Check(StepContext&, const Value& a, const Value&) override {
    if (name_ != "t.checked") return {};
    return w_->applied.count(a["tag"]) ? CheckResult{CheckOutcome::kDone, Value{{"checked", true}}}
                                       : CheckResult{CheckOutcome::kNotDone, nullptr};
  }

 private:
  World* w_;
  std::string name_;
  Rehearsal mode_;
  bool idempotent_;
};

// A connection type whose run lock on the target cannot be taken (its
// server is away): the run goes on, kept out only by the state store's lock.
class NoLockConnection : public ConnectionType {
 public:
  std::string name() const override { return "t.nolock"; }
  const Schema& schema() const override {
    static Schema s{"", {{"host", ArgType::kString}}, {}, "host"};
    return s;
  }
  std::string Describe(const Value&) const override { return "t.nolock"; }
  Result<std::unique_ptr<TargetLock>> LockTarget(const std::string& conn, const Value&,
                                                 const TargetLockRequest&) const override {
    return Status::Failed("connection '" + conn + "': cannot take the run lock there");
  }
};

// A connection type whose run lock is held until World says another engine
// took it.
class FakeLock : public TargetLock {
 public:
  explicit FakeLock(const World* w) : w_(w) {}
  Status Held() const override {
    return w_->lock_taken ? Status::Unavailable("the run lock was taken by another engine")
                          : Status::Ok();
  }

 private:
  const World* w_;
};

class LockConnection : public ConnectionType {
 public:
  explicit LockConnection(const World* w) : w_(w) {}
  std::string name() const override { return "t.lock"; }
  const Schema& schema() const override {
    static Schema s{"", {{"host", ArgType::kString}}, {}, "host"};
    return s;
  }
  std::string Describe(const Value&) const override { return "t.lock"; }
  Result<std::unique_ptr<TargetLock>> LockTarget(const std::string&, const Value&,
                                                 const TargetLockRequest&) const override {
    return std::unique_ptr<TargetLock>(std::make_unique<FakeLock>(w_));
  }

 private:
  const World* w_;
};

class NullReporter : public Reporter {
 public:
  void RunStarted(const RunRecord& run, const std::string&) override {
    events.push_back("start " + run.id);
  }
  void StepFinished(const StepRecord& s, const std::string& d) override {
    lines.push_back(s.step_id + " " + StepStatusName(s.status) + (d.empty() ? "" : " " + d));
    shown_ms[s.step_id + " " + StepStatusName(s.status)] = s.duration_ms;
  }
  void StepStarted(const std::string&, const std::string&) override {}
  void Log(const std::string& step, LogLevel level, const std::string& m) override {
    if (level == LogLevel::kWarn) events.push_back("warn " + step + ": " + m);
  }
  void Progress(const std::string&, const ProgressInfo&) override {}
  void RunFinished(const RunRecord&, int, const std::string& m) override { message = m; }
  std::vector<std::string> lines;
  std::map<std::string, int64_t> shown_ms;  // "step status" -> the duration shown
  std::string message;
  std::vector<std::string> events;  // runs started, warnings, in order
};

struct Harness {
  Harness() {
    char tmpl[] = "/tmp/rb-exec-XXXXXX";
    dir = mkdtemp(tmpl);
    RegisterAll(&registry);
    registry.Add(std::make_unique<FakeAct>(&world, "t.act", Rehearsal::kSimulate, false));
    registry.Add(std::make_unique<FakeAct>(&world, "t.idem", Rehearsal::kProbe, true));
    registry.Add(std::make_unique<FakeAct>(&world, "t.skip", Rehearsal::kSkip, false));
    registry.Add(std::make_unique<FakeAct>(&world, "t.undeclared", Rehearsal::kUndeclared, false));
    registry.Add(std::make_unique<FakeAct>(&world, "t.checked", Rehearsal::kSimulate, false));
    registry.AddConnectionType(std::make_unique<NoLockConnection>());
    registry.AddConnectionType(std::make_unique<LockConnection>(&world));
    store = std::move(*StateStore::Open(dir + "/state.db"));
    env = {&registry, store.get(), &clock, &ProcessRunner::Real(), &reporter, &redactor, nullptr};
  }
  ~Harness() { std::filesystem::remove_all(dir); }

  std::shared_ptr<const Runbook> Parse(const std::string& yaml) {
    std::vector<Diagnostic> diags;
    auto rb = ParseRunbook(dir + "/rb.yaml", yaml, registry, &diags);
    for (const auto& d : diags) UNSCOPED_INFO(d.ToString());
    REQUIRE(rb);
    return rb;
  }
  ExitCode Run(const std::shared_ptr<const Runbook>& rb, RunOptions opts = {}) {
    Executor ex(env);
    RunOutcome o = ex.Run(rb, Value::object(), opts);
    last_run = ex.run_id();
    refusal = o.refusal;
    return o.code;
  }
  ExitCode Resume(const std::shared_ptr<const Runbook>& rb, RunOptions opts = {}) {
    Executor ex(env);
    RunOutcome o = ex.Resume(last_run, rb, Value::object(), opts);
    refusal = o.refusal;
    return o.code;
  }
  StepRecord Step(const std::string& id) { return **store->GetStep(last_run, id); }

  std::string dir;
  World world;
  Registry registry;
  FakeClock clock;
  NullReporter reporter;
  Redactor redactor;
  std::unique_ptr<StateStore> store;
  ExecEnv env;
  std::string last_run;
  std::string refusal;  // of the last Run or Resume
};

const char* kThree = R"(format: 1
name: three
on_failure: stop
steps:
  - id: a
    t.act: a
  - id: b
    t.act: b
  - id: c
    t.act: c
)";

// kThree rolled back on failure, its step c failing once.
std::shared_ptr<const Runbook> ThreeFailingAtC(Harness& h) {
  std::string yaml = kThree;
  yaml.replace(yaml.find("on_failure: stop"), 16, "on_failure: rollback");
  h.world.fail_times["c"] = 1;
  return h.Parse(yaml);
}

}  // namespace

TEST_CASE("resume skips steps that already succeeded", "[executor]") {
  Harness h;
  auto rb = h.Parse(kThree);
  h.world.fail_times["b"] = 1;
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  CHECK(h.world.log == std::vector<std::string>{"apply a", "fail b"});
  CHECK(h.Step("b").status == StepStatus::kFailed);
  CHECK(h.Resume(rb) == ExitCode::kOk);
  CHECK(h.world.log == std::vector<std::string>{"apply a", "fail b", "apply b", "apply c"});
  CHECK(h.store->GetRun(h.last_run)->status == RunStatus::kSucceeded);
}

TEST_CASE("a failure rolls back completed steps newest first, the failed step included", "[executor][rollback]") {
  Harness h;
  auto rb = ThreeFailingAtC(h);
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  // c recorded its undo state before failing: it may have acted part-way.
  CHECK(h.world.log == std::vector<std::string>{"apply a", "apply b", "fail c", "undo c", "undo b",
                                                "undo a"});
  CHECK(h.Step("a").status == StepStatus::kUndone);
  CHECK(h.store->GetRun(h.last_run)->status == RunStatus::kRolledBack);
}

TEST_CASE(
    "a step that reports it changed nothing is passed over by the rollback; its result "
    "says so",
    "[executor][rollback][changed]") {
  Harness h;
  std::string yaml = kThree;
  yaml.replace(yaml.find("on_failure: stop"), 16, "on_failure: rollback");
  auto rb = h.Parse(yaml);
  h.world.as_asked = {"a"};
  h.world.fail_times["c"] = 1;
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  CHECK(h.world.log ==
        std::vector<std::string>{"as asked a", "apply b", "fail c", "undo c", "undo b"});
  StepRecord a = h.Step("a");
  CHECK(a.status == StepStatus::kSucceeded);  // kept: nothing of it to undo
  CHECK(a.result["changed"] == false);        // what Lua and the report read
  REQUIRE(a.undo.size() == 1);
  CHECK(a.undo[0].changed == std::optional<bool>(false));
  CHECK_FALSE(h.Step("b").result.contains("changed"));  // b did not say: it is undone
}

TEST_CASE(
    "a retry that finds the change made counts it as this run's, and the rollback undoes "
    "it",
    "[executor][rollback][changed]") {
  Harness h;
  std::string yaml = kThree;
  yaml.replace(yaml.find("on_failure: stop"), 16, "on_failure: rollback");
  yaml.replace(yaml.find("    t.act: a"), 12, "    retries: 1\n    retry_delay: 1s\n    t.act: a");
  auto rb = h.Parse(yaml);
  h.world.fail_times["a"] = 1;  // the first attempt records its undo, then fails ...
  h.world.as_asked = {"a"};     // ... and the second finds it done
  h.world.fail_times["c"] = 1;
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  CHECK(h.world.log == std::vector<std::string>{"fail a", "as asked a", "apply b", "fail c",
                                                "undo c", "undo b", "undo a"});
  CHECK(h.Step("a").result["changed"] == true);
  CHECK(h.Step("a").status == StepStatus::kUndone);
}

TEST_CASE(
    "a retry that finds made what the failed attempt said it changed runs the step's "
    "rollback action, with no undo state recorded",
    "[executor][rollback][changed]") {
  Harness h;
  std::string yaml = kThree;
  yaml.replace(yaml.find("on_failure: stop"), 16, "on_failure: rollback");
  yaml.replace(yaml.find("    t.act: a"), 12,
               "    retries: 1\n    retry_delay: 1s\n    rollback: {t.act: undo-a}\n    t.act: a");
  auto rb = h.Parse(yaml);
  h.world.no_record = {"a"};        // like exec: nothing recorded before acting
  h.world.acts_then_fails = {"a"};  // attempt 1 makes it (says so), then fails ...
  h.world.fail_times["a"] = 1;
  h.world.as_asked = {"a"};  // ... and attempt 2 finds it made
  h.world.fail_times["c"] = 1;
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  CHECK(h.world.log == std::vector<std::string>{"fail a", "as asked a", "apply b", "fail c",
                                                "undo c", "undo b", "apply undo-a"});
}

TEST_CASE("a retry after an attempt that said it changed nothing stays 'nothing changed'",
          "[executor][rollback][changed]") {
  Harness h;
  auto rb = h.Parse(R"(format: 1
name: retry-unchanged
on_failure: rollback
steps:
  - id: a
    retries: 1
    retry_delay: 1s
    t.act: a
  - id: c
    t.act: c
)");
  h.world.idle_then_fails = {"a"};  // attempt 1 says it changed nothing, then fails ...
  h.world.fail_times["a"] = 1;
  h.world.as_asked = {"a"};  // ... and attempt 2 finds it as asked
  h.world.fail_times["c"] = 1;
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  // a recorded an undo state each time but said it changed nothing: not undone.
  CHECK(h.world.log == std::vector<std::string>{"fail a", "as asked a", "fail c", "undo c"});
  CHECK(h.Step("a").result["changed"] == false);
}

TEST_CASE(
    "a Lua step's calls are undone only where they changed something; its own result's "
    "'changed' is data",
    "[executor][rollback][changed][lua]") {
  Harness h;
  auto rb = h.Parse(R"(format: 1
name: lua-calls
on_failure: rollback
steps:
  - id: both
    lua: |
      t.act{tag = "x"}
      t.act{tag = "y"}
      return {changed = {"x", "y"}, n = 2}
  - id: none
    lua: |
      t.act{tag = "z"}
      return {changed = false}
  - id: last
    t.act: c
)");
  h.world.as_asked = {"x", "z"};
  h.world.fail_times["c"] = 1;
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  // y is undone, x and z (nothing changed) are not; no internal error on
  // a result whose 'changed' is a list.
  CHECK(h.world.log == std::vector<std::string>{"as asked x", "apply y", "as asked z", "fail c",
                                                "undo c", "undo y"});
  StepRecord both = h.Step("both");
  CHECK(both.status == StepStatus::kUndone);
  CHECK(both.result["changed"] == Value::array({"x", "y"}));
  REQUIRE(both.undo.size() == 2);
  CHECK(both.undo[0].changed == std::optional<bool>(false));
  CHECK_FALSE(both.undo[1].changed.has_value());           // y did not say: undone
  CHECK(h.Step("none").status == StepStatus::kSucceeded);  // all its calls changed nothing
}

TEST_CASE("an undo is reported with its own duration; the record keeps the step's", "[executor][rollback]") {
  Harness h;
  std::string yaml = kThree;
  yaml.replace(yaml.find("on_failure: stop"), 16, "on_failure: rollback");
  yaml.replace(yaml.find("t.act: a"), 8, "t.act: {tag: a, ms: 5000}");
  auto rb = h.Parse(yaml);
  h.world.fail_times["c"] = 1;
  h.world.undo_ms["a"] = 300;
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  CHECK(h.reporter.shown_ms["a succeeded"] == 5000);
  CHECK(h.reporter.shown_ms["a undone"] == 300);
  CHECK(h.Step("a").duration_ms == 5000);  // what estimates the next run
}

// The pauses longer than a fake primitive's own (0 ms) sleeps.
std::vector<int64_t> Pauses(const FakeClock& clock) {
  std::vector<int64_t> out;
  for (int64_t ms : clock.sleeps) {
    if (ms > 0) out.push_back(ms);
  }
  return out;
}

TEST_CASE("an undo whose server is away for a moment is tried again, backing off",
          "[executor][rollback][transient]") {
  Harness h;
  auto rb = ThreeFailingAtC(h);
  h.world.undo_away["b"] = 2;   // restarting: two attempts find it away
  h.world.check_away["a"] = 1;  // the check before anything is undone, too
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  CHECK(h.world.log == std::vector<std::string>{"apply a", "apply b", "fail c", "check away a",
                                                "undo c", "undo away b", "undo away b", "undo b",
                                                "undo a"});
  CHECK(Pauses(h.clock) == std::vector<int64_t>{1000, 1000, 2000});
  CHECK(h.Step("b").status == StepStatus::kUndone);
  CHECK(h.store->GetRun(h.last_run)->status == RunStatus::kRolledBack);
  REQUIRE(h.reporter.events.size() >= 4);
  CHECK_THAT(h.reporter.events[1],
             Catch::Contains("checking the undo: server a is starting up; trying again in 1s"));
  CHECK_THAT(h.reporter.events[3], Catch::Contains("the undo: server b is starting up"));
  // Each pause is in the run's record, too: why its rollback took longer.
  std::vector<std::string> retries;
  Result<std::vector<Event>> events = h.store->GetEvents(h.last_run);
  REQUIRE(events.ok());
  for (const Event& e : *events) {
    if (e.Is(EventKind::kUndoRetry)) retries.push_back(e.step_id + ": " + e.message);
  }
  CHECK(retries == std::vector<std::string>{
                       "a: checking the undo: server a is starting up; trying again in 1s",
                       "b: the undo: server b is starting up; trying again in 1s",
                       "b: the undo: server b is starting up; trying again in 2s"});
}

TEST_CASE("undos whose server stays away give up after a minute in all; a failure is not retried",
          "[executor][rollback][transient]") {
  Harness h;
  auto rb = ThreeFailingAtC(h);
  SECTION("away for good") {
    h.world.undo_away["c"] = -1;
    h.world.undo_away["b"] = -1;  // the same server: the minute is the rollback's, not each undo's
    CHECK(h.Run(rb) == ExitCode::kRollbackFailed);
    // b waits only what c left of the minute (5 s): 1 s, then 2 s.
    CHECK(std::count(h.world.log.begin(), h.world.log.end(), "undo away b") == 3);
    CHECK(h.Step("b").status == StepStatus::kUndoFailed);
    CHECK(h.Step("a").status == StepStatus::kUndone);  // an undo failure does not stop the others
    std::vector<int64_t> pauses = Pauses(h.clock);
    CHECK(pauses ==
          std::vector<int64_t>{1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000, 8000, 1000, 2000});
    int64_t waited = 0;
    for (int64_t ms : pauses) waited += ms;
    CHECK(waited <= 60000);
    CHECK(h.Step("c").status == StepStatus::kUndoFailed);
    CHECK_THAT(h.Step("c").undo_error, Catch::Contains("server c is starting up"));
  }
  SECTION("failed") {
    h.world.undo_fails = {"c"};
    CHECK(h.Run(rb) == ExitCode::kRollbackFailed);
    CHECK(Pauses(h.clock).empty());
    CHECK(std::count(h.world.log.begin(), h.world.log.end(), "undo fails c") == 1);
  }
}

TEST_CASE("an undo is not tried again once the run's lock in a target is lost",
          "[executor][rollback][transient][lock]") {
  Harness h;
  std::string yaml = kThree;
  yaml.replace(yaml.find("on_failure: stop"), 16,
               "on_failure: rollback\nconnections:\n  db: {t.lock: db.example.com}");
  h.world.fail_times["c"] = 1;
  auto rb = h.Parse(yaml);
  h.world.undo_away["b"] = -1;
  h.world.lose_lock_at = "b";  // while b's server restarts, another engine takes the lock
  CHECK(h.Run(rb) == ExitCode::kLocked);
  CHECK(h.world.log ==
        std::vector<std::string>{"apply a", "apply b", "fail c", "undo c", "undo away b"});
  CHECK(Pauses(h.clock).empty());
  CHECK(h.Step("a").status == StepStatus::kSucceeded);  // not undone: nothing more acts
}

TEST_CASE(
    "a run lock in a target lost while a step acts stops that step at once, not at the next "
    "transition: its process or its Lua is ended, it is not tried again, nothing more acts",
    "[executor][lock]") {
  Harness h;
  std::string action;
  SECTION("a process") { action = "exec: {argv: [sleep, \"300\"]}"; }
  SECTION("Lua that catches errors") {
    action =
        "timeout: 1h\n    lua: |\n      while true do pcall(function() while true do end end) end";
  }
  auto rb = h.Parse(R"(format: 1
name: held
on_failure: rollback
connections:
  db: {t.lock: db.example.com}
steps:
  - id: a
    t.act: a
  - id: long
    retries: 2
    )" + action + R"(
  - id: c
    t.act: c
)");
  std::atomic<bool> ended{false};
  std::thread thief([&] {
    while (h.world.applies == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // `long` acts by now
    h.world.lock_taken = true;  // another engine took it
    // A watch that never stops the step fails the test, not hangs it.
    for (int i = 0; i < 600 && !ended; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!ended) StopActing("the test's watchdog: the step was not stopped");
  });
  const auto start = std::chrono::steady_clock::now();
  const ExitCode code = h.Run(rb);
  ended = true;
  thief.join();
  CHECK(code == ExitCode::kLocked);
  // Stopped by the watch (each second), not when its action would end.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
  CHECK(h.world.log == std::vector<std::string>{"apply a"});  // c not run, a not undone
  StepRecord s = h.Step("long");
  CHECK(s.status == StepStatus::kFailed);
  CHECK(s.attempts == 1);
  INFO(s.error);
  CHECK(s.error.find("stopped while acting (the run lock was taken by another engine)") !=
        std::string::npos);
  CHECK(h.reporter.message.find("stopped before acting further, nothing was undone") !=
        std::string::npos);
  CHECK_FALSE(ActingStopped());  // the process's next run may act
  // What the run stopped is gone (a process would still be seen here).
  CHECK(ProcessesWithEnv(kStepTokenVar, h.last_run + "/long").empty());
}

TEST_CASE("a rollback action away for a moment is tried again only when it is idempotent",
          "[executor][rollback][transient]") {
  Harness h;
  std::string yaml = kThree;
  yaml.replace(yaml.find("on_failure: stop"), 16, "on_failure: rollback");
  yaml.replace(yaml.find("    t.act: a"), 12, "    rollback: {t.act: undo-a}\n    t.act: a");
  yaml.replace(yaml.find("    t.act: b"), 12, "    rollback: {t.idem: undo-b}\n    t.act: b");
  h.world.fail_times["c"] = 1;
  auto rb = h.Parse(yaml);
  h.world.apply_away["undo-a"] = 1;
  h.world.apply_away["undo-b"] = 1;
  CHECK(h.Run(rb) == ExitCode::kRollbackFailed);
  CHECK(h.world.log == std::vector<std::string>{"apply a", "apply b", "fail c", "undo c",
                                                "away undo-b", "apply undo-b", "away undo-a"});
  CHECK(Pauses(h.clock) == std::vector<int64_t>{1000});
  CHECK(h.Step("b").status == StepStatus::kUndone);
  CHECK(h.Step("a").status == StepStatus::kUndoFailed);  // t.act may have acted: a human looks
}

TEST_CASE("retries back off exponentially and count attempts", "[executor]") {
  Harness h;
  auto rb = h.Parse(R"(format: 1
name: retry
steps:
  - id: a
    t.act: a
    retries: 3
    retry_delay: 100ms
)");
  h.world.fail_times["a"] = 3;
  CHECK(h.Run(rb) == ExitCode::kOk);
  CHECK(h.clock.sleeps == std::vector<int64_t>{0, 100, 0, 200, 0, 400, 0});
  CHECK(h.Step("a").attempts == 4);
}

TEST_CASE("a step found running that is not idempotent and cannot be checked waits for a human", "[executor][resume]") {
  Harness h;
  auto rb = h.Parse(kThree);
  CHECK(h.Run(rb) == ExitCode::kOk);
  // Pretend the engine died inside b: its record says running.
  StepRecord b = h.Step("b");
  b.status = StepStatus::kRunning;
  REQUIRE(h.store->PutStep(&b).ok());
  h.store->UpdateRun(h.last_run, RunStatus::kRunning, "");
  h.world.log.clear();
  CHECK(h.Resume(rb) == ExitCode::kRunFailed);
  CHECK_THAT(h.reporter.message, Catch::Contains("--retry-step b"));
  CHECK_THAT(h.reporter.message, Catch::Contains("--mark-done b"));
  CHECK(h.world.log.empty());
  RunOptions done;
  done.mark_done = {"b"};
  CHECK(h.Resume(rb, done) == ExitCode::kOk);
  CHECK(h.world.log.empty());  // b not re-run; c had already succeeded
  CHECK(h.Step("b").result["marked_done"] == true);
}

TEST_CASE("on resume an idempotent step is re-run and a checkable one asks its check", "[executor][resume]") {
  Harness h;
  auto rb = h.Parse(R"(format: 1
name: checks
steps:
  - id: i
    t.idem: i
  - id: k
    t.checked: k
)");
  CHECK(h.Run(rb) == ExitCode::kOk);
  for (const char* id : {"i", "k"}) {
    StepRecord r = h.Step(id);
    r.status = StepStatus::kRunning;
    REQUIRE(h.store->PutStep(&r).ok());
  }
  h.store->UpdateRun(h.last_run, RunStatus::kRunning, "");
  h.world.log.clear();
  CHECK(h.Resume(rb) == ExitCode::kOk);
  CHECK(h.world.log == std::vector<std::string>{"apply i"});  // k: its check said done
  CHECK(h.Step("k").result["checked"] == true);
}

TEST_CASE("a rehearsal skips what it cannot rehearse and propagates UNKNOWN", "[executor][dry-run]") {
  Harness h;
  auto rb = h.Parse(R"(format: 1
name: rehearse
steps:
  - id: sim
    t.act: sim
  - id: skipped
    t.skip: s
  - id: depends
    t.act: "${{ steps.skipped.result.tag }}"
  - id: gated
    when: steps.skipped.result.tag == "s"
    t.act: gated
  - id: after
    t.idem: after
)");
  RunOptions opts;
  opts.dry_run = true;
  CHECK(h.Run(rb, opts) == ExitCode::kOk);
  CHECK(h.world.log == std::vector<std::string>{"rehearse sim", "rehearse after"});
  CHECK(h.Step("skipped").status == StepStatus::kUnknown);
  CHECK(h.Step("depends").status == StepStatus::kUnknown);
  CHECK(h.Step("gated").status == StepStatus::kUnknown);
  CHECK(h.world.applied.empty());
}

TEST_CASE("a primitive without a rehearsal mode is refused in a dry run", "[executor][dry-run]") {
  Harness h;
  auto rb = h.Parse("format: 1\nname: x\nsteps:\n  - id: u\n    t.undeclared: u\n");
  RunOptions opts;
  opts.dry_run = true;
  CHECK(h.Run(rb, opts) == ExitCode::kRunFailed);
  CHECK(h.world.log.empty());
  CHECK_THAT(h.Step("u").error, Catch::Contains("refused in a dry run"));
}

TEST_CASE("steps that do not fit in what is left of the window stop the run", "[executor][window]") {
  Harness h;
  // Window: daily 02:00-04:00 UTC.
  std::string yaml = std::string(kThree) + "window: {timezone: UTC, start: \"02:00\", end: \"04:00\"}\n";
  yaml.replace(yaml.find("on_failure: stop"), 16, "on_failure: rollback");
  auto rb = h.Parse(yaml);
  const int64_t midnight = (1795199400LL - 18 * 3600 - 30 * 60) * 1000;  // 2026-11-20 00:00Z
  h.clock.now_ms = midnight + 3 * 3600 * 1000;                              // 03:00
  CHECK(h.Run(rb) == ExitCode::kOk);  // records durations (0: the fake clock stands still)
  // That run's b took 20 minutes.
  StepRecord b = h.Step("b");
  b.duration_ms = 20 * 60 * 1000;
  REQUIRE(h.store->PutStep(&b).ok());
  h.world.log.clear();
  // 03:35: 25 minutes left, 20 needed: it starts, but a takes 10 minutes.
  h.clock.now_ms = midnight + (3 * 60 + 35) * 60 * 1000;
  h.world.slow_ms["a"] = 10 * 60 * 1000;
  CHECK(h.Run(rb) == ExitCode::kOutsideWindow);
  CHECK(h.world.log == std::vector<std::string>{"apply a", "undo a"});
  CHECK_THAT(h.reporter.message, Catch::Contains("window closes in 15m0s"));
  // Outside the window nothing runs at all.
  h.world.log.clear();
  h.clock.now_ms = midnight + 5 * 3600 * 1000;
  CHECK(h.Run(rb) == ExitCode::kOutsideWindow);
  CHECK(h.world.log.empty());
}

TEST_CASE("an argument whose template yields nil is left out", "[executor]") {
  Harness h;
  auto rb = h.Parse(R"(format: 1
name: nil-arg
steps:
  - id: a
    t.act: {tag: a, ms: "${{ nil }}"}
  - id: b
    t.act: {tag: b, ms: "${{ 1 > 2 and 5 or nil }}"}
)");
  CHECK(h.Run(rb) == ExitCode::kOk);
  CHECK(h.world.log == std::vector<std::string>{"apply a", "apply b"});
  // A required argument that yields nil is still an error, naming it.
  auto bad = h.Parse(R"(format: 1
name: nil-required
steps:
  - id: a
    t.act: {tag: "${{ nil }}"}
)");
  CHECK(h.Run(bad) == ExitCode::kRunFailed);
  CHECK_THAT(h.Step("a").error, Catch::Contains("tag"));
}

TEST_CASE("a result too big for Lua fails the step that makes it, not the steps that read it", "[executor][lua]") {
  Harness h;
  auto rb = h.Parse(R"yaml(format: 1
name: big
on_failure: stop
steps:
  - id: big
    lua: "local t = {} for i = 1, 40 do t[i] = string.rep('x', 1 << 20) end return t"
  - id: reader
    t.act: "${{ #steps.big.result }}"
)yaml");
  CHECK(h.Run(rb) == ExitCode::kRunFailed);
  CHECK(h.Step("big").status == StepStatus::kFailed);
  CHECK_THAT(h.Step("big").error,
             Catch::Contains("the result would take about 41 MiB in Lua, more than half of its "
                             "memory cap (64 MiB)"));
  CHECK(h.world.log.empty());
  // Together too: each item fits, all of them do not.
  auto each = h.Parse(R"yaml(format: 1
name: big-items
on_failure: stop
steps:
  - id: items
    foreach: [1, 2, 3]
    lua: "return string.rep('x', 12 << 20)"
  - id: reader
    t.act: "${{ #steps.items.result }}"
)yaml");
  CHECK(h.Run(each) == ExitCode::kRunFailed);
  CHECK(h.Step("items").status == StepStatus::kFailed);
  CHECK_THAT(h.Step("items").error, Catch::StartsWith("the items' results together: the result "
                                                      "would take about 37 MiB"));
  CHECK(h.world.log.empty());
}

TEST_CASE("the engine prints nothing: a refusal is the outcome's, a line per reason",
          "[executor]") {
  Harness h;
  auto rb = h.Parse(R"yaml(format: 1
name: secrets
on_failure: stop
params:
  pw: {type: string, secret: true}
  token: {type: string, secret: true, env: APP_TOKEN}
  db: {type: string}
steps:
  - id: a
    t.act: a
  - id: b
    t.act: b
)yaml");
  h.world.fail_times["b"] = 1;
  Value params{{"pw", "hunter22"}, {"token", "tok-9"}, {"db", "orders"}};
  std::string id;
  {
    Executor ex(h.env);
    RunOutcome o = ex.Run(rb, params, {});
    CHECK(o.code == ExitCode::kRunFailed);
    CHECK(o.refusal.empty());  // it ran: the reporter was told how it ended
    CHECK_THAT(h.reporter.message, Catch::Contains("step 'b': b failed on purpose"));
    id = ex.run_id();
  }
  // Resumed without its secrets, and with another db: refused, every
  // reason named, nothing run.
  Executor ex(h.env);
  RunOutcome o = ex.Resume(id, rb, Value{{"db", "billing"}}, {});
  CHECK(o.code == ExitCode::kInvalid);
  // (In the order the runbook declares them.)
  CHECK(o.refusal == "run " + id + ": secret param 'pw' is not stored; supply it again (-p)\nrun " +
                         id +
                         ": secret param 'token' is not stored; supply it again (env "
                         "APP_TOKEN or -p)\nrun " +
                         id +
                         ": param 'db' was \"orders\" when the run started; a run keeps its "
                         "params (start a new run to change it)");
  CHECK(h.world.log == std::vector<std::string>{"apply a", "fail b"});
  // The secrets given, the other db still refused alone.
  Executor given(h.env);
  RunOutcome wrong =
      given.Resume(id, rb, Value{{"db", "billing"}, {"pw", "hunter22"}, {"token", "tok-9"}}, {});
  CHECK(wrong.code == ExitCode::kInvalid);
  CHECK(wrong.refusal == "run " + id +
                             ": param 'db' was \"orders\" when the run started; a run keeps "
                             "its params (start a new run to change it)");
  // Once it succeeded, a resume is refused with exit 0.
  Executor done(h.env);
  CHECK(done.Resume(id, rb, Value{{"db", "orders"}, {"pw", "hunter22"}, {"token", "tok-9"}}, {})
            .code == ExitCode::kOk);
  Executor again(h.env);
  RunOutcome twice =
      again.Resume(id, rb, Value{{"db", "orders"}, {"pw", "hunter22"}, {"token", "tok-9"}}, {});
  CHECK(twice.code == ExitCode::kOk);
  CHECK(twice.refusal == "run " + id + " already succeeded; nothing to resume");
  Executor undo(h.env);
  RunOutcome gone = undo.Rollback("no-such-run", rb, Value::object(), {});
  CHECK(gone.code == ExitCode::kInvalid);
  CHECK_FALSE(gone.refusal.empty());
}

TEST_CASE("a run lock that cannot be taken on the target is warned of once the run has started",
          "[executor]") {
  Harness h;
  auto rb = h.Parse(R"yaml(format: 1
name: nolock
connections:
  far: {t.nolock: db.example.com}
steps:
  - id: a
    t.act: a
)yaml");
  CHECK(h.Run(rb) == ExitCode::kOk);
  // The first line a run prints names it (a fleet reads its run id there).
  CHECK(h.reporter.events ==
        std::vector<std::string>{"start " + h.last_run,
                                 "warn : connection 'far': cannot take the run lock there; only "
                                 "engines sharing this state store are kept out"});
  // A rehearsal takes no lock on its targets: nothing to warn of.
  h.reporter.events.clear();
  RunOptions dry;
  dry.dry_run = true;
  CHECK(h.Run(rb, dry) == ExitCode::kOk);
  CHECK(h.reporter.events == std::vector<std::string>{"start " + h.last_run});
}
