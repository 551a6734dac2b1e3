// Dry-run: a rehearsal acts on nothing, and plan output is
// stable and runs nothing.
//
// Not tested here: a primitive whose rehearsal mode is undeclared is refused in
// a dry run, but every built-in declares one (exec: probe or skip), so no
// runbook made of built-ins can reach that path; the executor's unit tests
// cover it with a fake primitive.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

const char* kRehearsal = R"(format: 1
name: rehearse
params:
  w: {type: string}
steps:
  - id: make
    exec: {argv: [mkdir, "${{ params.w }}/made"]}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/keep"]}}
  - id: look
    exec: {argv: [ls, "${{ params.w }}"], probe: true}
  - id: compute
    lua: |
      local r = exec{argv = {"touch", params.w .. "/from-lua"}}
      return {count = 3}
  - id: nap
    sleep: 2s
  - id: gate
    approve: "switch the traffic?"
  - id: after-unknown
    exec: {argv: [touch, "${{ params.w }}/code-${{ steps.make.result.exit_code }}"]}
  - id: when-unknown
    when: steps.make.result.exit_code == 0
    exec: {argv: [touch, "${{ params.w }}/when"]}
  - id: each-unknown
    foreach: "${{ steps.make.result.lines }}"
    exec: {argv: [touch, "${{ params.w }}/each-${{ item }}"]}
  - id: use
    log: "saw ${{ steps.look.result.stdout }} and ${{ steps.compute.result.count }}"
  - id: touch
    exec: {argv: [touch, "${{ params.w }}/old"]}
)";

TEST_CASE("a rehearsal acts on nothing, does not sleep or pause, and marks what it cannot know",
          "[e2e][dry-run]") {
  E2e t;
  std::string w = t.P("w");
  t.Write("r.yaml", kRehearsal);
  t.Write("w/old", "old contents\n");
  t.Write("w/keep/precious", "do not remove\n");
  std::string before = Snapshot(t.dir(), {"state"});

  auto start = std::chrono::steady_clock::now();
  CliResult r = t.Run({"run", "--dry-run", "r.yaml", "-p", "w=" + w});
  auto took = std::chrono::steady_clock::now() - start;
  INFO(r.All());
  CHECK(r.code == 0);  // the approval did not pause it (that would be 3)
  CHECK(took < std::chrono::milliseconds(1900));  // sleep 2s was not slept
  const std::string& out = r.out;
  CHECK(out.find("(rehearsal: nothing will change)") != std::string::npos);
  CHECK(out.find("  UNKNOWN  make  exec  not rehearsed: a command cannot be rehearsed unless "
                 "marked probe: true (read-only)") != std::string::npos);
  CHECK(out.find("  UNKNOWN  after-unknown  exec  arguments depend on an UNKNOWN result") !=
        std::string::npos);
  CHECK(out.find("  UNKNOWN  when-unknown") != std::string::npos);
  CHECK(out.find("  UNKNOWN  each-unknown") != std::string::npos);
  CHECK(out.find("  UNKNOWN  touch  exec  not rehearsed") != std::string::npos);
  CHECK(out.find("gate: log: a real run would wait for approval: switch the traffic?") !=
        std::string::npos);
  CHECK(out.find("use: log: saw keep\nold\n and 3") != std::string::npos);  // the probe ran
  CHECK(out.find("rehearsal finished: nothing was changed (exit 0)") != std::string::npos);

  // Nothing on disk changed: same entries, same contents, same mtimes.
  CHECK(Snapshot(t.dir(), {"state"}) == before);

  // Recorded as a rehearsal, with the durations of what it ran.
  std::string id = t.LastRunId();
  Value st = t.RunStatus(id);
  CHECK(st["dry_run"] == true);
  CHECK(st["status"] == "succeeded");
  auto steps = t.Steps(id);
  CHECK(steps["make"]["status"] == "unknown");
  CHECK(steps["after-unknown"]["status"] == "unknown");
  CHECK(steps["when-unknown"]["status"] == "unknown");
  CHECK(steps["look"]["status"] == "succeeded");
  CHECK(steps["look"]["duration_ms"].get<int64_t>() > 0);
  CHECK(steps["nap"]["status"] == "succeeded");
  CHECK(steps["nap"]["duration_ms"].get<int64_t>() < 1000);
  CHECK(steps["gate"]["status"] == "succeeded");
  CliResult text = t.Run({"status"});
  CHECK(text.out.find(id + "  succeeded") != std::string::npos);
  CHECK(text.out.find("(rehearsal)") != std::string::npos);

  // A rehearsal has nothing to undo.
  CliResult rb = t.Run({"rollback", id});
  CHECK(rb.code == 2);
  CHECK(rb.err.find("was a rehearsal: it changed nothing to undo") != std::string::npos);
  CHECK(Snapshot(t.dir(), {"state"}) == before);
}

TEST_CASE("a failing rehearsal reports the precondition and runs no rollback action",
          "[e2e][dry-run]") {
  E2e t;
  std::string w = t.P("w");
  t.Write("r.yaml", R"(format: 1
name: rehearse-fail
params:
  w: {type: string}
steps:
  - id: make
    exec: {argv: [mkdir, "${{ params.w }}/made"]}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/keep"]}}
  - id: log-it
    log: made it
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/keep"]}}
  - id: precondition
    exec: {argv: [test, -e, "${{ params.w }}/required-file"], probe: true}
  - id: never
    exec: {argv: [touch, "${{ params.w }}/never"]}
)");
  t.Write("w/keep/precious", "do not remove\n");
  std::string before = Snapshot(t.dir(), {"state"});
  CliResult r = t.Run({"run", "--dry-run", "r.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(r.out.find("  FAILED   precondition  exec") != std::string::npos);
  CHECK(r.out.find("rehearsal failed: step 'precondition': 'test' exited with 1 (a real run "
                   "would stop here and roll back)") != std::string::npos);
  CHECK(r.out.find("never") == std::string::npos);
  CHECK(Snapshot(t.dir(), {"state"}) == before);  // keep/ is still there
  Value st = t.RunStatus(t.LastRunId());
  CHECK(st["dry_run"] == true);
  CHECK(st["status"] == "failed");
}

// ---- plan -----------------------------------------------------------------------------

const char* kPlan = R"(format: 1
name: planned
description: Three steps and a gate
params:
  w: {type: string}
  tables: {type: list, default: [notes, retros]}
lock: planned-target
steps:
  - id: a
    description: make the first directory
    exec: {argv: [mkdir, "${{ params.w }}/a"], creates: "${{ params.w }}/a"}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/a"]}}
  - id: b
    exec: {argv: [touch, "${{ params.w }}/b file"], env: {MODE: fast}}
  - id: gate
    approve: "go on?"
  - id: c
    foreach: "${{ params.tables }}"
    exec: {argv: [mkdir, "${{ params.w }}/${{ item }}"]}
    rollback: {exec: {argv: [rmdir, "${{ params.w }}/${{ item }}"]}}
  - id: d
    log: "done with ${{ steps.c.result }}"
  - id: e
    exec: {argv: [touch, "${{ params.w }}/e"]}
    rollback: none
)";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

TEST_CASE("plan output is stable, shows exact effects and the rollback plan, and runs nothing",
          "[e2e][plan]") {
  E2e t;
  std::string w = t.P("w");
  t.Write("p.yaml", kPlan);
  CliResult first = t.Run({"plan", "p.yaml", "-p", "w=" + w});
  CliResult second = t.Run({"plan", "p.yaml", "-p", "w=" + w});
  INFO(first.All());
  REQUIRE(first.code == 0);
  REQUIRE(second.code == 0);
  CHECK(first.out == second.out);

  std::string expected = "plan: planned (p.yaml)\n"
                         "  Three steps and a gate\n"
                         "lock: planned-target   on_failure: rollback\n"
                         "steps:\n"
                         "  1. a  [exec]  make the first directory\n"
                         "       exec mkdir W/a   (unless W/a exists)\n"
                         "       rehearsal: skip\n"
                         "  2. b  [exec]\n"
                         "       exec MODE=fast touch 'W/b file'\n"
                         "       rehearsal: skip   IRREVERSIBLE\n"
                         "  3. gate  [approve]\n"
                         "       wait for approval: go on?\n"
                         "       rehearsal: simulate\n"
                         "  4. c  [exec]\n"
                         "       for each of [\"notes\",\"retros\"] (concurrency 1)\n"
                         "       c[1]:\n"
                         "       exec mkdir W/notes\n"
                         "       rehearsal: skip\n"
                         "       c[2]:\n"
                         "       exec mkdir W/retros\n"
                         "       rehearsal: skip\n"
                         "  5. d  [log]\n"
                         "       log: done with ${{ steps.c.result }}\n"
                         "       rehearsal: probe\n"
                         "  6. e  [exec]\n"
                         "       exec touch W/e\n"
                         "       rehearsal: skip   IRREVERSIBLE\n"
                         "rollback plan (on failure, newest first):\n"
                         "  e: IRREVERSIBLE: not undone (rollback: none)\n"
                         "  c[2]: rollback: exec rmdir W/retros\n"
                         "  c[1]: rollback: exec rmdir W/notes\n"
                         "  b: IRREVERSIBLE: irreversible unless the step has a rollback: action\n"
                         "  a: rollback: exec rm -rf W/a\n"
                         "2 irreversible step(s): they cannot be undone by rollback\n";
  std::string got = first.out;
  for (size_t at; (at = got.find(w)) != std::string::npos;) got.replace(at, w.size(), "W");
  CHECK(got == expected);

  // Plan neither acts nor opens the state store.
  CHECK_FALSE(Exists(w));
  CHECK_FALSE(Exists(t.state()));
}

TEST_CASE("plan marks every exec without a rollback action as irreversible", "[e2e][plan]") {
  E2e t;
  t.Write("p.yaml", R"(format: 1
name: irr
steps:
  - id: one
    exec: {argv: [touch, MARKER-one]}
  - id: two
    exec: {argv: [touch, MARKER-two]}
    rollback: {exec: {argv: [rm, -f, MARKER-two]}}
  - id: three
    log: nothing to undo
)");
  CliResult r = t.Run({"plan", "p.yaml"});
  INFO(r.All());
  REQUIRE(r.code == 0);
  std::vector<std::string> lines = Lines(r.out);
  auto rollback = std::find(lines.begin(), lines.end(),
                            "rollback plan (on failure, newest first):");
  REQUIRE(rollback != lines.end());
  std::vector<std::string> undo(rollback + 1, lines.end());
  CHECK(undo == std::vector<std::string>{
                    "  two: rollback: exec rm -f MARKER-two",
                    "  one: IRREVERSIBLE: irreversible unless the step has a rollback: action",
                    "1 irreversible step(s): they cannot be undone by rollback"});
  CHECK_FALSE(Exists(t.P("MARKER-one")));
  CHECK_FALSE(Exists(t.P("MARKER-two")));
}

}  // namespace
}  // namespace runbook::e2e
