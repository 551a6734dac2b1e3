// PlanUndo: which recorded steps a rollback undoes and in what order, and
// what a rollback boundary keeps, on hand-made journal records.
#include "engine/exec/undo_plan.h"

#include <catch2/catch.hpp>

namespace runbook {

namespace {

struct Records {
  // A record of `id`, started `seq`-th, succeeded `done_seq`-th (0: never).
  StepRecord& Add(const std::string& id, StepStatus status, int64_t seq, int64_t done_seq = 0,
                  Value undo_state = nullptr) {
    auto rec = std::make_unique<StepRecord>();
    rec->step_id = id;
    rec->status = status;
    rec->seq = seq;
    rec->done_seq = done_seq;
    rec->undo = {UndoEntry{"t.act", Value::object(), std::move(undo_state)}};
    StepRecord& out = *rec;
    map[id] = std::move(rec);
    return out;
  }
  std::vector<std::string> Order(const std::vector<StepSpec>& steps = {}, bool lift = false) {
    plan = PlanUndo(map, steps, lift);
    std::vector<std::string> ids;
    for (const StepRecord* r : plan.steps) ids.push_back(r->step_id);
    return ids;
  }
  std::map<std::string, std::unique_ptr<StepRecord>> map;
  UndoPlan plan;
};

StepSpec Spec(const std::string& id, const std::string& boundary = "") {
  StepSpec s;
  s.id = id;
  s.rollback_boundary = boundary;
  return s;
}

}  // namespace

TEST_CASE("a rollback undoes in the order of success, newest first", "[rollback][undo_plan]") {
  Records r;
  // Started a, b, c; c finished before b (a foreach worker, say).
  r.Add("a", StepStatus::kSucceeded, 1, 1);
  r.Add("b", StepStatus::kSucceeded, 2, 3);
  r.Add("c", StepStatus::kSucceeded, 3, 2);
  CHECK(r.Order() == std::vector<std::string>{"b", "c", "a"});
  CHECK(r.plan.kept_by.empty());
}

TEST_CASE("a step that failed or was killed is undone first, only if it recorded a state",
          "[rollback][undo_plan]") {
  Records r;
  r.Add("a", StepStatus::kSucceeded, 1, 1);
  r.Add("b", StepStatus::kFailed, 2, 0, Value{{"made", "db1"}});   // may have acted part-way
  r.Add("c", StepStatus::kFailed, 3);                              // failed before acting
  r.Add("d", StepStatus::kRunning, 4, 0, Value{{"made", "db2"}});  // the engine died in it
  r.Add("e", StepStatus::kRunning, 5);
  r.Add("p", StepStatus::kPending, 6);
  r.Add("s", StepStatus::kSkipped, 7);
  r.Add("u", StepStatus::kUndone, 8, 4);  // undone by an earlier rollback
  // A rollback killed half-way: its undo began or failed, and is done again.
  r.Add("x", StepStatus::kUndoing, 9, 5);
  r.Add("y", StepStatus::kUndoFailed, 10, 6);
  CHECK(r.Order() == std::vector<std::string>{"d", "b", "y", "x", "a"});
}

TEST_CASE("a rollback boundary keeps the steps up to it once its step succeeded",
          "[rollback][undo_plan]") {
  // prepare, copy, [boundary at copy: kept once switch succeeded], switch, verify.
  std::vector<StepSpec> steps{Spec("prepare"), Spec("copy", "switch"), Spec("switch"),
                              Spec("verify")};
  Records r;
  r.Add("prepare", StepStatus::kSucceeded, 1, 1);
  r.Add("copy", StepStatus::kSucceeded, 2, 2);
  StepRecord& sw = r.Add("switch", StepStatus::kSucceeded, 3, 3);
  r.Add("verify", StepStatus::kFailed, 4, 0, Value{{"x", 1}});
  CHECK(r.Order(steps) == std::vector<std::string>{"verify", "switch"});
  CHECK(r.plan.kept_by == "copy");
  CHECK(r.plan.kept_until == "switch");

  // The switch never succeeded: nothing moved, nothing is kept.
  sw.done_seq = 0;
  sw.status = StepStatus::kFailed;
  sw.undo[0].state = Value{{"y", 1}};
  CHECK(r.Order(steps) == std::vector<std::string>{"verify", "switch", "copy", "prepare"});
  CHECK(r.plan.kept_by.empty());

  // A second rollback, after the first undid the switch: the boundary lifts.
  sw.done_seq = 3;
  sw.status = StepStatus::kUndone;
  CHECK(r.Order(steps, /*lift=*/false) == std::vector<std::string>{"verify"});
  CHECK(r.Order(steps, /*lift=*/true) == std::vector<std::string>{"verify", "copy", "prepare"});
  CHECK(r.plan.kept_by.empty());
  // Lifted only once the switch is undone.
  sw.status = StepStatus::kUndoFailed;
  CHECK(r.Order(steps, /*lift=*/true) == std::vector<std::string>{"verify", "switch"});
}

TEST_CASE("of several rollback boundaries passed, the latest keeps the most",
          "[rollback][undo_plan]") {
  std::vector<StepSpec> steps{Spec("a", "b"), Spec("b"), Spec("c", "d"), Spec("d"), Spec("e")};
  Records r;
  r.Add("a", StepStatus::kSucceeded, 1, 1);
  r.Add("b", StepStatus::kSucceeded, 2, 2);
  r.Add("c", StepStatus::kSucceeded, 3, 3);
  r.Add("d", StepStatus::kSucceeded, 4, 4);
  r.Add("e", StepStatus::kSucceeded, 5, 5);
  CHECK(r.Order(steps) == std::vector<std::string>{"e", "d"});
  CHECK(r.plan.kept_by == "c");
  CHECK(r.plan.kept_until == "d");
  // A boundary whose steps have no record (not reached) keeps nothing.
  Records fresh;
  fresh.Add("a", StepStatus::kSucceeded, 1, 1);
  CHECK(fresh.Order(steps) == std::vector<std::string>{"a"});
}

}  // namespace runbook
