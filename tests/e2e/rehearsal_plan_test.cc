// A rehearsal follows the plan: what an earlier rehearsed step would create
// (a database, an archive) or fix (a stale collation version) is what later
// probes are judged against. A step that needs something only a real run
// would have made ends UNKNOWN, naming that step, after probing what it can
// (the server, through its maintenance database); "a real run would stop
// here" only when one would. And a rollback says "undone" only of a step an
// undo did something for.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::PgServer;
using testing::UniqueName;

// {step id: result} of a run, from its JSON report.
std::map<std::string, Value> Results(const E2e& t, const std::string& run_id) {
  Value report = Value::parse(t.Run({"report", run_id, "--format", "json"}).out);
  std::map<std::string, Value> out;
  for (const auto& s : report["steps"]) out[s["step"].get<std::string>()] = s["result"];
  return out;
}

// `create` makes database `created`; the next four work in database `name`
// (a statement, a query, Lua, what depends on Lua's result) and the last is
// independent of it. `password`: the one connection `fresh` logs in with
// ("": the environment's).
std::string PlanRunbook(const PgServer& s, const std::string& name, const std::string& created,
                        const std::string& password = "") {
  return R"(format: 1
name: follow-the-plan
connections:
  admin: {postgres: {dsn: ")" +
         s.Conninfo("postgres") + R"("}}
  fresh: {postgres: {dsn: ")" +
         s.Conninfo("postgres") + R"(", dbname: )" + name +
         (password.empty() ? "" : ", password: " + password) + R"(}}
steps:
  - id: create
    pg.create_database: {conn: admin, name: )" +
         created + R"(}
    rollback: auto
  - id: fill
    pg.exec: {conn: fresh, sql: "CREATE TABLE t AS SELECT 1 AS one"}
    rollback: none
  - id: look
    pg.query: {conn: fresh, sql: "SELECT one FROM t"}
    assert: result[1].one == 1
  - id: from-lua
    lua: |
      local rows = pg.query{conn = "fresh", sql = "SELECT count(*) AS n FROM t"}
      return {n = rows[1].n}
  - id: after
    when: steps["from-lua"].result.n == 1
    log: "the copy has its row"
  - id: elsewhere
    pg.query: {conn: admin, sql: "SELECT 2 AS two"}
    assert: result[1].two == 2
)";
}

TEST_CASE("a rehearsal probes a database an earlier step would create as planned, not missing",
          "[e2e][dry-run][postgres]") {
  E2e t;
  const PgServer& s = BlueServer();
  const std::string name = UniqueName("planned");
  t.Write("r.yaml", PlanRunbook(s, name, name));

  CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_THAT(r.All(), Catch::Contains("rehearsal finished") &&
                          !Catch::Contains("a real run would stop here"));
  CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "0");
  auto steps = t.Steps(t.LastRunId());
  auto results = Results(t, t.LastRunId());
  CHECK(steps["create"]["status"] == "succeeded");
  for (const char* id : {"fill", "look", "from-lua"}) {
    INFO(id);
    CHECK(steps[id]["status"] == "unknown");
    REQUIRE(results[id].is_object());
    const std::string why = results[id].value("$unknown", "");
    CHECK_THAT(why, Catch::Contains("database '" + name + "' does not exist yet") &&
                        Catch::Contains("step 'create' would create it"));
  }
  // What depends on Lua that read the planned database's rows.
  CHECK(steps["after"]["status"] == "unknown");
  CHECK(steps["elsewhere"]["status"] == "succeeded");

  // The plan was the truth: the real run does it all.
  r = t.Run({"run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  steps = t.Steps(t.LastRunId());
  CHECK(steps["after"]["status"] == "succeeded");
  s.AdminExec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
}

TEST_CASE("a rehearsal still fails on a database nothing in the run would create",
          "[e2e][dry-run][postgres]") {
  E2e t;
  const PgServer& s = BlueServer();
  const std::string name = UniqueName("missing");
  const std::string other = UniqueName("other");
  // `create` makes another database: the one `fill` needs is missing, and a
  // real run would stop at `fill` too.
  t.Write("r.yaml", PlanRunbook(s, name, other));
  CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("a real run would stop here") &&
                          Catch::Contains("\"" + name + "\" does not exist"));
  auto steps = t.Steps(t.LastRunId());
  CHECK(steps["fill"]["status"] == "failed");

  // Nor does a database that would be created excuse a connection that
  // cannot log in to its server: the probe through the maintenance database
  // fails the same way, and so would a real run.
  const std::string wrong = "wrong-" + UniqueName("pw");
  t.Write("r2.yaml", PlanRunbook(s, name, name, wrong));
  r = t.Run({"run", "--dry-run", "r2.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("a real run would stop here") &&
                          Catch::Contains("password authentication failed") &&
                          !Catch::Contains(wrong));
  steps = t.Steps(t.LastRunId());
  CHECK(steps["create"]["status"] == "succeeded");
  CHECK(steps["fill"]["status"] == "failed");

  // Two steps creating one database: the rehearsal stops at the second, as
  // a real run would ("already exists").
  t.Write("twice.yaml", "format: 1\nname: twice\nconnections:\n  admin: {postgres: {dsn: \"" +
                            s.Conninfo("postgres") + "\"}}\nsteps:\n" +
                            "  - id: one\n    pg.create_database: {conn: admin, name: " + name +
                            "}\n  - id: two\n    pg.create_database: {conn: admin, name: " + name +
                            "}\n");
  r = t.Run({"run", "--dry-run", "twice.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("would exist already: step 'one' creates it first") &&
                          Catch::Contains("a real run would stop here"));
}

// A line of `out` holding both `a` and `b`.
bool HasLine(const std::string& out, const std::string& a, const std::string& b) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("a rollback says nothing to undo of a step whose undo found nothing, not undone",
          "[e2e][postgres]") {
  E2e t;
  const PgServer& s = BlueServer();
  const std::string name = UniqueName("never");
  // CREATE DATABASE fails (no such template): its undo record says it did
  // not create it, so the rollback has nothing of it to revert.
  auto text = [&](bool with_mark) {
    return std::string(
               "format: 1\nname: nothing-to-undo\nconnections:\n  admin: {postgres: {dsn: \"") +
           s.Conninfo("postgres") + "\"}}\nsteps:\n" +
           (with_mark ? "  - id: mark\n    exec: {argv: [touch, " + t.P("mark") +
                            "]}\n    rollback: {exec: {argv: [rm, -f, " + t.P("mark") + "]}}\n"
                      : std::string()) +
           "  - id: create\n    pg.create_database: {conn: admin, name: " + name +
           ", template: no_such_template_" + name + "}\n    rollback: auto\n";
  };
  t.Write("alone.yaml", text(false));
  CliResult r = t.Run({"run", "alone.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("create") && Catch::Contains("nothing to undo") &&
                        !Catch::Contains("undone ") && !Catch::Contains("; rolled back"));

  // Beside a step that was undone, only that one is.
  t.Write("both.yaml", text(true));
  r = t.Run({"run", "both.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_FALSE(Exists(t.P("mark")));
  CHECK_THAT(r.out, Catch::Contains("rolled back") && Catch::Contains("nothing to undo"));
  CHECK(HasLine(r.out, "undone", "mark"));
  CHECK_FALSE(HasLine(r.out, "undone", "create"));
  CHECK(HasLine(r.out, "create", "nothing to undo"));
  // The change record says the same.
  CliResult report = t.Run({"report", t.LastRunId()});
  REQUIRE(report.code == 0);
  CHECK(HasLine(report.out, "create", "Rolled back: nothing to undo"));
  CHECK(HasLine(report.out, "mark", "Rolled back"));
  CHECK_FALSE(HasLine(report.out, "mark", "nothing to undo"));
  Value json = Value::parse(t.Run({"report", t.LastRunId(), "--format", "json"}).out);
  for (const auto& step : json["steps"]) {
    INFO(step.dump());
    CHECK(step.value("nothing_to_undo", false) == (step["step"] == "create"));
  }
}

}  // namespace
}  // namespace runbook::e2e

namespace runbook::e2e {

TEST_CASE(
    "a rehearsal plans for the file a skipped command's creates: names: a later pg.restore of "
    "it is probed, not failed",
    "[e2e][dry-run][postgres]") {
  E2e t;
  const testing::PgServer& s = testing::BlueServer();
  testing::PgTestDb src(s, "src");
  src.Exec("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 10) g");
  const std::string target = testing::UniqueName("restored");
  const std::string archive = t.P("items.dump");
  t.Write("r.yaml", R"(format: 1
name: script-then-restore
connections:
  admin: {postgres: {dsn: ")" +
                        s.Conninfo("postgres") + R"("}}
steps:
  - id: dump
    exec: {argv: [pg_dump, -Fc, -f, ")" +
                        archive + R"(", ")" + src.Conninfo() + R"("],
           creates: ")" +
                        archive + R"("}
  - id: restore
    pg.restore: {conn: admin, database: )" +
                        target + R"(, file: ")" + archive + R"(", create: true}
    rollback: auto
)");
  CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_THAT(r.All(), !Catch::Contains("a real run would stop here"));
  const std::string id = t.LastRunId();
  auto steps = t.Steps(id);
  CHECK(steps["dump"]["status"] == "unknown");
  CHECK(steps["restore"]["status"] == "succeeded");
  auto results = Results(t, id);
  CHECK_THAT(results["restore"]["tables"].value("$unknown", ""),
             Catch::Contains("the archive is written by step 'dump'"));
  CHECK_FALSE(std::filesystem::exists(archive));
  // Nothing was made, and the real run does what was rehearsed.
  CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + target + "'") == "0");
  r = t.Run({"run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(s.AdminValue("SELECT count(*) FROM items", target) == "10");
  s.AdminExec("DROP DATABASE IF EXISTS " + target + " WITH (FORCE)");
}

TEST_CASE(
    "a rehearsal knows one server by any address: planned through 127.0.0.1, probed "
    "through localhost",
    "[e2e][dry-run][postgres]") {
  E2e t;
  const PgServer& s = BlueServer();
  REQUIRE(s.host == "127.0.0.1");
  const std::string name = UniqueName("anyaddr");
  std::string yaml = PlanRunbook(s, name, name);
  // `fresh` (the database `create` makes) is reached as localhost.
  const std::string fresh = "fresh: {postgres: {dsn: \"host=127.0.0.1";
  REQUIRE(yaml.find(fresh) != std::string::npos);
  yaml.replace(yaml.find(fresh), fresh.size(), "fresh: {postgres: {dsn: \"host=localhost");
  t.Write("r.yaml", yaml);
  CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_THAT(r.All(), !Catch::Contains("a real run would stop here"));
  auto steps = t.Steps(t.LastRunId());
  auto results = Results(t, t.LastRunId());
  CHECK(steps["fill"]["status"] == "unknown");
  CHECK_THAT(results["fill"].value("$unknown", ""),
             Catch::Contains("step 'create' would create it"));
}

TEST_CASE("a rehearsal follows a dropped database: gone for later steps, free to create again",
          "[e2e][dry-run][postgres]") {
  E2e t;
  const PgServer& s = BlueServer();
  testing::PgTestDb victim(s, "victim");
  victim.Exec("CREATE TABLE old_rows AS SELECT 1 AS one");
  auto runbook = [&](bool again) {
    return R"(format: 1
name: drop-then-use
connections:
  admin: {postgres: {dsn: ")" +
           s.Conninfo("postgres") + R"("}}
  victim: {postgres: {dsn: ")" +
           victim.Conninfo() + R"("}}
steps:
  - id: peek
    pg.query: {conn: victim, sql: "SELECT count(*) AS n FROM old_rows"}
  - id: drop
    pg.drop_database: {conn: admin, name: )" +
           victim.name() + R"(}
)" +
           (again ? R"(  - id: again
    pg.create_database: {conn: admin, name: )" +
                        victim.name() + R"(}
    rollback: auto
)"
                  : "") +
           R"(  - id: use
    pg.query: {conn: victim, sql: "SELECT count(*) AS n FROM pg_class WHERE relname = 'old_rows'"}
    assert: result[1].n == 0
)";
  };
  SECTION("dropped and not made again: a real run would stop at the step that connects") {
    t.Write("r.yaml", runbook(false));
    CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
    INFO(r.All());
    CHECK(r.code == 1);
    CHECK_THAT(r.All(), Catch::Contains("database '" + victim.name() +
                                        "' would not exist by now: step 'drop' drops it") &&
                            Catch::Contains("a real run would stop here"));
    auto steps = t.Steps(t.LastRunId());
    CHECK(steps["drop"]["status"] == "succeeded");
    CHECK(steps["use"]["status"] == "failed");
    // The run's own connection of step `peek` is not "another user" a real
    // run would fail on: it ends it.
    CHECK_FALSE(Results(t, t.LastRunId())["drop"].contains("notes"));
  }
  SECTION("made again: the create is not refused, and what is there now is not probed") {
    t.Write("r.yaml", runbook(true));
    CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
    INFO(r.All());
    CHECK(r.code == 0);
    CHECK_THAT(r.All(), !Catch::Contains("a real run would stop here"));
    auto steps = t.Steps(t.LastRunId());
    CHECK(steps["again"]["status"] == "succeeded");
    CHECK(steps["use"]["status"] == "unknown");
    CHECK_THAT(Results(t, t.LastRunId())["use"].value("$unknown", ""),
               Catch::Contains("would be a new one by now: step 'again' creates it again"));
    // The rehearsal dropped nothing; the real run does what it planned
    // (its own connection to the database, kept since `peek`, ended first).
    CHECK(victim.Value("SELECT count(*) FROM old_rows") == "1");
    r = t.Run({"run", "r.yaml"}, s.ClientEnv());
    INFO(r.All());
    CHECK(r.code == 0);
    CHECK(victim.Value("SELECT count(*) FROM pg_class WHERE relname = 'old_rows'") == "0");
  }
}

TEST_CASE("a resumed rehearsal keeps what its earlier steps planned",
          "[e2e][dry-run][postgres][resume]") {
  E2e t;
  const PgServer& s = BlueServer();
  testing::PgTestDb gate(s, "gate");
  const std::string name = UniqueName("resumed");
  t.Write("r.yaml", R"(format: 1
name: plan-then-resume
connections:
  admin: {postgres: {dsn: ")" +
                        s.Conninfo("postgres") + R"("}}
  gate: {postgres: {dsn: ")" +
                        gate.Conninfo() + R"("}}
  fresh: {postgres: {dsn: ")" +
                        s.Conninfo(name) + R"("}}
steps:
  - id: create
    pg.create_database: {conn: admin, name: )" +
                        name + R"(}
    rollback: auto
  - id: gate
    pg.query: {conn: gate, sql: "SELECT 1 FROM opened"}
  - id: fill
    pg.exec: {conn: fresh, sql: "CREATE TABLE t AS SELECT 1 AS one"}
    rollback: none
)");
  // The rehearsal stops at `gate` (no table `opened` yet), after `create`
  // planned the database.
  CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  REQUIRE(r.code == 1);
  const std::string id = t.LastRunId();
  CHECK(t.Steps(id)["create"]["status"] == "succeeded");
  gate.Exec("CREATE TABLE opened AS SELECT 1");
  r = t.Run({"resume", id}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_THAT(r.All(), !Catch::Contains("a real run would stop here"));
  auto steps = t.Steps(id);
  CHECK(steps["gate"]["status"] == "succeeded");
  CHECK(steps["fill"]["status"] == "unknown");
  CHECK_THAT(Results(t, id)["fill"].value("$unknown", ""),
             Catch::Contains("database '" + name + "' does not exist yet") &&
                 Catch::Contains("step 'create' would create it"));
  CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "0");
}

TEST_CASE(
    "a rehearsal's plan holds across roles and their time zones, and across a resume "
    "for what a step drops",
    "[e2e][dry-run][postgres][resume]") {
  E2e t;
  const PgServer& s = BlueServer();
  // A role whose sessions read times in another zone: the server is the
  // same server to it.
  const std::string role = UniqueName("tokyo");
  s.AdminExec("CREATE ROLE " + role + " LOGIN PASSWORD 'pw-tokyo'");
  s.AdminExec("ALTER ROLE " + role + " SET timezone = 'Asia/Tokyo'");
  testing::PgTestDb victim(s, "victim");
  testing::PgTestDb gate(s, "gate");
  const std::string name = UniqueName("zoned");
  t.Write("r.yaml", R"(format: 1
name: plan-across-roles
connections:
  admin: {postgres: {dsn: ")" +
                        s.Conninfo("postgres") + R"("}}
  gate: {postgres: {dsn: ")" +
                        gate.Conninfo() + R"("}}
  zoned: {postgres: {dsn: ")" +
                        s.Conninfo(name, role) + R"(", password: pw-tokyo}}
  victim: {postgres: {dsn: ")" +
                        victim.Conninfo() + R"("}}
steps:
  - id: create
    pg.create_database: {conn: admin, name: )" +
                        name + R"(}
    rollback: auto
  - id: drop
    pg.drop_database: {conn: admin, name: )" +
                        victim.name() + R"(}
  - id: gate
    pg.query: {conn: gate, sql: "SELECT 1 FROM opened"}
  - id: zoned
    pg.query: {conn: zoned, sql: "SELECT 1 AS one"}
  - id: use
    pg.query: {conn: victim, sql: "SELECT 1 AS one"}
)");
  CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  REQUIRE(r.code == 1);  // at `gate`
  const std::string id = t.LastRunId();
  gate.Exec("CREATE TABLE opened AS SELECT 1");
  r = t.Run({"resume", id}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  auto steps = t.Steps(id);
  CHECK(steps["gate"]["status"] == "succeeded");
  // Planned by the superuser in UTC, probed by the role in Tokyo time.
  CHECK(steps["zoned"]["status"] == "unknown");
  CHECK_THAT(Results(t, id)["zoned"].value("$unknown", ""),
             Catch::Contains("step 'create' would create it"));
  // Dropped before the resume: still gone after it.
  CHECK(steps["use"]["status"] == "failed");
  CHECK_THAT(r.All(), Catch::Contains("would not exist by now: step 'drop' drops it"));
  CHECK(victim.Value("SELECT 1") == "1");
  s.AdminExec("DROP ROLE " + role);
}

TEST_CASE("a rehearsal follows databases pg.exec creates, drops and renames",
          "[e2e][dry-run][postgres]") {
  E2e t;
  const PgServer& s = BlueServer();
  testing::PgTestDb victim(s, "victim");
  testing::PgTestDb old_name(s, "oldname");
  const std::string new_name = UniqueName("newname");
  const std::string made = UniqueName("made");
  auto conn = [&](const std::string& db) {
    return "{postgres: {dsn: \"" + s.Conninfo(db) + "\"}}";
  };
  t.Write("r.yaml", R"(format: 1
name: exec-databases
connections:
  admin: )" + conn("postgres") +
                        R"(
  victim: )" + conn(victim.name()) +
                        R"(
  old: )" + conn(old_name.name()) +
                        R"(
  new: )" + conn(new_name) +
                        R"(
  made: )" + conn(made) +
                        R"(
steps:
  - id: drop
    pg.exec: {conn: admin, sql: "DROP DATABASE )" +
                        victim.name() + R"(", transaction: false}
  - id: rename
    pg.exec: {conn: admin, sql: "ALTER DATABASE )" +
                        old_name.name() + " RENAME TO " + new_name + R"("}
  - id: create
    pg.exec: {conn: admin, sql: "CREATE DATABASE )" +
                        made + R"(", transaction: false}
  - id: use-made
    pg.query: {conn: made, sql: "SELECT 1 AS one"}
  - id: use-new
    pg.query: {conn: new, sql: "SELECT 1 AS one"}
  - id: use-victim
    pg.query: {conn: victim, sql: "SELECT 1 AS one"}
)");
  CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  const std::string id = t.LastRunId();
  auto steps = t.Steps(id);
  auto results = Results(t, id);
  CHECK(steps["drop"]["status"] == "succeeded");
  CHECK_THAT(results["drop"].value("rehearsal", ""), Catch::Contains("not run"));
  CHECK(steps["rename"]["status"] == "succeeded");
  CHECK(steps["create"]["status"] == "succeeded");
  // Made and renamed to by earlier steps: not there yet, as planned.
  CHECK(steps["use-made"]["status"] == "unknown");
  CHECK_THAT(results["use-made"].value("$unknown", ""),
             Catch::Contains("step 'create' would create it"));
  CHECK(steps["use-new"]["status"] == "unknown");
  CHECK_THAT(results["use-new"].value("$unknown", ""),
             Catch::Contains("step 'rename' would create it"));
  // Dropped: a real run would stop here.
  CHECK(steps["use-victim"]["status"] == "failed");
  CHECK_THAT(r.All(), Catch::Contains("would not exist by now: step 'drop' drops it") &&
                          Catch::Contains("a real run would stop here"));
  // Nothing changed.
  CHECK(victim.Value("SELECT 1") == "1");
  CHECK(old_name.Value("SELECT 1") == "1");
  CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname IN ('" + made + "', '" +
                     new_name + "')") == "0");
  // Dropping it twice: a real run fails at the second, and so does the rehearsal.
  t.Write("twice.yaml", R"(format: 1
name: exec-drop-twice
connections:
  admin: )" + conn("postgres") +
                            R"(
steps:
  - id: one
    pg.exec: {conn: admin, sql: "DROP DATABASE )" +
                            victim.name() + R"(", transaction: false}
  - id: two
    pg.exec: {conn: admin, sql: "DROP DATABASE )" +
                            victim.name() + R"(", transaction: false}
)");
  r = t.Run({"run", "--dry-run", "twice.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(t.Steps(t.LastRunId())["two"]["status"] == "failed");
  CHECK_THAT(r.All(), Catch::Contains("would not exist by now: step 'one' drops it"));
  // Dropped, then created again: the create is not refused, and the new
  // database is not probed as the old one.
  t.Write("again.yaml", R"(format: 1
name: exec-drop-create
connections:
  admin: )" + conn("postgres") +
                            R"(
  victim: )" + conn(victim.name()) +
                            R"(
steps:
  - id: peek
    pg.query: {conn: victim, sql: "SELECT 1 AS one"}
  - id: drop
    pg.exec: {conn: admin, sql: "DROP DATABASE )" +
                            victim.name() + R"("}
  - id: create
    pg.exec: {conn: admin, sql: "CREATE DATABASE )" +
                            victim.name() + R"("}
  - id: use
    pg.query: {conn: victim, sql: "SELECT 1 AS one"}
)");
  r = t.Run({"run", "--dry-run", "again.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  steps = t.Steps(t.LastRunId());
  CHECK(steps["create"]["status"] == "succeeded");
  CHECK(steps["use"]["status"] == "unknown");
  // The run's own connection of `peek` is closed by a real run first: not a
  // session the rehearsal warns of.
  CHECK_THAT(r.All(), !Catch::Contains("session(s) on it now"));
  r = t.Run({"run", "again.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(t.Steps(t.LastRunId())["use"]["status"] == "succeeded");
  // Two database statements in one script cannot run (one implicit
  // transaction): not rehearsed as if they could.
  t.Write("both.yaml", R"(format: 1
name: exec-drop-create-one-script
connections:
  admin: )" + conn("postgres") +
                           R"(
steps:
  - id: both
    pg.exec: {conn: admin, sql: "DROP DATABASE IF EXISTS )" +
                           victim.name() + "; CREATE DATABASE " + victim.name() + R"("}
)");
  r = t.Run({"run", "--dry-run", "both.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(t.Steps(t.LastRunId())["both"]["status"] == "unknown");
  CHECK(victim.Value("SELECT 1") == "1");

  // A rename onto a name an earlier step creates: a real run fails there.
  // Onto a name an earlier step drops: free by then, so not refused (the
  // server still has it: not probed).
  t.Write("clash.yaml", R"(format: 1
name: exec-rename-clash
connections:
  admin: )" + conn("postgres") +
                            R"(
steps:
  - id: create
    pg.exec: {conn: admin, sql: "CREATE DATABASE )" +
                            made + R"(", transaction: false}
  - id: rename
    pg.exec: {conn: admin, sql: "ALTER DATABASE )" +
                            old_name.name() + " RENAME TO " + made + R"("}
)");
  r = t.Run({"run", "--dry-run", "clash.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK(t.Steps(t.LastRunId())["rename"]["status"] == "failed");
  CHECK_THAT(r.All(), Catch::Contains("database '" + made +
                                      "' would exist already: step 'create' creates it"));
  t.Write("freed.yaml", R"(format: 1
name: exec-rename-freed
connections:
  admin: )" + conn("postgres") +
                            R"(
steps:
  - id: drop
    pg.exec: {conn: admin, sql: "DROP DATABASE )" +
                            victim.name() + R"(", transaction: false}
  - id: rename
    pg.exec: {conn: admin, sql: "ALTER DATABASE )" +
                            old_name.name() + " RENAME TO " + victim.name() + R"("}
)");
  r = t.Run({"run", "--dry-run", "freed.yaml"}, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(t.Steps(t.LastRunId())["rename"]["status"] == "unknown");
  CHECK_THAT(Results(t, t.LastRunId())["rename"].value("$unknown", ""),
             Catch::Contains("is free only once step 'drop' has dropped it"));

  // Two foreach items side by side creating one database: a real run fails
  // at the second, whichever it is; so does the rehearsal. (Each item its
  // own connection, so that no shared session puts them in turn.)
  t.Write("pair.yaml", R"(format: 1
name: create-twice-side-by-side
connections:
  a: )" + conn("postgres") +
                           R"(
  b: )" + conn("postgres") +
                           R"(
  c: )" + conn("postgres") +
                           R"(
  d: )" + conn("postgres") +
                           R"(
steps:
  - id: make
    foreach: ["a", "b", "c", "d"]
    concurrency: 4
    continue_on_error: true
    pg.create_database: {conn: "${{ item }}", name: )" +
                           made + R"(}
)");
  r = t.Run({"run", "--dry-run", "pair.yaml"}, s.ClientEnv());
  INFO(r.All());
  int made_ok = 0, refused = 0;
  for (const auto& [step, rec] : t.Steps(t.LastRunId())) {
    if (step.rfind("make[", 0) != 0) continue;
    made_ok += rec["status"] == "succeeded";
    refused += rec["status"] == "failed";
  }
  CHECK(made_ok == 1);
  CHECK(refused == 3);
  CHECK_THAT(r.All(), Catch::Contains("would exist already: step 'make["));
  CHECK(old_name.Value("SELECT 1") == "1");
  CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + made + "'") == "0");
}

TEST_CASE("a rehearsal judges a database's template as earlier steps leave it",
          "[e2e][dry-run][postgres]") {
  E2e t;
  const PgServer& s = BlueServer();
  const std::string templ = UniqueName("tmpl");
  const std::string copy = UniqueName("fromtmpl");
  const std::string by_sql = UniqueName("fromsql");
  testing::PgTestDb old(s, "oldtmpl");
  const std::string admin = R"(connections:
  admin: {postgres: {dsn: ")" +
                            s.Conninfo("postgres") + R"("}}
)";
  SECTION("a template an earlier step makes: its copies are not refused, a note says so") {
    t.Write("r.yaml", "format: 1\nname: from-new-template\n" + admin + R"(steps:
  - id: make-template
    pg.create_database: {conn: admin, name: )" +
                          templ + R"(}
    rollback: auto
  - id: copy
    pg.create_database: {conn: admin, name: )" +
                          copy + ", template: " + templ + R"(}
    rollback: auto
  - id: by-sql
    pg.exec: {conn: admin, sql: "CREATE DATABASE )" +
                          by_sql + " TEMPLATE " + templ + R"("}
    rollback: none
)");
    CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
    INFO(r.All());
    CHECK(r.code == 0);  // was: "template database '...' does not exist", a real run would not
    auto steps = t.Steps(t.LastRunId());
    CHECK(steps["copy"]["status"] == "succeeded");
    CHECK(steps["by-sql"]["status"] == "succeeded");  // checked (its command tag: UNKNOWN)
    const std::string note = "template database '" + templ +
                             "' would be made by step 'make-template' earlier in this run";
    CHECK_THAT(Results(t, t.LastRunId())["copy"]["notes"].dump(), Catch::Contains(note));
    CHECK_THAT(r.All(), Catch::Contains(note));  // pg.exec logs its notes
    CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname IN ('" + templ + "', '" +
                       copy + "', '" + by_sql + "')") == "0");
    // The plan was the truth: the real run makes all three.
    r = t.Run({"run", "r.yaml"}, s.ClientEnv());
    INFO(r.All());
    CHECK(r.code == 0);
    CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname IN ('" + templ + "', '" +
                       copy + "', '" + by_sql + "')") == "3");
  }
  SECTION("a template an earlier step drops: a real run would stop at the copy") {
    t.Write("r.yaml", "format: 1\nname: from-dropped-template\n" + admin + R"(steps:
  - id: drop-template
    pg.drop_database: {conn: admin, name: )" +
                          old.name() + R"(}
  - id: copy
    pg.create_database: {conn: admin, name: )" +
                          copy + ", template: " + old.name() + R"(}
    rollback: auto
)");
    CliResult r = t.Run({"run", "--dry-run", "r.yaml"}, s.ClientEnv());
    INFO(r.All());
    CHECK(r.code == 1);
    CHECK_THAT(r.All(), Catch::Contains("template database '" + old.name() +
                                        "' would not exist by now: step 'drop-template' drops "
                                        "it earlier in this run") &&
                            Catch::Contains("a real run would stop here"));
    auto steps = t.Steps(t.LastRunId());
    CHECK(steps["drop-template"]["status"] == "succeeded");
    CHECK(steps["copy"]["status"] == "failed");
    CHECK(old.Value("SELECT 1") == "1");  // the rehearsal dropped nothing
  }
  for (const std::string& db : {by_sql, copy, templ}) {
    s.AdminExec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
  }
}

}  // namespace runbook::e2e
