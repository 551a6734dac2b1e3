// The standard runbooks across real PostgreSQL majors and glibc versions
// (servers in Debian roots, scripts/pg_roots.sh): pg-blue-green-upgrade
// 13 -> 17 (sync=copy) and 15 -> 17 (sync=replication) on the fidelity
// corpus, each proved by the full comparison; seed 000 from a real glibc
// change, fixed by pg-refresh-collation.
#include "tests/e2e/blue_green_util.h"

namespace runbook::e2e {
namespace {

using testing::GlibcUpgradeServer;
using testing::RootsDir;
using testing::VersionServer;

// Runs the upgrade and checks the clone in full, then rolls it back.
void UpgradeAndRollBack(BlueGreen& bg) {
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(8));
  INFO(r.All());
  REQUIRE(r.code == 0);
  auto steps = bg.t.Steps(bg.t.LastRunId());
  CHECK(steps["verify"]["status"] == "succeeded");
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");
  CHECK(bg.green.AdminValue("SHOW server_version_num", bg.db).substr(0, 2) == "17");
  // The runbook's own guardrail passed; check again from here, every object.
  Value same = testing::RequireSameDatabase({bg.blue, bg.db}, {bg.green, bg.db},
                                            testing::ToolsDir(17));
  CHECK(same["large_objects"] == 3);
  CHECK(bg.green.AdminValue("SELECT count(*) FROM ONLY shop.media", bg.db) == "3");
  CHECK(bg.green.AdminValue("SELECT count(*) FROM shop.mv_daily_plays", bg.db) == "86");

  // Back to blue (green kept at the boundary), then green removed.
  const std::string id = bg.t.LastRunId();
  for (int i = 0; i < 2; ++i) {
    r = bg.t.Run({"rollback", id}, bg.Env(), std::chrono::minutes(5));
    INFO(r.All());
    CHECK(r.code == 0);
    CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
    CHECK(bg.green_dbs.Exists(bg.db) == (i == 0));
    CHECK(bg.GreenDeployed() == (i == 0));
  }
}

}  // namespace

TEST_CASE("pg-blue-green-upgrade 13 -> 17 (sync=copy) carries the fidelity corpus; the full "
          "comparison passes; rollback",
          "[e2e][runbooks][postgres][kube][seed004][majors]") {
  BlueGreen bg(VersionServer(13), VersionServer(17), /*replication=*/false, /*corpus=*/true);
  // Without owners=keep, the copy refuses: blue has grants and other owners.
  std::vector<std::string> args = bg.Args();
  args.erase(std::find(args.begin(), args.end(), "owners=keep") - 1,
             std::find(args.begin(), args.end(), "owners=keep") + 1);
  CliResult r = bg.t.Run(args, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("would drop owners and grants"));
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  UpgradeAndRollBack(bg);
}

TEST_CASE("pg-blue-green-upgrade 15 -> 17 (sync=replication) carries the fidelity corpus; the "
          "full comparison passes; rollback",
          "[e2e][runbooks][postgres][kube][seed004][majors][replication]") {
  BlueGreen bg(VersionServer(15), VersionServer(17), /*replication=*/true, /*corpus=*/true);
  UpgradeAndRollBack(bg);
}

TEST_CASE("pg-refresh-collation fixes seed 000 for real: a PostgreSQL 15 data directory made "
          "under glibc 2.36 and opened under glibc 2.41",
          "[e2e][runbooks][postgres][seed000][glibc]") {
  E2e t;
  const testing::PgServer& s = GlibcUpgradeServer();
  const std::string app = testing::UniqueName("backstage_plugin_catalog");
  s.AdminExec("CREATE DATABASE " + app);
  s.AdminExec("CREATE TABLE entities (name text PRIMARY KEY, kind text); "
              "CREATE INDEX entities_kind ON entities (kind); "
              "INSERT INTO entities SELECT 'Entity-' || g || CASE WHEN g % 2 = 0 THEN ' a' "
              "ELSE '-b' END, 'k' || g % 7 FROM generate_series(1, 5000) g",
              app);
  REQUIRE(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = 'template1'") ==
          "2.36");
  s.MoveToRoot(RootsDir() + "/trixie");
  // Seed 000's state, with no catalog edit: the versions glibc recorded and reports.
  CHECK(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = 'template1'") ==
        "2.36");
  CHECK(s.AdminValue("SELECT pg_database_collation_actual_version(oid) FROM pg_database WHERE "
                     "datname = 'template1'") == "2.41");
  const std::string probe = testing::UniqueName("probe");
  CHECK_THROWS_WITH(s.AdminExec("CREATE DATABASE " + probe),
                    Catch::Contains("template database \"template1\" has a collation version "
                                    "mismatch"));

  std::vector<std::string> args{"run", Runbook("pg-refresh-collation"), "-p",
                                "server=" + s.Conninfo("postgres"), "-p",
                                "probe_database=" + probe};
  CliResult r = t.Run(args, s.ClientEnv(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  for (const std::string& db : {std::string("template1"), std::string("postgres"), app}) {
    INFO(db);
    CHECK(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = '" + db + "'") ==
          "2.41");
  }
  // The application's indexes were rebuilt under the new glibc and check out.
  s.AdminExec("CREATE EXTENSION IF NOT EXISTS amcheck", app);
  s.AdminExec("SELECT bt_index_check('entities_pkey', true), bt_index_check('entities_kind', true)",
              app);
  const std::string next = testing::UniqueName("backstage_plugin");
  s.AdminExec("CREATE DATABASE " + next);
  s.AdminExec("DROP DATABASE " + next);
  s.AdminExec("DROP DATABASE " + app + " WITH (FORCE)");
}

}  // namespace runbook::e2e
