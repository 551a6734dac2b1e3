// Issue 15: a rollback after the switch loses no write. pg-blue-green-upgrade
// leaves blue following green (the fallback); `runbook rollback` after the
// application wrote to green is a reverse cutover that brings those writes to
// blue and keeps green; without the fallback the rollback is refused, nothing
// changed; the decommission ends the window, behind its guards.
#include <signal.h>

#include <random>
#include <thread>

#include "tests/e2e/blue_green_util.h"

namespace runbook::e2e {
namespace {

// The application after the switch: 25 notes, an attachment (a large
// object), the sequences moved on, on green.
void WriteToGreen(const BlueGreen& bg) {
  bg.green.AdminExec("INSERT INTO chronicle_notes (author, body) SELECT 'on green', 'note ' || g "
                     "FROM generate_series(1, 25) g; "
                     "INSERT INTO chronicle_attachments (name, content) VALUES ('after.txt', "
                     "lo_from_bytea(0, 'written after the switch')); "
                     "UPDATE chronicle_events SET kind = 'edited' WHERE id <= 5",
                     bg.db);
}

// Waits until a rollback in `proc` has begun (its decision journaled), then
// `ms` more, reading its output meanwhile.
void SleepAfterRollbackBegins(Background& proc, std::chrono::milliseconds ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (proc.out().find("rolling back, newest step first") == std::string::npos &&
         proc.Running() && std::chrono::steady_clock::now() < until) {
    proc.Drain(std::chrono::milliseconds(5));
  }
  auto at = std::chrono::steady_clock::now() + ms;
  while (std::chrono::steady_clock::now() < at && proc.Running()) {
    proc.Drain(std::chrono::milliseconds(5));
  }
}

std::string Count(const testing::PgServer& s, const std::string& db, const std::string& sql) {
  return s.AdminValue(sql, db);
}

// Replication objects named after the fallback, on both servers: "" if none.
std::string FallbackLeftovers(const BlueGreen& bg) {
  return bg.blue.AdminValue("SELECT string_agg(subname, ',') FROM pg_subscription WHERE subname "
                            "LIKE '%fallback'", bg.db) +
         bg.green.AdminValue("SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE "
                             "slot_name LIKE '%fallback'", bg.db);
}

void CheckRolledBackWithWrites(const BlueGreen& bg) {
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(bg.AppReplicas() == 2);
  // Every write made to green after the switch is on blue...
  CHECK(Count(bg.blue, bg.db, "SELECT count(*) FROM chronicle_notes WHERE author = 'on green'") ==
        "25");
  CHECK(Count(bg.blue, bg.db, "SELECT count(*) FROM chronicle_events WHERE kind = 'edited'") ==
        "5");
  CHECK(Count(bg.blue, bg.db, "SELECT count(*) FROM pg_largeobject_metadata") == "2");
  // ... blue's sequences continue green's ...
  CHECK(Count(bg.blue, bg.db, "SELECT last_value FROM chronicle_notes_id_seq") ==
        Count(bg.green, bg.db, "SELECT last_value FROM chronicle_notes_id_seq"));
  // ... and green is kept as it was, its database and its writes.
  CHECK(bg.green_dbs.Exists(bg.db));
  CHECK(Count(bg.green, bg.db, "SELECT count(*) FROM chronicle_notes WHERE author = 'on green'") ==
        "25");
  CHECK(bg.GreenDeployed());
  CHECK(FallbackLeftovers(bg).empty());
}

}  // namespace

TEST_CASE("a rollback after the switch brings green's writes back to blue and keeps green",
          "[e2e][runbooks][postgres][kube][seed004][fallback]") {
  BlueGreen bg(/*replication=*/true);
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string id = bg.t.LastRunId();
  CHECK(bg.t.Steps(id)["fallback"]["status"] == "succeeded");
  WriteToGreen(bg);

  r = bg.t.Run({"rollback", id}, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  CheckRolledBackWithWrites(bg);
  auto steps = bg.t.Steps(id);
  CHECK(steps["fallback"]["status"] == "undone");
  CHECK(steps["initial-sync"]["status"] != "undone");  // kept: the rollback boundary
  CHECK(steps["create-database"]["status"] == "succeeded");

  // Blue is back in service, with green's writes; a second rollback removes
  // green (its database, Deployment and the forward replication) and keeps
  // every write on blue, those made there since included.
  bg.blue.AdminExec("INSERT INTO chronicle_notes (author, body) VALUES ('back', 'on blue')", bg.db);
  // Killed part-way (green's Deployment is slow to delete), the second
  // rollback is resumed: it goes on past the boundary to the end.
  bg.sim.AddFault(Value{{"match", {{"method", "DELETE"},
                                   {"path_regex", "/namespaces/dsm/deployments/chronicle-db-v17"}}},
                        {"delay_ms", 5000}, {"count", 1}});
  {
    Background proc(bg.t.Spec({"rollback", id}, bg.Env()));
    SleepAfterRollbackBegins(proc, std::chrono::milliseconds(2500));
    INFO(proc.out() << proc.err());
    REQUIRE(proc.Running());
    proc.KillHard();
  }
  CHECK(bg.GreenDeployed());  // the kill came before green's Deployment went
  CHECK(bg.t.RunStatus(id)["status"] == "interrupted_rollback");
  r = bg.t.Run({"resume", id, "--yes"}, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 1);  // a resume that finishes a rollback: "rolled back"
  CHECK_THAT(r.All(), Catch::Contains("rollback finished"));
  CHECK(bg.t.RunStatus(id)["status"] == "rolled_back");
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK_FALSE(bg.GreenDeployed());
  CHECK(bg.t.Steps(id)["create-database"]["status"] == "undone");
  CHECK(Count(bg.blue, bg.db, "SELECT count(*) FROM chronicle_notes WHERE author = 'on green'") ==
        "25");
  CHECK(Count(bg.blue, bg.db, "SELECT count(*) FROM chronicle_notes WHERE author = 'back'") == "1");
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
}

TEST_CASE("the reverse cutover survives a SIGKILL: resumed, it ends with every write on blue",
          "[e2e][runbooks][postgres][kube][seed004][fallback][crash]") {
  BlueGreen bg(/*replication=*/true);
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string id = bg.t.LastRunId();
  WriteToGreen(bg);
  std::mt19937_64 rng(CrashSeed("reverse cutover"));
  // Kill the rollback at a random instant of its first 3 s (scaling the
  // application down, switching back, catching up), then resume it.
  {
    Background bg_rollback(bg.t.Spec({"rollback", id}, bg.Env()));
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 2800));
    bg_rollback.KillHard();
  }
  std::string log;
  for (int round = 0; round < 5; ++round) {
    std::string status = bg.t.RunStatus(id)["status"].get<std::string>();
    log += "round " + std::to_string(round) + ": " + status + "\n";
    if (status == "rolled_back") break;
    // Killed before the rollback recorded anything: start it again; else resume it.
    r = bg.t.Run({status == "succeeded" ? "rollback" : "resume", id}, bg.Env(),
                 std::chrono::minutes(5));
    log += r.All();
  }
  INFO(log);
  REQUIRE(bg.t.RunStatus(id)["status"] == "rolled_back");
  CheckRolledBackWithWrites(bg);
}

TEST_CASE("without a fallback a rollback after the switch is refused once green has writes, "
          "naming them, and changes nothing",
          "[e2e][runbooks][postgres][kube][seed004][fallback]") {
  BlueGreen bg;  // sync=copy: fallback=auto is none
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string id = bg.t.LastRunId();
  WriteToGreen(bg);

  r = bg.t.Run({"rollback", id}, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("rollback refused, nothing was undone"));
  CHECK_THAT(r.All(), Catch::Contains("public.chronicle_notes (971 rows then, 996 now)"));
  CHECK_THAT(r.All(), Catch::Contains("--accept-data-loss"));
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");  // nothing changed
  CHECK(bg.AppReplicas() == 2);
  CHECK(bg.t.RunStatus(id)["status"] == "succeeded");

  // Accepted: rolled back to blue, green's writes left behind on green.
  r = bg.t.Run({"rollback", id, "--accept-data-loss"}, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(Count(bg.blue, bg.db, "SELECT count(*) FROM chronicle_notes") == "971");
  CHECK(bg.green_dbs.Exists(bg.db));
}

TEST_CASE("without a fallback, a write to green after the rollback's check and before the "
          "writers stop halts the rollback before the writers start on blue",
          "[e2e][runbooks][postgres][kube][seed004][fallback]") {
  BlueGreen bg;  // sync=copy: fallback=auto is none
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string id = bg.t.LastRunId();
  // The application is slow to scale down: it still writes to green after
  // the rollback checked green's rows.
  bg.sim.AddFault(Value{{"match", {{"path_regex", "/namespaces/dsm/deployments/chronicle-service/scale"}}},
                        {"delay_ms", 6000}, {"count", 1}});
  std::string out;
  {
    Background proc(bg.t.Spec({"rollback", id}, bg.Env()));
    SleepAfterRollbackBegins(proc, std::chrono::milliseconds(3000));
    REQUIRE(proc.Running());
    bg.green.AdminExec("INSERT INTO chronicle_notes (author, body) VALUES ('late', 'on green')",
                       bg.db);
    REQUIRE(proc.WaitExit(std::chrono::minutes(2)));
    out = proc.out() + proc.err();
  }
  INFO(out);
  CHECK_THAT(out, Catch::Contains("(exit 6)"));
  CHECK_THAT(out, Catch::Contains("took writes after the rollback checked it"));
  CHECK(bg.AppReplicas() == 0);  // the writers stay stopped
  CHECK(Count(bg.green, bg.db, "SELECT count(*) FROM chronicle_notes WHERE author = 'late'") ==
        "1");
  CHECK(bg.t.RunStatus(id)["status"] == "rollback_failed");
}

TEST_CASE("fallback=replication with green's wal_level below logical stops the run before the "
          "copy, not inside the write freeze, and rolls it back",
          "[e2e][runbooks][postgres][kube][seed004][fallback]") {
  // The locale cluster runs with wal_level = replica.
  BlueGreen bg(testing::BlueServer(), testing::LocaleServer(), false, false);
  std::vector<std::string> args = bg.Args();
  args.insert(args.end(), {"-p", "fallback=replication", "-p",
                           "reverse_source=host=127.0.0.1 port=" + std::to_string(bg.green.port)});
  CliResult r = bg.t.Run(args, bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("green-wal-level"));
  CHECK_THAT(r.All(), Catch::Contains("\"replica\""));
  CHECK_THAT(r.All(), !Catch::Contains("initial-sync: log"));  // nothing was copied
  CHECK(bg.AppReplicas() == 2);  // the writers were never stopped
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK_FALSE(bg.GreenDeployed());
}

TEST_CASE("the decommission ends the fallback behind its guards, and a rollback after it is "
          "refused",
          "[e2e][runbooks][postgres][kube][seed004][fallback][decommission]") {
  BlueGreen bg(/*replication=*/true);
  // Before any upgrade: the Service selects blue, so the guard refuses.
  std::vector<std::string> early = bg.WorldArgs("pg-decommission");
  early.insert(early.end(), {"-p", "upgrade_run=none"});
  CliResult r = bg.t.Run(early, bg.Env());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("service-on-green"));

  r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  const std::string id = bg.t.LastRunId();
  std::vector<std::string> args = bg.WorldArgs("pg-decommission");
  args.insert(args.end(), {"-p", "upgrade_run=" + id});

  // Too early: the application has not soaked on green for a day.
  r = bg.t.Run(args, bg.Env());
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("min_soak_hours is 24"));
  CHECK(FallbackLeftovers(bg) != "");

  // The plan says what goes, irreversibly.
  std::vector<std::string> plan = {"plan", Runbook("pg-decommission"), "-p", "upgrade_run=" + id};
  r = bg.t.Run(plan, bg.Env());
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("irreversible step(s)"));

  args.insert(args.end(), {"-p", "min_soak_hours=0", "-p", "blue_pvc=data-chronicle-db-0"});
  r = bg.t.Run(args, bg.Env(), std::chrono::minutes(3));
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(FallbackLeftovers(bg).empty());
  CHECK(bg.blue.AdminValue("SELECT count(*) FROM pg_replication_slots WHERE database = '" +
                           bg.db + "'") == "0");
  CHECK(bg.sim.KubectlJson({"-n", "dsm", "get", "deployments", "-l", "app=chronicle-db"})
            ["items"].empty());

  r = bg.t.Run({"rollback", id}, bg.Env(), std::chrono::minutes(3));
  INFO(r.All());
  CHECK(r.code == 6);  // blue is gone, and with it the way back
  CHECK_THAT(r.All(), Catch::Contains("rollback refused, nothing was undone"));
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");
}

}  // namespace runbook::e2e
