// pg-move-databases (seed 001) and pg-blue-green-upgrade (seed 004) end to
// end: the real binary, real PostgreSQL servers, the real kubectl against the
// API simulator (port-forwards to the local servers).
#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <thread>

#include "tests/bindings/kube_test_util.h"
#include "tests/e2e/blue_green_util.h"
#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::GreenServer;
using testing::KubeSim;
using testing::PgServer;
using testing::TheKubeSim;


std::string ServerConninfo(const PgServer& s) {  // no dbname
  return "host=" + s.host + " port=" + std::to_string(s.port) + " user=" + s.superuser;
}



// A Backstage plugin database as seed 001 had them: data, and a knex lock
// table left locked by a migration that was interrupted.
void MakePluginDb(const PgServer& s, const std::string& name, const std::string& lock_table,
                  int rows) {
  s.AdminExec("CREATE DATABASE " + name + " TEMPLATE template0");
  s.AdminExec("CREATE TABLE " + lock_table + " (index serial PRIMARY KEY, is_locked int);"
              "INSERT INTO " + lock_table + " (is_locked) VALUES (1);"
              "CREATE TABLE entities (id bigserial PRIMARY KEY, kind text, spec jsonb);"
              "CREATE TABLE relations (id serial PRIMARY KEY,"
              "  source bigint REFERENCES entities(id), target bigint REFERENCES entities(id));"
              "INSERT INTO entities (kind, spec) SELECT 'Component', jsonb_build_object('n', g)"
              "  FROM generate_series(1, " + std::to_string(rows) + ") g;"
              "INSERT INTO relations (source, target) SELECT g, g + 1 FROM generate_series(1, " +
                  std::to_string(rows - 1) + ") g;",
              name);
}

TEST_CASE("pg-move-databases moves every prefixed database, clears stale knex locks, and rolls "
          "back", "[e2e][runbooks][postgres][seed001]") {
  E2e t;
  const PgServer& from = BlueServer();
  const PgServer& to = GreenServer();
  std::string prefix = testing::UniqueName("bsp") + "_plugin_";
  Databases src{from, {prefix + "app", prefix + "auth", prefix + "search"}};
  Databases dst{to, src.names};
  MakePluginDb(from, prefix + "app", "knex_migrations_lock", 1000);
  MakePluginDb(from, prefix + "auth", "knex_migrations_lock", 300);
  MakePluginDb(from, prefix + "search", "backstage_backend_tasks__knex_migrations_lock", 50);
  std::map<std::string, std::string> env{{"RUNBOOK_SOURCE_PASSWORD", from.password},
                                         {"RUNBOOK_TARGET_PASSWORD", to.password}};
  std::vector<std::string> args{"run", Runbook("pg-move-databases"),
                                "-p", "source=" + ServerConninfo(from),
                                "-p", "target=" + ServerConninfo(to), "-p", "prefix=" + prefix};

  std::vector<std::string> dry = args;
  dry.push_back("--dry-run");
  CliResult r = t.Run(dry, env);
  INFO(r.All());
  CHECK(r.code == 0);
  for (const auto& n : dst.names) CHECK_FALSE(dst.Exists(n));
  // Past `create`, the rehearsal reaches both servers and says why it
  // cannot probe further: the database exists only in a real run.
  {
    auto rehearsed = t.Steps(t.LastRunId());
    Value report = Value::parse(t.Run({"report", t.LastRunId(), "--format", "json"}).out);
    std::map<std::string, std::string> why;
    for (const auto& s : report["steps"]) why[s["step"].get<std::string>()] = s["result"].dump();
    for (const char* step : {"move[1].copy", "move[1].knex-locks", "move[1].verify"}) {
      INFO(step);
      CHECK(rehearsed[step]["status"] == "unknown");
      CHECK_THAT(why[step],
                 Catch::Contains("does not exist yet: step 'move[1].create' would create it"));
    }
  }

  r = t.Run(args, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK_THAT(r.All(), !Catch::Contains(to.password) && !Catch::Contains(from.password));
  for (const auto& n : src.names) {
    REQUIRE(dst.Exists(n));
    CHECK(to.AdminValue("SELECT count(*) FROM entities", n) ==
          from.AdminValue("SELECT count(*) FROM entities", n));
    CHECK(to.AdminValue("SELECT count(*) FROM relations", n) ==
          from.AdminValue("SELECT count(*) FROM relations", n));
    // The FK came along.
    CHECK(to.AdminValue("SELECT count(*) FROM pg_constraint WHERE contype = 'f'", n) == "2");
  }
  // The stale locks are cleared on the copies, and the sources are untouched.
  CHECK(to.AdminValue("SELECT is_locked FROM knex_migrations_lock", prefix + "auth") == "0");
  CHECK(to.AdminValue("SELECT is_locked FROM backstage_backend_tasks__knex_migrations_lock",
                      prefix + "search") == "0");
  CHECK(from.AdminValue("SELECT is_locked FROM knex_migrations_lock", prefix + "auth") == "1");
  auto steps = t.Steps(t.LastRunId());
  CHECK(steps.count("move[3].verify") == 1);

  // A database that exists on the target already: refused, nothing else made.
  std::string id = t.LastRunId();
  r = t.Run(args, env);
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("already exists"));

  r = t.Run({"rollback", id}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  for (const auto& n : dst.names) CHECK_FALSE(dst.Exists(n));
  for (const auto& n : src.names) CHECK(src.Exists(n));
}

TEST_CASE("pg-move-databases reaches the source through a kubectl port-forward",
          "[e2e][runbooks][postgres][kube][seed001]") {
  E2e t;
  const KubeSim& sim = TheKubeSim();
  sim.Reset();
  const PgServer& from = BlueServer();
  const PgServer& to = GreenServer();
  std::string prefix = testing::UniqueName("pf") + "_plugin_";
  Databases src{from, {prefix + "catalog"}};
  Databases dst{to, src.names};
  MakePluginDb(from, prefix + "catalog", "knex_migrations_lock", 200);
  // The source pod: its port 5432 is forwarded to the blue server.
  sim.ApplyYaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: backstage-psql}\nspec:\n"
                "  replicas: 1\n  selector: {matchLabels: {app: backstage-psql}}\n  template:\n"
                "    metadata:\n      labels: {app: backstage-psql}\n      annotations: "
                "{sim.runbook/forward-to: \"5432=127.0.0.1:" + std::to_string(from.port) +
                "\"}\n    spec:\n      containers:\n      - {name: postgres, image: "
                "\"postgres:15\"}\n");
  sim.Kubectl({"rollout", "status", "deployment/backstage-psql", "--timeout=30s"});
  std::map<std::string, std::string> env{{"RUNBOOK_SOURCE_PASSWORD", from.password},
                                         {"RUNBOOK_TARGET_PASSWORD", to.password}};
  CliResult r = t.Run({"run", Runbook("pg-move-databases"),
                       // A host that does not exist: only the forward can reach the server.
                       "-p", "source=host=backstage-psql.invalid user=" + from.superuser,
                       "-p", "target=" + ServerConninfo(to), "-p", "prefix=" + prefix,
                       "-p", "via=cluster", "-p", "kube_pod=deployment/backstage-psql",
                       "-p", "kube_context=sim", "-p", "kubeconfig=" + sim.kubeconfig},
                      env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK_THAT(r.All(), Catch::Contains("port-forward"));
  CHECK(to.AdminValue("SELECT count(*) FROM entities", prefix + "catalog") == "200");
  CHECK(to.AdminValue("SELECT is_locked FROM knex_migrations_lock", prefix + "catalog") == "0");
}

// ---- pg-blue-green-upgrade (seed 004) ---------------------------------------------------------

TEST_CASE("pg-blue-green-upgrade: rehearsal, cutover, and rollback of the whole upgrade",
          "[e2e][runbooks][postgres][kube][seed004]") {
  BlueGreen bg;
  auto env = bg.Env();
  std::vector<std::string> dry = bg.Args();
  dry.push_back("--dry-run");
  CliResult r = bg.t.Run(dry, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK_FALSE(bg.GreenDeployed());
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK(bg.AppReplicas() == 2);
  // The rehearsal follows its plan: green's steps run, reach what they can
  // and end UNKNOWN, naming the step that would deploy green.
  {
    auto rehearsed = bg.t.Steps(bg.t.LastRunId());
    for (const char* step : {"green-rollout", "green-ready", "green-collation", "create-database",
                             "initial-sync", "verify", "fallback", "switched-at"}) {
      INFO(step);
      CHECK(rehearsed[step]["status"] == "unknown");
    }
    CHECK(rehearsed["blue-quiet"]["status"] == "succeeded");
    CHECK_THAT(r.out, Catch::Contains("does not exist yet: step 'deploy-green' would create it"));
  }

  r = bg.t.Run(bg.Args(), env, std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");
  CHECK(bg.AppReplicas() == 2);
  CheckSameCounts(bg);
  CHECK(bg.green.AdminValue("SELECT count(*) FROM chronicle_notes", bg.db) == "971");
  // Sequences follow: the next id on green continues blue's.
  CHECK(bg.green.AdminValue("SELECT nextval('chronicle_notes_id_seq')", bg.db) == "972");

  std::string id = bg.t.LastRunId();
  r = bg.t.Run({"rollback", id}, env, std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(bg.AppReplicas() == 2);
  // After the switch, the rollback stops at its boundary: green is kept.
  CHECK_THAT(r.All(), Catch::Contains("runbook rollback " + id + " again undoes them"));
  CHECK(bg.green_dbs.Exists(bg.db));
  CHECK(bg.GreenDeployed());
  CHECK(bg.t.RunStatus(id)["status"] == "rolled_back");
  // A second rollback removes it.
  r = bg.t.Run({"rollback", id}, env, std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK_FALSE(bg.GreenDeployed());
  CHECK(bg.t.Steps(id)["create-database"]["status"] == "undone");
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(bg.AppReplicas() == 2);
  CHECK(bg.blue.AdminValue("SELECT count(*) FROM chronicle_notes", bg.db) == "971");
  // A third has nothing left to do.
  r = bg.t.Run({"rollback", id}, env);
  CHECK(r.code == 0);
  CHECK_THAT(r.All(), Catch::Contains("already rolled back"));
}

TEST_CASE("pg-blue-green-upgrade: a failed switch rolls every stage back to blue",
          "[e2e][runbooks][postgres][kube][seed004]") {
  BlueGreen bg;
  // The API server refuses every patch of the database service.
  bg.sim.AddFault(Value{{"match", {{"method", "PATCH"},
                                   {"path_regex", "/namespaces/dsm/services/chronicle-db(\\?|$)"}}},
                        {"status", 403}, {"count", 0}, {"message", "injected: patch forbidden"}});
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("switch"));
  auto steps = bg.t.Steps(bg.t.LastRunId());
  // It failed; its undo (the recorded old selector) ran too, harmlessly.
  CHECK((steps["switch"]["status"] == "failed" || steps["switch"]["status"] == "undone"));
  CHECK_THAT(steps["switch"]["error"].get<std::string>(), Catch::Contains("forbidden"));
  CHECK(steps["stop-writers"]["status"] == "undone");
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(bg.AppReplicas() == 2);
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK_FALSE(bg.GreenDeployed());
}

// Replication objects on blue (publications, slots) and green (subscriptions)
// named like the run's: "" when there are none.
std::string ReplicationLeftovers(const BlueGreen& bg) {
  return bg.blue.AdminValue("SELECT string_agg(k, ',') FROM ("
                            "SELECT 'publication ' || pubname AS k FROM pg_publication "
                            "UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots "
                            "WHERE database = current_database()) o",
                            bg.db) +
         bg.Subscriptions();
}

TEST_CASE("pg-blue-green-upgrade sync=replication: cutover through logical replication, and "
          "rollback removes subscription, publication and slot",
          "[e2e][runbooks][postgres][kube][seed004][replication]") {
  BlueGreen bg(/*replication=*/true);
  REQUIRE(ReplicationLeftovers(bg).empty());
  // A wrong sync method is refused before anything happens.
  std::vector<std::string> bad = bg.Args();
  bad.insert(bad.end(), {"-p", "sync=rsync"});
  CliResult r = bg.t.Run(bad, bg.Env());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("sync must be copy or replication, not 'rsync'"));
  CHECK_FALSE(bg.GreenDeployed());

  // The rehearsal of this method follows its plan too: the replication
  // steps reach blue and end UNKNOWN (green exists only in a real run);
  // nothing is made on either side.
  std::vector<std::string> dry = bg.Args();
  dry.push_back("--dry-run");
  r = bg.t.Run(dry, bg.Env(), std::chrono::minutes(5));
  {
    INFO(r.All());
    REQUIRE(r.code == 0);
    auto rehearsed = bg.t.Steps(bg.t.LastRunId());
    for (const char* step : {"replicate", "replication-lag", "caught-up", "sync-sequences",
                             "sync-unreplicated", "stop-replication", "verify"}) {
      INFO(step);
      CHECK(rehearsed[step]["status"] == "unknown");
    }
    CHECK(rehearsed["initial-sync"]["status"] == "skipped");
    CHECK_FALSE(bg.GreenDeployed());
    CHECK(ReplicationLeftovers(bg).empty());
  }

  r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  auto steps = bg.t.Steps(bg.t.LastRunId());
  CHECK(steps["initial-sync"]["status"] == "skipped");
  CHECK(steps["final-sync"]["status"] == "skipped");
  CHECK(steps["replicate"]["status"] == "succeeded");
  CHECK(steps["caught-up"]["status"] == "succeeded");
  CHECK(steps["blue-quiet"]["status"] == "succeeded");
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");
  CHECK(bg.AppReplicas() == 2);
  CheckSameCounts(bg);
  // Sequences were carried over (replication does not), and green no longer follows blue.
  CHECK(bg.green.AdminValue("SELECT nextval('chronicle_notes_id_seq')", bg.db) == "972");
  CHECK(bg.Subscriptions() == "false");
  bg.blue.AdminExec("INSERT INTO chronicle_notes (author, body) VALUES ('late', 'on blue')", bg.db);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(bg.green.AdminValue("SELECT count(*) FROM chronicle_notes", bg.db) == "971");

  // Blue was written after the switch (a stray writer): the reverse cutover
  // cannot prove blue equal to green, so the rollback halts there, the
  // writers stopped, green untouched, and says so.
  const std::string id = bg.t.LastRunId();
  r = bg.t.Run({"rollback", id}, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("'blue' differs from 'green' after the catch-up"));
  CHECK_THAT(r.All(), Catch::Contains("public.chronicle_notes"));
  CHECK(bg.AppReplicas() == 0);
  CHECK(bg.green.AdminValue("SELECT count(*) FROM chronicle_notes", bg.db) == "971");
  // A human removes the stray row; the rollback, run again, completes.
  bg.blue.AdminExec("DELETE FROM chronicle_notes WHERE author = 'late'", bg.db);
  r = bg.t.Run({"rollback", id}, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(bg.AppReplicas() == 2);
  CHECK(bg.green_dbs.Exists(bg.db));  // kept: the rollback boundary
  // The second rollback removes green and the forward replication.
  r = bg.t.Run({"rollback", id}, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK_FALSE(bg.GreenDeployed());
  CHECK(ReplicationLeftovers(bg).empty());
}

TEST_CASE("pg-blue-green-upgrade: a switch that does not finish in its 30 s reverts to blue",
          "[e2e][runbooks][postgres][kube][seed004]") {
  BlueGreen bg;
  // The API server sits on the selector patch for longer than the step allows.
  bg.sim.AddFault(Value{{"match", {{"method", "PATCH"},
                                   {"path_regex", "/namespaces/dsm/services/chronicle-db(\\?|$)"}}},
                        {"delay_ms", 40000}, {"status", 504}, {"count", 1},
                        {"message", "injected: too slow"}});
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 1);
  auto steps = bg.t.Steps(bg.t.LastRunId());
  CHECK((steps["switch"]["status"] == "failed" || steps["switch"]["status"] == "undone"));
  CHECK(steps["stop-writers"]["status"] == "undone");
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(bg.AppReplicas() == 2);
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK_FALSE(bg.GreenDeployed());
}

}  // namespace
}  // namespace runbook::e2e
