// pg.copy's undo drops the tables it created; it refuses to when someone
// else wrote to them since (an application switched to the copy), and must
// not count the run's own later writes as someone else's (pg-move-databases
// clears a stale knex lock on the copy, then a rollback must still work).
#include <catch2/catch.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::GreenServer;
using testing::PgTestDb;

std::string GuardRunbook(const PgTestDb& src, const PgTestDb& dst) {
  return "format: 1\nname: copy-then-own-writes\n"
         "params:\n"
         "  bpw: {type: string, secret: true, env: BLUE_PW}\n"
         "  gpw: {type: string, secret: true, env: GREEN_PW}\n"
         "connections:\n"
         "  src: {postgres: {dsn: \"" + src.Conninfo() + "\", password: \"${{ params.bpw }}\"}}\n"
         "  dst: {postgres: {dsn: \"" + dst.Conninfo() + "\", password: \"${{ params.gpw }}\"}}\n"
         "steps:\n"
         "  - id: copy\n"
         "    pg.copy: {source: src, target: dst, tables: [orders, locks], keep_owners: false}\n"
         "  - id: unlock\n"
         "    rollback: none\n"
         "    pg.exec: {conn: dst, sql: \"UPDATE locks SET is_locked = 0\"}\n"
         "  - id: touch\n"
         "    rollback: none\n"
         "    lua: |\n"
         "      pg.exec{conn = 'dst', sql = \"UPDATE orders SET note = 'touched' WHERE id = 7\"}\n";
}

struct Guard {
  E2e t;
  PgTestDb src{BlueServer()}, dst{GreenServer()};
  Guard() {
    src.Exec("CREATE TABLE orders (id int PRIMARY KEY, note text); "
             "INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 500) g; "
             "CREATE TABLE locks (index int PRIMARY KEY, is_locked int); "
             "INSERT INTO locks VALUES (1, 1)");
    t.Write("g.yaml", GuardRunbook(src, dst));
  }
  std::map<std::string, std::string> Env() const {
    return {{"BLUE_PW", BlueServer().password}, {"GREEN_PW", GreenServer().password}};
  }
  bool Has(const char* table) const {
    return dst.Value(std::string("SELECT to_regclass('public.") + table + "') IS NOT NULL") == "t";
  }
};

}  // namespace

TEST_CASE("pg.copy's undo does not count the run's own later writes as someone else's",
          "[e2e][postgres][pg.copy][rollback]") {
  Guard g;
  CliResult r = g.t.Run({"run", "g.yaml"}, g.Env());
  INFO(r.All());
  REQUIRE(r.code == 0);
  REQUIRE(g.dst.Value("SELECT is_locked FROM locks") == "0");
  REQUIRE(g.dst.Value("SELECT note FROM orders WHERE id = 7") == "touched");
  const std::string id = g.t.LastRunId();
  r = g.t.Run({"rollback", id}, g.Env());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(g.Has("orders"));
  CHECK_FALSE(g.Has("locks"));
}

TEST_CASE("pg.copy's undo refuses to drop a table someone else wrote to since, names it, and "
          "changes nothing",
          "[e2e][postgres][pg.copy][rollback]") {
  Guard g;
  CliResult r = g.t.Run({"run", "g.yaml"}, g.Env());
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string id = g.t.LastRunId();
  // The application, switched to the copy, writes to it.
  g.dst.Exec("INSERT INTO orders VALUES (501, 'after the switch')");
  r = g.t.Run({"rollback", id}, g.Env());
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("rollback refused, nothing was undone"));
  CHECK_THAT(r.All(), Catch::Contains("public.orders (501 rows on 'dst', 500 on 'src')"));
  CHECK_THAT(r.All(), !Catch::Contains("public.locks"));  // only the run wrote there
  CHECK(g.Has("orders"));
  CHECK(g.Has("locks"));
  CHECK(g.t.RunStatus(id)["status"] == "succeeded");
  // An update by someone else of a row the run also wrote counts too.
  g.dst.Exec("DELETE FROM orders WHERE id = 501; UPDATE locks SET is_locked = 2");
  r = g.t.Run({"rollback", id}, g.Env());
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("public.locks"));
  // A row deleted by someone else (no row is left to tell by its xmin):
  // the table holds fewer of the rows the copy left.
  g.dst.Exec("DELETE FROM orders WHERE id = 9");
  r = g.t.Run({"rollback", id}, g.Env());
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("public.orders (499 rows on 'dst', 500 on 'src')"));
  // Accepted: undone anyway.
  r = g.t.Run({"rollback", id, "--accept-data-loss"}, g.Env());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(g.Has("orders"));
}

TEST_CASE("pg.copy's undo does not count a later copy of the same run (the final sync) as "
          "someone else's writes, though the source moved on since",
          "[e2e][postgres][pg.copy][rollback]") {
  Guard g;
  std::string yaml = GuardRunbook(g.src, g.dst);
  yaml = yaml.substr(0, yaml.find("  - id: unlock\n")) +
         "  - id: final-sync\n"
         "    pg.copy: {source: src, target: dst, tables: [orders], replace: true, "
         "keep_owners: false}\n";
  g.t.Write("g.yaml", yaml);
  // Written to the source between the two copies: the final sync carries it.
  g.src.Exec("INSERT INTO orders VALUES (501, 'before the final sync')");
  CliResult r = g.t.Run({"run", "g.yaml"}, g.Env());
  INFO(r.All());
  REQUIRE(r.code == 0);
  REQUIRE(g.dst.Value("SELECT count(*) FROM orders") == "501");
  const std::string id = g.t.LastRunId();
  // The application goes on writing to the source (it never left it).
  g.src.Exec("INSERT INTO orders VALUES (502, 'on the source, later')");
  r = g.t.Run({"rollback", id}, g.Env());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(g.Has("orders"));
  CHECK_FALSE(g.Has("locks"));
  CHECK(g.src.Value("SELECT count(*) FROM orders") == "502");
}

}  // namespace runbook::e2e
