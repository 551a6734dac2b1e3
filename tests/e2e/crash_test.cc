// Crash tests: SIGKILL the engine, and the commands it
// started, at random instants, then resume until the run ends. The end state
// on disk must be exactly right: every step's effect present once, nothing
// done twice where it must not be, and the state store intact.
//
// The seed is printed; RUNBOOK_CRASH_SEED=N replays a run of kill instants
// (as far as the machine's timing allows).
#include <catch2/catch.hpp>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

using std::chrono::milliseconds;


// Steps whose effects are on disk under W (the work dir):
// - step-NN: mkdir with `creates` (idempotent, safe to re-run);
// - once-X: mkdir without creates, idempotent: false (a second mkdir fails);
// - slow-X: a Lua step that sleeps (a command) then appends a line to
//   count-X: slow, and not idempotent;
// - last: appends to count-last, not idempotent.
// sleeps between them; a pure Lua step whose result a later step uses.
const char* kForward = R"(format: 1
name: crash
params:
  w: {type: string}
on_failure: stop
steps:
  - id: s01
    exec: {argv: [mkdir, "${{ params.w }}/step-01"], creates: "${{ params.w }}/step-01"}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/step-01"]}}
  - id: z01
    sleep: 100ms
  - id: s02
    exec: {argv: [mkdir, "${{ params.w }}/step-02"], creates: "${{ params.w }}/step-02"}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/step-02"]}}
  - id: once-a
    exec: {argv: [mkdir, "${{ params.w }}/once-a"]}
    idempotent: false
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/once-a"]}}
  - id: l01
    lua: |
      return {n = 41}
  - id: z02
    sleep: 150ms
  - id: slow-a
    idempotent: false
    lua: |
      exec{argv = {"sleep", "0.3"}}
      exec{argv = {"tee", "-a", params.w .. "/count-a"}, stdin = "ran\n"}
      return {done = true}
  - id: s03
    exec: {argv: [mkdir, "${{ params.w }}/step-03"], creates: "${{ params.w }}/step-03"}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/step-03"]}}
  - id: z03
    sleep: 50ms
  - id: once-b
    exec: {argv: [mkdir, "${{ params.w }}/once-b"]}
    idempotent: false
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/once-b"]}}
  - id: s42
    exec:
      argv: [mkdir, "${{ params.w }}/step-${{ steps.l01.result.n + 1 }}"]
      creates: "${{ params.w }}/step-${{ steps.l01.result.n + 1 }}"
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/step-${{ steps.l01.result.n + 1 }}"]}}
  - id: slow-b
    idempotent: false
    lua: |
      exec{argv = {"sleep", "0.3"}}
      exec{argv = {"tee", "-a", params.w .. "/count-b"}, stdin = "ran\n"}
      return {done = true}
  - id: z04
    sleep: 100ms
  - id: s05
    exec: {argv: [mkdir, "${{ params.w }}/step-05"], creates: "${{ params.w }}/step-05"}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/step-05"]}}
  - id: last
    exec: {argv: [tee, -a, "${{ params.w }}/count-last"], stdin: "ran\n"}
    idempotent: false
)";

const char* kForwardEnd =
    "count-a file 4\ncount-b file 4\ncount-last file 4\nonce-a dir\nonce-b dir\n"
    "step-01 dir\nstep-02 dir\nstep-03 dir\nstep-05 dir\nstep-42 dir\n";

// "name dir" / "name file SIZE" for each entry of the work dir.
std::string Listing(const std::string& w) {
  std::string snap = Snapshot(w);
  std::string out;
  std::istringstream in(snap);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string name, type, size;
    f >> name >> type >> size;
    out += name + " " + type + (type == "file" ? " " + size : "") + "\n";
  }
  return out;
}

// The path that shows whether a not-idempotent step took effect.
std::string EffectOf(const std::string& w, const std::string& step) {
  if (step == "once-a" || step == "once-b") return w + "/" + step;
  if (step == "slow-a") return w + "/count-a";
  if (step == "slow-b") return w + "/count-b";
  if (step == "last") return w + "/count-last";
  return "";
}

// What a human checking the disk concludes: a directory took effect when it
// is there; a count file only when its line is in it (`tee -a` makes the file
// before it reads its input, so a kill in between leaves it empty).
bool TookEffect(const std::string& effect) {
  if (!Exists(effect)) return false;
  if (std::filesystem::is_directory(effect)) return true;
  return ReadFile(effect).find("ran\n") != std::string::npos;
}

struct Crasher {
  E2e& t;
  std::mt19937_64 rng;
  int kills = 0;
  int decisions = 0;
  int resumes = 0;
  std::string log;  // what happened, shown on failure

  // Waits a random instant in [lo, hi) ms (or until the engine exits), then
  // kills it. True if it was killed while running.
  bool KillAtRandom(Background& bg, int lo, int hi) {
    std::uniform_int_distribution<int> d(lo, hi - 1);
    int wait = d(rng);
    auto until = std::chrono::steady_clock::now() + milliseconds(wait);
    while (std::chrono::steady_clock::now() < until) {
      bg.Drain(milliseconds(5));
      if (!bg.Running()) {
        log += "  exited by itself before the kill at " + std::to_string(wait) + "ms\n";
        return false;
      }
    }
    bg.KillHard();
    ++kills;
    log += "  killed at " + std::to_string(wait) + "ms; output was:\n" + bg.out() + bg.err();
    return true;
  }

  void CheckStore() {
    std::string ic = IntegrityCheck(t.state());
    INFO(log);
    REQUIRE(ic == "ok");
  }
};

TEST_CASE("SIGKILL at random instants during a run, then resume: every step took effect once",
          "[e2e][crash]") {
  E2e t;
  t.Write("crash.yaml", kForward);
  Crasher c{t, std::mt19937_64(CrashSeed("crash test"))};
  // Calibration: one run without kills gives the end state and the time the
  // kill instants are spread over.
  int full_ms;
  {
    std::string w0 = t.P("w0");
    std::filesystem::create_directories(w0);
    auto start = std::chrono::steady_clock::now();
    CliResult r = t.Run({"run", "crash.yaml", "-p", "w=" + w0});
    full_ms = static_cast<int>(std::chrono::duration_cast<milliseconds>(
                                   std::chrono::steady_clock::now() - start).count());
    INFO(r.All());
    REQUIRE(r.code == 0);
    REQUIRE(Listing(w0) == kForwardEnd);
  }
  int window_ms = std::clamp(full_ms * 9 / 10, 300, 4000);
  int iterations = 0;
  while (c.kills < 24 || iterations < 3) {
    ++iterations;
    REQUIRE(iterations <= 25);  // 24 kill points well before this
    std::string w = t.P("w" + std::to_string(iterations));
    std::filesystem::create_directories(w);
    c.log = "iteration " + std::to_string(iterations) + "\n";
    std::string run_id;
    size_t runs_before = t.Runs().size();
    int kills_here = 0;
    std::string decide;  // extra resume args answering a decision
    for (int round = 0;; ++round) {
      INFO(c.log);
      REQUIRE(round < 40);
      std::vector<std::string> args;
      if (run_id.empty()) {
        args = {"run", "crash.yaml", "-p", "w=" + w};
      } else {
        args = {"resume", run_id};
        if (!decide.empty()) {
          args.push_back(decide.substr(0, decide.find(' ')));
          args.push_back(decide.substr(decide.find(' ') + 1));
        }
        ++c.resumes;
      }
      c.log += "round " + std::to_string(round) + ": runbook " + args[0] + " " + decide + "\n";
      decide.clear();
      Background bg(t.Spec(args));
      bool killed = false;
      if (kills_here < 4) {
        killed = c.KillAtRandom(bg, 5, window_ms);
        if (killed) ++kills_here;
      }
      if (!killed) {
        REQUIRE(bg.WaitExit(std::chrono::seconds(60)));
        c.log += "  ended; output:\n" + bg.out() + bg.err();
      }
      c.CheckStore();
      if (run_id.empty() && t.Runs().size() > runs_before) run_id = t.LastRunId();
      if (run_id.empty()) continue;  // killed before the run was recorded: start again
      if (killed) continue;
      Value st = t.RunStatus(run_id);
      std::string status = st["status"].get<std::string>();
      if (status == "succeeded") break;
      // The only acceptable stop: a step that was running when the engine
      // died, is not idempotent, and cannot tell whether it took effect.
      std::string error = st["error"].get<std::string>();
      INFO(c.log);
      INFO("run status " << status << ": " << error);
      REQUIRE(status == "stopped");
      std::smatch m;
      REQUIRE(std::regex_search(error, m, std::regex("--retry-step (\\S+)")));
      std::string step = m[1];
      CHECK(error.find("--mark-done " + step) != std::string::npos);
      std::string effect = EffectOf(w, step);
      REQUIRE_FALSE(effect.empty());  // only the not-idempotent steps may ask
      // A human checks the disk and answers.
      decide = TookEffect(effect) ? "--mark-done " + step : "--retry-step " + step;
      ++c.decisions;
    }
    INFO(c.log);
    CHECK(Listing(w) == kForwardEnd);
    CHECK(ReadFile(w + "/count-a") == "ran\n");
    CHECK(ReadFile(w + "/count-b") == "ran\n");
    CHECK(ReadFile(w + "/count-last") == "ran\n");
    // Every step ends succeeded, the results restored across resumes (s42).
    for (const auto& [id, s] : t.Steps(run_id)) {
      INFO("step " << id);
      CHECK(s["status"] == "succeeded");
    }
    // Resuming a finished run changes nothing.
    CliResult again = t.Run({"resume", run_id});
    CHECK(again.code == 0);
    CHECK(Listing(w) == kForwardEnd);
  }
  fprintf(stderr,
          "crash test (run): a run takes %d ms; %d iterations, %d kill points, %d resumes, %d "
          "decisions\n",
          full_ms, iterations, c.kills, c.resumes, c.decisions);
  CHECK(c.kills >= 20);
  c.CheckStore();
}

// Each pair: mk-N makes a directory (undone by rm -rf); pad-N has a slow
// undo (a command that sleeps). The last step fails on purpose, so the run
// rolls back: about 1.2 s of undo actions, newest first.
std::string RollbackRunbook(int pairs) {
  std::string text = R"(format: 1
name: undo
params:
  w: {type: string}
steps:
)";
  for (int i = 1; i <= pairs; ++i) {
    std::string n = std::to_string(i);
    text += "  - id: mk-" + n + "\n    exec: {argv: [mkdir, \"${{ params.w }}/r-" + n +
            "\"], creates: \"${{ params.w }}/r-" + n + "\"}\n" +
            "    rollback: {exec: {argv: [rm, -rf, \"${{ params.w }}/r-" + n + "\"]}}\n";
    text += "  - id: pad-" + n + "\n    log: pad " + n + "\n" +
            "    rollback: {exec: {argv: [sleep, \"0.1\"]}}\n";
  }
  text += "  - id: boom\n    fail: on purpose\n";
  return text;
}

TEST_CASE("SIGKILL at random instants during a rollback, then resume: the rollback finishes",
          "[e2e][crash][rollback]") {
  E2e t;
  const int kPairs = 6;
  t.Write("undo.yaml", RollbackRunbook(kPairs));
  Crasher c{t, std::mt19937_64(CrashSeed("crash test") ^ 0x5bd1e995)};
  // Starts the run and returns once its rollback has begun (boom failed).
  auto start_rollback = [&](const std::string& w) {
    auto bg = std::make_unique<Background>(t.Spec({"run", "undo.yaml", "-p", "w=" + w}));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (bg->out().find("boom") == std::string::npos && bg->Running() &&
           std::chrono::steady_clock::now() < deadline) {
      bg->Drain(milliseconds(5));
    }
    INFO(bg->out() << bg->err());
    REQUIRE(bg->out().find("FAILED   boom") != std::string::npos);
    for (int i = 1; i <= kPairs; ++i) CHECK(Exists(w + "/r-" + std::to_string(i)));
    return bg;
  };
  // Calibration: how long an uninterrupted rollback takes.
  int rollback_ms;
  {
    std::string w0 = t.P("u0");
    std::filesystem::create_directories(w0);
    auto bg = start_rollback(w0);
    auto start = std::chrono::steady_clock::now();
    REQUIRE(bg->WaitExit(std::chrono::seconds(60)));
    rollback_ms = static_cast<int>(std::chrono::duration_cast<milliseconds>(
                                       std::chrono::steady_clock::now() - start).count());
    INFO(bg->out());
    REQUIRE(Listing(w0).empty());
  }
  int window_ms = std::clamp(rollback_ms * 9 / 10, 200, 4000);
  int iterations = 0;
  while (c.kills < 12 || iterations < 3) {
    ++iterations;
    REQUIRE(iterations <= 20);
    std::string w = t.P("u" + std::to_string(iterations));
    std::filesystem::create_directories(w);
    c.log = "iteration " + std::to_string(iterations) + "\n";
    // The run: killed once its rollback has started.
    std::string run_id;
    {
      auto bg = start_rollback(w);
      c.KillAtRandom(*bg, 0, window_ms);
      c.CheckStore();
      run_id = t.LastRunId();
      REQUIRE_FALSE(run_id.empty());
    }
    // Resume the rollback, killing it a few more times.
    for (int round = 0;; ++round) {
      INFO(c.log);
      REQUIRE(round < 20);
      Value st = t.RunStatus(run_id);
      std::string status = st["status"].get<std::string>();
      c.log += "round " + std::to_string(round) + ": status " + status + "\n";
      if (status == "rolled_back") break;
      // Killed: no engine holds its lock, so status says it was interrupted.
      REQUIRE((status == "interrupted_rollback" || status == "interrupted"));
      Background bg(t.Spec({"resume", run_id}));
      ++c.resumes;
      bool killed = round < 3 && c.KillAtRandom(bg, 0, window_ms * 2 / 3);
      if (!killed) {
        REQUIRE(bg.WaitExit(std::chrono::seconds(60)));
        c.log += "  ended; output:\n" + bg.out() + bg.err();
      }
      c.CheckStore();
    }
    INFO(c.log);
    CHECK(Listing(w).empty());  // every directory the run made is gone
    for (const auto& [id, s] : t.Steps(run_id)) {
      INFO("step " << id << ": " << s.dump());
      if (id.rfind("mk-", 0) == 0) CHECK(s["status"] == "undone");
      if (id == "boom") CHECK(s["status"] == "failed");
    }
    // A rolled-back run cannot be resumed; rolling it back again is a no-op.
    CliResult r = t.Run({"resume", run_id});
    CHECK(r.code == 2);
    r = t.Run({"rollback", run_id});
    CHECK(r.code == 0);
    CHECK(r.All().find("already rolled back") != std::string::npos);
  }
  fprintf(stderr,
          "crash test (rollback): a rollback takes %d ms; %d iterations, %d kill points, %d "
          "resumes\n",
          rollback_ms, iterations, c.kills, c.resumes);
  CHECK(c.kills >= 10);
  c.CheckStore();
}

// The command makes its `creates` path first, then takes a second: a kill
// in that second leaves the step running with its effect made.
const char* kMadeThenKilled = R"(format: 1
name: made-then-killed
params:
  w: {type: string}
steps:
  - id: make
    exec:
      argv: [find, "${{ params.w }}", -maxdepth, "0", -exec, mkdir, "${{ params.w }}/made", ";",
             -exec, sleep, "1", ";"]
      creates: "${{ params.w }}/made"
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/made"]}}
  - id: boom
    fail: on purpose
)";

TEST_CASE("a step killed after its command made `creates` is undone when its run rolls back",
          "[e2e][crash][rollback]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("m.yaml", kMadeThenKilled);
  {
    Background bg(t.Spec({"run", "m.yaml", "-p", "w=" + w}));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!Exists(w + "/made") && std::chrono::steady_clock::now() < deadline) {
      bg.Drain(milliseconds(5));
    }
    REQUIRE(Exists(w + "/made"));
    bg.KillHard();
  }
  std::string id = t.LastRunId();
  REQUIRE_FALSE(id.empty());
  // Resume: `make` was running; `creates` exists, so it counts as done; boom
  // fails and the run rolls back. The directory this run made must go.
  CliResult r = t.Run({"resume", id});
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(t.RunStatus(id)["status"] == "rolled_back");
  CHECK_FALSE(Exists(w + "/made"));
}

}  // namespace
}  // namespace runbook::e2e
