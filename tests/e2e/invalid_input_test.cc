// Malformed runbooks and bad params through the command line: each one exits 2
// with its message at file:line:col, and nothing runs (the runbook's first
// step would create a marker file; the state store records no run).
#include <catch2/catch.hpp>

#include <vector>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

// The runbook every step case is added to. Its first step would touch the
// marker; the case's steps start on line 11.
const char* kHeader = R"(format: 1
name: t
params:
  replicas: {type: int, default: 1}
  tables: {type: list, default: [a, b]}
connections:
  blue: {postgres: "host=a"}
steps:
  - id: first
    exec: {argv: [touch, @MARKER@]}
)";

// The marker step, for whole-file cases.
const char* kFirst = "  - id: first\n    exec: {argv: [touch, @MARKER@]}\n";

struct Case {
  std::string what;
  std::string text;    // c.yaml; "@MARKER@" is replaced by the marker's path
  std::string expect;  // a line of the output, exactly
  std::map<std::string, std::string> files = {};  // other files next to c.yaml
};

Case Steps(std::string what, std::string steps, std::string expect) {
  return {std::move(what), std::string(kHeader) + steps, std::move(expect)};
}

Case Top(std::string what, std::string text, std::string expect) {
  return {std::move(what), std::move(text), std::move(expect)};
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

bool HasLine(const std::string& output, const std::string& line) {
  size_t at = 0;
  while ((at = output.find(line, at)) != std::string::npos) {
    bool starts = at == 0 || output[at - 1] == '\n';
    bool ends = at + line.size() == output.size() || output[at + line.size()] == '\n';
    if (starts && ends) return true;
    ++at;
  }
  return false;
}

// Runs the command, expects exit 2 and `expect` as a whole line of its
// output, and checks that nothing ran.
void ExpectRefused(const E2e& t, const std::vector<std::string>& args, const std::string& expect,
                   const std::map<std::string, std::string>& env = {}) {
  CliResult r = t.Run(args, env);
  INFO("runbook " << [&] {
    std::string a;
    for (const auto& s : args) a += s + " ";
    return a;
  }());
  INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
  CHECK(r.code == 2);
  CHECK(HasLine(r.All(), expect));
  CHECK_FALSE(Exists(t.P("MARKER")));
}

void ExpectNoRun(const E2e& t) {
  CliResult r = t.Run({"status", "--json"});
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(Value::parse(r.out) == Value::array());
}

void Check(const Case& c) {
  INFO("case: " << c.what);
  E2e t;
  std::string marker = t.P("MARKER");
  t.Write("c.yaml", Replace(c.text, "@MARKER@", marker));
  for (const auto& [name, text] : c.files) t.Write(name, Replace(text, "@MARKER@", marker));
  ExpectRefused(t, {"validate", "c.yaml"}, c.expect);
  ExpectRefused(t, {"run", "c.yaml"}, c.expect);
  ExpectRefused(t, {"plan", "c.yaml"}, c.expect);
  ExpectNoRun(t);
}

TEST_CASE("malformed top levels are refused by validate, run and plan with file:line:col",
          "[e2e][invalid]") {
  std::string one = std::string("steps:\n") + kFirst;
  std::vector<Case> cases = {
      Top("missing format", "name: t\n" + one, "c.yaml:1:1: missing required key 'format'"),
      Top("missing name", "format: 1\n" + one, "c.yaml:1:1: missing required key 'name'"),
      Top("missing steps", "format: 1\nname: t\n", "c.yaml:1:1: missing required key 'steps'"),
      Top("bad name", "format: 1\nname: My Runbook\n" + one,
          "c.yaml:2:7: bad name 'My Runbook': use lowercase letters, digits, '-' and '_', "
          "starting with a letter or digit"),
      Top("unknown top-level key", "format: 1\nname: t\ndescripton: x\n" + one,
          "c.yaml:3:1: unknown key 'descripton' (did you mean 'description'?)"),
      Top("format 2", "format: 2\nname: t\n" + one,
          "c.yaml:1:9: unsupported format '2' (this engine reads format: 1)"),
      Top("duplicate YAML key", "format: 1\nname: t\nname: u\n" + one,
          "c.yaml:3:1: duplicate key 'name' (first at line 2)"),
      Top("on_failure typo", "format: 1\nname: t\non_failure: rollbak\n" + one,
          "c.yaml:3:13: on_failure must be rollback or stop, got 'rollbak' (did you mean "
          "'rollback'?)"),
      Top("lock not a string", "format: 1\nname: t\nlock: [a]\n" + one,
          "c.yaml:3:7: 'lock' must be a string, got a list"),
      Top("YAML syntax error", "format: 1\nname: t\nsteps:\n" + std::string(kFirst) +
                                   "  - id: a\n    log: [x\n  - id: b\n",
          "c.yaml:8:7: YAML syntax error: end of sequence flow not found"),
      Top("empty file", "", "c.yaml:1:1: empty runbook (expected a map with format, name and steps)"),
      Top("a list at the top", "- a\n- b\n",
          "c.yaml:1:1: a runbook must be a map with format, name and steps, got a list"),
      Top("empty steps", "format: 1\nname: t\nsteps: []\n",
          "c.yaml:3:8: steps is empty: a runbook needs at least one step"),
  };
  for (const auto& c : cases) Check(c);
}

TEST_CASE("malformed windows are refused with the window's position", "[e2e][invalid][window]") {
  auto win = [](const std::string& w) {
    return "format: 1\nname: t\nwindow: " + w + "\nsteps:\n" + kFirst;
  };
  std::vector<Case> cases = {
      Top("unknown day", win("{days: [sat, sunday], start: \"02:00\", end: \"04:00\"}"),
          "c.yaml:3:22: unknown day 'sunday' (use sun, mon, tue, wed, thu, fri, sat) (did you "
          "mean 'sun'?)"),
      Top("bad start time", win("{start: \"25:00\", end: \"04:00\"}"),
          "c.yaml:3:17: window start must be a time HH:MM (00:00 to 23:59), got '25:00'"),
      Top("missing end", win("{start: \"02:00\"}"), "c.yaml:3:9: window needs 'end' (HH:MM)"),
      Top("unknown timezone", win("{timezone: Asia/Singapur, start: \"02:00\", end: \"04:00\"}"),
          "c.yaml:3:20: unknown timezone 'Asia/Singapur' (did you mean 'Asia/Singapore'?)"),
      Top("unknown window key", win("{start: \"02:00\", end: \"04:00\", day: [sat]}"),
          "c.yaml:3:40: unknown key 'day' in window (did you mean 'days'?)"),
  };
  for (const auto& c : cases) Check(c);
}

TEST_CASE("malformed steps are refused before the first step runs", "[e2e][invalid][steps]") {
  std::vector<Case> cases = {
      Steps("unknown step key", "  - id: a\n    retrys: 3\n    log: x\n",
            "c.yaml:12:5: step 'a': unknown key 'retrys' (did you mean 'retries'?)"),
      Steps("unknown action", "  - id: a\n    pg.qeury: {conn: blue, sql: select 1}\n",
            "c.yaml:12:5: step 'a': unknown action 'pg.qeury' (did you mean 'pg.query'?)"),
      Steps("misspelt built-in action", "  - id: a\n    lgo: x\n",
            "c.yaml:12:5: step 'a': unknown action 'lgo' (did you mean 'log'?)"),
      Steps("two actions", "  - id: a\n    log: x\n    sleep: 1s\n",
            "c.yaml:13:5: step 'a': two actions, 'log' and 'sleep' (a step takes exactly one)"),
      Steps("duplicate step id", "  - id: first\n    log: x\n",
            "c.yaml:11:9: step 'first': duplicate step id 'first' (first at line 9)"),
      Steps("bad step id", "  - id: -a\n    log: x\n",
            "c.yaml:11:9: step '-a': bad id '-a': use letters, digits, '-' and '_', starting "
            "with a letter or digit"),
      Steps("missing step id", "  - log: y\n", "c.yaml:11:5: step '#2': missing required key 'id'"),
      Steps("step not a map", "  - just a string\n",
            "c.yaml:11:5: step '#2': a step must be a map with an id and an action, got a "
            "string"),
      Steps("bad duration", "  - id: a\n    timeout: 5 minutes\n    log: x\n",
            "c.yaml:12:14: step 'a': 'timeout': bad duration '5 minutes' (use 500ms, 30s, 10m, "
            "2h)"),
      Steps("zero timeout", "  - id: a\n    timeout: 0s\n    log: x\n",
            "c.yaml:12:14: step 'a': 'timeout' must be more than 0"),
      Steps("bad retry_delay", "  - id: a\n    retry_delay: {s: 1}\n    log: x\n",
            "c.yaml:12:18: step 'a': 'retry_delay': bad duration a map (use 500ms, 30s, 10m, "
            "2h)"),
      Steps("negative retries", "  - id: a\n    retries: -1\n    log: x\n",
            "c.yaml:12:14: step 'a': 'retries' must be an int >= 0, got '-1'"),
      Steps("zero concurrency", "  - id: a\n    concurrency: 0\n    log: x\n",
            "c.yaml:12:18: step 'a': 'concurrency' must be an int >= 1, got '0'"),
      Steps("idempotent not a bool", "  - id: a\n    idempotent: yes\n    log: x\n",
            "c.yaml:12:17: step 'a': 'idempotent' must be true or false, got 'yes'"),
      Steps("approve not a string", "  - id: a\n    approve: [ok]\n    log: x\n",
            "c.yaml:12:14: step 'a': 'approve' must be a string, got a list"),
      Steps("when written as a template", "  - id: a\n    when: \"x ${{ params.replicas }}\"\n"
                                           "    log: x\n",
            "c.yaml:12:11: step 'a': 'when' is a bare Lua expression: write it without '${{ }}'"),
      Steps("foreach not a list", "  - id: a\n    foreach: a, b\n    log: x\n",
            "c.yaml:12:14: step 'a': 'foreach' must be a list or one '${{ expression }}' that "
            "yields a list, got 'a, b'"),
      Steps("rollback typo", "  - id: a\n    rollback: autp\n    log: x\n",
            "c.yaml:12:15: step 'a': 'rollback' must be auto, none or an action, got 'autp' (did "
            "you mean 'auto'?)"),
      Steps("unknown rollback action", "  - id: a\n    log: x\n    rollback: {lgo: undo}\n",
            "c.yaml:13:16: step 'a': rollback: unknown action 'lgo' (did you mean 'log'?)"),
      Steps("argv not a list", "  - id: a\n    exec: {argv: echo}\n",
            "c.yaml:12:12: step 'a': exec: argument 'argv': expected list, got string"),
      Steps("fail message not a string", "  - id: a\n    fail: true\n",
            "c.yaml:12:11: step 'a': fail: argument 'message': expected string, got bool"),
      Steps("sleep with a bad duration", "  - id: a\n    sleep: 5 minutes\n",
            "c.yaml:12:12: step 'a': sleep: argument 'duration': expected duration such as "
            "500ms, 30s, 10m or 2h, got '5 minutes'"),
      Steps("unknown exec argument", "  - id: a\n    exec: {argv: [true], crates: /x}\n",
            "c.yaml:12:26: step 'a': exec: unknown argument 'crates' (did you mean 'creates'?)"),
      Steps("exec without argv", "  - id: a\n    exec: {cwd: /}\n",
            "c.yaml:12:5: step 'a': exec: missing required argument 'argv'"),
  };
  for (const auto& c : cases) Check(c);
}

TEST_CASE("bad templates, params and connections are refused before anything runs",
          "[e2e][invalid][templates]") {
  auto conn = [](const std::string& c) {
    return "format: 1\nname: t\nconnections:\n" + c + "steps:\n" + kFirst;
  };
  auto par = [](const std::string& p) {
    return "format: 1\nname: t\nparams:\n" + p + "steps:\n" + kFirst;
  };
  std::vector<Case> cases = {
      Steps("unknown step in a template", "  - id: b\n    log: \"${{ steps.nope.result }}\"\n",
            "c.yaml:12:11: step 'b': unknown step 'nope' in template"),
      Steps("unknown step in when", "  - id: b\n    when: steps.frist.result\n    log: x\n",
            "c.yaml:12:11: step 'b': unknown step 'frist' in 'when' (did you mean 'first'?)"),
      Steps("unknown param in a template", "  - id: a\n    log: \"n=${{ params.replica }}\"\n",
            "c.yaml:12:13: step 'a': unknown param 'replica' in template (did you mean "
            "'replicas'?)"),
      Steps("a later step in a template",
            "  - id: a\n    log: \"${{ steps.b.result }}\"\n  - id: b\n    log: x\n",
            "c.yaml:12:11: step 'a': step 'b' runs later: template can only read earlier steps"),
      Steps("unterminated template", "  - id: a\n    log: \"x ${{ params.replicas\"\n",
            "c.yaml:12:10: step 'a': bad template: unterminated '${{' at offset 2"),
      Steps("unknown connection in a step", "  - id: a\n    pg.query: {conn: blu, sql: select 1}\n",
            "c.yaml:12:22: step 'a': pg.query: argument 'conn': unknown connection 'blu' (did you "
            "mean 'blue'?)"),
      Top("unknown connection type", conn("  db: {postgress: \"host=x\"}\n"),
          "c.yaml:4:8: connection 'db': unknown connection type 'postgress' (one of kube, postgres, ssh) "
          "(did you mean 'postgres'?)"),
      Top("unknown connection argument", conn("  db: {postgres: {dsn: x, prot: 5432}}\n"),
          "c.yaml:4:27: connection 'db': postgres: unknown argument 'prot' (did you mean "
          "'port'?)"),
      Top("bad connection choice", conn("  db: {postgres: {dsn: x, sslmode: requir}}\n"),
          "c.yaml:4:27: connection 'db': postgres: argument 'sslmode': 'requir' is not one of "
          "disable | allow | prefer | require | verify-ca | verify-full (did you mean "
          "'require'?)"),
      Top("unknown param in a connection", conn("  db: {postgres: {dsn: x, password: \"${{ "
                                                "params.pw }}\"}}\n"),
          "c.yaml:4:38: unknown param 'pw' in template"),
      Top("unknown param type", par("  n: {type: integer}\n"),
          "c.yaml:4:13: param 'n': unknown type 'integer' (use string, int, number, bool, list, "
          "map) (did you mean 'int'?)"),
      Top("default of the wrong type", par("  n: {type: int, default: abc}\n"),
          "c.yaml:4:27: param 'n': default does not match type int: expected int, got 'abc'"),
      Top("required with a default", par("  n: {type: int, default: 1, required: true}\n"),
          "c.yaml:4:30: param 'n': required params take no default: drop one of them"),
      Top("unknown param key", par("  n: {tpye: int}\n"),
          "c.yaml:4:7: param 'n': unknown key 'tpye' (did you mean 'type'?)"),
  };
  for (const auto& c : cases) Check(c);
}

TEST_CASE("include cycles, missing includes and errors inside includes are refused",
          "[e2e][invalid][include]") {
  auto inc = [](const std::string& args) {
    return "format: 1\nname: p\nsteps:\n" + std::string(kFirst) + "  - id: inc\n    include: " +
           args + "\n";
  };
  std::vector<Case> cases = {
      {"include cycle", inc("{runbook: b.yaml}"),
       "b.yaml:7:5: step 'inc': include cycle: c.yaml -> b.yaml -> c.yaml",
       {{"b.yaml", inc("{runbook: c.yaml}")}}},
      {"self include", inc("{runbook: c.yaml}"),
       "c.yaml:7:5: step 'inc': include cycle: c.yaml -> c.yaml"},
      {"missing include", inc("{runbook: nope.yaml}"),
       "c.yaml:7:24: step 'inc': include: runbook 'nope.yaml' not found (looked for nope.yaml)"},
      {"unknown include param", inc("{runbook: child.yaml, params: {cuont: 1}}"),
       "c.yaml:7:45: step 'inc': include: 'child.yaml' has no param 'cuont' (did you mean "
       "'count'?)",
       {{"child.yaml", "format: 1\nname: c\nparams:\n  count: {type: int}\nsteps:\n"
                       "  - {id: x, log: y}\n"}}},
      {"error inside the included runbook", inc("{runbook: child.yaml}"),
       "child.yaml:4:13: step 'x': unknown action 'lgo' (did you mean 'log'?)",
       {{"child.yaml", "format: 1\nname: c\nsteps:\n  - {id: x, lgo: y}\n"}}},
  };
  for (const auto& c : cases) Check(c);
}

// ---- the command line ---------------------------------------------------------------------

const char* kParamsRunbook = R"(format: 1
name: p
params:
  replicas: {type: int, default: 1}
  need: {type: string, required: true}
  pin: {type: int, secret: true, default: 0}
steps:
  - id: first
    exec: {argv: [touch, @MARKER@]}
  - id: second
    log: "${{ params.replicas }}"
)";

struct CliCase {
  std::string what;
  std::vector<std::string> args;  // after "run p.yaml" / "plan p.yaml"
  std::string expect;
  bool plan_too = true;
};

TEST_CASE("bad -p values, missing or unknown params and --from are refused by run and plan",
          "[e2e][invalid][params]") {
  std::vector<CliCase> cases = {
      {"-p without '='", {"-p", "need"}, "runbook: -p need: expected name=value"},
      {"unknown -p name", {"-p", "need=x", "-p", "replica=2"},
       "<command line>: unknown param 'replica' (did you mean 'replicas'?)"},
      {"-p of the wrong type", {"-p", "need=x", "-p", "replicas=abc"},
       "<command line>: param 'replicas': expected int, got 'abc'"},
      {"missing required param", {}, "p.yaml:5:3: missing required param 'need' (give -p "
                                     "need=VALUE)"},
      {"a bad secret value is not echoed", {"-p", "need=x", "-p", "pin=hunter2"},
       "<command line>: param 'pin': expected int, got '***'"},
      {"--from an unknown step", {"-p", "need=x", "--from", "frist"},
       "runbook: --from: no step 'frist' in p.yaml (did you mean 'first'?)", false},
      {"params file with a bad value", {"--params-file", "bad.yaml"},
       "bad.yaml:1:11: param 'replicas': expected int, got 'many'"},
  };
  for (const auto& c : cases) {
    INFO("case: " << c.what);
    E2e t;
    t.Write("p.yaml", Replace(kParamsRunbook, "@MARKER@", t.P("MARKER")));
    t.Write("bad.yaml", "replicas: many\nneed: x\n");
    CliResult v = t.Run({"validate", "p.yaml"});
    CHECK(v.code == 0);  // the runbook itself is fine
    std::vector<std::string> run{"run", "p.yaml"};
    run.insert(run.end(), c.args.begin(), c.args.end());
    ExpectRefused(t, run, c.expect);
    if (c.plan_too) {
      std::vector<std::string> plan{"plan", "p.yaml"};
      plan.insert(plan.end(), c.args.begin(), c.args.end());
      ExpectRefused(t, plan, c.expect);
    }
    ExpectNoRun(t);
    CHECK(DumpStore(t.state()).find("hunter2") == std::string::npos);
  }
}

TEST_CASE("a runbook file that does not exist is refused by validate, plan and run",
          "[e2e][invalid]") {
  E2e t;
  for (const char* cmd : {"validate", "plan", "run"}) {
    ExpectRefused(t, {cmd, "nope.yaml"}, "nope.yaml: cannot read runbook: No such file or directory");
  }
  ExpectNoRun(t);
}

TEST_CASE("unknown commands and options are usage errors (exit 2)", "[e2e][invalid]") {
  E2e t;
  t.Write("ok.yaml", std::string("format: 1\nname: ok\nsteps:\n") +
                         Replace(kFirst, "@MARKER@", t.P("MARKER")));
  CliResult r = t.Run({"runn", "ok.yaml"});
  CHECK(r.code == 2);
  r = t.Run({"run", "ok.yaml", "--dry-rn"});
  INFO(r.All());
  CHECK(r.code == 2);
  CHECK(r.All().find("--dry-rn") != std::string::npos);
  r = t.Run({"run", "ok.yaml", "--log-format", "xml"});
  CHECK(r.code == 2);
  r = t.Run({"resume", "no-such-run"});
  CHECK(r.code == 2);
  CHECK(r.All().find("no-such-run") != std::string::npos);
  CHECK_FALSE(Exists(t.P("MARKER")));
}

TEST_CASE("a run lock length that is not 3 to 86400 seconds is refused before anything runs",
          "[e2e][invalid][lock]") {
  E2e t;
  t.Write("ok.yaml", std::string("format: 1\nname: ok\nsteps:\n") +
                         Replace(kFirst, "@MARKER@", t.P("MARKER")));
  for (const char* bad : {"2", "86401", "30s", "-5", "x"}) {
    for (const char* cmd : {"run", "fleet"}) {
      std::vector<std::string> args{cmd, "ok.yaml"};
      if (std::string(cmd) == "fleet") {
        args.insert(args.end(), {"--targets", t.Write("targets.yaml", "a: {}\n")});
      }
      CliResult r = t.Run(args, {{"RUNBOOK_LEASE_SECONDS", bad}});
      INFO(cmd << " with RUNBOOK_LEASE_SECONDS=" << bad << ": " << r.All());
      CHECK(r.code == 2);
      CHECK_THAT(r.err, Catch::Contains(
                            "RUNBOOK_LEASE_SECONDS must be a number of seconds from 3 to 86400"));
    }
  }
  CHECK_FALSE(Exists(t.P("MARKER")));
  ExpectNoRun(t);
  CHECK(t.Run({"run", "ok.yaml"}, {{"RUNBOOK_LEASE_SECONDS", "3"}}).code == 0);
  CHECK(Exists(t.P("MARKER")));
}

}  // namespace
}  // namespace runbook::e2e
