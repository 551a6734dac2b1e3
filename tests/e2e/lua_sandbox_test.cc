// Hostile Lua through the real binary (issue 14, item 6): a looping xpcall
// handler, a catastrophic pattern and a looping __gc finalizer each end with
// a clear error (exit 1 for `run`, the step journaled as failed), and
// `validate` and `plan` terminate too, on templates and on `.lua` runbooks.
// The invocations run at once, each in its own directory and store: the
// budgets are wall-clock time, so the test takes about the longest one.
#include <catch2/catch.hpp>
#include <functional>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

using Steady = std::chrono::steady_clock;

struct Hostile {
  std::string name;
  std::string body;    // a Lua function body (one line, no "}}")
  std::string expect;  // in the output of every command that runs it
};

std::vector<Hostile> Cases() {
  const std::string kBudget =
      "Lua code ran past its time budget (the step's timeout) and was "
      "stopped";
  return {
      {"xpcall", "xpcall(function() while true do end end, function() while true do end end)",
       kBudget},
      {"pattern", "return ('a'):rep(40):find(('a*'):rep(40) .. 'b')", kBudget},
      {"gc", "setmetatable({}, {__gc = function() while true do end end}) return 1",
       "setmetatable: __gc is not allowed in the sandbox (finalizers would run outside the time "
       "budget)"},
  };
}

std::string StepRunbook(const Hostile& h, const std::string& marker) {
  return "format: 1\nname: lua-" + h.name +
         "\non_failure: stop\nsteps:\n"
         "  - id: hostile\n    timeout: 1s\n    lua: |\n      " +
         h.body +
         "\n"
         "  - id: after\n    exec: {argv: [touch, " +
         marker + "]}\n";
}

std::string TemplateRunbook(const Hostile& h) {
  return "format: 1\nname: tpl-" + h.name +
         "\nsteps:\n"
         "  - id: hostile\n    log: {message: \"${{ (function() " +
         h.body + " end)() }}\"}\n";
}

std::string LuaRunbook(const Hostile& h) {
  return "local _ = (function() " + h.body +
         " end)()\n"
         "return {format = 1, name = 'file-" +
         h.name + "', steps = {{id = 'a', log = 'x'}}}\n";
}

// One invocation of the binary, run on a thread; checked on the main one
// (Catch2's assertions are not thread-safe).
struct Job {
  std::string what;
  std::unique_ptr<E2e> t;
  std::vector<std::string> args;
  int want_code;
  std::string expect;  // "" when the command must simply succeed
  CliResult result;
  Steady::duration took{};
};

}  // namespace

TEST_CASE("hostile Lua ends with a clear error in run, and validate and plan terminate",
          "[e2e][lua]") {
  std::vector<Job> jobs;
  // `text` gets the job's directory (for the marker's path).
  auto add = [&](const std::string& what, const std::string& file,
                 const std::function<std::string(const E2e&)>& text, std::vector<std::string> args,
                 int code, const std::string& expect) {
    Job j{what, std::make_unique<E2e>(), std::move(args), code, expect};
    j.t->Write(file, text(*j.t));
    jobs.push_back(std::move(j));
  };
  for (const Hostile& h : Cases()) {
    auto step = [h](const E2e& t) { return StepRunbook(h, t.P("MARKER")); };
    auto tpl = [h](const E2e&) { return TemplateRunbook(h); };
    auto file = [h](const E2e&) { return LuaRunbook(h); };
    add(h.name + ": run of a lua step", "r.yaml", step, {"run", "r.yaml"}, 1, h.expect);
    add(h.name + ": run of a template", "t.yaml", tpl, {"run", "t.yaml"}, 1, h.expect);
    add(h.name + ": plan of a template", "t.yaml", tpl, {"plan", "t.yaml"}, 0, "");
    add(h.name + ": validate of a .lua runbook", "r.lua", file, {"validate", "r.lua"}, 2, h.expect);
    add(h.name + ": plan of a .lua runbook", "r.lua", file, {"plan", "r.lua"}, 2, h.expect);
  }
  // A __gc added after setmetatable is no finalizer: the run succeeds and
  // the process exits.
  Hostile late{"late-gc",
               "local mt = {} setmetatable({}, mt) mt.__gc = function() while true do end end "
               "for i = 1, 1e5 do local x = {i} end return 1",
               ""};
  add(
      "late __gc: run", "r.yaml", [late](const E2e& t) { return StepRunbook(late, t.P("MARKER")); },
      {"run", "r.yaml"}, 0, "");

  std::vector<std::thread> threads;
  for (auto& j : jobs) {
    threads.emplace_back([&j] {
      auto start = Steady::now();
      j.result = j.t->Run(j.args, {}, std::chrono::seconds(60));
      j.took = Steady::now() - start;
    });
  }
  for (auto& th : threads) th.join();

  for (auto& j : jobs) {
    INFO(j.what << "\nstdout:\n" << j.result.out << "stderr:\n" << j.result.err);
    CHECK_FALSE(j.result.timed_out);
    CHECK(j.result.code == j.want_code);
    if (!j.expect.empty()) CHECK_THAT(j.result.All(), Catch::Contains(j.expect));
    // Budgets: 1 s for the step, 10 s for a template or a .lua runbook, 5 s
    // for plan's templates; the rest is start-up on a busy machine.
    CHECK(j.took < std::chrono::seconds(30));
    if (j.args[0] == "run" && j.args[1] == "r.yaml") {
      std::string run_id = j.t->LastRunId();
      REQUIRE_FALSE(run_id.empty());
      auto steps = j.t->Steps(run_id);
      if (j.want_code == 1) {
        CHECK(steps["hostile"]["status"] == "failed");
        CHECK_THAT(steps["hostile"].dump(), Catch::Contains(j.expect));
        CHECK_FALSE(Exists(j.t->P("MARKER")));
      } else {
        CHECK(steps["hostile"]["status"] == "succeeded");
        CHECK(Exists(j.t->P("MARKER")));
      }
    }
  }
}

TEST_CASE("a long template expression is an error in validate, not a crash", "[e2e][lua]") {
  E2e t;
  std::string name(200000, 'a');
  const std::string exprs[] = {"steps." + name, "steps['" + name + "']", "params." + name};
  for (const auto& expr : exprs) {
    t.Write("long.yaml",
            "format: 1\nname: long\nsteps:\n  - id: a\n    log: \"${{ " + expr + " }}\"\n");
    for (const char* cmd : {"validate", "plan", "run"}) {
      CliResult r = t.Run({cmd, "long.yaml"});
      INFO(cmd << " " << expr.substr(0, 12) << "\n" << r.All().substr(0, 500));
      CHECK(r.code == 2);
      CHECK_THAT(r.All(), Catch::Contains("long.yaml:5:"));
    }
  }
}

}  // namespace runbook::e2e
