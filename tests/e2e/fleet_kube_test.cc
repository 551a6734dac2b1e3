// runbook fleet --executor kube: each target a Kubernetes Job (the real
// kubectl, against the API simulator, whose Jobs annotated
// sim.runbook/run=local run their pod's command as a process here), the
// state shared in PostgreSQL. A pod lost with its node is made again by the
// Job and resumes its run: one run per target, each step acting once.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <system_error>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/engine/state_test_util.h"
#include "tests/fixtures/kube_fixture.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

// `first` and `last` are not idempotent (mkdir fails the second time);
// `wait` is, and is where a pod gets lost.
const char* kSlow = R"(format: 1
name: kube-target
lock: "db:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
  secs: {type: string, default: "0"}
  fail: {type: bool, default: false}
  mark: {type: string, env: KUBE_TEST_MARK, default: none}
steps:
  - id: marked
    exec: {argv: [touch, "${{ params.w }}/${{ params.db }}.${{ params.mark }}"]}
  - id: first
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}.first"]}
    rollback: {exec: {argv: [touch, "${{ params.w }}/${{ params.db }}.undone"]}}
  - id: wait
    exec:
      argv: [sh, -c, 'touch "$1" && sleep "$2"', sh, "${{ params.w }}/${{ params.db }}.waiting",
             "${{ params.secs }}"]
    idempotent: true
  - id: last
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}.last"]}
  - id: check
    exec: {argv: [test, "${{ params.fail and 'x' or 'y' }}", "=", "y"]}
)";

struct KubeFleet {
  testing::PgTestDb state{testing::BlueServer(), "kube_fleet_state"};
  E2e t{testing::PostgresUri(state)};
  const testing::KubeSim& sim = testing::TheKubeSim();
  std::string w = t.P("w");

  KubeFleet() {
    sim.Reset();
    std::filesystem::create_directories(w);
    t.Write("rb.yaml", kSlow);
    // The state store's URI as the pods reach it, in a Secret.
    sim.Kubectl(
        {"create", "secret", "generic", "runbook-state", "--from-literal=uri=" + t.state()});
  }
  // The runbook the pods laid out on this machine (/tmp/runbook-fleet/<hash>)
  // goes with the test.
  ~KubeFleet() {
    const std::string text = ReadFile(t.P("rb.yaml"));
    std::error_code ec;
    for (const auto& d : std::filesystem::directory_iterator("/tmp/runbook-fleet", ec)) {
      if (ReadFile(d.path().string() + "/rb.yaml") == text) {
        std::filesystem::remove_all(d.path(), ec);
      }
    }
  }
  std::map<std::string, std::string> Env() const {
    return {{"KUBECONFIG", sim.kubeconfig},
            {"RUNBOOK_LEASE_SECONDS", "3"},
            {"KUBE_TEST_MARK", "from-env"}};
  }
  std::vector<std::string> Args(const std::string& targets, std::vector<std::string> more) const {
    std::vector<std::string> args{"fleet",
                                  "rb.yaml",
                                  "--targets",
                                  targets,
                                  "-p",
                                  "w=" + w,
                                  "--executor",
                                  "kube",
                                  "--image",
                                  "example.org/runbook:test",
                                  "--pod-command",
                                  RUNBOOK_BINARY,
                                  "--kube-context",
                                  sim.context,
                                  "--state-secret",
                                  "runbook-state",
                                  "--pod-annotation",
                                  "sim.runbook/run=local"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }
  // The runs of the targets (not the fleets' records).
  int Runs() const { return RunsOf(t, "kube-target"); }
};

}  // namespace

TEST_CASE(
    "a fleet with --executor kube runs each target as a Job whose pod runs the engine against "
    "the shared store; no secret on the Jobs; a failed target stops the fleet past its budget",
    "[e2e][kube][postgres][fleet]") {
  KubeFleet k;
  const std::string targets = k.t.Write("targets.yaml",
                                        "- {name: a, params: {db: a}}\n"
                                        "- {name: \"-rf\", params: {db: dash}}\n"
                                        "- {name: b, params: {db: b, fail: true}}\n"
                                        "- {name: c, params: {db: c}}\n"
                                        "- {name: d, params: {db: d}}\n");
  CliResult r = k.t.Run(k.Args(targets, {"--max-concurrency", "2", "--wave", "2", "--wave", "1"}),
                        k.Env(), std::chrono::seconds(120));
  INFO(r.All());
  CHECK(r.code == 1);
  const std::string id = FleetIdOf(r.out);
  REQUIRE(!id.empty());
  // Waves: a and -rf, then b (fails: the budget of 0 is spent), c and d
  // are not started.
  CHECK(Exists(k.w + "/a.last"));
  CHECK(Exists(k.w + "/dash.last"));  // a name starting with '-' is not a flag
  CHECK(Exists(k.w + "/a.from-env"));  // a param's env: as the fleet's machine has it
  CHECK(Exists(k.w + "/b.first"));
  CHECK(Exists(k.w + "/b.undone"));  // b's run rolled back, in its pod
  CHECK_FALSE(Exists(k.w + "/c.first"));
  CHECK(k.Runs() == 3);
  const Value fleet = k.t.RunStatus(id);
  INFO(fleet.dump(2));
  REQUIRE(fleet["targets"].size() == 5);
  CHECK(fleet["targets"][0]["outcome"] == "succeeded");
  CHECK(fleet["targets"][2]["outcome"] == "failed");
  CHECK(fleet["targets"][2]["failed_step"] == "check");
  CHECK(fleet["targets"][3]["outcome"] == "not started");
  // One Job per started target, its pod's engine the one that ran it.
  const Value jobs = k.sim.Objects("batch/jobs");
  REQUIRE(jobs.size() == 3);
  const std::string all =
      jobs.dump() + k.sim.Objects("/pods").dump() + k.sim.Objects("/configmaps").dump();
  for (const Value& j : jobs) {
    CHECK(j["metadata"]["labels"]["runbook.dev/fleet"] == id);
    CHECK(j["spec"]["template"]["spec"]["restartPolicy"] == "Never");
    const Value& c = j["spec"]["template"]["spec"]["containers"][0];
    CHECK(c["image"] == "example.org/runbook:test");
    CHECK(c["command"][1] == "fleet-target");
  }
  // The state's password is on no Job, pod or ConfigMap; the targets'
  // params Secrets are gone once their Jobs ended.
  CHECK(all.find(k.state.server().password) == std::string::npos);
  // The runbook's sources and the params were in Secrets, gone with the
  // fleet's end and the Jobs'; no ConfigMap was made.
  for (const Value& s : k.sim.Objects("/secrets")) {
    CHECK(s["metadata"]["name"] == "runbook-state");
  }
  CHECK(k.sim.Objects("/configmaps").empty());
  // Run again, the fleet skips what succeeded and starts the rest.
  CliResult again =
      k.t.Run(k.Args(targets, {"--max-failures", "1"}), k.Env(), std::chrono::seconds(120));
  INFO(again.All());
  // b's rollback kept steps (wait, last: no undo): a human decides.
  CHECK(again.code == 6);
  CHECK_THAT(again.out, Catch::Contains("needs a human"));
  CHECK(Exists(k.w + "/c.last"));
  CHECK(Exists(k.w + "/d.last"));
  CHECK_THAT(again.out, Catch::Contains("skipped"));
  // A state Secret that is not there, or lacks its key: said before
  // anything starts (no fleet, no Job).
  const size_t jobs_before = k.sim.Objects("batch/jobs").size();
  const size_t fleets_before = k.t.Runs().size();
  for (const char* bad : {"nope", "runbook-state/nokey"}) {
    std::vector<std::string> args = k.Args(targets, {});
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--state-secret") args[i + 1] = bad;
    }
    CliResult refused = k.t.Run(args, k.Env());
    INFO(refused.All());
    CHECK(refused.code == 2);
    CHECK_THAT(refused.err, Catch::Contains("--state-secret " + std::string(bad)));
    CHECK_THAT(refused.err, Catch::Contains("nothing was started"));
  }
  CHECK(k.sim.Objects("batch/jobs").size() == jobs_before);
  CHECK(k.t.Runs().size() == fleets_before);
}

TEST_CASE(
    "a fleet's pod lost with its node is made again by its Job and resumes the same run: each "
    "step acts once",
    "[e2e][kube][postgres][fleet]") {
  KubeFleet k;
  const std::string targets = k.t.Write("targets.yaml",
                                        "- {name: slow, params: {db: slow, secs: '4'}}\n"
                                        "- {name: quick, params: {db: quick}}\n");
  Background fleet(k.t.Spec(k.Args(targets, {"--max-concurrency", "2"}), k.Env()));
  // The pod of `slow`, once its engine is in the step `wait` (the step
  // before, not idempotent, must not run again).
  std::string pod;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       pod.empty() && std::chrono::steady_clock::now() < end && fleet.Running();) {
    fleet.Drain(std::chrono::milliseconds(200));
    if (!Exists(k.w + "/slow.waiting")) continue;
    for (const Value& p : k.sim.Objects("/pods")) {
      if (p["metadata"]["labels"].value("runbook.dev/target-index", "") == "1" &&
          p["status"].value("phase", "") == "Running") {
        pod = p["metadata"]["name"];
      }
    }
  }
  INFO(fleet.out() << fleet.err());
  REQUIRE(!pod.empty());
  k.sim.Request("POST", "/_sim/pods/default/" + pod + "/kill");
  REQUIRE(fleet.WaitExit(std::chrono::seconds(90)));
  fleet.Drain();
  INFO(fleet.out() << fleet.err());
  std::string logs;  // what each pod's engine said
  for (const Value& p : k.sim.Objects("/pods")) {
    const std::string name = p["metadata"]["name"];
    logs += "--- " + name + "\n" + k.sim.Kubectl({"logs", name});
  }
  INFO(logs);
  INFO(k.sim.Objects("batch/jobs").dump());
  CHECK_THAT(fleet.out(), Catch::Contains("1 pod was lost"));
  CHECK(Exists(k.w + "/slow.last"));
  CHECK(Exists(k.w + "/quick.last"));
  CHECK(k.Runs() == 2);  // resumed, not started again
  const Value fleet_status = k.t.RunStatus(FleetIdOf(fleet.out()));
  CHECK(fleet_status["status"] == "succeeded");
  // The run made in a pod is rolled back from "another machine": its
  // runbook, laid out in the pods, is laid out again from the fleet's.
  std::string slow_run;
  for (const Value& target : fleet_status["targets"]) {
    if (target["target"] == "slow") slow_run = target["run"];
  }
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/tmp/runbook-fleet", ec)) {
    if (ReadFile(d.path().string() + "/rb.yaml") == kSlow) std::filesystem::remove_all(d.path());
  }
  REQUIRE(!slow_run.empty());
  CliResult undo = k.t.Run({"rollback", slow_run}, k.Env());
  INFO(undo.All());
  CHECK_THAT(undo.err, Catch::Contains("laid out again"));
  CHECK(Exists(k.w + "/slow.undone"));
  // The Job of `slow` completed by a second pod, after the lost one.
  bool completed = false;
  for (const Value& j : k.sim.Objects("batch/jobs")) {
    if (j["metadata"]["labels"].value("runbook.dev/target-index", "") == "1") {
      completed = j["status"].value("succeeded", 0) == 1;
    }
  }
  CHECK(completed);
}

TEST_CASE(
    "a fleet of 100 targets as Jobs whose pods are lost at random: every target ends exactly "
    "once, succeeded, by one run resumed as often as its pod was lost",
    "[e2e][kube][postgres][fleet]") {
  KubeFleet k;
  // Exactly-once steps (creates:), and one that takes a while to be lost in.
  k.t.Write("rb.yaml", R"(format: 1
name: kube-target
lock: "t:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
steps:
  - id: act
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}"], creates: "${{ params.w }}/${{ params.db }}"}
  - id: settle
    exec: {argv: [sleep, "0.3"]}
    idempotent: true
  - id: done
    exec: {argv: [mkdir, "${{ params.w }}/${{ params.db }}.done"],
           creates: "${{ params.w }}/${{ params.db }}.done"}
)");
  std::string list;
  for (int i = 0; i < 100; ++i) {
    list += "- {name: t" + std::to_string(i) + ", params: {db: d" + std::to_string(i) + "}}\n";
  }
  const std::string targets = k.t.Write("targets.yaml", list);
  Background fleet(k.t.Spec(
      k.Args(targets, {"--wave", "1", "--wave", "10%", "--max-concurrency", "8"}), k.Env()));
  std::mt19937_64 rng(CrashSeed("fleet pod losses"));
  int kills = 0;
  while (fleet.Running()) {
    fleet.Drain(std::chrono::milliseconds(200 + rng() % 600));
    std::vector<std::string> running;
    for (const Value& p : k.sim.Objects("/pods")) {
      if (p["status"].value("phase", "") == "Running") running.push_back(p["metadata"]["name"]);
    }
    if (running.empty() || kills >= 30) continue;
    try {  // it may have ended meanwhile (404)
      k.sim.Request("POST", "/_sim/pods/default/" + running[rng() % running.size()] + "/kill");
      ++kills;
    } catch (const std::exception&) {
    }
  }
  REQUIRE(fleet.WaitExit(std::chrono::seconds(10)));
  fleet.Drain();
  printf("kube fleet test: %d pods lost\n", kills);
  INFO(fleet.out() << fleet.err());
  INFO("pods lost: " << kills);
  CHECK(kills >= 5);
  const std::string id = FleetIdOf(fleet.out());
  const Value status = k.t.RunStatus(id);
  CHECK(status["status"] == "succeeded");
  REQUIRE(status["targets"].size() == 100);
  for (const Value& target : status["targets"]) {
    INFO(target.dump());
    CHECK(target["outcome"] == "succeeded");
    CHECK(target["run_status"] == "succeeded");
  }
  // One run per target, each mkdir once (a second would have failed it).
  CHECK(k.Runs() == 100);
  for (int i = 0; i < 100; ++i) CHECK(Exists(k.w + "/d" + std::to_string(i) + ".done"));
}

TEST_CASE("a fleet with --executor kube refuses what its pods could not run, starting nothing",
          "[e2e][kube][fleet]") {
  E2e t;  // a SQLite store: a file of this machine
  t.Write("rb.yaml", kSlow);
  t.Write("sub/inc.yaml", "format: 1\nname: inc\nsteps:\n  - id: x\n    exec: {argv: [true]}\n");
  const std::string targets = t.Write("targets.yaml", "- {name: a, params: {db: a, w: /tmp}}\n");
  const std::vector<std::string> base{"fleet", "rb.yaml",    "--targets",
                                      targets, "--executor", "kube"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = base;
    args.insert(args.end(), more.begin(), more.end());
    return t.Run(args);
  };
  CliResult r = with({"--state-secret", "s"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("needs --image"));
  r = with({"--image", "i"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("needs --state-secret"));
  r = with({"--image", "i", "--state-secret", "s"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("not a file of this machine"));
  r = with({"--image", "i", "--state-secret", "s/"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("NAME or NAME/KEY"));
  r = with({"--image", "i", "--state-secret", "s", "--namespace", "-n"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("not a namespace name"));
  r = with({"--image", "i", "--state-secret", "s", "--pod-annotation", "novalue"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("expected key=value"));
  r = t.Run({"fleet", "rb.yaml", "--targets", targets, "--image", "i"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("are for --executor kube"));
  r = t.Run({"fleet", "rb.yaml", "--targets", targets, "--namespace", "ns"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("are for --executor kube"));
  // An include outside the runbook's directory would not reach the pods.
  t.Write("in/rb.yaml",
          "format: 1\nname: outer\nsteps:\n  - id: i\n    include: {runbook: ../sub/inc.yaml}\n");
  testing::PgTestDb state(testing::BlueServer(), "kube_refuse_state");
  E2e pg(testing::PostgresUri(state));
  pg.Write("in/rb.yaml",
           "format: 1\nname: outer\nsteps:\n  - id: i\n    include: {runbook: ../sub/inc.yaml}\n");
  pg.Write("sub/inc.yaml", "format: 1\nname: inc\nsteps:\n  - id: x\n    exec: {argv: [true]}\n");
  const std::string one = pg.Write("one.yaml", "- {name: a}\n");
  r = pg.Run({"fleet", "in/rb.yaml", "--targets", one, "--executor", "kube", "--image", "i",
              "--state-secret", "s"});
  INFO(r.All());
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("is outside"));
  CHECK(pg.Runs().empty());
  // The pods' own command refuses to run outside a pod.
  r = t.Run({"fleet-target", "--fleet=x", "--target=y", "--decided=run"});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("RUNBOOK_FLEET_SOURCES"));
}

}  // namespace runbook::e2e
