// The standard runbooks (runbooks/*.yaml) end to end: the real binary against
// real PostgreSQL servers and the real kubectl against the API simulator.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "tests/e2e/e2e_util.h"
#include "tests/bindings/kube_test_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::GreenServer;
using testing::KubeSim;
using testing::LocaleServer;
using testing::PgServer;
using testing::PgTestDb;
using testing::TheKubeSim;

std::string Runbook(const std::string& name) {
  return std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/" + name + ".yaml";
}

// {step id: result} of a run, from its JSON report.
std::map<std::string, Value> Results(const E2e& t, const std::string& run_id) {
  Value report = Value::parse(t.Run({"report", run_id, "--format", "json"}).out);
  std::map<std::string, Value> out;
  for (const auto& s : report["steps"]) out[s["step"].get<std::string>()] = s["result"];
  return out;
}

// Columns, constraints and indexes of the public schema, one line each: the
// catalog as far as a migration can change it.
std::string Catalog(const PgTestDb& db) {
  return db.Value(
      "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM ("
      " SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type || ' ' ||"
      "        is_nullable || ' ' || coalesce(column_default, '') AS x"
      "   FROM information_schema.columns WHERE table_schema = 'public'"
      " UNION ALL SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' ||"
      "        pg_get_constraintdef(oid) FROM pg_constraint"
      "   WHERE connamespace = 'public'::regnamespace"
      " UNION ALL SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'"
      " UNION ALL SELECT 'rel ' || relname || ' ' || relkind::text FROM pg_class"
      "   WHERE relnamespace = 'public'::regnamespace) s");
}

const char* kShop =
    "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);"
    "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers,"
    "                     total numeric(10,2));"
    "INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 50) g;"
    "INSERT INTO orders (customer_id, total) SELECT 1 + g % 50, g FROM generate_series(1, 500) g;";

// ---- pg-verify-counts -----------------------------------------------------------------------

TEST_CASE("pg-verify-counts passes on equal databases and names the table that differs",
          "[e2e][runbooks][postgres]") {
  E2e t;
  PgTestDb blue(BlueServer(), "vc");
  PgTestDb green(GreenServer(), "vc");
  blue.Exec(kShop);
  green.Exec(kShop);
  auto env = BlueServer().ClientEnv();
  env["RUNBOOK_TARGET_PASSWORD"] = GreenServer().password;  // each server its own
  std::vector<std::string> args{"run", Runbook("pg-verify-counts"), "-p",
                                "source=" + blue.Conninfo(), "-p", "target=" + green.Conninfo(),
                                "-p", "mode=checksum"};
  CliResult r = t.Run(args, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  std::string id = t.LastRunId();
  Value cmp = Results(t, id)["compare-all"];
  CHECK(cmp["mismatched"] == 0);
  CHECK(cmp["tables"].size() == 2);

  // Same counts, different content: only the checksum sees it.
  green.Exec("UPDATE orders SET total = total + 1 WHERE id = 7");
  r = t.Run(args, env);
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("orders"));
  CHECK_THAT(r.All(), !Catch::Contains(BlueServer().password));
  std::vector<std::string> counts = args;
  counts.back() = "mode=count";
  CHECK(t.Run(counts, env).code == 0);

  // Listed tables only, and a missing row.
  green.Exec("DELETE FROM orders WHERE customer_id = 50; DELETE FROM customers WHERE id = 50");
  std::vector<std::string> listed = counts;
  listed.insert(listed.end(), {"-p", "tables=[\"customers\"]"});
  r = t.Run(listed, env);
  INFO(r.All());
  CHECK(r.code == 1);
  Value step = t.Steps(t.LastRunId())["compare-listed"];
  CHECK(step["status"] == "failed");
  CHECK_THAT(step["error"].get<std::string>(), Catch::Contains("customers"));
}

// ---- pg-refresh-collation (seed 000) ----------------------------------------------------------

TEST_CASE("pg-refresh-collation: a stale template1 blocks CREATE DATABASE; the runbook fixes it",
          "[e2e][runbooks][postgres][seed000]") {
  E2e t;
  const PgServer& s = LocaleServer();
  std::string actual = s.AdminValue(
      "SELECT pg_database_collation_actual_version(oid) FROM pg_database "
      "WHERE datname = 'template1'");
  REQUIRE_FALSE(actual.empty());
  s.AdminExec("UPDATE pg_database SET datcollversion = '1.0' WHERE datname = 'template1'");
  std::string probe = testing::UniqueName("probe");
  CHECK_THROWS_WITH(s.AdminExec("CREATE DATABASE " + probe),
                    Catch::Contains("collation version mismatch"));
  std::vector<std::string> args{"run", Runbook("pg-refresh-collation"), "-p",
                                "server=" + s.Conninfo("postgres"), "-p",
                                "probe_database=" + probe};

  // The rehearsal sees the mismatch and changes nothing.
  std::vector<std::string> dry = args;
  dry.push_back("--dry-run");
  CliResult r = t.Run(dry, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  Value before = Results(t, t.LastRunId())["before"];
  INFO(before.dump());
  REQUIRE(before["mismatched"].is_number());
  CHECK(before["mismatched"].get<int>() >= 1);
  CHECK(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = 'template1'") ==
        "1.0");
  // It follows its plan: `after` sees what the rehearsed refresh would fix
  // as fixed, and still counts what it would leave.
  auto rehearsed = t.Steps(t.LastRunId());
  CHECK(rehearsed["after"]["status"] == "succeeded");
  // The probe database the rehearsal would create is the one it would drop.
  CHECK(rehearsed["prove-create"]["status"] == "succeeded");
  CHECK(rehearsed["drop-probe"]["status"] == "succeeded");
  Value after = Results(t, t.LastRunId())["after"];
  CHECK(after["mismatched"] == 0);
  CHECK(after["would_be_refreshed"].get<int>() == before["mismatched"].get<int>());
  // A refresh of another database only: a real run would stop at `after`,
  // and so does the rehearsal, naming template1.
  std::vector<std::string> partial = dry;
  partial.insert(partial.end(), {"-p", "databases=[postgres]"});
  r = t.Run(partial, s.ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("a real run would stop here"));
  CHECK(t.Steps(t.LastRunId())["after"]["status"] == "failed");

  r = t.Run(args, s.ClientEnv());
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = 'template1'") ==
        actual);
  auto steps = t.Steps(t.LastRunId());
  CHECK(steps["prove-create"]["status"] == "succeeded");
  CHECK(steps["drop-probe"]["status"] == "succeeded");
  CHECK(s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + probe + "'") == "0");
  // What seed 000's application needed now works.
  std::string app = testing::UniqueName("backstage_plugin");
  s.AdminExec("CREATE DATABASE " + app);
  s.AdminExec("DROP DATABASE " + app);
}

// ---- schema-gate (seeds 002 and 003) ----------------------------------------------------------

const char* kAddColumn =
    "ALTER TABLE orders ADD COLUMN placed_at timestamptz NOT NULL DEFAULT now();"
    "CREATE INDEX orders_placed_at ON orders (placed_at);";
const char* kDropColumn =
    "DROP INDEX IF EXISTS orders_placed_at; ALTER TABLE orders DROP COLUMN IF EXISTS placed_at;";
const char* kExpect = R"({"orders": ["id", "customer_id", "total", "placed_at"]})";

std::vector<std::string> GateArgs(const PgTestDb& db, const std::string& migration,
                                  const std::string& expect = kExpect) {
  return {"run", Runbook("schema-gate"), "-p", "conn=" + db.Conninfo(),
          "-p", "migration=" + migration, "-p", std::string("rollback_sql=") + kDropColumn,
          "-p", "expect=" + expect,
          "-p", R"(requires={"orders": ["id", "customer_id"]})"};
}

TEST_CASE("schema-gate applies a migration that passes the gate, and rollback undoes it exactly",
          "[e2e][runbooks][postgres][seed002]") {
  E2e t;
  PgTestDb db(BlueServer(), "gate");
  db.Exec(kShop);
  std::string before = Catalog(db);
  CliResult r = t.Run(GateArgs(db, kAddColumn), BlueServer().ClientEnv());
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(db.Value("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' "
                 "AND column_name = 'placed_at'") == "1");
  std::string id = t.LastRunId();
  r = t.Run({"rollback", id}, BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Catalog(db) == before);
}

TEST_CASE("schema-gate: a migration failing half-way leaves the schema exactly as before",
          "[e2e][runbooks][postgres][seed002]") {
  E2e t;
  PgTestDb db(BlueServer(), "gate");
  db.Exec(kShop);
  std::string before = Catalog(db);
  // The first statement works, the second fails: nothing of it may stay.
  std::string half = std::string(kAddColumn) + "ALTER TABLE orderz ADD COLUMN x int;";
  CliResult r = t.Run(GateArgs(db, half), BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("migrate") && Catch::Contains("orderz"));
  CHECK(Catalog(db) == before);
  CHECK(db.Value("SELECT count(*) FROM orders") == "500");
  // The rehearsal finds the same failure first, and changes nothing either.
  std::vector<std::string> dry = GateArgs(db, half);
  dry.push_back("--dry-run");
  r = t.Run(dry, BlueServer().ClientEnv());
  CHECK(r.code == 1);
  CHECK(Catalog(db) == before);
}

TEST_CASE("schema-gate: a migration that did not do what the application needs is rolled back",
          "[e2e][runbooks][postgres][seed003]") {
  E2e t;
  PgTestDb db(BlueServer(), "gate");
  db.Exec(kShop);
  std::string before = Catalog(db);
  // Seed 003: the application expects a column the migration never made.
  std::string expect = R"({"orders": ["id", "placed_at", "channel"]})";
  CliResult r = t.Run(GateArgs(db, kAddColumn, expect), BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("channel"));
  auto steps = t.Steps(t.LastRunId());
  CHECK(steps["gate"]["status"] == "failed");
  CHECK(steps["migrate"]["status"] == "undone");
  CHECK(Catalog(db) == before);

  // A gate before the migration stops it before anything changes.
  std::vector<std::string> args = GateArgs(db, kAddColumn);
  args.back() = R"(requires={"orders": ["id", "legacy_code"]})";
  r = t.Run(args, BlueServer().ClientEnv());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("legacy_code"));
  CHECK(t.Steps(t.LastRunId())["migrate"]["status"] != "succeeded");
  CHECK(Catalog(db) == before);
}

TEST_CASE(
    "schema-gate: seed 002's incompatible change is stopped by the lint before it runs; "
    "forced, its rollback is complete",
    "[e2e][runbooks][postgres][seed002]") {
  E2e t;
  PgTestDb db(BlueServer(), "gate");
  db.Exec(kShop);
  std::string before = Catalog(db);
  // The running application reads orders.customer_id (`requires`); the
  // deployment renames it.
  const std::string rename = "ALTER TABLE orders RENAME COLUMN customer_id TO client_id;";
  std::vector<std::string> args = GateArgs(db, rename, R"({"orders": ["id", "client_id"]})");
  args[7] = "rollback_sql=ALTER TABLE orders RENAME COLUMN client_id TO customer_id;";

  // As a pipeline step: the rehearsal fails the pipeline (exit 1) and says why.
  std::vector<std::string> dry = args;
  dry.push_back("--dry-run");
  CliResult r = t.Run(dry, BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("[rename-column-in-use]") &&
                          Catch::Contains("the running application reads "
                                          "public.orders.customer_id"));
  CHECK(Catalog(db) == before);

  r = t.Run(args, BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  auto steps = t.Steps(t.LastRunId());
  CHECK(steps["lint"]["status"] == "failed");
  CHECK(steps["migrate"]["status"] != "succeeded");
  CHECK(Catalog(db) == before);

  // Forced, knowingly and with a reason: it runs, and its rollback restores
  // the schema exactly.
  args[5] =
      "migration=-- runbook:ignore rename-column-in-use every reader moved in release 7\n" + rename;
  r = t.Run(args, BlueServer().ClientEnv());
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(t.Steps(t.LastRunId())["lint"]["status"] == "succeeded");
  CHECK(Catalog(db) != before);
  r = t.Run({"rollback", t.LastRunId()}, BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Catalog(db) == before);
  CHECK(db.Value("SELECT sum(customer_id) FROM orders") == "12750");
}

TEST_CASE("schema-gate in a pipeline: seed 003's forgotten migration fails the rehearsal before "
          "the rollout (exit 1, naming the column); once it ran, the rehearsal passes",
          "[e2e][runbooks][postgres][seed003]") {
  E2e t;
  PgTestDb db(BlueServer(), "gate");
  db.Exec(kShop);
  const std::string before = Catalog(db);
  // No `migration`: the application's own tool was to run it; only the gate.
  std::vector<std::string> args{"run", Runbook("schema-gate"), "--dry-run",
                                "-p", "conn=" + db.Conninfo(),
                                "-p", R"(expect={"orders": ["id", "placed_at"]})"};
  CliResult r = t.Run(args, BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("missing column orders.placed_at"));
  CHECK(t.Steps(t.LastRunId())["gate"]["status"] == "failed");
  CHECK(Catalog(db) == before);

  db.Exec("ALTER TABLE orders ADD COLUMN placed_at timestamptz");
  r = t.Run(args, BlueServer().ClientEnv());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(t.Steps(t.LastRunId())["gate"]["status"] == "succeeded");
}

// ---- kube-switch-selector ---------------------------------------------------------------------

std::string Selector(const KubeSim& sim, const std::string& service) {
  return sim.KubectlJson({"get", "service", service})["spec"]["selector"].dump();
}

TEST_CASE("kube-switch-selector switches to ready pods, refuses unready ones, and switches back",
          "[e2e][runbooks][kube]") {
  E2e t;
  const KubeSim& sim = TheKubeSim();
  sim.Reset();
  sim.ApplyYaml(testing::DeploymentYaml("db-blue", 1));
  sim.ApplyYaml(testing::DeploymentYaml("db-green", 2));
  sim.ApplyYaml(testing::DeploymentYaml("db-broken", 1, /*ready=*/false));
  sim.ApplyYaml("apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n"
                "  selector: {app: db-blue}\n  ports: [{port: 5432}]\n");
  sim.Kubectl({"wait", "--for=condition=available", "deployment/db-green", "--timeout=30s"});
  auto args = [&](const std::string& app) {
    return std::vector<std::string>{
        "run", Runbook("kube-switch-selector"), "-p", "service=db", "-p",
        "selector={\"app\": \"" + app + "\"}", "-p", "min_ready=2", "-p", "context=sim",
        "-p", "kubeconfig=" + sim.kubeconfig};
  };
  const std::string blue = R"({"app":"db-blue"})";
  REQUIRE(Selector(sim, "db") == blue);

  CliResult r = t.Run(args("db-broken"));
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("0 Ready pod(s) match the new selector; 2 needed"));
  CHECK(Selector(sim, "db") == blue);

  std::vector<std::string> dry = args("db-green");
  dry.push_back("--dry-run");
  r = t.Run(dry);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Selector(sim, "db") == blue);

  r = t.Run(args("db-green"));
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(Selector(sim, "db") == R"({"app":"db-green"})");

  r = t.Run({"rollback", t.LastRunId()});
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Selector(sim, "db") == blue);
}

}  // namespace
}  // namespace runbook::e2e

namespace runbook::e2e {
namespace {

// ---- pg-backup and pg-restore -------------------------------------------------------------

std::string ServerOf(const PgServer& s) {  // conninfo without dbname
  return "host=" + s.host + " port=" + std::to_string(s.port) + " user=" + s.superuser;
}

TEST_CASE("pg-backup writes verified archives; pg-restore restores one and verifies counts",
          "[e2e][runbooks][postgres]") {
  E2e t;
  PgTestDb src(BlueServer(), "bk");
  src.Exec(kShop);
  std::string dir = t.P("backups");
  std::filesystem::create_directories(dir);
  CliResult r = t.Run({"run", Runbook("pg-backup"), "-p", "server=" + ServerOf(BlueServer()),
                       "-p", "databases=[\"" + src.name() + "\"]", "-p", "dir=" + dir},
                      {{"RUNBOOK_PG_PASSWORD", BlueServer().password}});
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK_THAT(r.All(), !Catch::Contains(BlueServer().password));
  std::string archive = dir + "/" + src.name() + ".dump";
  REQUIRE(Exists(archive));
  std::string backup_run = t.LastRunId();
  Value dumped = Results(t, backup_run)["dump[1]"];
  CHECK(dumped["sha256"].get<std::string>().size() == 64);
  CHECK(dumped["size"].get<int64_t>() > 0);

  std::string restored = testing::UniqueName("restored");
  std::vector<std::string> restore{"run", Runbook("pg-restore"),
                                   "-p", "target=" + ServerOf(GreenServer()),
                                   "-p", "database=" + restored, "-p", "file=" + archive,
                                   "-p", "source=" + src.Conninfo()};
  std::map<std::string, std::string> env{{"RUNBOOK_TARGET_PASSWORD", GreenServer().password},
                                         {"RUNBOOK_SOURCE_PASSWORD", BlueServer().password}};
  r = t.Run(restore, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(GreenServer().AdminValue("SELECT count(*) FROM orders", restored) == "500");
  CHECK(Results(t, t.LastRunId())["verify"]["mismatched"] == 0);

  // Rollback of each run: the restored database, then the archive, are gone.
  r = t.Run({"rollback", t.LastRunId()}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(GreenServer().AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" +
                                 restored + "'") == "0");
  r = t.Run({"rollback", backup_run}, {{"RUNBOOK_PG_PASSWORD", BlueServer().password}});
  CHECK(r.code == 0);
  CHECK_FALSE(Exists(archive));

  // A corrupt archive is refused before anything is created.
  std::string bad = t.Write("bad.dump", "PGDMP this is not an archive");
  restore[6] = "file=" + bad;
  r = t.Run(restore, env);
  CHECK(r.code == 1);
  CHECK(GreenServer().AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" +
                                 restored + "'") == "0");
}

TEST_CASE("every standard runbook validates and plans with its required params",
          "[e2e][runbooks]") {
  E2e t;
  // The required params of each (plan connects to nothing: any values do).
  const std::map<std::string, std::vector<std::string>> params = {
      {"kube-switch-selector.yaml", {"service=db", "selector={app: green}"}},
      {"pg-backup.yaml", {"server=host=db", "databases=[a, b]", "dir=" + t.P("backups")}},
      {"pg-blue-green-upgrade.yaml", {"green_manifest=" + t.P("green"), "password=pw"}},
      {"pg-decommission.yaml", {"upgrade_run=20261204-010203-abcd", "password=pw"}},
      {"pg-move-databases.yaml", {"source=host=a", "target=host=b"}},
      {"pg-refresh-collation.yaml", {"server=host=a"}},
      {"pg-restore.yaml", {"target=host=a", "database=d", "file=" + t.P("a.dump")}},
      {"pg-verify-counts.yaml", {"source=host=a", "target=host=b"}},
      {"schema-gate.yaml", {"conn=host=a", "migration=" + t.P("m.sql"), "expect={t: [a]}"}},
      {"expand-contract.yaml", {"conn=host=a", "table=t", "column=a", "new_column=b"}},
      {"lib/pg-move-one-database.yaml", {"database=d", "source=host=a", "target=host=b"}},
  };
  const std::string dir = std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/";
  int seen = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    std::string name = e.path().string().substr(dir.size());
    INFO(name);
    ++seen;
    REQUIRE(params.count(name) == 1);  // a new runbook gets a line above
    CliResult v = t.Run({"validate", e.path().string()});
    INFO(v.All());
    CHECK(v.code == 0);
    std::vector<std::string> args = {"plan", e.path().string()};
    for (const auto& p : params.at(name)) args.insert(args.end(), {"-p", p});
    CliResult p = t.Run(args);
    INFO(p.All());
    CHECK(p.code == 0);
    CHECK_THAT(p.out, Catch::Contains("steps:"));
    // The plan is stable: the same input gives the same text.
    CHECK(t.Run(args).out == p.out);
  }
  CHECK(seen == static_cast<int>(params.size()));
}

}  // namespace
}  // namespace runbook::e2e
