// pg.query and pg.exec against real servers.
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {

TEST_CASE("pg.query returns rows and is read-only in a rehearsal", "[postgres][pg.query]") {
  PgTestDb db(BlueServer());
  db.Exec(
      "CREATE TABLE notes (id int PRIMARY KEY, body text); "
      "INSERT INTO notes VALUES (1, 'a'), (2, 'b')");
  PgCase c;
  c.Connect("blue", db);
  Result<Value> rows = c.Apply("pg.query", {{"conn", "blue"},
                                            {"sql",
                                             "SELECT id, body FROM notes WHERE id > $1 "
                                             "ORDER BY id"},
                                            {"params", {0}}});
  REQUIRE(rows.ok());
  CHECK(*rows == Value::parse(R"([{"id":1,"body":"a"},{"id":2,"body":"b"}])"));
  CHECK(c.P("pg.query").rehearsal({{"sql", "select 1"}}) == Rehearsal::kProbe);
  CHECK(c.P("pg.query").idempotent({{"sql", "select 1"}}));
  CHECK_FALSE(c.P("pg.query").idempotent({{"sql", "delete from notes returning id"}}));

  // A write inside pg.query is refused by the server in a rehearsal.
  Result<Value> write =
      c.Rehearse("pg.query", {{"conn", "blue"}, {"sql", "DELETE FROM notes RETURNING id"}});
  REQUIRE_FALSE(write.ok());
  CHECK_THAT(write.status().message(), Catch::Contains("read-only transaction"));
  CHECK(db.Value("SELECT count(*) FROM notes") == "2");
  // The connection was reused and is usable again after the failed rehearsal.
  REQUIRE(c.Apply("pg.query", {{"conn", "blue"}, {"sql", "SELECT 1 AS one"}}).ok());
}

TEST_CASE("pg.query names the connection and the step in application_name",
          "[postgres][pg.query]") {
  PgTestDb db(BlueServer());
  PgCase c;
  c.Connect("blue", db);
  c.ctx.run_id_ = "r42";
  c.ctx.step_id_ = "verify";
  Result<Value> rows = c.Apply("pg.query", {{"conn", "blue"}, {"sql", "SHOW application_name"}});
  REQUIRE(rows.ok());
  CHECK((*rows)[0]["application_name"] == "runbook/r42/verify");
  c.ctx.step_id_ = "next";
  rows = c.Apply("pg.query", {{"conn", "blue"}, {"sql", "SHOW application_name"}});
  CHECK((*rows)[0]["application_name"] == "runbook/r42/next");
}

TEST_CASE("pg.exec applies in a transaction and undoes with rollback_sql", "[postgres][pg.exec]") {
  PgTestDb db(BlueServer());
  db.Exec("CREATE TABLE streams (stream_id text PRIMARY KEY)");
  PgCase c;
  c.Connect("blue", db);
  Value args{{"conn", "blue"},
             {"sql", "ALTER TABLE streams ADD COLUMN live_started_at timestamptz"},
             {"rollback_sql", "ALTER TABLE streams DROP COLUMN live_started_at"}};
  PlanEffect plan = c.P("pg.exec").Plan(args);
  CHECK(plan.text ==
        "BEGIN;\nSET LOCAL lock_timeout = '2000ms';\nALTER TABLE streams ADD COLUMN "
        "live_started_at timestamptz\nCOMMIT;\n(on a lock timeout: rolled back and tried again, "
        "up to 5 more times)");
  CHECK(plan.reversible());
  CHECK(c.P("pg.exec").rehearsal(args) == Rehearsal::kSimulate);

  const std::string columns_sql =
      "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute "
      "WHERE attrelid = 'streams'::regclass AND attnum > 0 AND NOT attisdropped";
  Result<Value> rehearsed = c.Rehearse("pg.exec", args);
  REQUIRE(rehearsed.ok());
  CHECK((*rehearsed)["rehearsal"] == "ran in a transaction that was rolled back");
  CHECK(db.Value(columns_sql) == "stream_id");
  CHECK(c.ctx.undo_records.empty());

  Result<Value> applied = c.Apply("pg.exec", args);
  REQUIRE(applied.ok());
  CHECK((*applied)["command"] == "ALTER TABLE");
  CHECK(db.Value(columns_sql) == "stream_id,live_started_at");
  REQUIRE(c.ctx.undo_records.size() == 1);
  REQUIRE(c.Undo("pg.exec", args).ok());
  CHECK(db.Value(columns_sql) == "stream_id");

  Value no_undo{{"conn", "blue"}, {"sql", "SELECT 1"}};
  CHECK_FALSE(c.P("pg.exec").Plan(no_undo).reversible());
  CHECK_FALSE(c.P("pg.exec").Undo(c.ctx, no_undo, Value()).ok());
}

TEST_CASE(
    "pg.exec's rollback_sql lost after its COMMIT was sent fails for a human; lost before, "
    "it may be tried again",
    "[postgres][pg.exec][rollback]") {
  PgTestDb db(BlueServer());
  db.Exec("CREATE TABLE t (id int)");
  // A deferred trigger ends the session while its COMMIT runs: the client
  // cannot know whether the transaction committed.
  db.Exec(
      "CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$");
  db.Exec(
      "CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED "
      "FOR EACH ROW EXECUTE FUNCTION die()");
  {
    PgCase c;
    c.Connect("blue", db);
    Value args{{"conn", "blue"}, {"sql", "SELECT 1"}, {"rollback_sql", "INSERT INTO t VALUES (1)"}};
    Status s = c.Undo("pg.exec", args);
    INFO(s.message());
    CHECK(s.code() == Status::Code::kFailed);  // a rollback does not run it again by itself
    CHECK_THAT(s.message(), Catch::Contains("it may have taken effect"));
  }
  {
    PgCase c;
    c.Connect("blue", db);
    Value args{{"conn", "blue"},
               {"sql", "SELECT 1"},
               {"rollback_sql", "SELECT pg_terminate_backend(pg_backend_pid())"}};
    Status s = c.Undo("pg.exec", args);
    INFO(s.message());
    CHECK(s.code() == Status::Code::kUnavailable);  // never committed: safe to try again
  }
}

TEST_CASE("pg.exec rolls back every statement when one fails", "[postgres][pg.exec]") {
  PgTestDb db(BlueServer());
  db.Exec("CREATE TABLE t (id int)");
  PgCase c;
  c.Connect("blue", db);
  Result<Value> r =
      c.Apply("pg.exec",
              {{"conn", "blue"}, {"sql", "INSERT INTO t VALUES (1); INSERT INTO nope VALUES (2)"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("connection 'blue'") && Catch::Contains("\"nope\" does not exist"));
  CHECK(db.Value("SELECT count(*) FROM t") == "0");
  // The connection is back outside any transaction.
  REQUIRE(c.Apply("pg.exec", {{"conn", "blue"}, {"sql", "INSERT INTO t VALUES (3)"}}).ok());
  CHECK(db.Value("SELECT count(*) FROM t") == "1");
}

TEST_CASE("pg.exec logs the server's notices, the first 1,000 and a count of the rest",
          "[postgres][pg.exec]") {
  // A statement can raise a notice per row (a trigger, a loop): memory stays
  // bounded whatever the count, and nothing is silently lost.
  PgTestDb db(BlueServer());
  PgCase c;
  c.Connect("blue", db);
  REQUIRE(c.Apply("pg.exec", {{"conn", "blue"},
                              {"sql",
                               "DO $$BEGIN FOR i IN 1..1500 LOOP "
                               "RAISE NOTICE 'step %', i; END LOOP; END$$"}})
              .ok());
  const std::string logs = c.ctx.AllLogs();
  CHECK_THAT(logs, Catch::Contains("step 1\n") && Catch::Contains("step 1000\n"));
  CHECK_THAT(logs, !Catch::Contains("step 1001\n"));
  CHECK_THAT(logs, Catch::Contains("500 more notices not shown"));
}

TEST_CASE("pg.exec skips in a rehearsal what a rolled-back transaction cannot contain",
          "[postgres][pg.exec]") {
  PgTestDb db(BlueServer());
  db.Exec("CREATE TABLE t (id int); CREATE SEQUENCE s");
  PgCase c;
  c.Connect("blue", db);
  Primitive& exec = c.P("pg.exec");
  for (const char* sql : {"VACUUM t", "DROP DATABASE x; VACUUM t",
                          "CREATE INDEX CONCURRENTLY i ON t (id)", "REINDEX TABLE CONCURRENTLY t",
                          "ALTER SYSTEM SET work_mem = '8MB'", "SELECT setval('s', 100)",
                          "INSERT INTO t VALUES (1); COMMIT", "select pg_terminate_backend(1)"}) {
    INFO(sql);
    Value args{{"conn", "blue"}, {"sql", sql}};
    CHECK(exec.rehearsal(args) == Rehearsal::kSkip);
    CHECK_FALSE(exec.skip_reason(args).empty());
    // Even if the executor called Apply, nothing would happen.
    Result<Value> r = c.Rehearse("pg.exec", args);
    REQUIRE(r.ok());
    CHECK(IsUnknown(*r));
  }
  CHECK(exec.skip_reason({{"sql", "VACUUM t"}}) ==
        "VACUUM cannot run inside a transaction block, so it cannot be rehearsed in a "
        "rolled-back transaction");
  CHECK(db.Value("SELECT last_value FROM s") == "1");
  CHECK(db.Value("SELECT count(*) FROM t") == "0");
  // Database statements only: checked against the server (and the run's
  // plan) instead of run, as a real run would meet them.
  const std::string gone = UniqueName("nosuchdb");
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"DROP DATABASE " + gone,
       "database '" + gone + "' does not exist (a real run would stop here)"},
      {"CREATE DATABASE " + db.name(),
       "precondition failed: database '" + db.name() + "' already exists"}};
  for (const auto& [sql, why] : refused) {
    INFO(sql);
    Value args{{"conn", "blue"}, {"sql", sql}};
    CHECK(exec.rehearsal(args) == Rehearsal::kSimulate);
    Result<Value> r = c.Rehearse("pg.exec", args);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(why));
  }
  Result<Value> r =
      c.Rehearse("pg.exec", {{"conn", "blue"}, {"sql", "DROP DATABASE IF EXISTS " + gone}});
  REQUIRE(r.ok());
  CHECK_THAT((*r)["rehearsal"].get<std::string>(), Catch::Contains("not run"));
  r = c.Rehearse("pg.exec", {{"conn", "blue"}, {"sql", "CREATE DATABASE " + gone}});
  REQUIRE(r.ok());
  CHECK(BlueServer().AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + gone +
                                "'") == "0");
  // REFRESH COLLATION VERSION runs in a transaction: it can be simulated.
  CHECK(exec.rehearsal({{"sql", "ALTER DATABASE x REFRESH COLLATION VERSION"}}) ==
        Rehearsal::kSimulate);
}

TEST_CASE("pg.exec runs statements that cannot be in a transaction without one",
          "[postgres][pg.exec]") {
  PgTestDb db(BlueServer());
  db.Exec("CREATE TABLE t (id int)");
  PgCase c;
  c.Connect("blue", db);
  Value args{{"conn", "blue"}, {"sql", "CREATE INDEX CONCURRENTLY t_id ON t (id)"}};
  CHECK(c.P("pg.exec").Plan(args).text == "CREATE INDEX CONCURRENTLY t_id ON t (id)");
  REQUIRE(c.Apply("pg.exec", args).ok());
  CHECK(db.Value("SELECT count(*) FROM pg_indexes WHERE indexname = 't_id'") == "1");
  args["transaction"] = true;
  Result<Value> r = c.Apply("pg.exec", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("set transaction: false"));
}

TEST_CASE("pg.exec reports a missing privilege naming the connection", "[postgres][pg.exec]") {
  PgTestRole role(BlueServer());
  PgTestDb db(BlueServer());
  db.Exec("CREATE TABLE secret (id int)");
  PgCase c;
  c.Connect("app", db, role.name(), role.password());
  Result<Value> r = c.Apply("pg.exec", {{"conn", "app"}, {"sql", "DELETE FROM secret"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'app'") &&
                                       Catch::Contains("permission denied for table secret"));
  r = c.Rehearse("pg.exec", {{"conn", "app"}, {"sql", "DELETE FROM secret"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("permission denied"));
}

TEST_CASE("pg primitives fail clearly on a wrong password, a down server and bad SQL",
          "[postgres][pg.query]") {
  PgTestDb db(BlueServer());
  PgCase c;
  const std::string wrong = "not-the-password-93847";
  c.Connect("blue", db, "", wrong);
  c.ctx.redactor().Add(wrong);  // what the executor does via CollectSecrets
  Result<Value> r = c.Apply("pg.query", {{"conn", "blue"}, {"sql", "SELECT 1"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'blue'") &&
                                       Catch::Contains("password authentication failed"));
  CHECK(r.status().message().find(wrong) == std::string::npos);

  PgCase down;
  down.ctx.AddConnection(
      "green", "postgres",
      Value{{"dsn", "host=127.0.0.1 port=1 dbname=x user=postgres"}, {"password", wrong}});
  r = down.Apply("pg.exec", {{"conn", "green"}, {"sql", "SELECT 1"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'green'"));
  CHECK(r.status().message().find(wrong) == std::string::npos);

  PgCase ok;
  ok.Connect("blue", db);
  r = ok.Apply("pg.query", {{"conn", "blue"}, {"sql", "SELEKT 1"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("syntax error"));
  r = ok.Apply("pg.query", {{"conn", "nope"}, {"sql", "SELECT 1"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("'nope'"));
  ok.ctx.AddConnection("k8s", "kube", Value::object());
  r = ok.Apply("pg.query", {{"conn", "k8s"}, {"sql", "SELECT 1"}});
  CHECK_THAT(r.status().message(), Catch::Contains("not postgres"));
}

TEST_CASE("pg primitives stop at the step's deadline", "[postgres][pg.exec]") {
  PgTestDb db(BlueServer());
  PgCase c;
  c.Connect("blue", db);
  c.ctx.deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  Result<Value> r = c.Apply("pg.exec", {{"conn", "blue"}, {"sql", "SELECT pg_sleep(5)"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK(std::chrono::steady_clock::now() < c.ctx.deadline_ + std::chrono::milliseconds(800));
}

}  // namespace runbook::testing
