// StepJournal: what each transition sets on a step record and writes to the
// store, redaction, and the first failed write stopping everything after
// it. On both stores (STORE_TEST_CASE), with a fake clock.
#include "engine/exec/journal.h"

#include <catch2/catch.hpp>
#include <set>

#include "tests/engine/state_test_util.h"

namespace runbook {

using namespace runbook::testing;  // NOLINT

namespace {

class FixedClock : public Clock {
 public:
  int64_t NowMs() override { return now_ms; }
  SteadyTime Steady() override { return SteadyTime() + std::chrono::milliseconds(now_ms); }
  void Sleep(Millis ms) override { now_ms += ms.count(); }
  int64_t now_ms = 1795199400LL * 1000;
};

// Every error a reporter was told of.
class ErrorsSeen : public Reporter {
 public:
  void RunStarted(const RunRecord&, const std::string&) override {}
  void StepFinished(const StepRecord&, const std::string&) override {}
  void StepStarted(const std::string&, const std::string&) override {}
  void Log(const std::string& step, LogLevel level, const std::string& msg) override {
    if (level == LogLevel::kError) errors.push_back(step + ": " + msg);
  }
  void Progress(const std::string&, const ProgressInfo&) override {}
  void RunFinished(const RunRecord&, int, const std::string&) override {}
  std::vector<std::string> errors;
};

// A store whose writes fail from some point on (a full disk, a lease taken
// over); reads go on working.
class FailingStore : public StateStore {
 public:
  explicit FailingStore(StateStore* real) : real_(real) {}
  const std::string& path() const override { return real_->path(); }
  Status CreateRun(const RunRecord& run) override { return real_->CreateRun(run); }
  Status UpdateRun(const std::string& id, RunStatus s, const std::string& e) override {
    return fail ? Broken() : real_->UpdateRun(id, s, e);
  }
  Result<RunRecord> GetRun(const std::string& id) override { return real_->GetRun(id); }
  Result<std::vector<RunRecord>> ListRuns(int limit) override { return real_->ListRuns(limit); }
  Status PutStep(StepRecord* step, const Event* event, bool durable) override {
    return fail ? Broken() : real_->PutStep(step, event, durable);
  }
  Result<std::vector<StepRecord>> GetSteps(const std::string& id) override {
    return real_->GetSteps(id);
  }
  Result<std::optional<StepRecord>> GetStep(const std::string& id,
                                            const std::string& step) override {
    return real_->GetStep(id, step);
  }
  Status AppendEvent(const Event& e) override { return fail ? Broken() : real_->AppendEvent(e); }
  Result<std::vector<Event>> GetEvents(const std::string& id) override {
    return real_->GetEvents(id);
  }
  Status RecordApproval(const Approval& a) override { return real_->RecordApproval(a); }
  Result<std::optional<Approval>> GetApproval(const std::string& id,
                                              const std::string& step) override {
    return real_->GetApproval(id, step);
  }
  Result<std::map<std::string, int64_t>> RecentDurations(const std::string& name) override {
    return real_->RecentDurations(name);
  }
  Result<std::unique_ptr<StoreLock>> AcquireLock(const std::string& key,
                                                 const std::string& id) override {
    return real_->AcquireLock(key, id);
  }
  bool LockHeld(const std::string& key) override { return real_->LockHeld(key); }

  bool fail = false;
  int failures = 0;

 private:
  Status Broken() {
    ++failures;
    return Status::Failed("disk full (write " + std::to_string(failures) + ")");
  }
  StateStore* real_;
};

// A journal of run "r1" writing through a FailingStore of the site's store.
struct FailingJournal {
  explicit FailingJournal(const StoreSite& site) : real(site.Open()), store(real.get()) {
    REQUIRE(real->CreateRun(MakeRun("r1")).ok());
    journal.set_run_id("r1");
  }
  std::unique_ptr<StateStore> real;
  FailingStore store;
  FixedClock clock;
  Redactor redactor;
  ErrorsSeen reporter;
  StepJournal journal{&store, &clock, &redactor, &reporter};
};

struct JournalCase {
  explicit JournalCase(const StoreSite& site)
      : store(site.Open()), journal(store.get(), &clock, &redactor, &reporter) {
    REQUIRE(store->CreateRun(MakeRun("r1")).ok());
    journal.set_run_id("r1");
  }
  // The kinds of the step's events, oldest first.
  std::vector<std::string> Kinds(const std::string& step) {
    std::vector<std::string> out;
    Result<std::vector<Event>> events = store->GetEvents("r1");  // kept: a loop over a
    REQUIRE(events.ok());                                        // temporary's value dangles
    for (const Event& e : *events) {
      if (e.step_id == step) out.push_back(e.kind);
    }
    return out;
  }
  StepRecord Stored(const std::string& step) {
    auto got = store->GetStep("r1", step);
    REQUIRE(got.ok());
    REQUIRE(got->has_value());
    return **got;
  }

  FixedClock clock;
  Redactor redactor;
  ErrorsSeen reporter;
  std::unique_ptr<StateStore> store;
  StepJournal journal;
};

}  // namespace

TEST_CASE("every event kind has a name of its own", "[journal]") {
  std::set<std::string> names;
  const EventKind last = EventKind::kWaveApproved;  // the enum's last
  for (int k = 0; k <= static_cast<int>(last); ++k) {
    std::string name = EventKindName(static_cast<EventKind>(k));
    INFO(k);
    CHECK(name != "?");
    CHECK(names.insert(name).second);
  }
  // The names the stores already hold from earlier versions stay.
  CHECK(std::string(EventKindName(EventKind::kUndoOk)) == "undo.ok");
  CHECK(std::string(EventKindName(EventKind::kStepStart)) == "step.start");
  CHECK(std::string(EventKindName(EventKind::kOwnWrite)) == "own_write");
  Event e{0, "r", "s", 1, "plan.note", ""};
  CHECK(e.Is(EventKind::kPlanNote));
  CHECK_FALSE(e.Is(EventKind::kStepOk));
}

STORE_TEST_CASE("a step's transitions set its record and write it with their event") {
  JournalCase j(site);
  StepRecord* rec = j.journal.Record("copy");
  CHECK(j.journal.Record("copy") == rec);  // one record per step id
  CHECK(rec->status == StepStatus::kPending);
  CHECK(rec->run_id == "r1");
  rec->change = "copy 3 tables";
  REQUIRE(j.journal.Start(rec).ok());
  CHECK(rec->status == StepStatus::kRunning);
  CHECK(j.Stored("copy").status == StepStatus::kRunning);
  rec->error = "connection lost";
  REQUIRE(j.journal.Retry(rec, "attempt 1 failed: connection lost").ok());
  CHECK(rec->status == StepStatus::kRunning);
  REQUIRE(j.journal.Finish(rec, StepStatus::kSucceeded, "").ok());
  CHECK(rec->error.empty());  // the earlier attempt's error is not the outcome
  StepRecord stored = j.Stored("copy");
  CHECK(stored.status == StepStatus::kSucceeded);
  CHECK(stored.done_seq > 0);
  CHECK(stored.change == "copy 3 tables");
  CHECK(j.Kinds("copy") == std::vector<std::string>{"step.start", "step.retry", "step.ok"});

  StepRecord* bad = j.journal.Record("verify");
  j.clock.now_ms += 5000;
  REQUIRE(j.journal.Fail(bad, "counts differ").ok());
  CHECK(bad->status == StepStatus::kFailed);
  CHECK(bad->finished_ms == j.clock.now_ms);
  CHECK(j.Stored("verify").error == "counts differ");

  StepRecord* later = j.journal.Record("later");
  REQUIRE(j.journal.Finish(later, StepStatus::kSkipped, "when is false", true).ok());
  StepRecord* probe = j.journal.Record("probe");
  REQUIRE(j.journal.Finish(probe, StepStatus::kUnknown, "not rehearsed").ok());
  CHECK(j.Kinds("verify") == std::vector<std::string>{"step.fail"});
  CHECK(j.Kinds("later") == std::vector<std::string>{"step.skip"});
  CHECK(j.Kinds("probe") == std::vector<std::string>{"step.unknown"});

  StepRecord* gate = j.journal.Record("gate");
  REQUIRE(j.journal.Wait(gate, "approve the switch").ok());
  CHECK(j.Stored("gate").status == StepStatus::kWaiting);
  StepRecord* inc = j.journal.Record("inc");
  REQUIRE(j.journal.Pause(inc, /*waiting=*/false, "needs a decision").ok());
  CHECK(inc->status == StepStatus::kRunning);  // resume decides again

  // An undo: its state kept first, then the undo's own transitions.
  rec->undo = {UndoEntry{"pg.copy", Value::object(), nullptr}};
  REQUIRE(j.journal.RecordUndo(rec, 0, Value{{"created", "db1"}}, true).ok());
  CHECK(j.Stored("copy").undo.at(0).state == Value{{"created", "db1"}});
  CHECK(j.journal.RecordUndo(rec, 3, Value(1), true).code() == Status::Code::kInternal);
  REQUIRE(j.journal.UndoStart(rec).ok());
  CHECK(j.Stored("copy").status == StepStatus::kUndoing);
  REQUIRE(j.journal.UndoFailed(rec, "database in use").ok());
  CHECK(j.Stored("copy").undo_error == "database in use");
  REQUIRE(j.journal.Undone(rec, /*acted=*/false).ok());
  CHECK(rec->undo_error.empty());
  CHECK(j.Stored("copy").status == StepStatus::kUndone);
  auto events = j.store->GetEvents("r1");
  REQUIRE(events.ok());
  CHECK(StepsWithNothingUndone(*events) == std::set<std::string>{"copy"});
  REQUIRE(j.journal.Irreversible(bad).ok());
  CHECK(bad->status == StepStatus::kSucceeded);
  CHECK(j.journal.ok());
  CHECK(j.reporter.errors.empty());
}

STORE_TEST_CASE("the journal redacts what a record and its events hold") {
  JournalCase j(site);
  j.redactor.Add("s3cr3t-pw");
  StepRecord* rec = j.journal.Record("connect");
  rec->change = "connect as app with s3cr3t-pw";
  REQUIRE(j.journal.Start(rec).ok());
  REQUIRE(j.journal.Fail(rec, "password s3cr3t-pw refused").ok());
  REQUIRE(j.journal.UndoFailed(rec, "undo: s3cr3t-pw").ok());
  REQUIRE(j.journal.Append(EventKind::kOwnWrite, "connect", "t s3cr3t-pw").ok());
  StepRecord stored = j.Stored("connect");
  for (const std::string& text : {stored.change, stored.error, stored.undo_error}) {
    INFO(text);
    CHECK(text.find("s3cr3t-pw") == std::string::npos);
    CHECK(text.find("***") != std::string::npos);
  }
  for (const Event& e : *j.store->GetEvents("r1")) {
    INFO(e.kind << ": " << e.message);
    CHECK(e.message.find("s3cr3t-pw") == std::string::npos);
  }
  auto writes = j.journal.Events(EventKind::kOwnWrite);
  REQUIRE(writes.ok());
  REQUIRE(writes->size() == 1);
  CHECK((*writes)[0].step_id == "connect");
}

STORE_TEST_CASE("the first failed write is kept and every later one says so") {
  FailingJournal f(site);
  FailingStore& store = f.store;
  ErrorsSeen& reporter = f.reporter;
  StepJournal& journal = f.journal;
  StateStore* real = f.real.get();
  StepRecord* rec = journal.Record("switch");
  REQUIRE(journal.Start(rec).ok());
  CHECK(journal.ok());
  store.fail = true;
  Status first = journal.Finish(rec, StepStatus::kSucceeded, "");
  CHECK_FALSE(first.ok());
  CHECK_FALSE(journal.ok());
  CHECK(journal.error().message() == "disk full (write 1)");
  CHECK(reporter.errors == std::vector<std::string>{"switch: disk full (write 1)"});
  // Later failures do not replace the first, whatever wrote them.
  CHECK_FALSE(journal.Append(EventKind::kPlanNote, "switch", "made db").ok());
  CHECK_FALSE(journal.Note(store.UpdateRun("r1", RunStatus::kFailed, "")));
  CHECK(journal.error().message() == "disk full (write 1)");
  // The store still has the step as running: a resume decides again.
  CHECK(real->GetStep("r1", "switch")->value().status == StepStatus::kRunning);
  // Note of a success changes nothing.
  CHECK(journal.Note(Status::Ok()));
  CHECK(journal.error().message() == "disk full (write 1)");
}

STORE_TEST_CASE("a guard's refusal stops the journal and is told from a failed write") {
  FailingJournal f(site);
  FailingStore& store = f.store;
  StepJournal& journal = f.journal;
  bool held = true;
  journal.set_guard([&] { return held ? Status::Ok() : Status::Unavailable("lock taken by b"); });
  StepRecord* rec = journal.Record("switch");
  REQUIRE(journal.MayAct(*rec).ok());
  SECTION("the lock lost first") {
    held = false;
    CHECK_FALSE(journal.Start(rec).ok());
    CHECK(journal.guard_refused());
    store.fail = true;  // a later write failing does not replace it
    CHECK_FALSE(journal.Append(EventKind::kPlanNote, "switch", "x").ok());
    CHECK(journal.guard_refused());
    CHECK(journal.error().message() == "lock taken by b");
  }
  SECTION("a write failed first") {
    store.fail = true;
    CHECK_FALSE(journal.Append(EventKind::kPlanNote, "switch", "x").ok());
    held = false;
    CHECK_FALSE(journal.Start(rec).ok());  // the guard refuses too, second
    CHECK_FALSE(journal.guard_refused());
    CHECK(journal.error().message() == "disk full (write 1)");
  }
}

STORE_TEST_CASE("a journal loads a run's records from the store, replacing its own") {
  JournalCase j(site);
  StepRecord* a = j.journal.Record("a");
  a->result = Value{{"rows", 3}};
  REQUIRE(j.journal.Finish(a, StepStatus::kSucceeded, "").ok());
  StepRecord* b = j.journal.Record("b");
  REQUIRE(j.journal.Fail(b, "boom").ok());

  StepJournal again(j.store.get(), &j.clock, &j.redactor, nullptr);
  again.set_run_id("r1");
  again.Record("stale");  // held before the load: gone after it
  REQUIRE(again.Load().ok());
  CHECK(again.Find("stale") == nullptr);
  REQUIRE(again.Find("a"));
  CHECK(again.Find("a")->status == StepStatus::kSucceeded);
  CHECK(again.Find("a")->result == Value{{"rows", 3}});
  REQUIRE(again.Find("b"));
  CHECK(again.Find("b")->error == "boom");
  CHECK(again.records().size() == 2);
}

}  // namespace runbook
