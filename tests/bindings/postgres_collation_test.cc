// pg.collation_status and pg.refresh_collation on a real en_US.UTF-8 cluster
// with a real collation-version mismatch (seed 000).
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

const Value* FindDb(const Value& result, const std::string& name) {
  for (const auto& d : result["databases"]) {
    if (d["database"] == name) return &d;
  }
  return nullptr;
}

std::string Filenode(const PgTestDb& db, const std::string& index) {
  return db.Value("SELECT relfilenode FROM pg_class WHERE relname = '" + index + "'");
}

}  // namespace

TEST_CASE("a stale template1 collation version is found, blocks CREATE DATABASE, and is fixed",
          "[postgres][collation]") {
  const PgServer& s = LocaleServer();
  const std::string actual =
      s.AdminValue("SELECT pg_database_collation_actual_version(oid) FROM pg_database "
                   "WHERE datname = 'template1'");
  REQUIRE_FALSE(actual.empty());  // glibc's version: the cluster's locale is a real one
  PgCase c;
  c.Connect("db", s, "postgres");

  Result<Value> status = c.Apply("pg.collation_status", {{"conn", "db"}});
  REQUIRE(status.ok());
  REQUIRE(FindDb(*status, "template1") != nullptr);
  CHECK((*FindDb(*status, "template1"))["mismatch"] == false);
  CHECK((*FindDb(*status, "template0"))["recorded_version"].is_null());
  CHECK_THAT((*status)["note"].get<std::string>(), Catch::Contains("C.UTF-8"));

  s.AdminExec("UPDATE pg_database SET datcollversion = '1.0' WHERE datname = 'template1'");
  const std::string name = UniqueName("backstage_plugin_kubernetes");
  Value create{{"conn", "db"}, {"name", name}};
  Result<Value> r = c.Rehearse("pg.create_database", create);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("template database 'template1' has a collation version mismatch "
                             "(recorded 1.0, the server's locale is " + actual + ")"));
  r = c.Apply("pg.create_database", create);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("template database \"template1\" has a collation version mismatch"));

  c.ctx.tables.clear();
  status = c.Apply("pg.collation_status", {{"conn", "db"}});
  REQUIRE(status.ok());
  const Value& t1 = *FindDb(*status, "template1");
  CHECK(t1["mismatch"] == true);
  CHECK(t1["recorded_version"] == "1.0");
  CHECK(t1["actual_version"] == actual);
  CHECK((*status)["mismatched"] == 1);
  REQUIRE(c.ctx.tables.size() == 1);
  bool row_found = false;
  for (const auto& row : c.ctx.tables[0].rows) {
    if (row[0] == "template1") {
      CHECK(row == std::vector<std::string>{"template1", "en_US.UTF-8", "1.0", actual, "MISMATCH"});
      row_found = true;
    }
  }
  CHECK(row_found);

  Value refresh{{"conn", "db"}};
  CHECK(c.Check("pg.refresh_collation", refresh, Value()) == CheckOutcome::kNotDone);
  r = c.Rehearse("pg.refresh_collation", refresh);
  REQUIRE(r.ok());
  CHECK((*FindDb(*r, "template1"))["would_refresh_database"] == true);
  CHECK(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = 'template1'") ==
        "1.0");
  // Later in the same rehearsal, CREATE DATABASE is judged as the run would
  // find it: after the refresh.
  r = c.Rehearse("pg.create_database", create);
  REQUIRE(r.ok());
  CHECK_THAT((*r)["notes"][0].get<std::string>(), Catch::Contains("an earlier step would refresh"));
  CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "0");

  r = c.Apply("pg.refresh_collation", refresh);
  REQUIRE(r.ok());
  const Value* done = FindDb(*r, "template1");
  REQUIRE(done != nullptr);
  CHECK((*done)["from"] == "1.0");
  CHECK((*done)["to"] == actual);
  CHECK((*done)["database_refreshed"] == true);
  CHECK(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = 'template1'") ==
        actual);
  CHECK(c.Check("pg.refresh_collation", refresh, Value()) == CheckOutcome::kDone);
  r = c.Apply("pg.refresh_collation", refresh);  // idempotent: nothing left to do
  REQUIRE(r.ok());
  CHECK((*r)["refreshed"] == 0);

  r = c.Apply("pg.create_database", create);
  REQUIRE(r.ok());
  REQUIRE(c.Undo("pg.create_database", create).ok());
}

TEST_CASE("pg.refresh_collation rebuilds only indexes on affected collations",
          "[postgres][collation]") {
  const PgServer& s = LocaleServer();
  PgTestDb db(s);
  db.Exec("CREATE COLLATION en_custom (provider = libc, locale = 'en_US.UTF-8'); "
          "CREATE TABLE streams (id int PRIMARY KEY, title text, code text COLLATE \"C\", "
          "label text COLLATE en_custom); "
          "CREATE INDEX streams_title ON streams (title); "
          "CREATE INDEX streams_code ON streams (code); "
          "CREATE INDEX streams_label ON streams (label); "
          "INSERT INTO streams SELECT g, 't' || g, 'c' || g, 'l' || g FROM generate_series(1, 50) g");
  s.AdminExec("UPDATE pg_database SET datcollversion = '1.0' WHERE datname = '" + db.name() + "'");
  db.Exec("UPDATE pg_collation SET collversion = '1.0' WHERE collname = 'en_custom'");
  const std::string title = Filenode(db, "streams_title"), code = Filenode(db, "streams_code"),
                    label = Filenode(db, "streams_label"), pkey = Filenode(db, "streams_pkey");

  PgCase c;
  c.Connect("db", s, "postgres");
  Result<Value> status = c.Apply("pg.collation_status", {{"conn", "db"}});
  REQUIRE(status.ok());
  CHECK((*FindDb(*status, db.name()))["mismatch"] == true);
  REQUIRE((*status)["collations"].size() == 1);
  CHECK((*status)["collations"][0]["collation"] == "en_custom");
  CHECK((*status)["collations"][0]["recorded_version"] == "1.0");
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("collation version mismatch"));

  Value args{{"conn", "db"}, {"databases", {db.name()}}};
  Result<Value> r = c.Rehearse("pg.refresh_collation", args);
  REQUIRE(r.ok());
  const Value& plan = (*r)["databases"][0];
  CHECK(plan["would_reindex"] == Value::parse(R"(["public.streams_label","public.streams_title"])"));
  CHECK(plan["would_refresh_collations"] == Value::parse(R"(["public.en_custom"])"));
  CHECK(Filenode(db, "streams_title") == title);

  r = c.Apply("pg.refresh_collation", args);
  REQUIRE(r.ok());
  CHECK((*r)["databases"][0]["reindexed"] ==
        Value::parse(R"(["public.streams_label","public.streams_title"])"));
  CHECK(Filenode(db, "streams_title") != title);
  CHECK(Filenode(db, "streams_label") != label);
  CHECK(Filenode(db, "streams_code") == code);   // C collation: order cannot have changed
  CHECK(Filenode(db, "streams_pkey") == pkey);   // int
  CHECK(db.Value("SELECT collversion = pg_collation_actual_version(oid) FROM pg_collation "
                 "WHERE collname = 'en_custom'") == "t");
  CHECK(s.AdminValue("SELECT datcollversion = pg_database_collation_actual_version(oid) "
                     "FROM pg_database WHERE datname = '" + db.name() + "'") == "t");
}

TEST_CASE("pg.refresh_collation rehearsal reports what the role may not do",
          "[postgres][collation]") {
  const PgServer& s = LocaleServer();
  PgTestRole role(s);
  PgTestDb db(s);
  s.AdminExec("ALTER DATABASE " + db.name() + " OWNER TO " + role.name());
  db.Exec("CREATE TABLE t (name text); CREATE INDEX t_name ON t (name)");
  s.AdminExec("UPDATE pg_database SET datcollversion = '1.0' WHERE datname = '" + db.name() + "'");
  PgCase c;
  c.Connect("app", s, db.name(), role.name(), role.password());
  Value args{{"conn", "app"}, {"databases", {db.name()}}};
  Result<Value> r = c.Rehearse("pg.refresh_collation", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("connection 'app'") &&
                 Catch::Contains("may not REINDEX public.t_name in " + db.name()));
  r = c.Apply("pg.refresh_collation", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("must be owner of") &&
                                       Catch::Contains("collation version was left as it was"));
  CHECK(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = '" + db.name() +
                     "'") == "1.0");
  r = c.Apply("pg.refresh_collation", {{"conn", "app"}, {"databases", {"no_such_db"}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("no database 'no_such_db'"));
}

TEST_CASE("C and C.UTF-8 databases carry no collation version", "[postgres][collation]") {
  const PgServer& s = BlueServer();  // initdb --locale=C
  const std::string cutf8 = UniqueName("cutf8");
  s.AdminExec("CREATE DATABASE " + cutf8 + " TEMPLATE template0 LOCALE 'C.UTF-8'");
  PgCase c;
  c.Connect("blue", s, "postgres");
  Result<Value> status = c.Apply("pg.collation_status", {{"conn", "blue"}});
  s.AdminExec("DROP DATABASE " + cutf8);
  REQUIRE(status.ok());
  CHECK((*status)["mismatched"] == 0);
  const Value& d = *FindDb(*status, cutf8);
  CHECK(d["collate"] == "C.UTF-8");
  CHECK(d["recorded_version"].is_null());
  CHECK(d["mismatch"] == false);
}

}  // namespace runbook::testing
