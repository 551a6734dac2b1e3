// Retries, timeouts, continue_on_error and foreach; and the reports of a run.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

using std::chrono::milliseconds;

// sed appends a line to the counter on each attempt and exits 1 while the
// counter had fewer than three lines: it fails twice, then succeeds.
const char* kFlaky = R"(format: 1
name: flaky
params:
  w: {type: string}
steps:
  - id: flaky
    exec:
      argv: [sed, -i, -e, "$a attempt", -e, "1{$q1}", -e, "2{$q1}", "${{ params.w }}/count"]
    retries: 3
    retry_delay: 20ms
  - id: after
    exec: {argv: [touch, "${{ params.w }}/after"]}
)";

TEST_CASE("a command that fails twice then succeeds, with retries: 3, succeeds on attempt 3",
          "[e2e][retry]") {
  E2e t;
  std::string w = t.P("w");
  t.Write("w/count", "start\n");
  t.Write("f.yaml", kFlaky);
  CliResult r = t.Run({"run", "f.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(r.out.find("flaky: warn: attempt 1 of 4 failed: 'sed' exited with 1; retrying in 20ms") !=
        std::string::npos);
  CHECK(r.out.find("flaky: warn: attempt 2 of 4 failed: 'sed' exited with 1; retrying in 40ms") !=
        std::string::npos);
  CHECK(r.out.find("  ok       flaky  exec") != std::string::npos);
  CHECK(r.out.find("(3 attempts)") != std::string::npos);
  CHECK(CountLines(w + "/count") == 4);  // start + three attempts, not four
  std::string id = t.LastRunId();
  auto steps = t.Steps(id);
  CHECK(steps["flaky"]["attempts"] == 3);
  CHECK(steps["flaky"]["status"] == "succeeded");
  CHECK(t.Run({"status", id}).out.find("attempts 3") != std::string::npos);
  CHECK(Exists(w + "/after"));
}

TEST_CASE("a command that keeps failing uses up its retries and fails the run", "[e2e][retry]") {
  E2e t;
  std::string w = t.P("w");
  t.Write("w/count", "start\n");
  std::string text = kFlaky;
  text.replace(text.find("retries: 3"), 10, "retries: 1");
  t.Write("f.yaml", text);
  CliResult r = t.Run({"run", "f.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 1);
  // Nothing completed before it: the rollback has nothing to undo, and says so.
  CHECK(r.out.find("step 'flaky': 'sed' exited with 1; nothing to undo") != std::string::npos);
  CHECK(CountLines(w + "/count") == 3);  // two attempts
  CHECK(t.Steps(t.LastRunId())["flaky"]["attempts"] == 2);
  CHECK_FALSE(Exists(w + "/after"));
}

TEST_CASE("a timeout kills the command's whole process group and fails the step in time",
          "[e2e][timeout]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  // find runs sleep as its child: two processes in the command's group.
  t.Write("t.yaml", R"(format: 1
name: slow
params:
  w: {type: string}
steps:
  - id: slow
    exec: {argv: [find, "${{ params.w }}", -maxdepth, "0", -exec, sleep, "5", ";"]}
    timeout: 300ms
  - id: after
    exec: {argv: [touch, "${{ params.w }}/after"]}
)");
  auto start = std::chrono::steady_clock::now();
  Background bg(t.Spec({"run", "t.yaml", "-p", "w=" + w}));
  // The processes the engine started, seen while they run.
  std::set<pid_t> seen;
  while (bg.Running() && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    for (pid_t p : Descendants(bg.pid())) seen.insert(p);
    bg.Drain(milliseconds(10));
  }
  REQUIRE(bg.WaitExit(std::chrono::seconds(20)));
  auto took = std::chrono::steady_clock::now() - start;
  INFO(bg.out() << bg.err());
  CHECK(took < std::chrono::seconds(3));
  CHECK(seen.size() >= 2);  // find and its sleep
  for (pid_t p : seen) {
    INFO("pid " << p);
    CHECK_FALSE(PidAlive(p));
  }
  CHECK(bg.out().find("  FAILED   slow  exec") != std::string::npos);
  CHECK(bg.out().find("'find' timed out and its process group was killed") != std::string::npos);
  CHECK_FALSE(Exists(w + "/after"));
  auto steps = t.Steps(t.LastRunId());
  CHECK(steps["slow"]["status"] == "failed");
}

TEST_CASE("continue_on_error lets the run go on past a failed step", "[e2e][continue]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("c.yaml", R"(format: 1
name: tolerant
params:
  w: {type: string}
steps:
  - id: optional
    exec: {argv: [test, -e, "${{ params.w }}/missing"]}
    continue_on_error: true
  - id: after
    exec: {argv: [touch, "${{ params.w }}/after-${{ steps.optional.status }}"]}
)");
  CliResult r = t.Run({"run", "c.yaml", "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(r.out.find("  FAILED   optional  exec") != std::string::npos);
  CHECK(Exists(w + "/after-failed"));
  std::string id = t.LastRunId();
  CHECK(t.RunStatus(id)["status"] == "succeeded");
  auto steps = t.Steps(id);
  CHECK(steps["optional"]["status"] == "failed");
  CHECK(steps["after"]["status"] == "succeeded");
}

// Each item sleeps half a second then makes its directory.
const char* kForeach = R"(format: 1
name: fan-out
params:
  w: {type: string}
steps:
  - id: item
    foreach: [a, b, c, d, e, f]
    concurrency: 3
    lua: |
      exec{argv = {"sleep", "0.5"}}
      exec{argv = {"mkdir", params.w .. "/item-" .. item}}
      return {made = item}
  - id: after
    log: "made ${{ #steps.item.result }}"
)";

TEST_CASE("foreach with concurrency 3 runs 6 items, at most 3 at a time, as item[1]..item[6]",
          "[e2e][foreach]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("f.yaml", kForeach);
  Background bg(t.Spec({"run", "f.yaml", "-p", "w=" + w}));
  size_t most = 0;
  auto start = std::chrono::steady_clock::now();
  while (bg.Running() && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    size_t sleeping = 0;
    for (pid_t p : Descendants(bg.pid())) {
      if (ReadFile("/proc/" + std::to_string(p) + "/comm") == "sleep\n") ++sleeping;
    }
    most = std::max(most, sleeping);
    bg.Drain(milliseconds(5));
  }
  REQUIRE(bg.WaitExit(std::chrono::seconds(30)));
  INFO(bg.out() << bg.err());
  CHECK(most == 3);
  CHECK(bg.out().find("after: log: made 6") != std::string::npos);
  for (const char* item : {"a", "b", "c", "d", "e", "f"}) {
    CHECK(Exists(w + "/item-" + item));
  }
  std::string id = RunIdFrom(bg.out());
  auto steps = t.Steps(id);
  CHECK(steps.size() == 8);  // item, item[1]..item[6], after
  for (int i = 1; i <= 6; ++i) {
    std::string sid = "item[" + std::to_string(i) + "]";
    INFO(sid);
    REQUIRE(steps.count(sid));
    CHECK(steps[sid]["status"] == "succeeded");
  }
  CHECK(steps["item"]["status"] == "succeeded");
  CHECK(t.RunStatus(id)["status"] == "succeeded");
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// ---- reports ----------------------------------------------------------------------------

const char* kReported = R"(format: 1
name: reported
description: A change with a table and a failure
params:
  w: {type: string}
steps:
  - id: make
    description: make the directory
    exec: {argv: [mkdir, "${{ params.w }}/made"], creates: "${{ params.w }}/made"}
    rollback: {exec: {argv: [rm, -rf, "${{ params.w }}/made"]}}
  - id: skipped
    when: false
    log: never
  - id: note
    log: "<b>not html</b> & | pipes"
  - id: optional
    exec: {argv: [test, -e, "${{ params.w }}/missing"]}
    continue_on_error: true
  - id: each
    foreach: [x, y]
    exec: {argv: [touch, "${{ params.w }}/each-${{ item }}"]}
)";

TEST_CASE("reports: markdown has an implementation log row per step, json parses, html is "
          "self-contained",
          "[e2e][report]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("r.yaml", kReported);
  CliResult r = t.Run({"run", "r.yaml", "-p", "w=" + w});
  INFO(r.All());
  REQUIRE(r.code == 0);
  std::string id = t.LastRunId();

  CliResult md = t.Run({"report", id});
  INFO(md.All());
  REQUIRE(md.code == 0);
  CHECK(md.out.find("# reported: run " + id) != std::string::npos);
  CHECK(md.out.find("## Implementation Log") != std::string::npos);
  CHECK(md.out.find("| Date | Step | Change | Status | Duration |") != std::string::npos);
  std::string day = t.RunStatus(id)["started"].get<std::string>().substr(0, 10);
  CHECK(md.out.find("| " + day + " | make | exec mkdir " + w + "/made   (unless " + w +
                    "/made exists) | Complete | ") != std::string::npos);
  // A step skipped by its `when` never started: no date, no change.
  CHECK(md.out.find("|  | skipped |  | Skipped |  |") != std::string::npos);
  CHECK(md.out.find("| " + day + " | optional | exec test -e " + w + "/missing | Failed") !=
        std::string::npos);
  for (const char* step : {"note", "each", "each[1] (x)", "each[2] (y)"}) {
    INFO(step);
    CHECK(md.out.find(std::string("| ") + step + " | ") != std::string::npos);
  }
  // One row per step, no more.
  size_t log = md.out.find("|---|---|---|---|---|\n");
  REQUIRE(log != std::string::npos);
  std::string table = md.out.substr(log, md.out.find("\n\n", log) - log);
  CHECK(Lines(table).size() == 1 + 7);  // make, skipped, note, optional, each, each[1], each[2]

  CliResult json = t.Run({"report", id, "--format", "json"});
  REQUIRE(json.code == 0);
  Value j = Value::parse(json.out);
  CHECK(j["run"] == id);
  CHECK(j["status"] == "succeeded");
  CHECK(j["steps"].size() == 7);

  CliResult html = t.Run({"report", id, "--format", "html"});
  REQUIRE(html.code == 0);
  const std::string& h = html.out;
  CHECK(h.rfind("<!doctype html>", 0) == 0);
  CHECK(h.find("</html>") != std::string::npos);
  CHECK(h.find("<style>") != std::string::npos);
  // Self-contained: nothing fetched from elsewhere.
  for (const char* outside : {"http://", "https://", "<link", "<script", "src=", "@import",
                              "url("}) {
    INFO(outside);
    CHECK(h.find(outside) == std::string::npos);
  }
  // The step's text is escaped, not markup.
  CHECK(h.find("<b>not html</b>") == std::string::npos);
  CHECK(h.find("&lt;b&gt;not html&lt;/b&gt;") != std::string::npos);

  // -o writes the same report to a file.
  CliResult to_file = t.Run({"report", id, "--format", "html", "-o", t.P("report.html")});
  CHECK(to_file.code == 0);
  CHECK(ReadFile(t.P("report.html")) == h);
  // An unknown run is invalid input.
  CHECK(t.Run({"report", "no-such-run"}).code == 2);
}

}  // namespace
}  // namespace runbook::e2e
