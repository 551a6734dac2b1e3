// The undos that drop a whole database (pg.create_database's) or what a
// restore created (pg.restore's) refuse to when someone other than the run
// wrote there since (an application switched to it), name what and how many
// rows, and change nothing; the run's own writes (another connection name
// to the same server, the pg_restore tool's transactions) do not count.
#include <catch2/catch.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::GreenServer;
using testing::PgTestDb;
using testing::UniqueName;

bool DatabaseExists(const std::string& name) {
  return GreenServer().AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name +
                                  "'") == "1";
}

// Drops green's database `db` when the test ends, whatever happened.
struct DropAtEnd {
  std::string db;
  ~DropAtEnd() { GreenServer().AdminExec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)"); }
};

struct Created {
  E2e t;
  std::string db = UniqueName("guarded");
  Created() {
    const auto& g = GreenServer();
    // Two connection names to one server: the run's writes through `app`
    // are its own even though `admin` created the database.
    t.Write("c.yaml",
            "format: 1\nname: create-then-load\n"
            "params:\n"
            "  pw: {type: string, secret: true, env: GREEN_PW}\n"
            "connections:\n"
            "  admin: {postgres: {dsn: \"" + g.Conninfo("postgres") +
                "\", password: \"${{ params.pw }}\"}}\n"
            "  app: {postgres: {dsn: \"" + g.Conninfo(db) + "\", password: \"${{ params.pw }}\"}}\n"
            "steps:\n"
            "  - id: create\n"
            "    pg.create_database: {conn: admin, name: " + db + "}\n"
            "  - id: load\n"
            "    rollback: none\n"
            "    pg.exec: {conn: app, sql: \"CREATE TABLE orders (id int PRIMARY KEY, note text); "
            "INSERT INTO orders SELECT g, 'n' FROM generate_series(1, 30) g; "
            // Rows of a subtransaction (a plpgsql EXCEPTION block) carry its
            // own transaction id: the run's too.
            "DO $$ BEGIN INSERT INTO orders SELECT g, 's' FROM generate_series(31, 40) g; "
            "EXCEPTION WHEN unique_violation THEN RAISE; END $$\"}\n");
  }
  DropAtEnd drop{db};
  std::map<std::string, std::string> Env() const { return {{"GREEN_PW", GreenServer().password}}; }
  void Exec(const std::string& sql) const { GreenServer().AdminExec(sql, db); }
};

}  // namespace

TEST_CASE("pg.create_database's undo drops a database only the run wrote to, through any of "
          "its connections",
          "[e2e][postgres][rollback][undo_guard]") {
  Created c;
  CliResult r = c.t.Run({"run", "c.yaml"}, c.Env());
  INFO(r.All());
  REQUIRE(r.code == 0);
  REQUIRE(DatabaseExists(c.db));
  r = c.t.Run({"rollback", c.t.LastRunId()}, c.Env());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(DatabaseExists(c.db));
}

TEST_CASE("pg.create_database's undo refuses to drop a database someone else wrote to since, "
          "names the tables and rows, and changes nothing",
          "[e2e][postgres][rollback][undo_guard]") {
  Created c;
  CliResult r = c.t.Run({"run", "c.yaml"}, c.Env());
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string id = c.t.LastRunId();
  // The application, switched to the new database, writes: an update of a
  // row the run wrote, and a table of its own.
  c.Exec("UPDATE orders SET note = 'paid' WHERE id IN (3, 4); "
         "CREATE TABLE audit (at timestamptz); INSERT INTO audit VALUES (now())");
  r = c.t.Run({"rollback", id}, c.Env());
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("rollback refused, nothing was undone"));
  CHECK_THAT(r.All(), Catch::Contains("public.orders (2 rows)"));
  CHECK_THAT(r.All(), Catch::Contains("public.audit (1 row)"));
  CHECK_THAT(r.All(), Catch::Contains("--accept-data-loss"));
  CHECK(DatabaseExists(c.db));
  CHECK(c.t.RunStatus(id)["status"] == "succeeded");
  r = c.t.Run({"rollback", id, "--accept-data-loss"}, c.Env());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(DatabaseExists(c.db));
}

TEST_CASE("pg.restore's undo counts the tool's own rows as the run's and refuses once someone "
          "else wrote to the restored database",
          "[e2e][postgres][rollback][undo_guard][pg.restore]") {
  E2e t;
  PgTestDb src(GreenServer());
  src.Exec("CREATE TABLE items (id int PRIMARY KEY, v text); "
           "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 300) g");
  const std::string db = UniqueName("restored");
  const auto& g = GreenServer();
  t.Write("r.yaml",
          "format: 1\nname: dump-restore\n"
          "params:\n"
          "  pw: {type: string, secret: true, env: GREEN_PW}\n"
          "connections:\n"
          "  src: {postgres: {dsn: \"" + src.Conninfo() + "\", password: \"${{ params.pw }}\"}}\n"
          "  admin: {postgres: {dsn: \"" + g.Conninfo("postgres") +
              "\", password: \"${{ params.pw }}\"}}\n"
          "steps:\n"
          "  - id: dump\n"
          "    pg.dump: {conn: src, file: " + t.dir() + "/items.dump}\n"
          "  - id: restore\n"
          "    pg.restore: {conn: admin, database: " + db + ", file: " + t.dir() +
              "/items.dump, create: true}\n");
  const std::map<std::string, std::string> env{{"GREEN_PW", g.password}};
  DropAtEnd drop{db};

  CliResult r = t.Run({"run", "r.yaml"}, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  REQUIRE(g.AdminValue("SELECT count(*) FROM items", db) == "300");
  const std::string first = t.LastRunId();
  r = t.Run({"rollback", first}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(DatabaseExists(db));

  r = t.Run({"run", "r.yaml"}, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string second = t.LastRunId();
  g.AdminExec("INSERT INTO items VALUES (301, 'after the switch')", db);
  r = t.Run({"rollback", second}, env);
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("public.items (1 row)"));
  CHECK(DatabaseExists(db));
  CHECK(g.AdminValue("SELECT count(*) FROM items", db) == "301");
}

}  // namespace runbook::e2e

namespace runbook::e2e {

TEST_CASE("tables a pg.copy created are left to its check only when the rollback asks it: with "
          "rollback: none, the database's undo checks them",
          "[e2e][postgres][rollback][undo_guard][pg.copy]") {
  E2e t;
  testing::PgTestDb src(testing::BlueServer());
  src.Exec("CREATE TABLE orders (id int PRIMARY KEY, note text); "
           "INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 50) g");
  const auto& g = GreenServer();
  const std::string db = UniqueName("copied");
  DropAtEnd drop{db};
  t.Write("k.yaml",
          "format: 1\nname: create-copy\n"
          "params:\n"
          "  bpw: {type: string, secret: true, env: BLUE_PW}\n"
          "  gpw: {type: string, secret: true, env: GREEN_PW}\n"
          "connections:\n"
          "  src: {postgres: {dsn: \"" + src.Conninfo() + "\", password: \"${{ params.bpw }}\"}}\n"
          "  admin: {postgres: {dsn: \"" + g.Conninfo("postgres") +
              "\", password: \"${{ params.gpw }}\"}}\n"
          "  dst: {postgres: {dsn: \"" + g.Conninfo(db) + "\", password: \"${{ params.gpw }}\"}}\n"
          "steps:\n"
          "  - id: create\n"
          "    pg.create_database: {conn: admin, name: " + db + "}\n"
          "  - id: copy\n"
          "    rollback: none\n"
          "    pg.copy: {source: src, target: dst, tables: [orders], keep_owners: false}\n");
  const std::map<std::string, std::string> env{{"BLUE_PW", testing::BlueServer().password},
                                               {"GREEN_PW", g.password}};
  // The copy's rows are the run's own: the database goes.
  CliResult r = t.Run({"run", "k.yaml"}, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  r = t.Run({"rollback", t.LastRunId()}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(DatabaseExists(db));
  // Written to since: the copy's check is not asked (rollback: none), the
  // database's sees the row.
  r = t.Run({"run", "k.yaml"}, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  g.AdminExec("INSERT INTO orders VALUES (51, 'after the switch')", db);
  r = t.Run({"rollback", t.LastRunId()}, env);
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("public.orders (1 row)"));
  CHECK(DatabaseExists(db));
}

}  // namespace runbook::e2e
