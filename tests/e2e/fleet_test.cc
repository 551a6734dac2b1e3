// runbook fleet: one runbook over many targets, in waves, with a failure
// budget; each target an ordinary run in the same state store; run again,
// it finishes what did not.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

// Marks its target, then fails when asked to.
const char* kPerTarget = R"(format: 1
name: per-target
lock: "db:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
  fail: {type: bool, default: false}
steps:
  - id: mark
    exec: {argv: [touch, "${{ params.w }}/${{ params.db }}"]}
    rollback: {exec: {argv: [touch, "${{ params.w }}/${{ params.db }}.undone"]}}
  - id: check
    exec: {argv: [test, "${{ params.fail and 'x' or 'y' }}", "=", "y"]}
)";

const char* kTargets = R"(- {name: a, params: {db: a}}
- {name: b, params: {db: b, fail: true}}
- {name: "-rf", params: {db: 012}}
- {name: d, params: {db: d}}
- {name: e, params: {db: e}}
)";

int RunsOf(const E2e& t, const std::string& runbook) {
  int n = 0;
  for (const Value& r : t.Runs()) n += r["runbook"] == runbook;
  return n;
}

}  // namespace

TEST_CASE(
    "a fleet runs in waves, stops starting targets past its failure budget, and run again "
    "finishes what did not succeed",
    "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", kPerTarget);
  const std::string targets = t.Write("targets.yaml", kTargets);
  const std::vector<std::string> args{"fleet",  "rb.yaml", "--targets", targets,  "-p",
                                      "w=" + w, "--wave",  "1",         "--wave", "50%"};
  CliResult first = t.Run(args);
  INFO(first.All());
  CHECK(first.code == 1);
  CHECK_THAT(first.out, Catch::Contains("5 targets in 3 waves"));
  CHECK_THAT(first.out, Catch::Contains("stopped starting targets: 1 failed (0 tolerated)"));
  CHECK(Exists(w + "/a"));
  CHECK(Exists(w + "/b"));
  CHECK(Exists(w + "/b.undone"));
  CHECK_FALSE(Exists(w + "/012"));  // "-rf" is a name, not an option
  CHECK_FALSE(Exists(w + "/e"));
  CHECK(RunsOf(t, "per-target") == 2);
  // The failed target is named with its run and step in the summary.
  const std::string b_run = t.LastRunId();
  CHECK_THAT(first.out, Catch::Contains("b                        failed         " + b_run));
  CHECK(t.RunStatus(b_run)["status"] == "rolled_back");
  CHECK(t.Steps(b_run)["check"]["status"] == "failed");
  CHECK_THAT(first.out, Catch::Contains("-rf                      not started"));
  // --status: the fleet as the store has it; nothing starts.
  std::vector<std::string> status_args = args;
  status_args.push_back("--status");
  CliResult status = t.Run(status_args);
  INFO(status.All());
  CHECK(status.code == 0);
  CHECK_THAT(status.out,
             Catch::Contains("b                        rolled_back            " + b_run));
  CHECK_THAT(status.out, Catch::Contains("check"));
  CHECK_THAT(status.out, Catch::Contains("-rf                      not started"));
  CHECK(RunsOf(t, "per-target") == 2);

  // Fixed, and run again: a is not run twice; b starts again; the rest run.
  t.Write("targets.yaml", std::string(R"(- {name: a, params: {db: a}}
- {name: b, params: {db: b}}
- {name: "-rf", params: {db: 012}}
- {name: d, params: {db: d}}
- {name: e, params: {db: e}}
)"));
  CliResult again = t.Run(args);
  INFO(again.All());
  CHECK(again.code == 0);
  CHECK_THAT(again.out, Catch::Contains("skipped"));
  CHECK(Exists(w + "/012"));  // a string param as written, not the number 12
  CHECK(Exists(w + "/e"));
  CHECK(RunsOf(t, "per-target") == 6);  // a once, b twice, -rf, d, e
  CliResult third = t.Run(args);
  CHECK(third.code == 0);
  CHECK(RunsOf(t, "per-target") == 6);  // all done: nothing runs

  // Another job (a common param changed): what succeeded before runs again.
  std::filesystem::create_directories(w + "2");
  std::vector<std::string> other = args;
  other[5] = "w=" + w + "2";
  CliResult next = t.Run(other);
  INFO(next.All());
  CHECK(next.code == 0);
  CHECK(Exists(w + "2/a"));
  CHECK(RunsOf(t, "per-target") == 11);
}

TEST_CASE("a fleet does not start again a target whose rollback kept steps", "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  // `mark` cannot be undone (no rollback action): the failed run keeps it.
  t.Write("keep.yaml", R"(format: 1
name: keep
lock: "db:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
steps:
  - id: mark
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}"]}
  - id: check
    exec: {argv: ["false"]}
)");
  const std::string targets = t.Write("targets.yaml", "a: {db: a}\n");
  const std::vector<std::string> args{"fleet", "keep.yaml", "--targets", targets, "-p", "w=" + w};
  CliResult first = t.Run(args);
  INFO(first.All());
  CHECK(first.code == 1);
  CliResult again = t.Run(args);
  INFO(again.All());
  CHECK(again.code == 6);
  CHECK_THAT(again.out, Catch::Contains("needs a human"));
  CHECK(RunsOf(t, "keep") == 1);
}

TEST_CASE("a fleet runs targets at once up to --max-concurrency", "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  // Each target waits (10 s at most) until both have started: it succeeds
  // only if the two run at the same time.
  t.Write("meet.yaml", R"(format: 1
name: meet
lock: "db:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
steps:
  - id: arrive
    exec: {argv: [touch, "${{ params.w }}/${{ params.db }}.start"]}
  - id: meet
    exec:
      argv: [timeout, "10", bash, -c,
             "until [ $(ls ${{ params.w }} | wc -l) -ge 2 ]; do sleep 0.05; done"]
)");
  const std::string targets = t.Write("targets.json", R"({"x": {"db": "x"}, "y": {"db": "y"}})");
  CliResult r =
      t.Run({"fleet", "meet.yaml", "--targets", targets, "-p", "w=" + w, "--max-concurrency", "2"});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(RunsOf(t, "meet") == 2);
}

TEST_CASE("a fleet with bad input says where and starts nothing", "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", kPerTarget);
  struct Case {
    const char* targets;
    std::vector<std::string> extra;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"- {name: a, params: {db: a}}\n- {name: a, params: {db: b}}\n",
       {},
       "targets.yaml:2:10: target 'a' is named twice"},
      {"- {name: a, params: {db: [1, 2]}}\n", {}, "target 'a': invalid params"},
      {"- {name: a, params: {db: a, db: b}}\n", {}, "param 'db' is given twice"},
      {"- {name: a, params: {db: a}}\n", {"--wave", "1", "--wave", "bogus"}, "--wave bogus"},
      {"- {name: a, params: {db: a, fail: maybe}}\n", {}, "target 'a': invalid params"},
      {"- {name: a, params: {db: a, nope: 1}}\n", {}, "target 'a': invalid params"},
      {"- {name: a, parms: {db: a}}\n", {}, "unknown target field 'parms'"},
      {"[]\n", {}, "no targets"},
      {"- {name: a, params: {db: a}}\n", {"--wave", "0"}, "--wave 0: a count"},
  };
  for (const Case& c : cases) {
    const std::string targets = t.Write("targets.yaml", c.targets);
    std::vector<std::string> args{"fleet", "rb.yaml", "--targets", targets, "-p", "w=" + w};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    CliResult r = t.Run(args);
    INFO(c.targets << r.All());
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.says));
  }
  // Targets that share one run lock cannot run at once: refused, not queued.
  t.Write("fixed.yaml", std::string(kPerTarget)
                            .replace(std::string(kPerTarget).find("lock: "),
                                     strlen("lock: \"db:${{ params.db }}\""), "lock: shared"));
  CliResult r = t.Run({"fleet", "fixed.yaml", "--targets", t.P("targets.yaml"), "-p", "w=" + w,
                       "--max-concurrency", "3"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("takes the run lock 'shared'"));
  CHECK(t.Runs().empty());
  CHECK(std::filesystem::is_empty(w));
}

}  // namespace runbook::e2e
