// Malformed runbooks, part 1: the top level, windows, step keys, rollback.
// Each case checks the exact message and file:line:col.
#include <catch2/catch.hpp>

#include "engine/parser/parser.h"
#include "tests/engine/parser_test_util.h"

namespace runbook {
namespace {

using testing::Dump;
using testing::HasDiag;
using testing::kOneStep;
using testing::ParseErrors;
using testing::S;

// ---- the top level ----------------------------------------------------------

TEST_CASE("a runbook without format, name or steps names what is missing", "[parser][errors]") {
  EXPECT_DIAG(std::string("name: t\n") + kOneStep, "t.yaml:1:1: missing required key 'format'");
  EXPECT_DIAG(std::string("format: 1\n") + kOneStep, "t.yaml:1:1: missing required key 'name'");
  EXPECT_DIAG("format: 1\nname: t\n", "t.yaml:1:1: missing required key 'steps'");
}

TEST_CASE("a bad runbook name is refused", "[parser][errors]") {
  EXPECT_DIAG(std::string("format: 1\nname: My Runbook\n") + kOneStep,
              "t.yaml:2:7: bad name 'My Runbook': use lowercase letters, digits, '-' and '_', "
              "starting with a letter or digit");
}

TEST_CASE("an unknown top-level key gets a suggestion", "[parser][errors]") {
  EXPECT_DIAG(std::string("format: 1\nname: t\ndescripton: x\n") + kOneStep,
              "t.yaml:3:1: unknown key 'descripton' (did you mean 'description'?)");
}

TEST_CASE("format must be 1", "[parser][errors]") {
  EXPECT_DIAG(std::string("format: 2\nname: t\n") + kOneStep,
              "t.yaml:1:9: unsupported format '2' (this engine reads format: 1)");
}

TEST_CASE("steps must be a non-empty list", "[parser][errors]") {
  EXPECT_DIAG("format: 1\nname: t\nsteps: []\n",
              "t.yaml:3:8: steps is empty: a runbook needs at least one step");
  EXPECT_DIAG("format: 1\nname: t\nsteps: {a: 1}\n", "t.yaml:3:8: steps must be a list, got a map");
}

TEST_CASE("an empty file is an empty runbook", "[parser][errors]") {
  EXPECT_DIAG("", "t.yaml:1:1: empty runbook (expected a map with format, name and steps)");
}

TEST_CASE("a top level that is not a map is refused", "[parser][errors]") {
  EXPECT_DIAG("- a\n- b\n",
              "t.yaml:1:1: a runbook must be a map with format, name and steps, got a list");
}

TEST_CASE("a YAML syntax error has line and column", "[parser][errors]") {
  EXPECT_DIAG("format: 1\nname: t\nsteps:\n  - id: a\n    log: [x\n  - id: b\n",
              "t.yaml:6:7: YAML syntax error: end of sequence flow not found");
}

TEST_CASE("a duplicate YAML key is an error (yaml-cpp would keep both)", "[parser][errors]") {
  EXPECT_DIAG(std::string("format: 1\nname: t\nname: u\n") + kOneStep,
              "t.yaml:3:1: duplicate key 'name' (first at line 2)");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    id: b\n"),
              "t.yaml:13:5: duplicate key 'id' (first at line 11)");
}

TEST_CASE("on_failure is rollback or stop", "[parser][errors]") {
  EXPECT_DIAG(std::string("format: 1\nname: t\non_failure: rollbak\n") + kOneStep,
              "t.yaml:3:13: on_failure must be rollback or stop, got 'rollbak' "
              "(did you mean 'rollback'?)");
}

TEST_CASE("lock must be a string and cannot read steps", "[parser][errors]") {
  EXPECT_DIAG(std::string("format: 1\nname: t\nlock: [a]\n") + kOneStep,
              "t.yaml:3:7: 'lock' must be a string, got a list");
  EXPECT_DIAG(std::string("format: 1\nname: t\nlock: \"${{ steps.a.result }}\"\n") + kOneStep,
              "t.yaml:3:8: cannot read step 'a' in template: the lock is taken before any step "
              "runs");
  // Params come after the lock in the file, and a lock may name them.
  EXPECT_DIAG(std::string("format: 1\nname: t\nlock: \"db-${{ params.tagret }}\"\n"
                          "params:\n  target: {type: string}\n") + kOneStep,
              "t.yaml:3:11: unknown param 'tagret' in template (did you mean 'target'?)");
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml",
                         std::string("format: 1\nname: t\nlock: \"db-${{ params.target }}\"\n"
                                     "params:\n  target: {type: string}\n") + kOneStep,
                         testing::TestRegistry(), &diags);
  INFO(testing::Dump(diags));
  REQUIRE(rb != nullptr);
  CHECK(rb->lock == "db-${{ params.target }}");
}

// ---- window -------------------------------------------------------------------

std::string Win(const std::string& window) {
  return "format: 1\nname: t\nwindow: " + window + "\n" + kOneStep;
}

TEST_CASE("a window day must be sun..sat", "[parser][errors][window]") {
  EXPECT_DIAG(Win("{days: [sat, sunday], start: \"02:00\", end: \"04:00\"}"),
              "t.yaml:3:22: unknown day 'sunday' (use sun, mon, tue, wed, thu, fri, sat) "
              "(did you mean 'sun'?)");
}

TEST_CASE("window times are HH:MM", "[parser][errors][window]") {
  EXPECT_DIAG(Win("{start: \"25:00\", end: \"04:00\"}"),
              "t.yaml:3:17: window start must be a time HH:MM (00:00 to 23:59), got '25:00'");
  EXPECT_DIAG(Win("{start: \"02:00\"}"), "t.yaml:3:9: window needs 'end' (HH:MM)");
}

TEST_CASE("a window timezone must exist in the tz database", "[parser][errors][window]") {
  EXPECT_DIAG(Win("{timezone: Asia/Singapur, start: \"02:00\", end: \"04:00\"}"),
              "t.yaml:3:20: unknown timezone 'Asia/Singapur' (did you mean 'Asia/Singapore'?)");
  EXPECT_DIAG(Win("{timezone: ../../etc/passwd, start: \"02:00\", end: \"04:00\"}"),
              "t.yaml:3:20: unknown timezone '../../etc/passwd'");
}

TEST_CASE("an unknown window key gets a suggestion", "[parser][errors][window]") {
  EXPECT_DIAG(Win("{start: \"02:00\", end: \"04:00\", day: [sat]}"),
              "t.yaml:3:40: unknown key 'day' in window (did you mean 'days'?)");
}

// ---- step keys ------------------------------------------------------------------

TEST_CASE("an unknown step key is suggested from step keys", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    retrys: 3\n    log: x\n"),
              "t.yaml:12:5: step 'a': unknown key 'retrys' (did you mean 'retries'?)");
}

TEST_CASE("an argument written beside its action is pointed under it", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: scale-down\n    kube.scale: {conn: cluster, deployment: web}\n"
                "    replica: 0\n"),
              "t.yaml:13:5: step 'scale-down': unknown key 'replica' (did you mean 'replicas'?)");
  EXPECT_DIAG(S("  - id: scale-down\n    kube.scale: {conn: cluster, deployment: web}\n"
                "    replicas: 0\n"),
              "t.yaml:13:5: step 'scale-down': unknown key 'replicas' (an argument of kube.scale: "
              "put it under 'kube.scale:')");
}

TEST_CASE("a step id must be a string", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: [a]\n    log: x\n"),
              "t.yaml:11:9: step '#1': 'id' must be a string, got a list");
}

TEST_CASE("an unknown argument is suggested from the primitive's schema", "[parser][errors][steps]") {
  std::string text = S("  - id: scale-down\n    kube.scale:\n      conn: cluster\n"
                       "      deployment: web\n      replica: 0\n");
  EXPECT_DIAG(text, "t.yaml:15:7: step 'scale-down': kube.scale: unknown argument 'replica' "
                    "(did you mean 'replicas'?)");
  EXPECT_DIAG(text, "t.yaml:12:5: step 'scale-down': kube.scale: missing required argument "
                    "'replicas'");
}

TEST_CASE("an unknown action is suggested from the registry", "[parser][errors][steps]") {
  auto diags = ParseErrors(S("  - id: a\n    kube.scal: {conn: cluster, replicas: 1}\n"));
  INFO(testing::Dump(diags));
  CHECK(HasDiag(diags, "t.yaml:12:5: step 'a': unknown action 'kube.scal' (did you mean "
                       "'kube.scale'?)"));
  CHECK(diags.size() == 1);  // not also "no action"
  EXPECT_DIAG(S("  - id: a\n    lgo: x\n"),
              "t.yaml:12:5: step 'a': unknown action 'lgo' (did you mean 'log'?)");
}

TEST_CASE("a step without an action lists the actions", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    retries: 1\n"),
              "t.yaml:11:5: step 'a': no action (one of: approve, exec, fail, include, kube.scale, "
              "log, lua, pg.compare_counts, sleep)");
}

TEST_CASE("a step with two actions names both", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    log: x\n    sleep: 1s\n"),
              "t.yaml:13:5: step 'a': two actions, 'log' and 'sleep' (a step takes exactly one)");
}

TEST_CASE("a duplicate step id points at the second one", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    log: x\n  - id: a\n    log: y\n"),
              "t.yaml:13:9: step 'a': duplicate step id 'a' (first at line 11)");
}

TEST_CASE("a step id must be a simple name", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: -a\n    log: x\n"),
              "t.yaml:11:9: step '-a': bad id '-a': use letters, digits, '-' and '_', starting "
              "with a letter or digit");
  EXPECT_DIAG(S("  - id: a.b\n    log: x\n"),
              "t.yaml:11:9: step 'a.b': bad id 'a.b': use letters, digits, '-' and '_', starting "
              "with a letter or digit");
}

TEST_CASE("a step without an id is named by its number", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    log: x\n  - log: y\n"),
              "t.yaml:13:5: step '#2': missing required key 'id'");
}

TEST_CASE("a step must be a map", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - just a string\n"),
              "t.yaml:11:5: step '#1': a step must be a map with an id and an action, got a string");
}

TEST_CASE("a bad duration says what durations look like", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    timeout: 5 minutes\n    log: x\n"),
              "t.yaml:12:14: step 'a': 'timeout': bad duration '5 minutes' (use 500ms, 30s, 10m, 2h)");
  EXPECT_DIAG(S("  - id: a\n    retry_delay: {s: 1}\n    log: x\n"),
              "t.yaml:12:18: step 'a': 'retry_delay': bad duration a map (use 500ms, 30s, 10m, 2h)");
  EXPECT_DIAG(S("  - id: a\n    timeout: 0s\n    log: x\n"),
              "t.yaml:12:14: step 'a': 'timeout' must be more than 0");
}

TEST_CASE("retries and concurrency are bounded ints", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    retries: -1\n    log: x\n"),
              "t.yaml:12:14: step 'a': 'retries' must be an int >= 0, got '-1'");
  EXPECT_DIAG(S("  - id: a\n    concurrency: 0\n    log: x\n"),
              "t.yaml:12:18: step 'a': 'concurrency' must be an int >= 1, got '0'");
  EXPECT_DIAG(S("  - id: a\n    retries: \"3\"\n    log: x\n"),
              "t.yaml:12:14: step 'a': 'retries' must be an int >= 0, got '3'");
}

TEST_CASE("idempotent and continue_on_error are bools", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    idempotent: yes\n    log: x\n"),
              "t.yaml:12:17: step 'a': 'idempotent' must be true or false, got 'yes'");
  EXPECT_DIAG(S("  - id: a\n    continue_on_error: 1\n    log: x\n"),
              "t.yaml:12:24: step 'a': 'continue_on_error' must be true or false, got '1'");
}

TEST_CASE("description, approve, when and assert must be strings", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    description: {x: 1}\n    log: x\n"),
              "t.yaml:12:18: step 'a': 'description' must be a string, got a map");
  EXPECT_DIAG(S("  - id: a\n    approve: [ok]\n    log: x\n"),
              "t.yaml:12:14: step 'a': 'approve' must be a string, got a list");
  EXPECT_DIAG(S("  - id: a\n    when: {x: 1}\n    log: x\n"),
              "t.yaml:12:11: step 'a': 'when' must be a string, got a map");
  EXPECT_DIAG(S("  - id: a\n    assert: [1]\n    log: x\n"),
              "t.yaml:12:13: step 'a': 'assert' must be a string, got a list");
}

TEST_CASE("foreach is a list or one template", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    foreach: a, b\n    log: x\n"),
              "t.yaml:12:14: step 'a': 'foreach' must be a list or one '${{ expression }}' that "
              "yields a list, got 'a, b'");
  EXPECT_DIAG(S("  - id: a\n    foreach: \"${{ params.tables }} and ${{ params.tables }}\"\n"
                "    log: x\n"),
              "t.yaml:12:14: step 'a': 'foreach' must be a list or one '${{ expression }}' that "
              "yields a list, got '${{ params.tables }} and ${{ params.tables }}'");
}

TEST_CASE("when is a bare expression, not a template", "[parser][errors][steps]") {
  EXPECT_DIAG(S("  - id: a\n    when: \"x ${{ params.replicas }}\"\n    log: x\n"),
              "t.yaml:12:11: step 'a': 'when' is a bare Lua expression: write it without '${{ }}'");
}

// ---- rollback -------------------------------------------------------------------

TEST_CASE("rollback is auto, none or an action", "[parser][errors][rollback]") {
  EXPECT_DIAG(S("  - id: a\n    rollback: autp\n    log: x\n"),
              "t.yaml:12:15: step 'a': 'rollback' must be auto, none or an action, got 'autp' "
              "(did you mean 'auto'?)");
  EXPECT_DIAG(S("  - id: a\n    rollback: [x]\n    log: x\n"),
              "t.yaml:12:15: step 'a': 'rollback' must be auto, none or an action, got a list");
}

TEST_CASE("a rollback action is validated like a step's", "[parser][errors][rollback]") {
  EXPECT_DIAG(S("  - id: a\n    log: x\n    rollback: {lgo: undo}\n"),
              "t.yaml:13:16: step 'a': rollback: unknown action 'lgo' (did you mean 'log'?)");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    rollback: {log: x, fail: y}\n"),
              "t.yaml:13:24: step 'a': rollback: two actions, 'log' and 'fail' (a rollback takes "
              "exactly one)");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    rollback:\n      exec: {cwd: /}\n"),
              "t.yaml:14:7: step 'a': exec: missing required argument 'argv'");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    rollback: {}\n"),
              "t.yaml:13:15: step 'a': 'rollback' needs an action");
}

}  // namespace
}  // namespace runbook
