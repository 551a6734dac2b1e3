// Secrets: a secret param, given with -p or through its env
// variable, and passwords in connection strings appear in no output, no
// report and no row (nor byte) of the state store.
#include <catch2/catch.hpp>
#include <filesystem>

#include "engine/state/pg_store.h"
#include "tests/e2e/e2e_util.h"
#include "tests/engine/state_test_util.h"

namespace runbook::e2e {
namespace {

const char* kSecretRunbook = R"(format: 1
name: secretive
params:
  pw: {type: string, secret: true, env: E2E_SECRET_PW}
  w: {type: string}
connections:
  db: {postgres: "host=127.0.0.1 port=1 dbname=x user=u password=${{ params.pw }} connect_timeout=2"}
  uri: {postgres: {dsn: "postgresql://u:${{ params.pw }}@127.0.0.1:1/x", password: "${{ params.pw }}"}}
  literal: {postgres: "host=127.0.0.1 port=1 dbname=x user=u password=LiteralPw4242"}
steps:
  - id: echo
    description: "uses ${{ params.pw }}"
    exec: {argv: [echo, "pw is ${{ params.pw }}"], env: {PGPASSWORD: "${{ params.pw }}"}}
  - id: printenv
    exec: {argv: [printenv, PGPASSWORD], env: {PGPASSWORD: "${{ params.pw }}"}}
  - id: lua-log
    lua: |
      log.info("the password is " .. params.pw)
      return {pw = params.pw, again = "x" .. params.pw .. "x"}
  - id: msg
    log: "logging ${{ params.pw }}"
  - id: query
    pg.query: {conn: db, sql: "select '${{ params.pw }}'"}
    continue_on_error: true
  - id: query-uri
    pg.query: {conn: uri, sql: "select 1"}
    continue_on_error: true
  - id: query-literal
    pg.query: {conn: literal, sql: "select 1"}
    continue_on_error: true
  - id: checked
    exec: {argv: [echo, "${{ params.pw }}"]}
    assert: result.exit_code == 1
    continue_on_error: true
  - id: boom
    exec: {argv: [ls, "${{ params.w }}/nonexistent-${{ params.pw }}"]}
    rollback: {exec: {argv: [echo, "undo ${{ params.pw }}"]}}
)";

// Every byte of every file under `dir`.
std::string AllBytes(const std::string& dir) {
  std::string out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out += ReadFile(e.path().string());
  }
  return out;
}

void ExpectHidden(const std::string& where, const std::string& text,
                  const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    INFO(where << ":\n" << text);
    CHECK(text.find(s) == std::string::npos);
  }
}

// Runs every reading command on run `id` and checks none shows a secret.
void ExpectNowhere(const E2e& t, const std::string& id, const std::vector<std::string>& secrets,
                   const std::map<std::string, std::string>& env) {
  std::vector<std::vector<std::string>> commands = {
      {"status"},
      {"status", "--json"},
      {"status", id},
      {"status", id, "--json"},
      {"report", id},
      {"report", id, "--format", "json"},
      {"report", id, "--format", "html"},
  };
  for (const auto& args : commands) {
    CliResult r = t.Run(args, env);
    std::string name = "runbook " + args[0] + " " + (args.size() > 1 ? args[1] : "");
    CHECK(r.code == 0);
    ExpectHidden(name, r.All(), secrets);
  }
  std::string dump = DumpStore(t.state());
  REQUIRE_FALSE(dump.empty());
  // The store does hold the run (so the dump is real) ...
  CHECK(dump.find(id) != std::string::npos);
  CHECK(dump.find("***") != std::string::npos);
  // ... but no secret, in any row of any table, nor in any byte of its files.
  ExpectHidden("state store rows", dump, secrets);
  ExpectHidden("state store files", AllBytes(t.P("state")), secrets);
}

TEST_CASE("a secret given with -p appears in no output, report or state-store row",
          "[e2e][secrets]") {
  E2e t;
  const std::string pw = "Sup3rS3cretP4ss";
  std::vector<std::string> secrets = {pw, "LiteralPw4242"};
  t.Write("s.yaml", kSecretRunbook);
  std::filesystem::create_directories(t.P("w"));
  CliResult r = t.Run({"run", "s.yaml", "-p", "pw=" + pw, "-p", "w=" + t.P("w")});
  INFO(r.All());
  CHECK(r.code == 1);  // boom failed; the run rolled back
  ExpectHidden("run output", r.All(), secrets);
  // The secret did reach the commands, and was masked on the way back.
  CHECK(r.out.find("lua-log: log: the password is ***") != std::string::npos);
  CHECK(r.out.find("msg: log: logging ***") != std::string::npos);
  CHECK(r.out.find("nonexistent-***") != std::string::npos);
  CHECK(r.out.find("assert failed") != std::string::npos);
  std::string id = t.LastRunId();
  CHECK(t.RunStatus(id)["status"] == "rolled_back");
  ExpectNowhere(t, id, secrets, {});

  // Machine output too.
  CliResult json = t.Run({"run", "s.yaml", "-p", "pw=" + pw, "-p", "w=" + t.P("w"),
                          "--log-format", "json"});
  CHECK(json.code == 1);
  CHECK(json.out.find("\"event\"") != std::string::npos);
  ExpectHidden("run --log-format json", json.All(), secrets);
  // A rehearsal and a plan with the secret.
  CliResult dry = t.Run({"run", "--dry-run", "s.yaml", "-p", "pw=" + pw, "-p", "w=" + t.P("w")});
  ExpectHidden("run --dry-run", dry.All(), secrets);
  CliResult plan = t.Run({"plan", "s.yaml", "-p", "pw=" + pw, "-p", "w=" + t.P("w")});
  CHECK(plan.code == 0);
  CHECK(plan.out.find("exec PGPASSWORD=*** echo 'pw is ***'") != std::string::npos);
  ExpectHidden("plan", plan.All(), secrets);
  ExpectNowhere(t, t.LastRunId(), secrets, {});
}

TEST_CASE("a secret from its env variable stays hidden across a stop and a resume",
          "[e2e][secrets]") {
  E2e t;
  const std::string pw = "EnvS3cretW0rd77";
  std::vector<std::string> secrets = {pw, "LiteralPw4242"};
  std::string text = kSecretRunbook;
  text.replace(text.find("steps:\n"), 0, "on_failure: stop\n");
  t.Write("s.yaml", text);
  std::filesystem::create_directories(t.P("w"));
  std::map<std::string, std::string> env{{"E2E_SECRET_PW", pw}};
  CliResult r = t.Run({"run", "s.yaml", "-p", "w=" + t.P("w")}, env);
  INFO(r.All());
  CHECK(r.code == 1);
  ExpectHidden("run output", r.All(), secrets);
  std::string id = t.LastRunId();
  CHECK(t.RunStatus(id)["status"] == "stopped");

  // Resume needs the secret again (it is never stored) and says how to give it.
  CliResult no_secret = t.Run({"resume", id});
  CHECK(no_secret.code == 2);
  CHECK(no_secret.err.find("secret param 'pw' is not stored; supply it again (env "
                           "E2E_SECRET_PW or -p)") != std::string::npos);
  // With it, and the cause fixed, the run finishes.
  t.Write("w/nonexistent-" + pw, "");
  CliResult resumed = t.Run({"resume", id}, env);
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  ExpectHidden("resume output", resumed.All(), secrets);
  CHECK(t.RunStatus(id)["status"] == "succeeded");
  CliResult plan = t.Run({"plan", "s.yaml", "-p", "w=" + t.P("w")}, env);
  CHECK(plan.code == 0);
  ExpectHidden("plan", plan.All(), secrets);
  ExpectNowhere(t, id, secrets, env);
}

// Quotes and a backslash: the secret also travels JSON-escaped (a result in
// an assert message) and shell-quoted (the plan text of exec).
TEST_CASE("a secret with quotes and a backslash is hidden in its escaped forms too",
          "[e2e][secrets]") {
  E2e t;
  const std::string pw = "Zq7k\"Zq8k\\Zq9k'Zq0k";
  // Any piece of it showing is a leak.
  std::vector<std::string> pieces = {"Zq7k", "Zq8k", "Zq9k", "Zq0k"};
  t.Write("q.yaml", R"(format: 1
name: quoted
params:
  pw: {type: string, secret: true}
steps:
  - id: echo
    exec: {argv: [echo, "${{ params.pw }}"]}
    assert: result.exit_code == 1
    continue_on_error: true
  - id: lua-error
    lua: |
      error("bad: " .. params.pw)
    continue_on_error: true
  - id: result
    lua: |
      return {params.pw, {nested = params.pw}}
  - id: boom
    exec: {argv: [ls, "/nonexistent/${{ params.pw }}"]}
)");
  CliResult r = t.Run({"run", "q.yaml", "-p", "pw=" + pw});
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(r.out.find("assert failed") != std::string::npos);
  ExpectHidden("run output", r.All(), pieces);
  CliResult plan = t.Run({"plan", "q.yaml", "-p", "pw=" + pw});
  CHECK(plan.code == 0);
  ExpectHidden("plan", plan.All(), pieces);
  ExpectNowhere(t, t.LastRunId(), pieces, {});
}

TEST_CASE("secrets from a params file, a default, a list or a map, a literal connection "
          "password, a two-character secret, and a secret's base64 are hidden too",
          "[e2e][secrets]") {
  E2e t;
  t.Write("m.yaml", R"(format: 1
name: more-secrets
params:
  filepw: {type: string, secret: true}
  defpw: {type: string, secret: true, default: DefaultPw5150}
  keys: {type: list, secret: true}
  creds: {type: map, secret: true}
  tiny: {type: string, secret: true}
connections:
  lit: {postgres: {host: 127.0.0.1, port: 1, dbname: x, user: u, password: LiteralMapPw6060}}
steps:
  - id: show
    exec: {argv: [echo, "${{ params.filepw }} ${{ params.defpw }} ${{ params.keys[1] }} ${{ params.creds.token }} [${{ params.tiny }}]"]}
  - id: b64
    exec: {argv: [base64, -w0], stdin: "${{ params.filepw }}"}
  - id: b64-inside
    exec: {argv: [base64, -w0], stdin: "user: admin\npassword: ${{ params.filepw }}\n"}
  - id: literal
    pg.query: {conn: lit, sql: "select 1"}
    continue_on_error: true
)");
  t.Write("params.yaml", "filepw: FilePw7070xyz\nkeys: [ListKey8080abc, other]\n"
                         "creds: {token: MapTok9090def}\n");
  std::vector<std::string> secrets = {"FilePw7070xyz", "DefaultPw5150", "ListKey8080abc",
                                      "MapTok9090def", "LiteralMapPw6060",
                                      // base64 of FilePw7070xyz, whole and inside a longer value
                                      "RmlsZVB3NzA3MHh5", "bGVQdzcwNzB4"};
  CliResult plan = t.Run({"plan", "m.yaml", "--params-file", t.P("params.yaml"), "-p", "tiny=q7"});
  INFO(plan.All());
  CHECK(plan.code == 0);
  ExpectHidden("plan", plan.All(), secrets);
  CHECK(plan.out.find("[***]") != std::string::npos);  // the two-character secret, as a word
  CliResult r = t.Run({"run", "m.yaml", "--params-file", t.P("params.yaml"), "-p", "tiny=q7"});
  INFO(r.All());
  CHECK(r.code == 0);
  ExpectHidden("run output", r.All(), secrets);
  ExpectNowhere(t, t.LastRunId(), secrets, {});
  // The literal password is not in the stored runbook source either, nor in
  // the diff a changed runbook shows on resume.
  CHECK(DumpStore(t.state()).find("LiteralMapPw6060") == std::string::npos);
}

TEST_CASE("resume and rollback use params as given: one holding a password is asked again, "
          "none is replaced by its mask, and a changed one is refused",
          "[e2e][secrets][resume]") {
  E2e t;
  t.Write("p.yaml", R"(format: 1
name: faithful
on_failure: stop
params:
  target: {type: string}
  pw: {type: string, secret: true}
  same: {type: string}
  w: {type: string}
steps:
  - id: gate
    exec: {argv: [test, -e, "${{ params.w }}/go"]}
  - id: faithful
    exec: {argv: [test, "${{ params.target }}|${{ params.same }}", "=", "host=h password=Abc123xyzDsn|Abc123xyzPw"]}
    rollback: {exec: {argv: [test, "${{ params.target }}", "=", "host=h password=Abc123xyzDsn"]}}
)");
  std::filesystem::create_directories(t.P("w"));
  std::vector<std::string> args = {"-p", "target=host=h password=Abc123xyzDsn",
                                   "-p", "pw=Abc123xyzPw", "-p", "same=Abc123xyzPw",
                                   "-p", "w=" + t.P("w")};
  std::vector<std::string> run = {"run", "p.yaml"};
  run.insert(run.end(), args.begin(), args.end());
  CliResult r = t.Run(run);
  CHECK(r.code == 1);
  const std::string id = t.LastRunId();
  CHECK(DumpStore(t.state()).find("Abc123xyz") == std::string::npos);
  t.Write("w/go", "");

  CliResult missing = t.Run({"resume", id, "-p", "pw=Abc123xyzPw"});
  CHECK(missing.code == 2);
  CHECK_THAT(missing.err, Catch::Contains("param 'target' held a secret, so it is not stored"));
  CHECK_THAT(missing.err, Catch::Contains("param 'same' held a secret"));
  CliResult changed = t.Run({"resume", id, "-p", "pw=Abc123xyzPw", "-p",
                             "target=host=h password=Abc123xyzDsn", "-p", "same=Abc123xyzPw",
                             "-p", "w=/elsewhere"});
  CHECK(changed.code == 2);
  CHECK_THAT(changed.err, Catch::Contains("param 'w' was"));
  std::vector<std::string> resume = {"resume", id};
  resume.insert(resume.end(), args.begin(), args.end());
  r = t.Run(resume);
  INFO(r.All());
  CHECK(r.code == 0);  // the step saw the values as given, not their masks
  std::vector<std::string> rollback = {"rollback", id};
  rollback.insert(rollback.end(), args.begin(), args.end());
  r = t.Run(rollback);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(DumpStore(t.state()).find("Abc123xyz") == std::string::npos);
}

TEST_CASE(
    "the state store's password reaches no program the engine starts, and on the "
    "command line it is warned of",
    "[e2e][postgres][secrets]") {
  testing::PgTestDb db(testing::BlueServer(), "state");
  const std::string uri = testing::PostgresUri(db);
  const std::string password = db.server().password;
  REQUIRE(PostgresPassword(uri) == password);  // the URI holds it (percent-encoded)
  E2e t(uri);
  // What a step's program finds in its environment, unredacted: a copy of
  // its own /proc/self/environ. And a runbook a step starts does not guess
  // another store.
  const std::string copied = t.P("environ");
  t.Write("env.yaml", R"(format: 1
name: env
steps:
  - id: env
    exec: {argv: [cp, /proc/self/environ, )" +
                          copied + R"(]}
  - id: nested
    exec: {argv: [)" + std::string(RUNBOOK_BINARY) +
                          R"(, status]}
    continue_on_error: true
)");
  CliResult r = t.Run({"run", "env.yaml"});
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string env = ReadFile(copied);
  CHECK_THAT(env, Catch::Contains("NO_COLOR=1"));          // the environment is there...
  CHECK(env.find("RUNBOOK_STATE=") == std::string::npos);  // ...but not the engine's store
  CHECK(env.find(password) == std::string::npos);
  CHECK(env.find(uri) == std::string::npos);
  CHECK(r.err.find("warning") == std::string::npos);
  const Value nested = t.Steps(t.LastRunId()).at("nested");
  CHECK(nested["status"] == "failed");
  CHECK_THAT(nested.dump(), Catch::Contains("holds a password, so it is not passed on"));

  // --state with the password: it works, and says anyone can read it.
  CliResult argv = t.Run({"--state", uri, "status"}, {{"RUNBOOK_STATE", ""}});
  INFO(argv.All());
  CHECK(argv.code == 0);
  CHECK_THAT(argv.err, Catch::Contains("the --state URI holds a password, which every user of "
                                       "this machine can read (ps)"));
  CHECK(argv.All().find(password) == std::string::npos);
}

}  // namespace
}  // namespace runbook::e2e
