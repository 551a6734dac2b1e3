// A killed engine's children live on (SIGKILL reaches the engine alone). A
// resume must not run the step again while what its interrupted attempt
// started still runs: it waits for it a little, else stops and says so.
#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

// A command that notes its start and end in `log`, `seconds` apart.
std::string Slow(const E2e& t, double seconds, const std::string& timeout) {
  return t.Write("slow.yaml",
                 "format: 1\nname: slow\nsteps:\n  - id: long\n    timeout: " + timeout +
                     "\n    exec:\n      argv: [python3, -c, \"import sys, time; "
                     "open(sys.argv[1], 'a').write('start\\\\n'); time.sleep(" +
                     std::to_string(seconds) + "); open(sys.argv[1], 'a').write('end\\\\n')\", \"" +
                     t.P("log") + "\"]\n");
}

// Starts the run, waits until the command started, kills the engine only.
std::string KillEngineInside(const E2e& t, const std::string& rb) {
  Background bg(t.Spec({"run", rb}));
  for (int i = 0; i < 400 && ReadFile(t.P("log")).find("start") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(ReadFile(t.P("log")) == "start\n");
  kill(bg.pid(), SIGKILL);  // the engine alone: its child keeps running
  REQUIRE(bg.WaitExit(std::chrono::seconds(10)));
  return t.LastRunId();
}

}  // namespace

TEST_CASE("a resume waits for what the killed engine's step still runs, then runs it again",
          "[e2e][resume][orphans]") {
  E2e t;
  const std::string rb = Slow(t, 2, "20s");
  const std::string id = KillEngineInside(t, rb);
  CHECK(t.RunStatus(id)["status"] == "interrupted");  // no engine holds its lock

  CliResult r = t.Run({"resume", id, "--retry-step", "long"});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_THAT(r.All(), Catch::Contains("waiting for what the interrupted attempt started"));
  // Never twice at once: the second start came after the first end.
  CHECK(ReadFile(t.P("log")) == "start\nend\nstart\nend\n");
}

TEST_CASE("a resume stops, naming the process, while the interrupted attempt's command runs on "
          "past the wait",
          "[e2e][resume][orphans]") {
  E2e t;
  // The wait is bounded by the step's timeout. 3s, not less: on a loaded
  // machine python's start alone can take a second, and the step's timeout
  // must not end the first attempt before it wrote "start".
  const std::string rb = Slow(t, 10, "3s");
  const std::string id = KillEngineInside(t, rb);
  CliResult r = t.Run({"resume", id, "--retry-step", "long"});
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("what it started still runs"));
  CHECK_THAT(r.All(), Catch::Contains("python3"));
  CHECK(ReadFile(t.P("log")) == "start\n");  // not started a second time
  for (int i = 0; i < 400 && ReadFile(t.P("log")) != "start\nend\n"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  r = t.Run({"resume", id, "--retry-step", "long"});
  INFO(r.All());
  CHECK(r.code == 1);  // the command takes longer than its own 3s timeout, as it did
  CHECK_THAT(r.All(), Catch::Contains("timed out"));
  CHECK(ReadFile(t.P("log")).rfind("start\nend\nstart\n", 0) == 0);
}

}  // namespace runbook::e2e
