// The pg-blue-green-upgrade world of the end-to-end tests: blue and green
// PostgreSQL servers (the fixture's), the API simulator with seed 004's
// namespace (examples/demo/blue.yaml: chronicle-db, its Service,
// chronicle-service), green's manifest, and helpers to look at it all.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "tests/bindings/pg_fidelity_util.h"
#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/kube_fixture.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {

inline std::string Runbook(const std::string& name) {
  return std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/" + name + ".yaml";
}

inline std::string SlurpFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// Databases on a server, dropped at the end of the test.
struct Databases {
  const testing::PgServer& server;
  std::vector<std::string> names;
  ~Databases() {
    for (const auto& n : names) {
      try {
        server.AdminExec("DROP DATABASE IF EXISTS " + n + " WITH (FORCE)");
      } catch (...) {
      }
    }
  }
  bool Exists(const std::string& n) const {
    return server.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + n + "'") == "1";
  }
};

struct BlueGreen {
  E2e t;
  const testing::KubeSim& sim = testing::TheKubeSim();
  const bool replication;
  const testing::PgServer& blue;
  const testing::PgServer& green;
  // Blue holds the fidelity corpus (every kind of object) instead of the
  // demo's sample data; the runbook then keeps owners and grants.
  const bool corpus;
  std::string db = testing::UniqueName("chronicle");
  Databases blue_dbs{blue, {db}};
  Databases green_dbs{green, {db}};
  std::string green_dir;

  // sync=replication publishes from blue, and the fallback (blue following
  // green after the switch) from green: both need wal_level=logical, which
  // the fixture's green cluster and the version servers have.
  explicit BlueGreen(bool replication = false)
      : BlueGreen(replication ? testing::GreenServer() : testing::BlueServer(),
                  replication ? testing::VersionServer(15) : testing::GreenServer(), replication,
                  false) {}

  BlueGreen(const testing::PgServer& blue_server, const testing::PgServer& green_server,
            bool replication, bool corpus)
      : replication(replication), blue(blue_server), green(green_server), corpus(corpus) {
    sim.Reset();
    blue.AdminExec("CREATE DATABASE " + db + " TEMPLATE template0");
    if (corpus) {
      testing::CreateCorpusRoles(blue);
      testing::CreateCorpusRoles(green);
      testing::LoadCorpus({blue, db});
      // The one table without a key: logical replication needs an identity.
      if (replication) blue.AdminExec("ALTER TABLE shop.click_log REPLICA IDENTITY FULL", db);
    } else {
      blue.AdminExec(
          SlurpFile(std::string(RUNBOOK_SOURCE_DIR) + "/examples/demo/sample-data.sql"), db);
    }
    std::string demo = std::string(RUNBOOK_SOURCE_DIR) + "/examples/demo/";
    sim.ApplyYaml(Replace(SlurpFile(demo + "blue.yaml"), "@BLUE_PORT@", std::to_string(blue.port)));
    green_dir = t.P("postgres-chronicle-17");
    t.Write("postgres-chronicle-17/chronicle-db-v17.yaml",
            Replace(SlurpFile(demo + "green.yaml"), "@GREEN_PORT@", std::to_string(green.port)));
    sim.Kubectl({"-n", "dsm", "rollout", "status", "deployment/chronicle-db", "--timeout=30s"});
    sim.Kubectl({"-n", "dsm", "rollout", "status", "deployment/chronicle-service",
                 "--timeout=30s"});
  }
  // A database with a subscription or a replication slot cannot be dropped:
  // take down what a run left (the upgrade's on green and blue, the
  // fallback's on blue and green), on both servers.
  ~BlueGreen() {
    for (const testing::PgServer* s : {&green, &blue}) {
      try {
        std::string subs = s->AdminValue(
            "SELECT string_agg(quote_ident(subname), ',') FROM pg_subscription s JOIN "
            "pg_database d ON d.oid = s.subdbid WHERE d.datname = '" + db + "'");
        for (size_t at = 0; !subs.empty() && at != std::string::npos;) {
          size_t comma = subs.find(',', at);
          std::string sub = subs.substr(at, comma == std::string::npos ? comma : comma - at);
          s->AdminExec("ALTER SUBSCRIPTION " + sub + " DISABLE", db);
          s->AdminExec("ALTER SUBSCRIPTION " + sub + " SET (slot_name = NONE)", db);
          s->AdminExec("DROP SUBSCRIPTION " + sub, db);
          at = comma == std::string::npos ? comma : comma + 1;
        }
      } catch (...) {
      }
    }
    for (const testing::PgServer* s : {&green, &blue}) {
      try {
        s->AdminValue("SELECT count(pg_drop_replication_slot(slot_name)) FROM "
                      "pg_replication_slots WHERE database = '" + db + "' AND NOT active");
      } catch (...) {
      }
    }
  }
  // Subscriptions of green's copy of the database: "true,false,..." or "".
  std::string Subscriptions() const {
    return green.AdminValue("SELECT string_agg(s.subenabled::text, ',') FROM pg_subscription s "
                            "JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = '" + db + "'");
  }
  std::vector<std::string> Args(const std::string& cmd = "run") const {
    std::vector<std::string> args = {
        cmd, Runbook("pg-blue-green-upgrade"), "-p", "green_manifest=" + green_dir,
        "-p", "user=" + blue.superuser, "-p", "database=" + db, "-p", "context=sim",
        "-p", "kubeconfig=" + sim.kubeconfig, "--yes"};
    if (replication) {
      args.insert(args.end(), {"-p", "sync=replication", "-p",
                               "replication_source=host=127.0.0.1 port=" + std::to_string(blue.port),
                               "-p", "reverse_source=host=127.0.0.1 port=" +
                                         std::to_string(green.port)});
    }
    if (corpus) args.insert(args.end(), {"-p", "owners=keep"});
    const std::string tools = testing::ToolsDir(std::max(blue.major, green.major));
    if (!tools.empty()) args.insert(args.end(), {"-p", "bin_dir=" + tools});
    return args;
  }
  std::map<std::string, std::string> Env() const {
    return {{"CHRONICLE_DB_PASSWORD", blue.password}, {"GREEN_DB_PASSWORD", green.password}};
  }
  // The args of another standard runbook against this world (the
  // decommission): its runbook, the database, the cluster.
  std::vector<std::string> WorldArgs(const std::string& runbook) const {
    std::vector<std::string> args = {"run", Runbook(runbook), "-p", "user=" + blue.superuser,
                                     "-p", "database=" + db, "-p", "context=sim",
                                     "-p", "kubeconfig=" + sim.kubeconfig, "--yes"};
    const std::string tools = testing::ToolsDir(std::max(blue.major, green.major));
    if (!tools.empty()) args.insert(args.end(), {"-p", "bin_dir=" + tools});
    return args;
  }
  std::string Selector() const {
    return sim.KubectlJson({"-n", "dsm", "get", "service", "chronicle-db"})["spec"]["selector"]
        .dump();
  }
  int AppReplicas() const {
    return sim.KubectlJson({"-n", "dsm", "get", "deployment", "chronicle-service"})["spec"]
                          ["replicas"].get<int>();
  }
  bool GreenDeployed() const {
    return !sim.KubectlJson({"-n", "dsm", "get", "deployments", "-l", "app=chronicle-db-v17"})
                ["items"].empty();
  }
};

// Green's copy of the sample data has blue's row counts, table by table.
inline void CheckSameCounts(const BlueGreen& bg) {
  for (const char* table : {"chronicle_notes", "retrospective_action_items",
                            "retrospective_attendees", "sprint_retrospectives",
                            "chronicle_events"}) {
    INFO(table);
    CHECK(bg.green.AdminValue(std::string("SELECT count(*) FROM ") + table, bg.db) ==
          bg.blue.AdminValue(std::string("SELECT count(*) FROM ") + table, bg.db));
  }
}

}  // namespace runbook::e2e
