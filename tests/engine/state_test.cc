#include <stdlib.h>

#include <catch2/catch.hpp>
#include <future>
#include <optional>
#include <regex>
#include <thread>

#include "engine/state/store.h"
#include "tests/engine/state_test_util.h"

namespace runbook {

using namespace runbook::testing;  // NOLINT

STORE_TEST_CASE("a run is read back with every field intact") {
  auto store = site.Open();
  RunRecord run = MakeRun("20261121-145238-4f2a");
  run.dry_run = true;
  run.status = RunStatus::kPaused;
  run.error = "waiting for approval";
  REQUIRE(store->CreateRun(run).ok());

  auto got = store->GetRun(run.id);
  REQUIRE(got.ok());
  CHECK(got->id == run.id);
  CHECK(got->runbook_name == "upgrade");
  CHECK(got->runbook_path == run.runbook_path);
  CHECK(got->digest == "abc123");
  CHECK(got->sources == run.sources);
  CHECK(got->params == run.params);
  CHECK(got->params_digest == "def456");
  CHECK(got->dry_run);
  CHECK(got->lock_key == "db:main");
  CHECK(got->status == RunStatus::kPaused);
  CHECK(got->error == "waiting for approval");
  CHECK(got->created_ms == 1000);
  CHECK(got->options == run.options);

  REQUIRE(store->UpdateRun(run.id, RunStatus::kFailed, "step 'copy' failed").ok());
  got = store->GetRun(run.id);
  REQUIRE(got.ok());
  CHECK(got->status == RunStatus::kFailed);
  CHECK(got->error == "step 'copy' failed");
  CHECK(got->updated_ms > 1000);
}

STORE_TEST_CASE("an unknown run is NotFound, not an error") {
  auto store = site.Open();
  CHECK(store->GetRun("nope").status().code() == Status::Code::kNotFound);
  CHECK(store->UpdateRun("nope", RunStatus::kFailed, "").code() == Status::Code::kNotFound);
  auto step = store->GetStep("nope", "copy");
  REQUIRE(step.ok());
  CHECK(!step->has_value());
}

STORE_TEST_CASE("a step written before a crash is read back intact") {
  {
    auto store = site.Open();
    REQUIRE(store->CreateRun(MakeRun("r1")).ok());
    StepRecord step = MakeStep("r1", "copy[2]", StepStatus::kFailed);
    step.attempts = 3;
    step.started_ms = 10;
    step.finished_ms = 25;
    step.duration_ms = 15;
    step.action = "pg.copy_table";
    step.change = "copy table users";
    step.result = {{"rows", 42}, {"unknown", MakeUnknown("skipped in rehearsal")}};
    step.tables = Value::array({TableToValue(Table{"counts", {"a", "b"}, {{"1", "2"}}})});
    step.error = "connection refused";
    step.undo = {UndoEntry{"kube.scale", {{"replicas", 3}}, {{"previous", 2}}},
                 UndoEntry{"pg.drop_db", {{"name", "tmp"}}, Value()}};
    step.undo_error = "not yet";
    step.item = {{"table", "users"}};
    REQUIRE(store->PutStep(&step).ok());
  }
  auto store = site.Open();
  auto got = store->GetStep("r1", "copy[2]");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  const StepRecord& s = **got;
  CHECK(s.seq == 1);
  CHECK(s.done_seq == 0);
  CHECK(s.status == StepStatus::kFailed);
  CHECK(s.attempts == 3);
  CHECK(s.started_ms == 10);
  CHECK(s.finished_ms == 25);
  CHECK(s.duration_ms == 15);
  CHECK(s.action == "pg.copy_table");
  CHECK(s.change == "copy table users");
  CHECK(s.result["rows"] == 42);
  CHECK(IsUnknown(s.result["unknown"]));
  REQUIRE(s.tables.size() == 1);
  CHECK(TableFromValue(s.tables[0]).rows[0][1] == "2");
  CHECK(s.error == "connection refused");
  REQUIRE(s.undo.size() == 2);
  CHECK(s.undo[0].primitive == "kube.scale");
  CHECK(s.undo[0].args["replicas"] == 3);
  CHECK(s.undo[0].state["previous"] == 2);
  CHECK(s.undo[1].primitive == "pg.drop_db");
  CHECK(s.undo[1].state.is_null());
  CHECK(s.undo_error == "not yet");
  CHECK(s.item["table"] == "users");
}

STORE_TEST_CASE("a new step gets the next seq and keeps it on update") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  REQUIRE(store->CreateRun(MakeRun("r2")).ok());
  StepRecord a = MakeStep("r1", "a"), b = MakeStep("r1", "b"), other = MakeStep("r2", "a");
  REQUIRE(store->PutStep(&a).ok());
  REQUIRE(store->PutStep(&b).ok());
  REQUIRE(store->PutStep(&other).ok());
  CHECK(a.seq == 1);
  CHECK(b.seq == 2);
  CHECK(other.seq == 1);

  StepRecord again = MakeStep("r1", "a", StepStatus::kFailed);  // a fresh record, seq 0
  REQUIRE(store->PutStep(&again).ok());
  CHECK(again.seq == 1);

  auto steps = store->GetSteps("r1");
  REQUIRE(steps.ok());
  REQUIRE(steps->size() == 2);
  CHECK((*steps)[0].step_id == "a");
  CHECK((*steps)[0].status == StepStatus::kFailed);
  CHECK((*steps)[1].step_id == "b");
}

STORE_TEST_CASE("done_seq is assigned once, when a step first succeeds") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  StepRecord a = MakeStep("r1", "a"), b = MakeStep("r1", "b");
  REQUIRE(store->PutStep(&a).ok());
  REQUIRE(store->PutStep(&b).ok());
  CHECK(a.done_seq == 0);

  b.status = StepStatus::kSucceeded;  // b finishes first
  REQUIRE(store->PutStep(&b).ok());
  a.status = StepStatus::kSucceeded;
  REQUIRE(store->PutStep(&a).ok());
  CHECK(b.done_seq == 1);
  CHECK(a.done_seq == 2);

  StepRecord again = MakeStep("r1", "b", StepStatus::kSucceeded);
  REQUIRE(store->PutStep(&again).ok());
  CHECK(again.done_seq == 1);
  again.status = StepStatus::kUndone;  // rollback keeps the order it undid by
  REQUIRE(store->PutStep(&again).ok());
  auto got = store->GetStep("r1", "b");
  REQUIRE(got.ok());
  CHECK((*got)->done_seq == 1);
  CHECK((*got)->status == StepStatus::kUndone);
}

STORE_TEST_CASE("events come back in order, including the one written with a step") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  REQUIRE(store->AppendEvent(Event{0, "r1", "", 5, "run.start", "starting"}).ok());
  StepRecord step = MakeStep("r1", "copy");
  Event started{0, "", "", 6, "step.start", "copy users"};
  REQUIRE(store->PutStep(&step, &started).ok());

  auto events = store->GetEvents("r1");
  REQUIRE(events.ok());
  REQUIRE(events->size() == 2);
  CHECK((*events)[0].kind == "run.start");
  CHECK((*events)[0].step_id == "");
  CHECK((*events)[1].kind == "step.start");
  CHECK((*events)[1].run_id == "r1");
  CHECK((*events)[1].step_id == "copy");
  CHECK((*events)[1].at_ms == 6);
  CHECK((*events)[1].message == "copy users");
  CHECK((*events)[1].id > (*events)[0].id);
}

STORE_TEST_CASE("an approval is recorded and read back; a missing one is empty") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  auto none = store->GetApproval("r1", "switch");
  REQUIRE(none.ok());
  CHECK(!none->has_value());

  REQUIRE(store->RecordApproval(Approval{"r1", "switch", "alice", 77}).ok());
  auto got = store->GetApproval("r1", "switch");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->by == "alice");
  CHECK((*got)->at_ms == 77);
}

STORE_TEST_CASE(
    "WaitForApproval: a store that notifies wakes on an approval another engine records; "
    "one that does not answers at once") {
  unsetenv("RUNBOOK_STATE_LISTEN");  // a store that can, notifies
  auto waiter = site.Open();
  auto approver = site.Open();  // another engine on the same store
  REQUIRE(waiter->CreateRun(MakeRun("r1")).ok());
  // Nothing recorded: empty, after at most `max` for a store that waits.
  auto none = waiter->WaitForApproval("r1", "gate", std::chrono::milliseconds(100));
  REQUIRE(none.ok());
  CHECK(!none->has_value());
  // Another engine approves another gate, then this one, half a second in.
  std::future<bool> approved = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const bool other = approver->RecordApproval(Approval{"r1", "other", "bob", 1}).ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const bool gate = approver->RecordApproval(Approval{"r1", "gate", "alice", 2}).ok();
    return other && gate;
  });
  std::optional<Approval> got;
  bool read_ok = true;
  const auto start = std::chrono::steady_clock::now();
  const auto max = std::chrono::seconds(30);
  bool woken = false;
  if (waiter->NotifiesApprovals()) {
    // One wait far longer than the approval takes to come: a notification
    // ends it early (another gate's wakes it, and does not end it).
    auto a = waiter->WaitForApproval("r1", "gate", max);
    read_ok = a.ok();
    if (a.ok()) got = *a;
    woken = std::chrono::steady_clock::now() - start < max / 2;
  } else {
    // It answers at once, however long it may wait: its caller polls.
    woken = true;
    for (int i = 0; i < 200 && !got && read_ok; ++i) {
      const auto asked = std::chrono::steady_clock::now();
      auto a = waiter->WaitForApproval("r1", "gate", max);
      woken = woken && std::chrono::steady_clock::now() - asked < max / 2;
      read_ok = a.ok();
      if (a.ok()) got = *a;
      if (!got) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  CHECK(approved.get());
  CHECK(read_ok);
  REQUIRE(got.has_value());
  CHECK(got->by == "alice");
  CHECK(woken);
}

STORE_TEST_CASE("RecentDurations picks the latest success of each step of the runbook") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("old", "upgrade", 1000)).ok());
  REQUIRE(store->CreateRun(MakeRun("new", "upgrade", 2000)).ok());
  REQUIRE(store->CreateRun(MakeRun("other", "backup", 3000)).ok());
  auto put = [&](const std::string& run, const std::string& id, StepStatus status, int64_t finished,
                 int64_t duration) {
    StepRecord s = MakeStep(run, id, status);
    s.finished_ms = finished;
    s.duration_ms = duration;
    REQUIRE(store->PutStep(&s).ok());
  };
  put("old", "copy", StepStatus::kSucceeded, 1100, 100);
  put("old", "switch", StepStatus::kSucceeded, 1200, 20);
  put("new", "copy", StepStatus::kSucceeded, 2100, 150);
  put("new", "switch", StepStatus::kFailed, 2200, 999);   // not a success
  put("other", "copy", StepStatus::kSucceeded, 3100, 5);  // another runbook

  auto d = store->RecentDurations("upgrade");
  REQUIRE(d.ok());
  CHECK(d->size() == 2);
  CHECK((*d)["copy"] == 150);
  CHECK((*d)["switch"] == 20);
  CHECK(store->RecentDurations("nothing")->empty());
}

STORE_TEST_CASE("ListRuns returns the newest first and honours the limit") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("b", "x", 100)).ok());
  REQUIRE(store->CreateRun(MakeRun("c", "x", 300)).ok());
  REQUIRE(store->CreateRun(MakeRun("a", "x", 300)).ok());
  auto runs = store->ListRuns(0);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 3);
  CHECK((*runs)[0].id == "c");
  CHECK((*runs)[1].id == "a");
  CHECK((*runs)[2].id == "b");
  CHECK(store->ListRuns(2)->size() == 2);
}

TEST_CASE("status names are lowercase and parse back", "[state]") {
  CHECK(std::string(RunStatusName(RunStatus::kRollbackFailed)) == "rollback_failed");
  CHECK(std::string(StepStatusName(StepStatus::kUndoFailed)) == "undo_failed");
  for (int i = 0; i <= static_cast<int>(RunStatus::kRollbackFailed); ++i) {
    auto s = static_cast<RunStatus>(i);
    CHECK(ParseRunStatus(RunStatusName(s)) == s);
  }
  for (int i = 0; i <= static_cast<int>(StepStatus::kUndoFailed); ++i) {
    auto s = static_cast<StepStatus>(i);
    CHECK(ParseStepStatus(StepStatusName(s)) == s);
  }
  CHECK(!ParseRunStatus("Running"));
  CHECK(!ParseStepStatus(""));
}

TEST_CASE("a run id is the UTC time and four hex digits", "[state]") {
  // 2026-11-21T14:52:38Z
  std::string id = NewRunId(1795272758000);
  CHECK(std::regex_match(id, std::regex("20261121-145238-[0-9a-f]{6}")));
}

TEST_CASE("the default state path follows RUNBOOK_STATE, XDG_STATE_HOME, then HOME", "[state]") {
  auto save = [](const char* name) {
    const char* v = getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  auto restore = [](const char* name, const std::optional<std::string>& v) {
    if (v)
      setenv(name, v->c_str(), 1);
    else
      unsetenv(name);
  };
  auto state = save("RUNBOOK_STATE"), xdg = save("XDG_STATE_HOME"), home = save("HOME");
  setenv("RUNBOOK_STATE", "/x/state.db", 1);
  setenv("XDG_STATE_HOME", "/xdg", 1);
  setenv("HOME", "/home/u", 1);
  CHECK(DefaultStatePath() == "/x/state.db");
  unsetenv("RUNBOOK_STATE");
  CHECK(DefaultStatePath() == "/xdg/runbook/state.db");
  setenv("XDG_STATE_HOME", "", 1);
  CHECK(DefaultStatePath() == "/home/u/.local/state/runbook/state.db");
  restore("RUNBOOK_STATE", state);
  restore("XDG_STATE_HOME", xdg);
  restore("HOME", home);
}

}  // namespace runbook
