// Resume and rollback by hand: a stopped run resumes
// where it stopped, a changed runbook is refused unless --allow-changed, and
// `runbook rollback` undoes newest first.
#include <catch2/catch.hpp>

#include <filesystem>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

// touch a, touch b (not idempotent: a second touch would change mtimes),
// cat the input (fails until it exists), touch d.
const char* kStop = R"(format: 1
name: stopper
on_failure: stop
params:
  w: {type: string}
steps:
  - id: a
    exec: {argv: [touch, "${{ params.w }}/a"]}
  - id: b
    exec: {argv: [touch, "${{ params.w }}/b"]}
  - id: read-input
    exec: {argv: [cat, "${{ params.w }}/input"]}
  - id: d
    exec: {argv: [touch, "${{ params.w }}/d-${{ steps.read-input.result.exit_code }}"]}
)";

TEST_CASE("a stopped run resumes after the cause is fixed, skipping the steps that succeeded",
          "[e2e][resume]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("stop.yaml", kStop);
  CliResult r = t.Run({"run", "stop.yaml", "-p", "w=" + w});
  INFO(r.All());
  REQUIRE(r.code == 1);
  std::string id = t.LastRunId();
  CHECK(r.out.find("  FAILED   read-input  exec") != std::string::npos);
  CHECK(r.out.find("cat: " + w + "/input: No such file or directory") != std::string::npos);
  CHECK(r.out.find("stopped (on_failure: stop). Fix, then runbook resume " + id) !=
        std::string::npos);
  CHECK(Exists(w + "/a"));
  CHECK(Exists(w + "/b"));
  CHECK_FALSE(Exists(w + "/d-0"));
  Value st = t.RunStatus(id);
  CHECK(st["status"] == "stopped");
  int64_t mtime_a = MtimeNs(w + "/a"), mtime_b = MtimeNs(w + "/b");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));

  // Fix the cause; resume runs the failed step and the rest, and only them.
  t.Write("w/input", "now here\n");
  CliResult resumed = t.Run({"resume", id});
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  CHECK(resumed.out.find("resume " + id) != std::string::npos);
  CHECK(resumed.out.find("  ok       read-input") != std::string::npos);
  CHECK(resumed.out.find(" a  exec") == std::string::npos);  // not run again
  CHECK(Exists(w + "/d-0"));
  CHECK(MtimeNs(w + "/a") == mtime_a);
  CHECK(MtimeNs(w + "/b") == mtime_b);
  auto steps = t.Steps(id);
  CHECK(steps["a"]["attempts"] == 1);
  CHECK(steps["read-input"]["attempts"] == 2);
  CHECK(steps["read-input"]["status"] == "succeeded");
  CHECK(steps["d"]["status"] == "succeeded");
  CHECK(t.RunStatus(id)["status"] == "succeeded");

  // Resuming a finished run does nothing.
  CliResult again = t.Run({"resume", id});
  CHECK(again.code == 0);
  CHECK(again.err.find("already succeeded; nothing to resume") != std::string::npos);
  CHECK(MtimeNs(w + "/a") == mtime_a);
}

TEST_CASE("resume refuses a changed runbook with what changed, unless --allow-changed",
          "[e2e][resume]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("stop.yaml", kStop);
  REQUIRE(t.Run({"run", "stop.yaml", "-p", "w=" + w}).code == 1);
  std::string id = t.LastRunId();
  t.Write("w/input", "here\n");

  // Line 14 changes: the last step touches another file.
  std::string changed = kStop;
  changed.replace(changed.find("/d-${{"), 6, "/e-${{");
  t.Write("stop.yaml", changed);
  CliResult refused = t.Run({"resume", id});
  INFO(refused.All());
  CHECK(refused.code == 2);
  CHECK(refused.err.find("the runbook changed since the run started; refusing to resume "
                         "(--allow-changed to resume anyway). What changed:") !=
        std::string::npos);
  std::string path = std::filesystem::weakly_canonical(t.P("stop.yaml")).string();
  CHECK(refused.err.find(path + ":14: was '    exec: {argv: [touch, \"${{ params.w }}/d-${{ "
                         "steps.read-input.result.exit_code }}\"]}', now '    exec: {argv: "
                         "[touch, \"${{ params.w }}/e-${{ steps.read-input.result.exit_code "
                         "}}\"]}'") != std::string::npos);
  CHECK(t.RunStatus(id)["status"] == "stopped");
  CHECK_FALSE(Exists(w + "/d-0"));
  CHECK_FALSE(Exists(w + "/e-0"));

  CliResult allowed = t.Run({"resume", id, "--allow-changed"});
  INFO(allowed.All());
  CHECK(allowed.code == 0);
  CHECK(Exists(w + "/e-0"));
  CHECK_FALSE(Exists(w + "/d-0"));
}

// Each step appends its name to `forward`, and its undo appends it to `order`.
const char* kOrdered = R"(format: 1
name: ordered
params:
  w: {type: string}
steps:
  - id: first
    exec: {argv: [tee, -a, "${{ params.w }}/forward"], stdin: "first\n"}
    rollback: {exec: {argv: [tee, -a, "${{ params.w }}/order"], stdin: "first\n"}}
  - id: second
    exec: {argv: [mkdir, "${{ params.w }}/second"], creates: "${{ params.w }}/second"}
    rollback: {exec: {argv: [rmdir, "${{ params.w }}/second"]}}
  - id: note
    log: "no undo for a log"
  - id: third
    foreach: [x, y]
    exec: {argv: [tee, -a, "${{ params.w }}/forward"], stdin: "third ${{ item }}\n"}
    rollback: {exec: {argv: [tee, -a, "${{ params.w }}/order"], stdin: "third ${{ item }}\n"}}
  - id: fourth
    exec: {argv: [tee, -a, "${{ params.w }}/forward"], stdin: "fourth\n"}
    rollback: {exec: {argv: [tee, -a, "${{ params.w }}/order"], stdin: "fourth\n"}}
)";

TEST_CASE("runbook rollback after a successful run undoes newest first; again is a no-op",
          "[e2e][rollback]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("o.yaml", kOrdered);
  CliResult r = t.Run({"run", "o.yaml", "-p", "w=" + w});
  INFO(r.All());
  REQUIRE(r.code == 0);
  std::string id = t.LastRunId();
  CHECK(ReadFile(w + "/forward") == "first\nthird x\nthird y\nfourth\n");
  CHECK(Exists(w + "/second"));

  CliResult rb = t.Run({"rollback", id});
  INFO(rb.All());
  CHECK(rb.code == 0);
  CHECK(rb.out.find("rollback of " + id) != std::string::npos);
  CHECK(rb.out.find("rolled back (exit 0)") != std::string::npos);
  CHECK(ReadFile(w + "/order") == "fourth\nthird y\nthird x\nfirst\n");
  CHECK_FALSE(Exists(w + "/second"));
  CHECK(t.RunStatus(id)["status"] == "rolled_back");
  auto steps = t.Steps(id);
  for (const char* s : {"first", "second", "third[1]", "third[2]", "fourth"}) {
    INFO(s);
    CHECK(steps[s]["status"] == "undone");
  }

  // Again: nothing to do, nothing undone twice.
  CliResult again = t.Run({"rollback", id});
  CHECK(again.code == 0);
  CHECK(again.err.find("run " + id + " is already rolled back") != std::string::npos);
  CHECK(ReadFile(w + "/order") == "fourth\nthird y\nthird x\nfirst\n");
  // And a rolled-back run does not resume.
  CliResult resume = t.Run({"resume", id});
  CHECK(resume.code == 2);
  CHECK(resume.err.find("was rolled back; start a new run instead") != std::string::npos);
}

TEST_CASE("a failing step rolls back the completed steps newest first and exits 1",
          "[e2e][rollback]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  std::string text = kOrdered;
  text += "  - id: boom\n    fail: on purpose\n";
  t.Write("o.yaml", text);
  CliResult r = t.Run({"run", "o.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(r.out.find("step 'boom': on purpose; rolled back (exit 1)") != std::string::npos);
  CHECK(ReadFile(w + "/order") == "fourth\nthird y\nthird x\nfirst\n");
  CHECK_FALSE(Exists(w + "/second"));
  std::string id = t.LastRunId();
  CHECK(t.RunStatus(id)["status"] == "rolled_back");
}

const char* kTwoDirs = R"(format: 1
name: two-dirs
params:
  w: {type: string}
steps:
  - id: first
    exec: {argv: [mkdir, "${{ params.w }}/first"], creates: "${{ params.w }}/first"}
    rollback: {exec: {argv: [rmdir, "${{ params.w }}/first"]}}
  - id: second
    exec: {argv: [mkdir, "${{ params.w }}/second"], creates: "${{ params.w }}/second"}
    rollback: {exec: {argv: [rmdir, "${{ params.w }}/second"]}}
)";

TEST_CASE("a rollback leaves alone what the run found already there", "[e2e][rollback]") {
  E2e t;
  std::string w = t.P("w");
  t.Write("u.yaml", std::string(kTwoDirs) + "  - id: boom\n    fail: on purpose\n");
  t.Write("w/first/kept", "made before the run");
  CliResult r = t.Run({"run", "u.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(Exists(w + "/first/kept"));  // `creates` existed: the run did not make it
  CHECK_FALSE(Exists(w + "/second"));
  CHECK(t.RunStatus(t.LastRunId())["status"] == "rolled_back");
}

TEST_CASE("an undo that fails exits 6 and names the step; after the fix rollback finishes",
          "[e2e][rollback]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("u.yaml", kTwoDirs);
  REQUIRE(t.Run({"run", "u.yaml", "-p", "w=" + w}).code == 0);
  std::string id = t.LastRunId();
  // Something else puts a file in second/ after the run: its rmdir fails.
  t.Write("w/second/intruder", "x");
  CliResult rb = t.Run({"rollback", id});
  INFO(rb.All());
  CHECK(rb.code == 6);
  CHECK(rb.out.find("  UNDO FAILED  second  exec") != std::string::npos);
  CHECK(rb.out.find("rmdir: failed to remove") != std::string::npos);
  CHECK(rb.out.find("rollback FAILED: a human must act") != std::string::npos);
  CHECK(t.RunStatus(id)["status"] == "rollback_failed");
  CHECK(t.Steps(id)["second"]["status"] == "undo_failed");
  CHECK(Exists(w + "/second/intruder"));
  // Rollback goes on past a failed undo: the older step is undone.
  CHECK_FALSE(Exists(w + "/first"));
  // The human removes the intruder and rolls back again.
  std::filesystem::remove(w + "/second/intruder");
  CliResult again = t.Run({"rollback", id});
  INFO(again.All());
  CHECK(again.code == 0);
  CHECK_FALSE(Exists(w + "/second"));
  CHECK(t.RunStatus(id)["status"] == "rolled_back");
}

TEST_CASE("a rollback that undid nothing says so instead of 'rolled back'", "[e2e][rollback]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w + "/made");
  t.Write("n.yaml",
          "format: 1\nname: n\nparams:\n  w: {type: string}\nsteps:\n"
          "  - id: note\n    log: hi\n"
          "  - id: made\n"
          "    exec: {argv: [mkdir, '${{ params.w }}/made'], creates: '${{ params.w }}/made'}\n"
          "  - id: boom\n    fail: on purpose\n");
  CliResult r = t.Run({"run", "n.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(r.out.find("step 'boom': on purpose; nothing to undo (exit 1)") != std::string::npos);
  CHECK(r.out.find("rolled back") == std::string::npos);
  CHECK(Exists(w + "/made"));  // made by someone else before: not this run's to undo
  const std::string id = t.LastRunId();
  CHECK(t.RunStatus(id)["status"] == "rolled_back");
  // The same by `runbook rollback` of a run that stopped.
  t.Write("s.yaml",
          "format: 1\nname: s\non_failure: stop\nsteps:\n"
          "  - id: note\n    log: hi\n  - id: boom\n    fail: on purpose\n");
  REQUIRE(t.Run({"run", "s.yaml"}).code == 1);
  r = t.Run({"rollback", "last"});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(r.out.find("rolled back: nothing to undo (exit 0)") != std::string::npos);
}

TEST_CASE("an include runs the runbook it names, not one whose path ends the same",
          "[e2e][rollback][include]") {
  E2e t;
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  // b.yaml and sub/b.yaml: "b.yaml" is a suffix of both paths.
  auto child = [&](const std::string& tag) {
    return "format: 1\nname: " + tag +
           "\nparams:\n  w: {type: string}\nsteps:\n"
           "  - id: mark\n"
           "    exec: {argv: [touch, '${{ params.w }}/" +
           tag +
           "']}\n"
           "    rollback: {exec: {argv: [rm, '${{ params.w }}/" +
           tag + "']}}\n";
  };
  t.Write("b.yaml", child("top"));
  t.Write("sub/b.yaml", child("sub"));
  t.Write("p.yaml",
          "format: 1\nname: p\nparams:\n  w: {type: string}\nsteps:\n"
          "  - id: one\n    include: {runbook: sub/b.yaml, params: {w: '${{ params.w }}'}}\n"
          "  - id: two\n    include: {runbook: b.yaml, params: {w: '${{ params.w }}'}}\n"
          "  - id: boom\n    fail: on purpose\n");
  CliResult plan = t.Run({"plan", "p.yaml", "-p", "w=" + w});
  INFO(plan.All());
  REQUIRE(plan.code == 0);
  const size_t one = plan.out.find("runs sub/b.yaml:"), two = plan.out.find("runs b.yaml:");
  REQUIRE(one != std::string::npos);
  REQUIRE(two != std::string::npos);
  CHECK(plan.out.find(w + "/sub", one) < two);  // each include shows its own steps
  CHECK(plan.out.find(w + "/top", two) != std::string::npos);

  SECTION("run: each include's steps, then the rollback undoes each") {
    CliResult r = t.Run({"run", "p.yaml", "-p", "w=" + w, "--log-format", "json"});
    INFO(r.All());
    CHECK(r.code == 1);
    CHECK(r.out.find(w + "/sub") != std::string::npos);
    CHECK(r.out.find(w + "/top") != std::string::npos);
    CHECK_FALSE(Exists(w + "/sub"));  // made, then undone by the rollback
    CHECK_FALSE(Exists(w + "/top"));
    std::map<std::string, Value> steps = t.Steps(t.LastRunId());
    CHECK(steps["one.mark"]["status"] == "undone");
    CHECK(steps["two.mark"]["status"] == "undone");
  }
}

}  // namespace
}  // namespace runbook::e2e
