// pg.counts and pg.compare_counts against real blue and green servers.
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

// The chronicle tables of seed 004, with `n` notes.
void Chronicle(const PgTestDb& db, int notes) {
  db.Exec("CREATE TABLE chronicle_notes (id int PRIMARY KEY, body text, at timestamptz, "
          "score float8, raw bytea); "
          "CREATE TABLE sprint_retrospectives (id int PRIMARY KEY, title text); "
          "CREATE SCHEMA audit; CREATE TABLE audit.\"Events\" (id int); "
          "INSERT INTO chronicle_notes SELECT g, 'note ' || g, "
          "'2025-10-11 15:26:29+08'::timestamptz + g * interval '1 minute', g / 3.0, "
          "decode(md5(g::text), 'hex') FROM generate_series(1, " + std::to_string(notes) + ") g; "
          "INSERT INTO sprint_retrospectives SELECT g, 'retro ' || g FROM generate_series(1, 99) g; "
          "INSERT INTO audit.\"Events\" VALUES (1), (2)");
}

}  // namespace

TEST_CASE("pg.counts counts tables exactly in one query", "[postgres][pg.counts]") {
  PgTestDb db(BlueServer());
  Chronicle(db, 971);
  PgCase c;
  c.Connect("blue", db);
  Value args{{"conn", "blue"},
             {"tables", {"chronicle_notes", "sprint_retrospectives", "audit.\"Events\""}}};
  CHECK(c.P("pg.counts").Plan(args).text ==
        "SELECT 0 AS i, count(*) AS n FROM \"public\".\"chronicle_notes\" AS rb_t\n"
        "UNION ALL SELECT 1 AS i, count(*) AS n FROM \"public\".\"sprint_retrospectives\" AS rb_t\n"
        "UNION ALL SELECT 2 AS i, count(*) AS n FROM \"audit\".\"Events\" AS rb_t");
  Result<Value> r = c.Apply("pg.counts", args);
  REQUIRE(r.ok());
  CHECK((*r)["counts"]["chronicle_notes"] == 971);
  CHECK((*r)["counts"]["sprint_retrospectives"] == 99);
  CHECK((*r)["counts"]["audit.\"Events\""] == 2);
  CHECK((*r)["total"] == 1072);
  REQUIRE(c.ctx.tables.size() == 1);
  CHECK(c.ctx.tables[0].rows[0] == std::vector<std::string>{"chronicle_notes", "971"});

  Result<Value> all = c.Apply("pg.counts", {{"conn", "blue"}, {"all", true}});
  REQUIRE(all.ok());
  CHECK((*all)["counts"] == Value::parse(R"({"chronicle_notes":971,"sprint_retrospectives":99})"));
  // A probe: the rehearsal runs it for real.
  CHECK(c.P("pg.counts").rehearsal(args) == Rehearsal::kProbe);
  REQUIRE(c.Rehearse("pg.counts", args).ok());
}

TEST_CASE("pg.counts lists every unknown table at once", "[postgres][pg.counts]") {
  PgTestDb db(BlueServer());
  Chronicle(db, 3);
  PgCase c;
  c.Connect("blue", db);
  Result<Value> r = c.Apply("pg.counts", {{"conn", "blue"},
                                          {"tables", {"chronicle_notes", "nope", "ghost.t"}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "connection 'blue': no such table: nope, ghost.t");
  r = c.Apply("pg.counts", {{"conn", "blue"}, {"tables", {"bad name"}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("invalid table name"));
}

TEST_CASE("pg.compare_counts matches identical databases in count and checksum modes",
          "[postgres][pg.compare_counts]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Chronicle(blue, 971);
  Chronicle(green, 971);
  // Same content, different physical column order and session settings.
  green.Exec("ALTER TABLE sprint_retrospectives RENAME TO old; "
             "CREATE TABLE sprint_retrospectives (title text, id int PRIMARY KEY); "
             "INSERT INTO sprint_retrospectives SELECT title, id FROM old ORDER BY id DESC; "
             "DROP TABLE old; ALTER DATABASE " + green.name() + " SET TimeZone = 'Asia/Singapore'");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  for (const char* mode : {"count", "checksum"}) {
    INFO(mode);
    c.ctx.tables.clear();
    Result<Value> r = c.Apply("pg.compare_counts",
                              {{"source", "blue"}, {"target", "green"}, {"all", true},
                               {"mode", mode}});
    REQUIRE(r.ok());
    CHECK((*r)["mismatched"] == 0);
    CHECK((*r)["tables"].size() == 2);
    REQUIRE(c.ctx.tables.size() == 1);
    CHECK(c.ctx.tables[0].columns == std::vector<std::string>{"Table", "Source", "Target", "Match"});
    CHECK(c.ctx.tables[0].rows[0] ==
          std::vector<std::string>{"chronicle_notes", "971", "971", "match"});
  }
}

TEST_CASE("pg.compare_counts fails naming the tables that differ", "[postgres][pg.compare_counts]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Chronicle(blue, 971);
  Chronicle(green, 970);
  green.Exec("DROP TABLE sprint_retrospectives");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args{{"source", "blue"},
             {"target", "green"},
             {"tables", {"chronicle_notes", "sprint_retrospectives", "audit.\"Events\""}}};
  Result<Value> r = c.Apply("pg.compare_counts", args);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "2 of 3 tables differ between 'blue' and 'green': chronicle_notes (971 vs 970), "
        "sprint_retrospectives (99 vs missing)");
  REQUIRE(c.ctx.tables.size() == 1);  // the report still shows the comparison
  CHECK(c.ctx.tables[0].rows[1] ==
        std::vector<std::string>{"sprint_retrospectives", "99", "missing", "MISMATCH"});

  args["allow_mismatch"] = true;
  r = c.Apply("pg.compare_counts", args);
  REQUIRE(r.ok());
  CHECK((*r)["mismatched"] == 2);
  CHECK((*r)["tables"][1]["target"].is_null());
  CHECK((*r)["tables"][2]["match"] == true);
}

TEST_CASE(
    "pg.compare_counts counts a table's own rows: an inheritance parent without its "
    "children, a partitioned table with its partitions",
    "[postgres][pg.compare_counts]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  for (const PgTestDb* db : {&blue, &green}) {
    db->Exec(
        "CREATE TABLE parent (id int, v text); CREATE TABLE child (extra int) INHERITS (parent); "
        "INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (2, 'c', 7), (3, 'd', 8); "
        "CREATE TABLE m (k int, v text) PARTITION BY RANGE (k); "
        "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10); "
        "CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20); "
        "INSERT INTO m VALUES (1, 'a'), (15, 'b'), (16, 'c'); "
        "CREATE VIEW v AS SELECT * FROM parent");
  }
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args{{"source", "blue"}, {"target", "green"}, {"tables", {"parent", "child", "m", "v"}}};
  for (const char* mode : {"count", "checksum"}) {
    INFO(mode);
    args["mode"] = mode;
    Result<Value> r = c.Apply("pg.compare_counts", args);
    REQUIRE(r.ok());
    CHECK((*r)["tables"][0]["source"] == 1);  // the parent's own row, not its children's
    CHECK((*r)["tables"][1]["source"] == 2);
    CHECK((*r)["tables"][2]["source"] == 3);  // m through its partitions
    CHECK((*r)["tables"][3]["source"] == 3);  // a view as it reads
  }
  // A row moved from the child to the parent: the total through the parent
  // is the same, each table's own rows are not.
  green.Exec("DELETE FROM child WHERE id = 3; INSERT INTO parent VALUES (3, 'd')");
  args["mode"] = "count";
  Result<Value> r = c.Apply("pg.compare_counts", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("parent (1 vs 2)") && Catch::Contains("child (2 vs 1)"));
}

TEST_CASE("pg.compare_counts in checksum mode sees a changed row with equal counts",
          "[postgres][pg.compare_counts]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Chronicle(blue, 100);
  Chronicle(green, 100);
  green.Exec("UPDATE chronicle_notes SET body = 'tampered' WHERE id = 42");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args{{"source", "blue"}, {"target", "green"}, {"tables", {"chronicle_notes"}}};
  REQUIRE(c.Apply("pg.compare_counts", args).ok());  // counts alone agree
  args["mode"] = "checksum";
  Result<Value> r = c.Apply("pg.compare_counts", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("chronicle_notes (100 vs 100, content differs)"));
  CHECK(c.ctx.tables.back().rows[0][3] == "MISMATCH (content)");

  // A duplicated row and a missing one keep the count but not the digest.
  green.Exec("UPDATE chronicle_notes SET body = 'note 42' WHERE id = 42; "
             "ALTER TABLE chronicle_notes DROP CONSTRAINT chronicle_notes_pkey; "
             "DELETE FROM chronicle_notes WHERE id = 7; "
             "INSERT INTO chronicle_notes SELECT * FROM chronicle_notes WHERE id = 8");
  CHECK_FALSE(c.Apply("pg.compare_counts", args).ok());
}

TEST_CASE("pg.compare_counts in checksum mode tells NULL from an empty string and sees "
          "swapped values",
          "[postgres][pg.compare_counts]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  for (const PgTestDb* db : {&blue, &green}) {
    db->Exec("CREATE TABLE t (id int PRIMARY KEY, a text, b text); "
             "INSERT INTO t VALUES (1, NULL, 'x'), (2, 'y', 'z')");
  }
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args{{"source", "blue"}, {"target", "green"}, {"tables", {"t"}}, {"mode", "checksum"}};
  REQUIRE(c.Apply("pg.compare_counts", args).ok());
  green.Exec("UPDATE t SET a = '' WHERE id = 1");
  Result<Value> r = c.Apply("pg.compare_counts", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("t (2 vs 2, content differs)"));
  // The same values in other columns of the row are different content too.
  green.Exec("UPDATE t SET a = NULL WHERE id = 1; UPDATE t SET a = 'z', b = 'y' WHERE id = 2");
  CHECK_FALSE(c.Apply("pg.compare_counts", args).ok());
}

TEST_CASE("pg.compare_counts queries both databases at the same time",
          "[postgres][pg.compare_counts]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  // A view that takes 600 ms to count on each side.
  for (const PgTestDb* db : {&blue, &green}) {
    db->Exec("CREATE VIEW slow AS SELECT 1 AS x FROM pg_sleep(0.6)");
  }
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  // Connect first, so the timing below is the queries alone.
  REQUIRE(c.Apply("pg.query", {{"conn", "blue"}, {"sql", "SELECT 1"}}).ok());
  REQUIRE(c.Apply("pg.query", {{"conn", "green"}, {"sql", "SELECT 1"}}).ok());
  auto start = std::chrono::steady_clock::now();
  REQUIRE(c.Apply("pg.compare_counts",
                  {{"source", "blue"}, {"target", "green"}, {"tables", {"slow"}}}).ok());
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::milliseconds(1100));
}

TEST_CASE("pg.compare_counts reports a missing privilege on either side",
          "[postgres][pg.compare_counts]") {
  PgTestRole role(GreenServer());
  PgTestDb blue(BlueServer()), green(GreenServer());
  Chronicle(blue, 5);
  Chronicle(green, 5);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green, role.name(), role.password());
  Result<Value> r = c.Apply("pg.compare_counts", {{"source", "blue"}, {"target", "green"},
                                                  {"tables", {"chronicle_notes"}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'green'") &&
                                       Catch::Contains("permission denied for table "
                                                       "chronicle_notes"));
}

}  // namespace runbook::testing
