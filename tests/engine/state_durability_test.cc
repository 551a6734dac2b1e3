#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "engine/state/store.h"
#include "tests/engine/state_test_util.h"

namespace runbook {

using namespace runbook::testing;  // NOLINT

TEST_CASE("the store file is 0600 and the directories it creates 0700", "[state]") {
  StoreDir dir;
  std::string path = dir.path + "/a/b/state.db";
  mode_t caller_umask = umask(022);
  auto store = OpenStore(path);
  CHECK(umask(caller_umask) == 022);              // Open restored the caller's umask
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());  // the WAL exists after a write
  CHECK(ModeOf(path) == 0600);
  CHECK(ModeOf(path + "-wal") == 0600);
  CHECK(ModeOf(path + "-shm") == 0600);
  CHECK(ModeOf(dir.path + "/a") == 0700);
  CHECK(ModeOf(dir.path + "/a/b") == 0700);
}

TEST_CASE("the store runs in WAL mode with synchronous FULL", "[state]") {
  StoreDir dir;
  std::string path = dir.path + "/state.db";
  auto store = OpenStore(path);
  CHECK(QueryOther(path, "PRAGMA journal_mode") == "wal");
  // synchronous is per connection: Open also checks its own connection's.
  CHECK(QueryOther(path, "PRAGMA synchronous") == "2");
  CHECK(QueryOther(path, "PRAGMA user_version") == "2");
}

TEST_CASE("a commit survives the writer being killed right after PutStep returns", "[state]") {
  StoreDir dir;
  std::string path = dir.path + "/state.db";
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto store = StateStore::Open(path);
    if (!store.ok()) _exit(1);
    StepRecord step = MakeStep("r1", "copy", StepStatus::kSucceeded);
    step.result = {{"rows", 7}};
    if (!(*store)->CreateRun(MakeRun("r1")).ok() || !(*store)->PutStep(&step).ok()) _exit(2);
    raise(SIGKILL);
    _exit(3);
  }
  int wstatus = 0;
  REQUIRE(waitpid(pid, &wstatus, 0) == pid);
  REQUIRE(WIFSIGNALED(wstatus));
  CHECK(WTERMSIG(wstatus) == SIGKILL);

  auto store = OpenStore(path);
  auto got = store->GetStep("r1", "copy");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->status == StepStatus::kSucceeded);
  CHECK((*got)->done_seq == 1);
  CHECK((*got)->result["rows"] == 7);
}

STORE_TEST_CASE("steps written from 8 threads all land with distinct seqs") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  constexpr int kThreads = 8, kSteps = 10;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kSteps; ++i) {
        StepRecord step = MakeStep("r1", "copy[" + std::to_string(t * kSteps + i) + "]");
        Event e{0, "", "", i, "step.start", ""};
        if (!store->PutStep(&step, &e).ok()) ++failures[t];
        step.status = StepStatus::kSucceeded;
        if (!store->PutStep(&step, &e).ok()) ++failures[t];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int f : failures) CHECK(f == 0);

  auto steps = store->GetSteps("r1");
  REQUIRE(steps.ok());
  REQUIRE(steps->size() == kThreads * kSteps);
  std::set<int64_t> seqs, done_seqs;
  for (const StepRecord& s : *steps) {
    seqs.insert(s.seq);
    done_seqs.insert(s.done_seq);
  }
  CHECK(seqs.size() == kThreads * kSteps);
  CHECK(*seqs.rbegin() == kThreads * kSteps);
  CHECK(done_seqs.size() == kThreads * kSteps);
  CHECK(store->GetEvents("r1")->size() == 2 * kThreads * kSteps);
}

STORE_TEST_CASE("a failed write names the operation and the store path") {
  auto store = site.Open();
  StepRecord orphan = MakeStep("no-such-run", "copy");
  Status s = store->PutStep(&orphan);
  REQUIRE(!s.ok());
  CHECK(s.message().find("state store " + store->path() + ": cannot write step 'copy': ") == 0);
  CHECK(orphan.seq == 0);  // untouched when the write did not happen

  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  Status dup = store->CreateRun(MakeRun("r1"));
  CHECK(dup.message().find("cannot create run 'r1'") != std::string::npos);
}

TEST_CASE("a corrupt journal column is reported, not thrown", "[state]") {
  StoreDir dir;
  std::string path = dir.path + "/state.db";
  auto store = OpenStore(path);
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  StepRecord step = MakeStep("r1", "copy");
  REQUIRE(store->PutStep(&step).ok());
  QueryOther(path, "UPDATE steps SET result = '{broken' WHERE step_id = 'copy'");
  auto got = store->GetStep("r1", "copy");
  CHECK(got.status().code() == Status::Code::kInternal);
  CHECK(got.status().message().find("step 'copy' column result") != std::string::npos);
  CHECK(store->GetSteps("r1").status().code() == Status::Code::kInternal);
}

TEST_CASE("a store from a newer version is refused", "[state]") {
  StoreDir dir;
  std::string path = dir.path + "/state.db";
  OpenStore(path);
  QueryOther(path, "PRAGMA user_version = 99");
  auto store = StateStore::Open(path);
  REQUIRE(!store.ok());
  CHECK(store.status().message().find("schema version 99") != std::string::npos);
}

TEST_CASE(
    "a call's changed is kept with its undo entry, and a store of version 1 gets it from "
    "the result it recorded",
    "[state]") {
  StoreDir dir;
  std::string path = dir.path + "/state.db";
  {
    auto store = OpenStore(path);
    REQUIRE(store->CreateRun(MakeRun("r1")).ok());
    StepRecord typed = MakeStep("r1", "typed", StepStatus::kSucceeded);
    typed.undo = {UndoEntry{"kube.scale", Value::object(), Value{{"replicas", 2}}, false}};
    REQUIRE(store->PutStep(&typed).ok());
    // As version 1 recorded them: the result said it.
    StepRecord old = MakeStep("r1", "old", StepStatus::kSucceeded);
    old.result = {{"exit_code", 0}, {"changed", false}};
    old.undo = {UndoEntry{"exec", Value::object(), nullptr}};
    REQUIRE(store->PutStep(&old).ok());
    StepRecord acted = MakeStep("r1", "acted", StepStatus::kSucceeded);
    acted.result = {{"exit_code", 0}, {"changed", true}};
    acted.undo = {UndoEntry{"exec", Value::object(), nullptr}};
    REQUIRE(store->PutStep(&acted).ok());
    StepRecord other = MakeStep("r1", "other", StepStatus::kSucceeded);
    other.result = {{"changed", Value::array({"s1"})}};  // not the engine's
    other.undo = {UndoEntry{"pg.sync_sequences", Value::object(), nullptr}};
    REQUIRE(store->PutStep(&other).ok());
  }
  QueryOther(path, "PRAGMA user_version = 1");
  auto store = OpenStore(path);
  CHECK(QueryOther(path, "PRAGMA user_version") == "2");
  auto typed = store->GetStep("r1", "typed");
  REQUIRE(typed.ok());
  REQUIRE(typed->has_value());
  CHECK((*typed)->undo.at(0).changed == std::optional<bool>(false));
  CHECK(StepChangedNothing(**typed));
  auto old = store->GetStep("r1", "old");
  REQUIRE(old.ok());
  REQUIRE(old->has_value());
  CHECK((*old)->undo.at(0).changed == std::optional<bool>(false));
  for (const char* id : {"acted", "other"}) {
    auto got = store->GetStep("r1", id);
    REQUIRE(got.ok());
    REQUIRE(got->has_value());
    CHECK_FALSE((*got)->undo.at(0).changed.has_value());
    CHECK_FALSE(StepChangedNothing(**got));
  }
}

STORE_TEST_CASE("invalid UTF-8 in a result is stored, not thrown") {
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  StepRecord step = MakeStep("r1", "run");
  step.result = {{"stdout", std::string("ok\xff")}};
  REQUIRE(store->PutStep(&step).ok());
  CHECK(store->GetStep("r1", "run")->value().result["stdout"].get<std::string>().rfind("ok", 0) ==
        0);
}

}  // namespace runbook
