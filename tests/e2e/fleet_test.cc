// runbook fleet: one runbook over many targets, in waves, with a failure
// budget; each target an ordinary run in the same state store; run again,
// it finishes what did not.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

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

TEST_CASE("a fleet with --pause-between-waves starts one wave per command and says which waits",
          "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", kPerTarget);
  const std::string targets = t.Write("targets.yaml", R"(- {name: a, params: {db: a}}
- {name: b, params: {db: b}}
- {name: c, params: {db: c}}
- {name: d, params: {db: d}}
)");
  const std::vector<std::string> args{"fleet",
                                      "rb.yaml",
                                      "--targets",
                                      targets,
                                      "-p",
                                      "w=" + w,
                                      "--wave",
                                      "1",
                                      "--wave",
                                      "2",
                                      "--pause-between-waves"};
  // A rehearsal fleet rehearses every target anew: it would never pass wave 1.
  std::vector<std::string> rehearse = args;
  rehearse.push_back("--dry-run");
  CliResult refused = t.Run(rehearse);
  CHECK(refused.code == 2);
  CHECK_THAT(refused.err, Catch::Contains("--pause-between-waves with --dry-run"));
  CHECK(RunsOf(t, "per-target") == 0);

  CliResult canary = t.Run(args);
  INFO(canary.All());
  CHECK(canary.code == 3);
  CHECK_THAT(canary.out, Catch::Contains("wave 1 done; wave 2 waits"));
  CHECK_THAT(canary.out, Catch::Contains("b                        next wave"));
  CHECK(Exists(w + "/a"));
  CHECK_FALSE(Exists(w + "/b"));
  CHECK(RunsOf(t, "per-target") == 1);

  // Resumed by its id, the fleet starts its next wave.
  const std::string id = FleetIdOf(canary.out);
  CHECK(t.RunStatus(id)["status"] == "paused");
  CHECK(t.RunStatus(id)["targets"][1]["outcome"] == "next wave");
  CliResult second = t.Run({"resume", id});
  INFO(second.All());
  CHECK(second.code == 3);
  CHECK_THAT(second.out, Catch::Contains("wave 2 done; wave 3 waits"));
  CHECK(Exists(w + "/b"));
  CHECK(Exists(w + "/c"));
  CHECK_FALSE(Exists(w + "/d"));
  CHECK(RunsOf(t, "per-target") == 3);

  CliResult last = t.Run(args);
  INFO(last.All());
  CHECK(last.code == 0);
  CHECK(Exists(w + "/d"));
  CHECK(RunsOf(t, "per-target") == 4);
  CliResult done = t.Run(args);  // nothing started: no wave waits
  CHECK(done.code == 0);
  CHECK(done.out.find("waits") == std::string::npos);
  CHECK(RunsOf(t, "per-target") == 4);
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
  // So do two targets whose lock, per target, comes out the same.
  const std::string same = t.Write("same.yaml",
                                   "- {name: a, params: {db: x}}\n"
                                   "- {name: b, params: {db: y}}\n"
                                   "- {name: c, params: {db: x}}\n");
  r = t.Run({"fleet", "rb.yaml", "--targets", same, "-p", "w=" + w, "--max-concurrency", "2"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("targets 'a' and 'c' take the same run lock 'db:x'") &&
                        Catch::Contains("nothing was started"));
  // One at a time they can: each waits for nothing.
  r = t.Run({"fleet", "rb.yaml", "--targets", same, "-p", "w=" + w, "--max-concurrency", "1",
             "--dry-run"});
  CHECK(r.code == 0);
  CHECK(RunsOf(t, "per-target") == 3);
  CHECK(std::filesystem::is_empty(w));
}

}  // namespace runbook::e2e

namespace runbook::e2e {
namespace {

// Each target acts once: mkdir fails if its directory exists, so a step
// done twice fails its run; `creates:` lets a resume see it was done.
const char* kOnceEach = R"(format: 1
name: once-each
lock: "t:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
steps:
  - id: act
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}"], creates: "${{ params.w }}/${{ params.db }}"}
  - id: settle
    exec: {argv: [sleep, "0.2"]}
    idempotent: true
  - id: done
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}.done"],
           creates: "${{ params.w }}/${{ params.db }}.done"}
)";

// The fleet's own children: the engines of its targets (a command of
// theirs killed fails its step, which is another test's matter).
std::vector<pid_t> Engines(pid_t fleet) {
  std::vector<pid_t> out;
  for (pid_t p : Descendants(fleet)) {
    const std::string stat = ReadFile("/proc/" + std::to_string(p) + "/stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    long ppid = 0;
    if (rest >> state >> ppid && ppid == fleet) out.push_back(p);
  }
  return out;
}

}  // namespace

TEST_CASE(
    "a fleet of 100 targets whose runs are killed at random: run again, every target ends "
    "exactly once and the store is intact",
    "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", kOnceEach);
  std::string list;
  for (int i = 0; i < 100; ++i) {
    list += "- {name: t" + std::to_string(i) + ", params: {db: d" + std::to_string(i) + "}}\n";
  }
  const std::string targets = t.Write("targets.yaml", list);
  const std::vector<std::string> args{"fleet",
                                      "rb.yaml",
                                      "--targets",
                                      targets,
                                      "-p",
                                      "w=" + w,
                                      "--wave",
                                      "1",
                                      "--wave",
                                      "10%",
                                      "--max-concurrency",
                                      "8",
                                      "--max-failures",
                                      "100"};
  std::mt19937_64 rng(CrashSeed("fleet kills"));
  int kills = 0, rounds = 0;
  std::string killed_rounds;
  // Two rounds lose engines to SIGKILL, at any instant of their runs (the
  // second resumes the fleet the first started) ...
  std::string fleet_id;
  for (int k = 0; k < 2; ++k) {
    Background fleet(t.Spec(k == 0 ? args : std::vector<std::string>{"resume", fleet_id}));
    while (fleet.Running()) {
      fleet.Drain(std::chrono::milliseconds(100 + rng() % 400));
      std::vector<pid_t> below = Engines(fleet.pid());
      if (below.empty()) continue;
      if (kill(below[rng() % below.size()], SIGKILL) == 0) ++kills;
    }
    REQUIRE(fleet.WaitExit(std::chrono::seconds(120)));
    killed_rounds += fleet.out() + fleet.err();
    if (k == 0) fleet_id = FleetIdOf(fleet.out());
    REQUIRE_FALSE(fleet_id.empty());
  }
  INFO(killed_rounds);
  // ... and resuming the fleet finishes what they left.
  CliResult last;
  for (; rounds < 4; ++rounds) {
    last = t.Run({"resume", fleet_id}, {}, std::chrono::seconds(120));
    if (last.code == 0) break;
  }
  printf("fleet kill test: %d engines killed in 2 rounds, %d more rounds to finish\n", kills,
         rounds + 1);
  INFO(last.All());
  INFO("kills: " << kills << ", rounds: " << rounds);
  CHECK(kills >= 5);
  CHECK(last.code == 0);
  CHECK(rounds < 2);
  // Every target once: one run per target, resumed as often as it was
  // killed, succeeded; each mkdir ran once (a second would have failed it).
  CHECK(RunsOf(t, "once-each") == 100);
  int done = 0;
  for (const Value& r : t.Runs()) done += r["status"] == "succeeded" && !r.value("fleet", false);
  CHECK(done == 100);
  for (int i = 0; i < 100; ++i) {
    CHECK(Exists(w + "/d" + std::to_string(i) + ".done"));
  }
  CHECK(IntegrityCheck(t.state()) == "ok");
  // The fleet's record agrees: every target succeeded, by the run that did it.
  const Value fleet = t.RunStatus(fleet_id);
  CHECK(fleet["status"] == "succeeded");
  REQUIRE(fleet["targets"].size() == 100);
  for (const Value& target : fleet["targets"]) {
    INFO(target.dump());
    CHECK(target["outcome"] == "succeeded");
    CHECK(target["run_status"] == "succeeded");
  }
  CliResult status = t.Run({"fleet", "rb.yaml", "--targets", targets, "-p", "w=" + w, "--status"});
  CHECK(status.code == 0);
  CHECK(status.out.find("not started") == std::string::npos);
}

}  // namespace runbook::e2e

namespace runbook::e2e {
namespace {

// A target fails while its marker file exists; the token is a secret.
const char* kWithSecret = R"(format: 1
name: with-secret
lock: "s:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
  token: {type: string, secret: true}
steps:
  - id: mark
    exec: {argv: [touch, "${{ params.w }}/${{ params.db }}"]}
    rollback: {exec: {argv: [rm, -f, "${{ params.w }}/${{ params.db }}"]}}
  - id: check
    exec: {argv: [test, "!", -e, "${{ params.w }}/fail-${{ params.db }}"]}
)";

Value TargetOf(const Value& fleet, const std::string& name) {
  for (const Value& t : fleet["targets"]) {
    if (t["target"] == name) return t;
  }
  return Value();
}

}  // namespace

TEST_CASE(
    "a fleet has a record of its own: status, a report linking each target's change record, "
    "and resume FLEET finishes what did not, with its secrets given again",
    "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", kWithSecret);
  std::ofstream(w + "/fail-b").put('x');
  const std::string targets = t.Write("targets.yaml", R"(- {name: a, params: {db: a}}
- {name: b, params: {db: b}}
- {name: "-c", params: {db: c}}
)");
  CliResult first = t.Run({"fleet", "rb.yaml", "--targets", targets, "-p", "w=" + w, "-p",
                           "token=s3cret-fleet-token", "--wave", "1", "--wave", "1"});
  INFO(first.All());
  CHECK(first.code == 1);
  const std::string id = FleetIdOf(first.out);
  REQUIRE_FALSE(id.empty());
  CHECK_THAT(first.out, Catch::Contains("runbook report " + id));

  // status FLEET: each target, what became of it, its run.
  Value fleet = t.RunStatus(id);
  INFO(fleet.dump(2));
  CHECK(fleet["status"] == "failed");
  CHECK(fleet["targets"].size() == 3);
  CHECK(TargetOf(fleet, "a")["outcome"] == "succeeded");
  CHECK(TargetOf(fleet, "a")["wave"] == 1);
  const std::string a_run = TargetOf(fleet, "a")["run"].get<std::string>();
  const std::string b_run = TargetOf(fleet, "b")["run"].get<std::string>();
  CHECK(TargetOf(fleet, "b")["outcome"] == "failed");
  CHECK(TargetOf(fleet, "b")["failed_step"] == "check");
  CHECK(TargetOf(fleet, "b")["run_status"] == "rolled_back");
  CHECK(TargetOf(fleet, "-c")["outcome"] == "not started");
  CHECK(TargetOf(fleet, "-c")["run"] == "");
  CliResult text = t.Run({"status", id});
  CHECK(text.code == 0);
  CHECK_THAT(text.out, Catch::Contains("fleet " + id) && Catch::Contains(b_run) &&
                           Catch::Contains("not started"));
  // The list says which record is a fleet.
  CliResult list = t.Run({"status"});
  CHECK_THAT(list.out, Catch::Contains(id + "  failed") && Catch::Contains("(fleet)"));

  // report FLEET -o: the fleet's change record, each target's beside it, linked.
  const std::string dir = t.P("reports");
  std::filesystem::create_directories(dir);
  CliResult html = t.Run({"report", id, "--format", "html", "-o", dir + "/fleet.html"});
  INFO(html.All());
  CHECK(html.code == 0);
  const std::string page = ReadFile(dir + "/fleet.html");
  CHECK_THAT(page, Catch::Contains("<a href=\"" + a_run + ".html\">") &&
                       Catch::Contains("<a href=\"" + b_run + ".html\">") &&
                       Catch::Contains("--targets " + targets) &&
                       Catch::Contains("1 failed, 1 not started, 1 succeeded"));
  CHECK_THAT(ReadFile(dir + "/" + b_run + ".html"), Catch::Contains(id));  // and back
  CHECK(Exists(dir + "/" + a_run + ".html"));
  CliResult md = t.Run({"report", id});
  CHECK_THAT(md.out, Catch::Contains("[" + b_run + "](" + b_run + ".md)"));
  CliResult json = t.Run({"report", id, "--format", "json"});
  CHECK(Value::parse(json.out)["targets"][0]["report"] == a_run + ".json");

  // The secret reached the targets, never the store, a report or the output.
  CHECK(Exists(w + "/a"));
  CHECK(ReadFile(t.state()).find("s3cret-fleet-token") == std::string::npos);
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    CHECK(ReadFile(f.path()).find("s3cret-fleet-token") == std::string::npos);
  }
  CHECK(first.All().find("s3cret-fleet-token") == std::string::npos);

  // A fleet is not a run: rollback and approve say so and change nothing.
  CliResult rollback = t.Run({"rollback", id});
  CHECK(rollback.code == 2);
  CHECK_THAT(rollback.err, Catch::Contains("is a fleet"));
  CliResult approve = t.Run({"approve", id, "mark"});
  CHECK(approve.code == 2);
  CHECK_THAT(approve.err, Catch::Contains("is a fleet"));

  // Fixed; resumed without the secret: refused, nothing started.
  std::filesystem::remove(w + "/fail-b");
  CliResult bare = t.Run({"resume", id});
  INFO(bare.All());
  CHECK(bare.code == 2);
  CHECK_THAT(bare.err, Catch::Contains("param 'token' holds a secret and was not stored"));
  // Nor with another job's params: the resumed fleet is the one started.
  CliResult other = t.Run({"resume", id, "-p", "token=s3cret-fleet-token", "-p", "w=/elsewhere"});
  CHECK(other.code == 2);
  CHECK_THAT(other.err, Catch::Contains("-p w: a resumed fleet takes only the params its record "
                                        "could not keep"));
  // Nor with the runbook changed, unless told.
  t.Write("rb.yaml", std::string(kWithSecret) + "# edited\n");
  CliResult changed = t.Run({"resume", id, "-p", "token=s3cret-fleet-token"});
  CHECK(changed.code == 2);
  CHECK_THAT(changed.err, Catch::Contains("changed since the fleet started"));
  CHECK(RunsOf(t, "with-secret") == 2);
  // With it: b runs again (its rollback undid everything), -c runs, a does
  // not (this fleet ran it to success, under the runbook as it was).
  CliResult resumed = t.Run({"resume", id, "-p", "token=s3cret-fleet-token", "--allow-changed"},
                            {{"USER", "dora"}});
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  CHECK(RunsOf(t, "with-secret") == 4);
  CHECK(Exists(w + "/c"));
  fleet = t.RunStatus(id);
  CHECK(fleet["status"] == "succeeded");
  CHECK(TargetOf(fleet, "a")["outcome"] == "succeeded");
  CHECK(TargetOf(fleet, "a")["run"] == a_run);  // kept, not re-recorded as skipped
  CHECK(TargetOf(fleet, "b")["outcome"] == "succeeded");
  CHECK(TargetOf(fleet, "b")["run"] != b_run);
  CHECK(TargetOf(fleet, "-c")["outcome"] == "succeeded");
  CHECK(ReadFile(t.state()).find("s3cret-fleet-token") == std::string::npos);
  // Who resumed it, and with what, is in its change record.
  const Value report = Value::parse(t.Run({"report", id, "--format", "json"}).out);
  REQUIRE(report["resumed"].size() == 1);
  CHECK_THAT(report["resumed"][0]["note"].get<std::string>(),
             Catch::StartsWith("resumed by dora@") &&
                 Catch::Contains("with the runbook changed (--allow-changed"));
  // A target's run names its fleet.
  const Value b_report = Value::parse(t.Run({"report", b_run, "--format", "json"}).out);
  CHECK(b_report["fleet"] == id);
  CHECK(b_report["fleet_target"] == "b");
  // `last` is a run, not the fleet.
  CliResult last = t.Run({"status", "last"});
  CHECK_THAT(last.err, Catch::Contains("is run"));
  CHECK_THAT(last.out, Catch::StartsWith("run "));
  // Done: resuming it again starts nothing.
  CliResult again = t.Run({"resume", id, "-p", "token=s3cret-fleet-token"});
  CHECK(again.code == 0);
  CHECK_THAT(again.out, Catch::Contains("nothing to resume"));
  CHECK(RunsOf(t, "with-secret") == 4);

  // A target whose own params held a secret cannot be resumed from the
  // record (one -p cannot give each target its own): refused, nothing runs.
  std::ofstream(w + "/fail-x").put('x');
  const std::string own = t.Write("own.yaml", "- {name: x, params: {db: x, token: own-s3cret}}\n");
  CliResult with_own = t.Run({"fleet", "rb.yaml", "--targets", own, "-p", "w=" + w});
  CHECK(with_own.code == 1);
  CHECK(ReadFile(t.state()).find("own-s3cret") == std::string::npos);
  std::filesystem::remove(w + "/fail-x");
  CliResult own_resume =
      t.Run({"resume", FleetIdOf(with_own.out), "-p", "token=own-s3cret", "--allow-changed"});
  CHECK(own_resume.code == 2);
  CHECK_THAT(own_resume.err, Catch::Contains("target 'x': its param 'token' held a secret"));
  CHECK(RunsOf(t, "with-secret") == 5);
}

TEST_CASE("a fleet whose own process was killed shows interrupted, and resumes", "[e2e][fleet]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", R"(format: 1
name: slow
lock: "slow:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
  token: {type: string, secret: true}
steps:
  - id: act
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}"], creates: "${{ params.w }}/${{ params.db }}"}
  - id: wait
    exec: {argv: [sleep, "1"]}
    idempotent: true
)");
  const std::string targets = t.Write("targets.yaml",
                                      "- {name: a, params: {db: a}}\n"
                                      "- {name: b, params: {db: b}}\n");
  Background fleet(t.Spec(
      {"fleet", "rb.yaml", "--targets", targets, "-p", "w=" + w, "-p", "token=argv-s3cret"}));
  // Killed while its first target runs (that run goes on: its own group).
  for (int i = 0; i < 100 && !Exists(w + "/a"); ++i) {
    fleet.Drain(std::chrono::milliseconds(50));
  }
  REQUIRE(Exists(w + "/a"));
  fleet.Drain(std::chrono::milliseconds(100));
  // The secret reaches each target's run on stdin, never in an argv.
  const std::vector<pid_t> below = Descendants(fleet.pid());
  CHECK_FALSE(below.empty());
  for (pid_t p : below) {
    CHECK(ReadFile("/proc/" + std::to_string(p) + "/cmdline").find("argv-s3cret") ==
          std::string::npos);
  }
  const std::string id = FleetIdOf(fleet.out());
  REQUIRE_FALSE(id.empty());
  kill(fleet.pid(), SIGKILL);
  REQUIRE(fleet.WaitExit(std::chrono::seconds(10)));
  CHECK(t.RunStatus(id)["status"] == "interrupted");
  // Once the orphaned target's run is over, resume finishes the fleet.
  auto a_running = [&] {
    for (const Value& r : t.Runs()) {
      if (r["runbook"] == "slow" && !r.value("fleet", false)) return r["status"] == "running";
    }
    return false;
  };
  for (int i = 0; i < 100 && a_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CliResult resumed = t.Run({"resume", id, "-p", "token=argv-s3cret"});
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  const Value record = t.RunStatus(id);
  CHECK(record["status"] == "succeeded");
  CHECK(TargetOf(record, "a")["outcome"] == "succeeded");
  CHECK(TargetOf(record, "b")["outcome"] == "succeeded");
  CHECK(RunsOf(t, "slow") == 2);  // a's run counted once: not started again
}

}  // namespace runbook::e2e

namespace runbook::e2e {

TEST_CASE(
    "a fleet with --approve-waves stops at a gate before each later wave until runbook approve, "
    "or waits for it from another process with --wait-for-approval",
    "[e2e][fleet][approve]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", kPerTarget);
  const std::string targets = t.Write("targets.yaml",
                                      "- {name: a, params: {db: a}}\n"
                                      "- {name: b, params: {db: b}}\n"
                                      "- {name: c, params: {db: c}}\n");
  const std::vector<std::string> args{"fleet",  "rb.yaml", "--targets",      targets,
                                      "-p",     "w=" + w,  "--wave",         "1",
                                      "--wave", "1",       "--approve-waves"};
  // A rehearsal passes the gates, saying where a real fleet would wait.
  std::vector<std::string> rehearse = args;
  rehearse.push_back("--dry-run");
  CliResult rehearsal = t.Run(rehearse);
  INFO(rehearsal.All());
  CHECK(rehearsal.code == 0);
  CHECK_THAT(rehearsal.out, Catch::Contains("a real fleet would wait here for: runbook approve"));

  CliResult first = t.Run(args);
  INFO(first.All());
  CHECK(first.code == 3);
  const std::string id = FleetIdOf(first.out);
  CHECK_THAT(first.out,
             Catch::Contains("wave 2 waits for approval: runbook approve " + id + " wave-2"));
  CHECK(Exists(w + "/a"));
  CHECK_FALSE(Exists(w + "/b"));
  Value fleet = t.RunStatus(id);
  CHECK(fleet["status"] == "paused");
  REQUIRE(fleet["gates"].size() == 1);
  CHECK(fleet["gates"][0]["gate"] == "wave-2");
  CHECK(fleet["gates"][0]["status"] == "waiting");
  CHECK(fleet["targets"].size() == 3);  // a gate is not a target
  // Only a waiting gate of the fleet can be approved.
  CliResult wrong = t.Run({"approve", id, "wave-3"});
  CHECK(wrong.code == 2);
  CHECK_THAT(wrong.err, Catch::Contains("is a fleet with no gate 'wave-3' waiting"));
  // Not approved: resuming stops at the same gate, starting nothing.
  CliResult still = t.Run({"resume", id});
  CHECK(still.code == 3);
  CHECK_FALSE(Exists(w + "/b"));

  CliResult ok = t.Run({"approve", id, "wave-2", "--by", "bob"});
  INFO(ok.All());
  CHECK(ok.code == 0);
  // Resumed with a wait: wave 2 runs, and the fleet waits at wave 3's gate
  // until another process approves it.
  Background resumed(t.Spec({"resume", id, "--wait-for-approval", "2m"}));
  bool waiting = false;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       !waiting && std::chrono::steady_clock::now() < end && resumed.Running();) {
    resumed.Drain(std::chrono::milliseconds(50));
    waiting = resumed.out().find("wave 3 waits for approval") != std::string::npos;
  }
  INFO(resumed.out() << resumed.err());
  REQUIRE(waiting);
  CHECK(Exists(w + "/b"));
  CHECK_FALSE(Exists(w + "/c"));
  CHECK(t.Run({"approve", id, "wave-3", "--by", "carol"}).code == 0);
  REQUIRE(resumed.WaitExit(std::chrono::seconds(30)));
  resumed.Drain();
  CHECK_THAT(resumed.out(), Catch::Contains("wave 3 approved by carol"));
  CHECK(Exists(w + "/c"));
  fleet = t.RunStatus(id);
  CHECK(fleet["status"] == "succeeded");
  // Who approved each wave is in the fleet's change record.
  const Value report = Value::parse(t.Run({"report", id, "--format", "json"}).out);
  REQUIRE(report["approvals"].size() == 2);
  CHECK(report["approvals"][0]["gate"] == "wave-2");
  CHECK(report["approvals"][0]["by"] == "bob");
  CHECK(report["approvals"][1]["by"] == "carol");
  CHECK(report["targets"].size() == 3);
}

}  // namespace runbook::e2e
