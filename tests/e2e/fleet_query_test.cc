// runbook fleet --targets-query: the targets are the rows of a read-only
// PostgreSQL query (an inventory table), found with libpq's conventions.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::PgTestDb;

// Marks its target with its params.
const char* kMark = R"(format: 1
name: mark-target
lock: "db:${{ params.db }}"
params:
  w: {type: string}
  db: {type: string}
  replicas: {type: int, default: 1}
steps:
  - id: mark
    exec: {argv: [touch, "${{ params.w }}/${{ params.db }}-${{ params.replicas }}"]}
)";

}  // namespace

TEST_CASE(
    "a fleet's targets from a query's rows: name, params, defaults for NULL; bad rows and "
    "writes refused before anything starts",
    "[e2e][fleet][postgres]") {
  E2e t;
  PgTestDb inventory(BlueServer(), "inventory");
  inventory.Exec(
      "CREATE TABLE databases (target text, db text, replicas int, cluster text);"
      "INSERT INTO databases VALUES ('orders', 'orders_db', 3, 'eu'), ('-rf', 'dash_db', NULL, "
      "'eu'), ('billing', 'billing_db', 2, 'us')");
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("rb.yaml", kMark);
  const std::string dsn = inventory.Conninfo();
  auto fleet = [&](const std::string& sql, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"fleet", "rb.yaml", "--targets-query", sql, "--targets-dsn",
                                  dsn,     "-p",      "w=" + w};
    args.insert(args.end(), more.begin(), more.end());
    return t.Run(args, BlueServer().ClientEnv());
  };

  CliResult r = fleet("SELECT target AS name, db FROM databases WHERE cluster = 'eu' ORDER BY 1");
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("2 targets"));
  CHECK(Exists(w + "/dash_db-1"));  // NULL: the default
  CHECK(Exists(w + "/orders_db-1"));
  CHECK_FALSE(Exists(w + "/billing_db-2"));
  r = fleet("SELECT target AS name, db, replicas FROM databases WHERE cluster = 'us'");
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(Exists(w + "/billing_db-2"));  // an int column, an int param
  const size_t runs = t.Runs().size();

  // Each refused with a message saying why, and nothing started.
  struct Bad {
    std::string sql, says;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"SELECT db FROM databases", "row 1: no column 'name'"},
           {"SELECT NULL::text AS name, db FROM databases", "'name' must be non-empty text"},
           {"SELECT 'same' AS name, db FROM databases", "target 'same' is named twice"},
           {"SELECT target AS name, db FROM databases WHERE false", "no rows"},
           {"SELECT target AS name, db, 'x' AS nope FROM databases", "nope"},
           {"SELECT target AS name FROM no_such_table", "no_such_table"},
           {"INSERT INTO databases VALUES ('x', 'x', 1, 'x') RETURNING target AS name, db",
            "read-only transaction"},
           {"SELECT 1; DELETE FROM databases", "multiple commands"},
       }) {
    INFO(bad.sql);
    r = fleet(bad.sql);
    INFO(r.All());
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(bad.says));
  }
  CHECK(t.Runs().size() == runs);
  CHECK(inventory.Value("SELECT count(*) FROM databases") == "3");

  // A wrong password: the server's refusal, not the password.
  const std::string with_password = dsn + " password=wrong-secret-123";
  r = t.Run({"fleet", "rb.yaml", "--targets-query", "SELECT 1", "--targets-dsn", with_password,
             "-p", "w=" + w});
  INFO(r.All());
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("password authentication failed") &&
                        !Catch::Contains("wrong-secret-123"));
  // Both sources, or neither: refused.
  CHECK(t.Run({"fleet", "rb.yaml", "-p", "w=" + w}).code == 2);
  CHECK(t.Run({"fleet", "rb.yaml", "--targets", "x.yaml", "--targets-query", "SELECT 1"}).code ==
        2);
}

}  // namespace runbook::e2e
