// Approvals and maintenance windows.
#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

// ---- approvals ------------------------------------------------------------------------

const char* kGated = R"(format: 1
name: gated
params:
  w: {type: string}
steps:
  - id: before
    exec: {argv: [touch, "${{ params.w }}/before"]}
  - id: gate
    approve: "switch the traffic?"
  - id: switch
    approve: "really switch?"
    exec: {argv: [touch, "${{ params.w }}/switched"]}
  - id: after
    exec: {argv: [touch, "${{ params.w }}/after"]}
)";

TEST_CASE("without a terminal an approval pauses the run (exit 3) until runbook approve and "
          "resume",
          "[e2e][approve]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("g.yaml", kGated);
  CliResult r = t.Run({"run", "g.yaml", "-p", "w=" + w});  // stdin is /dev/null
  INFO(r.All());
  CHECK(r.code == 3);
  std::string id = t.LastRunId();
  CHECK(r.out.find("paused: step 'gate' waits for approval (switch the traffic?). Approve with: "
                   "runbook approve " + id + " gate, then: runbook resume " + id + " (exit 3)") !=
        std::string::npos);
  CHECK(Exists(w + "/before"));
  CHECK_FALSE(Exists(w + "/switched"));
  CHECK(t.RunStatus(id)["status"] == "paused");
  CHECK(t.Steps(id)["gate"]["status"] == "waiting");

  // Resuming without the approval pauses again and acts on nothing.
  CliResult early = t.Run({"resume", id});
  CHECK(early.code == 3);
  CHECK_FALSE(Exists(w + "/switched"));

  // Only a waiting step can be approved.
  CliResult wrong = t.Run({"approve", id, "switch", "--by", "alice"});
  CHECK(wrong.code == 2);
  CHECK(wrong.err.find("run " + id + " has no step 'switch' waiting for approval") !=
        std::string::npos);
  CliResult ok = t.Run({"approve", id, "gate", "--by", "alice"});
  INFO(ok.All());
  CHECK(ok.code == 0);
  CHECK(ok.out.find("approved step 'gate' of run " + id + " by alice; continue with: runbook "
                    "resume " + id) != std::string::npos);

  // The next gate (a step with approve:) pauses before its command.
  CliResult second = t.Run({"resume", id});
  INFO(second.All());
  CHECK(second.code == 3);
  CHECK(second.out.find("runbook approve " + id + " switch") != std::string::npos);
  CHECK_FALSE(Exists(w + "/switched"));
  CHECK(t.Run({"approve", id, "switch", "--by", "bob"}).code == 0);
  CliResult done = t.Run({"resume", id});
  INFO(done.All());
  CHECK(done.code == 0);
  CHECK(Exists(w + "/switched"));
  CHECK(Exists(w + "/after"));
  CHECK(t.RunStatus(id)["status"] == "succeeded");

  // The approvals are in the report, with who.
  CliResult md = t.Run({"report", id});
  CHECK(md.out.find("| gate | alice | ") != std::string::npos);
  CHECK(md.out.find("| switch | bob | ") != std::string::npos);
  Value json = Value::parse(t.Run({"report", id, "--format", "json"}).out);
  REQUIRE(json["approvals"].size() == 2);
  CHECK(json["approvals"][0]["step"] == "gate");
  CHECK(json["approvals"][0]["by"] == "alice");
  CHECK(json["approvals"][1]["by"] == "bob");
}

TEST_CASE(
    "with --wait-for-approval a run without a terminal waits at each gate until runbook "
    "approve from another process of the same store, or pauses after the wait",
    "[e2e][approve]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("gated.yaml", kGated);
  Background run(t.Spec({"run", "gated.yaml", "-p", "w=" + w, "--wait-for-approval", "2m"}));
  std::string id;
  // Each gate is approved by another process once the run waits at it.
  for (const char* gate : {"gate", "switch"}) {
    bool waiting = false;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         !waiting && std::chrono::steady_clock::now() < end && run.Running();) {
      run.Drain(std::chrono::milliseconds(50));
      if (id.empty() && run.out().find('\n') != std::string::npos) id = RunIdFrom(run.out());
      if (!id.empty()) waiting = t.Steps(id)[gate]["status"] == "waiting";
    }
    INFO(run.out() << run.err());
    REQUIRE(waiting);
    CHECK(t.RunStatus(id)["status"] == "running");
    CliResult ok = t.Run({"approve", id, gate, "--by", "alice"});
    INFO(ok.All());
    CHECK(ok.code == 0);
    CHECK_THAT(ok.out, Catch::Contains("the run, waiting for it, goes on"));
  }
  REQUIRE(run.WaitExit(std::chrono::seconds(30)));
  run.Drain();
  INFO(run.out() << run.err());
  CHECK_THAT(run.out(), Catch::Contains("approved by alice: really switch?"));
  CHECK(Exists(w + "/after"));
  CHECK(t.RunStatus(id)["status"] == "succeeded");

  // Nobody approves: after the wait the run pauses as without the option.
  CliResult paused = t.Run({"run", "gated.yaml", "-p", "w=" + w, "--wait-for-approval", "1s"});
  INFO(paused.All());
  CHECK(paused.code == 3);
  CHECK_THAT(paused.out, Catch::Contains("waiting up to 1s for: runbook approve"));
  CliResult bad = t.Run({"run", "gated.yaml", "-p", "w=" + w, "--wait-for-approval", "soon"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--wait-for-approval soon: a duration"));
}

TEST_CASE("--yes pre-approves every gate and records who", "[e2e][approve]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("g.yaml", kGated);
  CliResult r = t.Run({"run", "g.yaml", "-p", "w=" + w, "--yes"}, {{"USER", "carol"}});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Exists(w + "/switched"));
  CHECK(Exists(w + "/after"));
  std::string id = t.LastRunId();
  Value json = Value::parse(t.Run({"report", id, "--format", "json"}).out);
  REQUIRE(json["approvals"].size() == 2);
  CHECK(json["approvals"][0]["by"] == "carol (--yes)");
  CHECK(json["approvals"][1]["by"] == "carol (--yes)");
}

TEST_CASE("resume --yes approves a paused gate", "[e2e][approve]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("g.yaml", kGated);
  REQUIRE(t.Run({"run", "g.yaml", "-p", "w=" + w}).code == 3);
  std::string id = t.LastRunId();
  CliResult r = t.Run({"resume", id, "--yes"}, {{"USER", "dave"}});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Exists(w + "/after"));
  CliResult md = t.Run({"report", id});
  CHECK(md.out.find("| gate | dave (--yes) | ") != std::string::npos);
}

// ---- windows ------------------------------------------------------------------------

std::string Hhmm(int minute) {
  minute = ((minute % 1440) + 1440) % 1440;
  char buf[8];
  snprintf(buf, sizeof buf, "%02d:%02d", minute / 60, minute % 60);
  return buf;
}

const char* kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct Now {
  int minute;  // of the UTC day
  int wday;
};

Now UtcNow() {
  time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  return {tm.tm_hour * 60 + tm.tm_min, tm.tm_wday};
}

std::string Windowed(const std::string& window) {
  return R"(format: 1
name: windowed
params:
  w: {type: string}
window: )" + window + R"(
steps:
  - id: mark
    exec: {argv: [touch, "${{ params.w }}/ran"]}
)";
}

TEST_CASE("outside the window a run exits 5 and runs nothing; --ignore-window runs it",
          "[e2e][window]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  Now now = UtcNow();
  // Opens in two hours, for an hour (any day): closed now.
  std::string window = "{timezone: UTC, start: \"" + Hhmm(now.minute + 120) + "\", end: \"" +
                       Hhmm(now.minute + 180) + "\"}";
  t.Write("win.yaml", Windowed(window));
  CliResult r = t.Run({"run", "win.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 5);
  CHECK(r.err.find("win.yaml: outside the maintenance window (daily " + Hhmm(now.minute + 120) +
                   "-" + Hhmm(now.minute + 180) + " UTC); nothing was run. Use --ignore-window "
                   "to run anyway.") != std::string::npos);
  CHECK_FALSE(Exists(w + "/ran"));
  CHECK(t.Runs().empty());
  // A rehearsal is allowed outside the window: it changes nothing.
  CHECK(t.Run({"run", "--dry-run", "win.yaml", "-p", "w=" + w}).code == 0);
  CHECK_FALSE(Exists(w + "/ran"));

  CliResult forced = t.Run({"run", "win.yaml", "-p", "w=" + w, "--ignore-window"});
  INFO(forced.All());
  CHECK(forced.code == 0);
  CHECK(Exists(w + "/ran"));
}

TEST_CASE("a window closed today by its days exits 5; open now it runs", "[e2e][window]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  Now now = UtcNow();
  // The hours are open (since the start of this minute, for two hours) ...
  std::string hours = "start: \"" + Hhmm(now.minute) + "\", end: \"" + Hhmm(now.minute + 120) +
                      "\"";
  // ... but only tomorrow.
  t.Write("tomorrow.yaml", Windowed("{timezone: UTC, days: [" +
                                    std::string(kDays[(now.wday + 1) % 7]) + "], " + hours + "}"));
  CliResult r = t.Run({"run", "tomorrow.yaml", "-p", "w=" + w});
  INFO(r.All());
  if (UtcNow().wday == now.wday) {  // unless midnight passed meanwhile
    CHECK(r.code == 5);
    CHECK_FALSE(Exists(w + "/ran"));
  }
  t.Write("today.yaml", Windowed("{timezone: UTC, days: [" + std::string(kDays[now.wday]) + "], " +
                                 hours + "}"));
  CliResult open = t.Run({"run", "today.yaml", "-p", "w=" + w});
  INFO(open.All());
  CHECK(open.code == 0);
  CHECK(Exists(w + "/ran"));
}

// Saturday 2024-01-06 03:59:57 UTC: three seconds before the window closes.
constexpr int64_t kSaturdayBeforeClose = 1704513597;

const char* kFit = R"(format: 1
name: fit
params:
  w: {type: string}
window: {timezone: UTC, days: [sat], start: "02:00", end: "04:00"}
steps:
  - id: first
    sleep: 2s
    rollback: {exec: {argv: [touch, "${{ params.w }}/first-undone"]}}
  - id: long
    sleep: 1500ms
  - id: last
    exec: {argv: [touch, "${{ params.w }}/last-ran"]}
)";

TEST_CASE("a step that does not fit in what is left of the window stops the run at the step "
          "boundary, rolls back and exits 5",
          "[e2e][window]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("fit.yaml", kFit);
  // An earlier run records that `long` takes 1.5 s (first is skipped: no
  // duration recorded for it).
  CliResult seed = t.Run({"run", "fit.yaml", "-p", "w=" + w, "--ignore-window", "--from", "long"});
  INFO(seed.All());
  REQUIRE(seed.code == 0);
  REQUIRE(Exists(w + "/last-ran"));
  std::filesystem::remove(w + "/last-ran");

  SECTION("the remaining steps fit at first, not after the first step") {
    // 3 s left: first (unknown) + long (1.5 s) fit; after first's 2 s, long
    // does not.
    std::map<std::string, std::string> env{{"RUNBOOK_FAKE_NOW",
                                            std::to_string(kSaturdayBeforeClose)}};
    CliResult r = t.Run({"run", "fit.yaml", "-p", "w=" + w}, env);
    INFO(r.All());
    CHECK(r.code == 5);
    CHECK(r.out.find("  ok       first  sleep") != std::string::npos);
    CHECK(r.out.find("but the remaining steps took 1.5s in earlier runs; stopping before step "
                     "'long'") != std::string::npos);
    CHECK(r.out.find("rolled back") != std::string::npos);
    CHECK(Exists(w + "/first-undone"));  // first was rolled back
    CHECK_FALSE(Exists(w + "/last-ran"));
    // (t.LastRunId() would be the seed run: this one started in 2024.)
    std::string id = RunIdFrom(r.out);
    CHECK(t.RunStatus(id)["status"] == "rolled_back");
    CHECK(t.Steps(id).count("long") == 0);  // never started
  }
  SECTION("the remaining steps do not fit at the start: nothing runs") {
    std::map<std::string, std::string> env{
        {"RUNBOOK_FAKE_NOW", std::to_string(kSaturdayBeforeClose + 2)}};  // 1 s left
    CliResult r = t.Run({"run", "fit.yaml", "-p", "w=" + w}, env);
    INFO(r.All());
    CHECK(r.code == 5);
    CHECK(r.out.find("stopping before step 'first'") != std::string::npos);
    CHECK_FALSE(Exists(w + "/first-undone"));
    CHECK_FALSE(Exists(w + "/last-ran"));
  }
  SECTION("after the window closed, the run does not start") {
    std::map<std::string, std::string> env{
        {"RUNBOOK_FAKE_NOW", std::to_string(kSaturdayBeforeClose + 3)}};  // 04:00:00
    CliResult r = t.Run({"run", "fit.yaml", "-p", "w=" + w}, env);
    INFO(r.All());
    CHECK(r.code == 5);
    CHECK(r.err.find("outside the maintenance window (sat 02:00-04:00 UTC)") !=
          std::string::npos);
    CHECK_FALSE(Exists(w + "/first-undone"));
  }
}

TEST_CASE("a rehearsal does not shorten the durations real runs recorded for the window check",
          "[e2e][window]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("fit.yaml", kFit);
  REQUIRE(t.Run({"run", "fit.yaml", "-p", "w=" + w, "--ignore-window", "--from", "long"}).code ==
          0);
  // The rehearsal does not sleep: it records `long` as a few milliseconds.
  REQUIRE(t.Run({"run", "--dry-run", "fit.yaml", "-p", "w=" + w}).code == 0);
  // 1 s left; long really takes 1.5 s.
  CliResult r = t.Run({"run", "fit.yaml", "-p", "w=" + w},
                      {{"RUNBOOK_FAKE_NOW", std::to_string(kSaturdayBeforeClose + 2)}});
  INFO(r.All());
  CHECK(r.code == 5);
  CHECK(r.out.find("stopping before step 'first'") != std::string::npos);
}

}  // namespace
}  // namespace runbook::e2e

namespace runbook::e2e {

TEST_CASE("a run waiting for an approval stops waiting when the maintenance window closes",
          "[e2e][window][approve]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("late.yaml", R"(format: 1
name: late
params:
  w: {type: string}
window: {timezone: UTC, days: [sat], start: "02:00", end: "04:00"}
steps:
  - id: gate
    approve: "go on?"
    exec: {argv: [touch, "${{ params.w }}/acted"]}
)");
  // Three seconds before the window closes, with a minute to wait: the
  // wait ends with the window, the run pauses (exit 3), nothing acted.
  const auto start = std::chrono::steady_clock::now();
  CliResult r = t.Run({"run", "late.yaml", "-p", "w=" + w, "--wait-for-approval", "1m"},
                      {{"RUNBOOK_FAKE_NOW", "1704513597"}});
  INFO(r.All());
  CHECK(r.code == 3);
  CHECK_THAT(r.All(), Catch::Contains("the maintenance window closed while it waited"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
  CHECK_FALSE(Exists(w + "/acted"));
}

}  // namespace runbook::e2e

namespace runbook::e2e {

TEST_CASE(
    "an approval that comes when the remaining steps no longer fit in the window pauses the "
    "run before the step acts, keeping the approval",
    "[e2e][window][approve]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("tight.yaml", R"(format: 1
name: tight
params:
  w: {type: string}
window: {timezone: UTC, days: [sat], start: "02:00", end: "04:00"}
steps:
  - id: gate
    approve: "go on?"
    exec: {argv: [touch, "${{ params.w }}/acted"]}
  - id: long
    sleep: 4s
)");
  // An earlier run records that `long` takes 4 s.
  REQUIRE(t.Run({"run", "tight.yaml", "-p", "w=" + w, "--ignore-window", "--from", "long"}).code ==
          0);
  // Six seconds before the window closes: the steps fit, the run waits at
  // the gate; approved three seconds in, `long` no longer fits.
  Background run(t.Spec({"run", "tight.yaml", "-p", "w=" + w, "--wait-for-approval", "1m"},
                        {{"RUNBOOK_FAKE_NOW", "1704513594"}}));
  std::string id;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
       id.empty() && std::chrono::steady_clock::now() < end;) {
    run.Drain(std::chrono::milliseconds(50));
    if (run.out().find('\n') != std::string::npos) id = RunIdFrom(run.out());
  }
  REQUIRE_FALSE(id.empty());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  CHECK(t.Run({"approve", id, "gate", "--by", "frank"}).code == 0);
  REQUIRE(run.WaitExit(std::chrono::seconds(30)));
  run.Drain();
  INFO(run.out() << run.err());
  CHECK_THAT(run.out() + run.err(), Catch::Contains("was approved, but the maintenance window "
                                                    "closes in") &&
                                        Catch::Contains("the approval stays"));
  CHECK_FALSE(Exists(w + "/acted"));
  CHECK(t.RunStatus(id)["status"] == "paused");
  // In the next window the run goes on without asking again.
  CliResult next =
      t.Run({"resume", id}, {{"RUNBOOK_FAKE_NOW", "1705114800"}});  // the next saturday, 03:00
  INFO(next.All());
  CHECK(next.code == 0);
  CHECK(Exists(w + "/acted"));
}

}  // namespace runbook::e2e
