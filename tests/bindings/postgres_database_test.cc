// pg.create_database, pg.drop_database, pg.terminate_connections and
// pg.wait_ready against real servers.
#include <thread>

#include "bindings/postgres/pg_client.h"
#include "engine/core/rehearsal_plan.h"
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

std::string Exists(const PgServer& s, const std::string& name) {
  return s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'");
}

// Sessions held open on `db` by a plain libpq client of the test.
struct Holder {
  PgConnection conn;
  Holder(const PgServer& s, const std::string& db) {
    PgConnectOptions o;
    o.conn_name = "holder";
    o.dsn = s.Conninfo(db);
    o.password = s.password;
    o.application_name = "app-holder";
    REQUIRE(conn.Connect(o).ok());
  }
};

}  // namespace

TEST_CASE("pg.create_database creates, rehearses without creating, and undoes",
          "[postgres][pg.create_database]") {
  const PgServer& s = BlueServer();
  PgCase c;
  c.Connect("blue", s, "postgres");
  const std::string name = UniqueName("created");
  Value args{{"conn", "blue"}, {"name", name}, {"template", "template0"}};
  CHECK(c.P("pg.create_database").Plan(args).text ==
        "CREATE DATABASE \"" + name + "\" TEMPLATE \"template0\"");
  Result<Value> r = c.Rehearse("pg.create_database", args);
  REQUIRE(r.ok());
  CHECK(Exists(s, name) == "0");
  CHECK(c.ctx.undo_records.empty());

  r = c.Apply("pg.create_database", args);
  REQUIRE(r.ok());
  CHECK((*r)["created"] == true);
  CHECK(Exists(s, name) == "1");
  CHECK(c.ctx.LastUndo()["created"] == true);
  CHECK(c.Check("pg.create_database", args, c.ctx.LastUndo()) == CheckOutcome::kDone);

  // Exists now: without if_not_exists a rehearsal says so, with it nothing happens.
  r = c.Rehearse("pg.create_database", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("already exists"));
  PgCase again;
  again.Connect("blue", s, "postgres");
  Value if_not = args;
  if_not["if_not_exists"] = true;
  r = again.Apply("pg.create_database", if_not);
  REQUIRE(r.ok());
  CHECK((*r)["created"] == false);
  REQUIRE(again.Undo("pg.create_database", if_not).ok());  // not ours: not dropped
  CHECK(Exists(s, name) == "1");

  // Undo drops it even with a session on it (the run's own, say); twice is fine.
  Holder holder(s, name);
  REQUIRE(c.Undo("pg.create_database", args).ok());
  CHECK(Exists(s, name) == "0");
  REQUIRE(c.Undo("pg.create_database", args).ok());
  CHECK(c.Check("pg.create_database", args, Value()) == CheckOutcome::kNotDone);
}

TEST_CASE("pg.create_database never undoes a database it did not create",
          "[postgres][pg.create_database]") {
  PgTestDb existing(BlueServer());
  PgCase c;
  c.Connect("blue", BlueServer(), "postgres");
  Value args{{"conn", "blue"}, {"name", existing.name()}};
  Result<Value> r = c.Apply("pg.create_database", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("already exists"));
  CHECK(c.ctx.LastUndo()["created"] == false);
  REQUIRE(c.Undo("pg.create_database", args).ok());
  CHECK(Exists(BlueServer(), existing.name()) == "1");

  // Dropped and re-created by someone else since: the undo refuses.
  const std::string name = UniqueName("recreated");
  Value mine{{"conn", "blue"}, {"name", name}, {"template", "template0"}};
  REQUIRE(c.Apply("pg.create_database", mine).ok());
  BlueServer().AdminExec("DROP DATABASE " + name);
  BlueServer().AdminExec("CREATE DATABASE " + name + " TEMPLATE template0");
  Status s = c.Undo("pg.create_database", mine);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("created again"));
  BlueServer().AdminExec("DROP DATABASE " + name);
}

TEST_CASE("pg.create_database on a retry keeps what an earlier attempt created",
          "[postgres][pg.create_database]") {
  const PgServer& s = BlueServer();
  const std::string name = UniqueName("retried");
  Value args{{"conn", "blue"}, {"name", name}, {"template", "template0"}};
  PgCase first;
  first.Connect("blue", s, "postgres");
  REQUIRE(first.Apply("pg.create_database", args).ok());
  // The engine died after CREATE; the retry sees the earlier record.
  PgCase retry;
  retry.Connect("blue", s, "postgres");
  retry.ctx.previous_undo = first.ctx.LastUndo();
  Result<Value> r = retry.Apply("pg.create_database", args);
  REQUIRE(r.ok());
  CHECK((*r)["created"] == true);
  REQUIRE(retry.P("pg.create_database").Undo(retry.ctx, args, retry.ctx.previous_undo).ok());
  CHECK(Exists(s, name) == "0");
}

TEST_CASE("pg.create_database rehearsal reports every failing precondition",
          "[postgres][pg.create_database]") {
  PgTestRole role(BlueServer());
  PgCase c;
  c.Connect("app", BlueServer(), "postgres", role.name(), role.password());
  Value args{{"conn", "app"}, {"name", "postgres"}, {"template", "nosuch"}, {"owner", "ghost"}};
  Result<Value> r = c.Rehearse("pg.create_database", args);
  REQUIRE_FALSE(r.ok());
  const std::string& m = r.status().message();
  CHECK_THAT(m, Catch::StartsWith("connection 'app': CREATE DATABASE postgres would fail"));
  CHECK_THAT(m, Catch::Contains("has neither SUPERUSER nor CREATEDB"));
  CHECK_THAT(m, Catch::Contains("database 'postgres' already exists"));
  CHECK_THAT(m, Catch::Contains("template database 'nosuch' does not exist"));
  CHECK_THAT(m, Catch::Contains("owner role 'ghost' does not exist"));
  // And the real thing fails with the server's own message.
  r = c.Apply("pg.create_database", {{"conn", "app"}, {"name", UniqueName("x")}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'app'") &&
                                       Catch::Contains("permission denied to create database"));
}

TEST_CASE("pg.drop_database is irreversible, rehearsed by its preconditions, and can end sessions",
          "[postgres][pg.drop_database]") {
  const PgServer& s = BlueServer();
  const std::string name = UniqueName("doomed");
  s.AdminExec("CREATE DATABASE " + name + " TEMPLATE template0");
  PgCase c;
  c.Connect("blue", s, "postgres");
  Value args{{"conn", "blue"}, {"name", name}};
  PlanEffect plan = c.P("pg.drop_database").Plan(args);
  CHECK(plan.text == "DROP DATABASE \"" + name + "\"");
  CHECK_FALSE(plan.reversible());
  CHECK(c.P("pg.drop_database").rehearsal(args) == Rehearsal::kSimulate);

  {
    Holder holder(s, name);
    // A rehearsal checks what the DROP would meet, and drops nothing.
    Result<Value> r = c.Rehearse("pg.drop_database", args);
    REQUIRE(r.ok());
    CHECK((*r)["dropped"] == true);
    CHECK((*r)["rehearsal"] == "preconditions checked");
    REQUIRE((*r)["notes"].size() == 1);
    CHECK_THAT((*r)["notes"][0].get<std::string>(),
               Catch::Contains("1 session(s) on it now: a real run fails "
                               "unless they have ended"));
    CHECK(Exists(s, name) == "1");
    // The same step again (a resume after the engine died in it): the
    // executor takes its own notes back first, so they are not an earlier
    // step's drop.
    PlanOf(c.ctx.resources(), true)->Forget(c.ctx.step_id());
    r = c.Rehearse("pg.drop_database", args);
    REQUIRE(r.ok());
    CHECK((*r)["dropped"] == true);
    r = c.Apply("pg.drop_database", args);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("is being accessed by other users (1 "
                                                     "session(s): app-holder)"));
    args["terminate"] = true;
    r = c.Apply("pg.drop_database", args);
    REQUIRE(r.ok());
    CHECK((*r)["dropped"] == true);
  }
  CHECK(Exists(s, name) == "0");
  CHECK(c.Check("pg.drop_database", args, Value()) == CheckOutcome::kDone);
  Result<Value> r = c.Apply("pg.drop_database", args);
  CHECK_FALSE(r.ok());
  // A rehearsal says so as the real run does (one of its own: in `c`'s the
  // rehearsal above planned it dropped).
  args.erase("terminate");
  PgCase later;
  later.Connect("blue", s, "postgres");
  r = later.Rehearse("pg.drop_database", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("database '" + name +
                                                   "' does not exist (a real run would stop "
                                                   "here)"));
  args["if_exists"] = true;
  r = later.Rehearse("pg.drop_database", args);
  REQUIRE(r.ok());
  CHECK((*r)["dropped"] == false);
  r = c.Apply("pg.drop_database", args);
  REQUIRE(r.ok());
  CHECK((*r)["dropped"] == false);

  // Neither the owner nor a superuser: the rehearsal names it; a template
  // cannot be dropped either.
  const std::string other = UniqueName("notmine");
  s.AdminExec("CREATE DATABASE " + other + " TEMPLATE template0 IS_TEMPLATE true");
  {
    PgTestRole role(s);
    PgCase weak;
    weak.Connect("blue", s, "postgres", role.name(), role.password());
    r = weak.Rehearse("pg.drop_database", {{"conn", "blue"}, {"name", other}});
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("only the owner of database '" + other +
                                                     "' or a superuser may drop it"));
    CHECK_THAT(r.status().message(), Catch::Contains("is a template"));
  }
  s.AdminExec("ALTER DATABASE " + other + " IS_TEMPLATE false");
  s.AdminExec("DROP DATABASE " + other);

  PgTestDb own(s);
  PgCase self;
  self.Connect("blue", own);
  r = self.Apply("pg.drop_database", {{"conn", "blue"}, {"name", own.name()}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connected to database"));
}

TEST_CASE("pg.terminate_connections ends other sessions, and only lists them in a rehearsal",
          "[postgres][pg.terminate_connections]") {
  PgTestDb db(BlueServer());
  Holder a(BlueServer(), db.name()), b(BlueServer(), db.name());
  PgCase c;
  c.Connect("blue", db);  // our own session on it is not ended
  Value args{{"conn", "blue"}, {"database", db.name()}};
  Result<Value> r = c.Rehearse("pg.terminate_connections", args);
  REQUIRE(r.ok());
  CHECK((*r)["would_terminate"] == 2);
  CHECK((*r)["terminated"] == 0);
  CHECK((*r)["sessions"][0]["application_name"] == "app-holder");
  REQUIRE(a.conn.Exec("SELECT 1").ok());
  r = c.Apply("pg.terminate_connections", args);
  REQUIRE(r.ok());
  CHECK((*r)["terminated"] == 2);
  CHECK_FALSE(a.conn.Exec("SELECT 1").ok());
  REQUIRE(c.Apply("pg.query", {{"conn", "blue"}, {"sql", "SELECT 1"}}).ok());
}

TEST_CASE("pg.wait_ready waits for a server that comes up, and gives up at its timeout",
          "[postgres][pg.wait_ready]") {
  const PgServer& s = GreenServer();
  PgCase c;
  c.Connect("green", s, "postgres");
  Result<Value> r = c.Apply("pg.wait_ready", {{"conn", "green"}, {"timeout", "5s"}});
  REQUIRE(r.ok());
  CHECK((*r)["attempts"] == 1);
  CHECK((*r)["server_version"].get<int>() >= 150000);

  s.Stop();
  std::thread starter([&s] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    s.Start();
  });
  r = c.Apply("pg.wait_ready", {{"conn", "green"}, {"timeout", "30s"}, {"interval", "200ms"}});
  starter.join();
  REQUIRE(r.ok());
  CHECK((*r)["attempts"].get<int>() > 1);

  PgCase nobody;
  nobody.ctx.AddConnection("gone", "postgres",
                           Value{{"dsn", "host=127.0.0.1 port=1 dbname=x user=postgres"}});
  auto start = std::chrono::steady_clock::now();
  r = nobody.Apply("pg.wait_ready", {{"conn", "gone"}, {"timeout", "700ms"}, {"interval", "100ms"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'gone'"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));

  PgCase wrong;
  wrong.Connect("green", s, "postgres", "", "definitely-wrong-pw");
  r = wrong.Apply("pg.wait_ready", {{"conn", "green"}, {"timeout", "10s"}});
  REQUIRE_FALSE(r.ok());  // fails at once: waiting does not fix a password
  CHECK(r.status().message().find("definitely-wrong-pw") == std::string::npos);
}

}  // namespace runbook::testing

namespace runbook::testing {

// CREATE DATABASE with options, in pg.exec: the rehearsal refuses exactly
// what the server refuses, on each major the seeds upgrade between (13, 15,
// 17; all with template1 in en_US.UTF-8, as the seeds' clusters).
TEST_CASE("a rehearsed CREATE DATABASE judges its options as the server of each major does",
          "[postgres][pg.exec][rehearsal]") {
  struct Case {
    std::string options;  // after CREATE DATABASE <name>
    bool ok13, ok15, ok17;
    std::string says;  // in the rehearsal's refusal
  };
  const std::vector<Case> cases = {
      {"ENCODING 'LATIN1'", false, false, false, "new encoding (LATIN1) is incompatible"},
      {"TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'", true, true, true, ""},
      {"TEMPLATE template0 ENCODING 'LATIN1'", false, false, false,
       "encoding \"LATIN1\" does not match locale \"en_US.UTF-8\""},
      {"LOCALE 'C'", false, false, false, "new collation (C) is incompatible"},
      {"LC_CTYPE 'C'", false, false, false, "new LC_CTYPE (C) is incompatible"},
      {"TEMPLATE template0 LOCALE 'C'", true, true, true, ""},
      {"TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'en_US.utf8'", true, true, true, ""},
      {"STRATEGY = file_copy", false, true, true, "option \"strategy\" not recognized"},
      {"STRATEGY = 'bogus'", false, false, false, "strategy"},
      {"ENCODING 'NOPE'", false, false, false, "\"NOPE\" is not a valid encoding name"},
      {"ENCODING 9999", false, false, false, "9999 is not a valid encoding code"},
      {"TEMPLATE template0 ENCODING 'SJIS' LOCALE 'C'", false, false, false,
       "SJIS is not a server encoding"},
      {"FOO = 1", false, false, false, "option \"foo\" not recognized"},
      {"TEMPLATE template0 LOCALE 'C' LC_COLLATE 'C'", false, true, true,
       "LOCALE cannot be specified together with LC_COLLATE"},
      {"STRATEGY = 'FILE_COPY'", false, true, true, "strategy"},
      {"ENCODING '6'", false, false, false, "\"6\" is not a valid encoding name"},
      {"ENCODING 99999999999", false, false, false, "99999999999 is not a valid encoding code"},
      {"LOCATION = 'x' LOCATION = 'y'", true, true, true, ""},
      {"OWNER postgres OWNER postgres", false, false, false, "owner is given twice"},
      {"ENCODING 'UTF8' LC_COLLATE 'en_US.UTF-8'", true, true, true, ""},
      {"ENCODING 6 CONNECTION LIMIT 5 IS_TEMPLATE false ALLOW_CONNECTIONS true", true, true, true,
       ""},
      {"ENCODING DEFAULT", true, true, true, ""},
      {"TEMPLATE template0 ENCODING SQL_ASCII LOCALE 'C'", true, true, true, ""},
  };
  for (int major : {13, 15, 17}) {
    const PgServer& s = major == 15 ? LocaleServer() : VersionServer(major);
    PgCase c;
    c.Connect("db", s, "postgres");
    for (const Case& k : cases) {
      const std::string name = UniqueName("opts");
      const std::string sql = "CREATE DATABASE " + name + " " + k.options;
      INFO("PostgreSQL " << major << ": " << sql);
      const bool want = major == 13 ? k.ok13 : major == 15 ? k.ok15 : k.ok17;
      Result<Value> r = c.Rehearse("pg.exec", {{"conn", "db"}, {"sql", sql}});
      CHECK(Exists(s, name) == "0");
      INFO((r.ok() ? std::string("rehearsal passed") : r.status().message()));
      // The server agrees with what this test says of it...
      bool real = true;
      std::string server_says;
      try {
        s.AdminExec(sql);
      } catch (const std::exception& e) {
        real = false;
        server_says = e.what();
      }
      INFO("the server: " << (real ? "created it" : server_says));
      CHECK(real == want);
      // ... and so does the rehearsal, saying why.
      CHECK(r.ok() == want);
      if (!r.ok() && !want) CHECK_THAT(r.status().message(), Catch::Contains(k.says));
      if (real) s.AdminExec("DROP DATABASE " + name);
    }
  }
}

// SQL_ASCII goes with any locale only for a superuser: a role with CREATEDB
// is refused it, in the rehearsal as by the server.
TEST_CASE("a rehearsed CREATE DATABASE in SQL_ASCII with a UTF-8 locale is a superuser's only",
          "[postgres][pg.exec][rehearsal]") {
  for (int major : {13, 17}) {
    const PgServer& s = VersionServer(major);
    PgTestRole role(s, "CREATEDB");
    for (bool super : {true, false}) {
      PgCase c;
      if (super)
        c.Connect("db", s, "postgres");
      else
        c.Connect("db", s, "postgres", role.name(), role.password());
      const std::string name = UniqueName("ascii");
      const std::string sql =
          "CREATE DATABASE " + name + " TEMPLATE template0 ENCODING SQL_ASCII LOCALE 'en_US.UTF-8'";
      INFO("PostgreSQL " << major << (super ? ", superuser" : ", a CREATEDB role"));
      Result<Value> r = c.Rehearse("pg.exec", {{"conn", "db"}, {"sql", sql}});
      CHECK(r.ok() == super);
      if (!super) {
        CHECK_THAT(r.status().message(),
                   Catch::Contains("encoding \"SQL_ASCII\" does not match locale \"en_US.UTF-8\""));
      }
      Result<Value> real =
          c.Apply("pg.exec", {{"conn", "db"}, {"sql", sql}, {"transaction", false}});
      INFO((real.ok() ? std::string("created") : real.status().message()));
      CHECK(real.ok() == super);
      if (real.ok()) s.AdminExec("DROP DATABASE " + name);
    }
  }
}

// A locale the server's catalog does not list is said to be not probed.
TEST_CASE("a rehearsed CREATE DATABASE with a locale the catalog lacks says it did not probe it",
          "[postgres][pg.exec][rehearsal]") {
  const PgServer& s = LocaleServer();
  PgCase c;
  c.Connect("db", s, "postgres");
  const std::string name = UniqueName("opts");
  Result<Value> r = c.Rehearse(
      "pg.exec", {{"conn", "db"},
                  {"sql", "CREATE DATABASE " + name + " TEMPLATE template0 LOCALE 'xx_YY.UTF-8'"}});
  REQUIRE(r.ok());
  CHECK_THAT(c.ctx.AllLogs(),
             Catch::Contains("locale 'xx_YY.UTF-8' is not one the server's catalog lists"));
  CHECK(Exists(s, name) == "0");
}

}  // namespace runbook::testing
