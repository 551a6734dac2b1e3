// The command line people expect: global options anywhere, did-you-mean for
// commands, `last` / `last-failed` as run ids, and shell completion that
// real bash runs.
#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

const char kOk[] = "format: 1\nname: ok\nsteps:\n  - id: a\n    log: hello\n";
const char kBad[] = "format: 1\nname: bad\nsteps:\n  - id: a\n    fail: boom\n";

TEST_CASE("global options are accepted after the command", "[e2e][cli]") {
  E2e t;
  t.Write("ok.yaml", kOk);
  CliResult r = t.Run({"run", "ok.yaml", "--no-color", "-v"});
  INFO(r.All());
  CHECK(r.code == 0);
  // --state after the command picks that store, not RUNBOOK_STATE's.
  const std::string other = t.P("other.db");
  r = t.Run({"run", "ok.yaml", "--state", other});
  CHECK(r.code == 0);
  CHECK(Exists(other));
  r = t.Run({"status", "--json", "--state", other});
  CHECK(r.code == 0);
  CHECK(Value::parse(r.out).size() == 1);
  CHECK(t.Runs().size() == 1);  // RUNBOOK_STATE's store holds only the first run
}

TEST_CASE("an unknown command is refused with the nearest one", "[e2e][cli]") {
  E2e t;
  CliResult r = t.Run({"statsu"});
  CHECK(r.code == 2);
  CHECK(r.err.find("unknown command 'statsu'; did you mean 'status'?") != std::string::npos);
  r = t.Run({"--state", t.P("s.db"), "rollbak", "x"});
  CHECK(r.code == 2);
  CHECK(r.err.find("did you mean 'rollback'?") != std::string::npos);
  r = t.Run({"frobnicate"});
  CHECK(r.code == 2);
  CHECK(r.err.find("unknown command 'frobnicate'") != std::string::npos);
  CHECK(r.err.find("did you mean") == std::string::npos);
  CHECK_FALSE(Exists(t.P("s.db")));  // nothing was opened, let alone run
}

TEST_CASE("last and last-failed name the newest run and the newest that failed", "[e2e][cli]") {
  E2e t;
  t.Write("ok.yaml", kOk);
  t.Write("bad.yaml", kBad);
  CliResult r = t.Run({"status", "last"});
  CHECK(r.code == 2);
  CHECK(r.err.find("no run in state store") != std::string::npos);
  REQUIRE(t.Run({"run", "ok.yaml"}).code == 0);
  r = t.Run({"report", "last-failed"});
  CHECK(r.code == 2);
  CHECK(r.err.find("no failed run") != std::string::npos);
  REQUIRE(t.Run({"run", "bad.yaml"}).code == 1);
  const std::string failed = t.LastRunId();
  REQUIRE(t.Run({"run", "ok.yaml"}).code == 0);
  const std::string newest = t.LastRunId();
  REQUIRE(failed != newest);

  r = t.Run({"status", "last", "--json"});
  REQUIRE(r.code == 0);
  CHECK(Value::parse(r.out)["run"] == newest);
  CHECK(r.err.find("last is run " + newest + " (ok, succeeded)") != std::string::npos);
  r = t.Run({"status", "last-failed", "--json"});
  REQUIRE(r.code == 0);
  CHECK(Value::parse(r.out)["run"] == failed);
  CHECK(r.err.find("last-failed is run " + failed + " (bad, rolled_back)") != std::string::npos);
  r = t.Run({"report", "last-failed", "--format", "json"});
  REQUIRE(r.code == 0);
  CHECK(r.out.find(failed) != std::string::npos);
  // A rolled-back run cannot be resumed: the alias resolves, the engine says why.
  r = t.Run({"resume", "last-failed"});
  CHECK(r.code == 2);
  CHECK(r.err.find("was rolled back") != std::string::npos);
}

// COMPREPLY of the generated bash completion for the words `line` (the
// last one being completed), with the built binary first in PATH.
std::string Complete(const E2e& t, const std::string& script, const std::string& line) {
  const std::string bin_dir =
      std::string(RUNBOOK_BINARY).substr(0, std::string(RUNBOOK_BINARY).rfind('/'));
  ProcessSpec spec;
  spec.argv = {"bash",
               "--norc",
               "--noprofile",
               "-c",
               "source \"$1\"; read -r -a COMP_WORDS <<< \"$2\"; "
               "[[ \"$2\" == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
               "_runbook; printf '%s\\n' \"${COMPREPLY[@]}\"",
               "complete-test",
               script,
               line};
  spec.env["PATH"] = bin_dir + ":" + std::string(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
  spec.env["RUNBOOK_STATE"] = t.state();
  spec.cwd = t.dir();
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
  return r->out;
}

TEST_CASE("bash completion completes commands, options, files and run ids", "[e2e][cli]") {
  E2e t;
  t.Write("ok.yaml", kOk);
  REQUIRE(t.Run({"run", "ok.yaml"}).code == 0);
  const std::string id = t.LastRunId();
  CliResult gen = t.Run({"completion", "bash"});
  REQUIRE(gen.code == 0);
  const std::string script = t.Write("runbook.bash", gen.out);

  CHECK(Complete(t, script, "runbook sta") == "status\n");
  CHECK(Complete(t, script, "runbook run --dry") == "--dry-run\n");
  CHECK(Complete(t, script, "runbook --no-color rollback --acc") == "--accept-data-loss\n");
  CHECK(Complete(t, script, "runbook run ok.y") == "ok.yaml\n");
  const std::string ids = Complete(t, script, "runbook resume ");
  CHECK(ids.find("last\n") != std::string::npos);
  CHECK(ids.find("last-failed\n") != std::string::npos);
  CHECK(ids.find(id + "\n") != std::string::npos);
  CHECK(Complete(t, script, "runbook completion z") == "zsh\n");

  CliResult zsh = t.Run({"completion", "zsh"});
  CHECK(zsh.code == 0);
  CHECK(zsh.out.find("bashcompinit") != std::string::npos);
  CHECK(zsh.out.find("_runbook()") != std::string::npos);
  CHECK(t.Run({"completion", "fish"}).code == 2);
}

TEST_CASE("foreach instances are shown with their item by value", "[e2e][cli]") {
  E2e t;
  t.Write("each.yaml",
          "format: 1\nname: each\nsteps:\n"
          "  - id: move\n"
          "    foreach: ['app_users', {name: app_orders, size: 3}, {size: 7}, [1, 2]]\n"
          "    log: moving\n");
  CliResult r = t.Run({"run", "each.yaml"});
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(r.out.find(" move[1] (app_users)  log") != std::string::npos);
  CHECK(r.out.find(" move[2] (app_orders)  log") != std::string::npos);
  CHECK(r.out.find(" move[3] (size=7)  log") != std::string::npos);
  CHECK(r.out.find(" move[4]  log") != std::string::npos);  // no scalar to show
  const std::string id = t.LastRunId();
  r = t.Run({"status", id});
  CHECK(r.out.find("move[2] (app_orders)") != std::string::npos);
  r = t.Run({"report", id});
  CHECK(r.out.find("move[2] (app_orders)") != std::string::npos);
  std::map<std::string, Value> steps = t.Steps(id);
  CHECK(steps["move[2]"]["item"]["name"] == "app_orders");
}

}  // namespace
}  // namespace runbook::e2e

namespace runbook::e2e {
namespace {

TEST_CASE(
    "runbook man prints runbook(1), which groff renders without a warning, naming every "
    "command and option --help lists",
    "[e2e][cli][man]") {
  E2e t;
  CliResult man = t.Run({"man"});
  REQUIRE(man.code == 0);
  const std::string page = t.Write("runbook.1", man.out);
  ProcessSpec spec;
  spec.argv = {"groff", "-man", "-Tutf8", "-ww", "-rLL=200n", page};
  spec.env["PATH"] = "/usr/bin:/bin";
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  INFO(r->err);
  CHECK(r->exit_code == 0);
  CHECK(r->err.empty());  // -ww: every warning
  // The rendered text, without groff's overstrike bold and underline.
  std::string text;
  for (size_t i = 0; i < r->out.size(); ++i) {
    if (i + 1 < r->out.size() && r->out[i + 1] == '\b') {
      ++i;
      continue;
    }
    text += r->out[i];
  }
  for (const char* section : {"NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS",
                              "PRIMITIVES", "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"}) {
    CHECK(text.find("\n" + std::string(section) + "\n") != std::string::npos);
  }
  // Every primitive `runbook docs` lists has its entry, with its arguments
  // and its result fields, nested ones by path.
  const std::string primitives = text.substr(text.find("\nPRIMITIVES\n"));
  CliResult docs = t.Run({"docs"});
  REQUIRE(docs.code == 0);
  std::istringstream doc_lines(docs.out);
  int listed = 0;
  for (std::string l; std::getline(doc_lines, l);) {
    if (l.rfind("## `", 0) != 0) continue;
    const std::string name = l.substr(4, l.find('`', 4) - 4);
    INFO(name);
    CHECK(primitives.find("\n   " + name + "\n") != std::string::npos);
    ++listed;
  }
  CHECK(listed > 30);
  for (const char* field :
       {"databases[].recorded_version", "exit_code", "tables[].rows", "would_be_refreshed"}) {
    INFO(field);
    CHECK(primitives.find(field) != std::string::npos);
  }
  CliResult help = t.Run({"--help"});
  REQUIRE(help.code == 0);
  // Every command --help lists has its section, with each of its options.
  const size_t subs = help.out.find("Subcommands:");
  REQUIRE(subs != std::string::npos);
  std::istringstream lines(help.out.substr(subs));
  std::string line;
  int commands = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("  ", 0) != 0) continue;
    const std::string cmd = line.substr(2, line.find(' ', 2) - 2);
    INFO(cmd);
    CHECK(text.find("runbook " + cmd) != std::string::npos);
    CliResult sub = t.Run({cmd, "--help"});
    for (size_t at = sub.out.find("--"); at != std::string::npos; at = sub.out.find("--", at + 2)) {
      const size_t end = sub.out.find_first_of(" ,\n", at);
      CHECK(text.find(sub.out.substr(at, end - at)) != std::string::npos);
    }
    ++commands;
  }
  CHECK(commands >= 13);
  CHECK(text.find("\n       4      the run lock is held by another run") != std::string::npos);
}

TEST_CASE("runbook --version names the commit it was built from", "[e2e][cli]") {
  E2e t;
  CliResult v = t.Run({"--version"});
  CHECK(v.code == 0);
  CHECK_THAT(v.out, Catch::Matches("runbook [0-9]+\\.[0-9]+\\.[0-9]+ \\(([0-9a-f]{12}(-dirty)?|"
                                   "unknown)\\)\n"));
}

}  // namespace
}  // namespace runbook::e2e
