// Issue 7's crash-resume harness, sized for CI: pg-blue-green-upgrade runs
// against real servers while a writer plays the application, and the engine
// is SIGKILLed at random instants and resumed each time. Every run must end
// with green holding exactly the rows that were accepted (blue's before the
// switch, green's after), the selector switched once, the application back at
// its replica count, and an intact state store. RUNBOOK_CRASH_SEED replays a
// run; RUNBOOK_CUTOVER_KILLS sets the number of kills (default 10; the
// `--long` mode of the issue is RUNBOOK_CUTOVER_KILLS=100).
#include <catch2/catch.hpp>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>

#include "tests/e2e/blue_green_util.h"

namespace runbook::e2e {
namespace {

using std::chrono::milliseconds;


int Kills() {
  const char* s = getenv("RUNBOOK_CUTOVER_KILLS");
  return s && *s ? std::atoi(s) : 10;
}

// The application: inserts numbered rows into `writes` of the database the
// chronicle-db Service selects, while chronicle-service has replicas; stops
// (like the application's pods) while it is scaled to 0.
class Writer {
 public:
  explicit Writer(BlueGreen& bg) : bg_(bg) {
    bg_.blue.AdminExec("CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())",
                       bg_.db);
    thread_ = std::thread([this] { Loop(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::set<int64_t>& accepted() const { return accepted_; }
  int64_t on_blue() const { return on_blue_; }
  int64_t on_green() const { return on_green_; }
  // The write freeze: from the last write blue accepted to the first green
  // accepted (ms; -1 if either is missing). With kills in between, it
  // includes the time the engine was down.
  int64_t FreezeMs() const {
    if (first_green_ == std::chrono::steady_clock::time_point() ||
        last_blue_ == std::chrono::steady_clock::time_point()) {
      return -1;
    }
    return std::chrono::duration_cast<milliseconds>(first_green_ - last_blue_).count();
  }

 private:
  void Loop() {
    PGconn* blue = Connect(bg_.blue);
    PGconn* green = nullptr;
    int64_t next = 1;
    while (!stop_) {
      std::this_thread::sleep_for(milliseconds(3));
      Value app, svc;
      try {
        app = bg_.sim.Request("GET", "/apis/apps/v1/namespaces/dsm/deployments/chronicle-service");
        svc = bg_.sim.Request("GET", "/api/v1/namespaces/dsm/services/chronicle-db");
      } catch (...) {
        continue;
      }
      if (app["spec"].value("replicas", 0) == 0) continue;  // scaled down: no writes
      bool to_green = svc["spec"]["selector"].value("app", "") == "chronicle-db-v17";
      if (to_green && !green) green = Connect(bg_.green);
      PGconn* c = to_green ? green : blue;
      std::string id = std::to_string(next);
      const char* values[] = {id.c_str()};
      PGresult* r = PQexecParams(c, "INSERT INTO writes (id) VALUES ($1::bigint)", 1, nullptr,
                                 values, nullptr, nullptr, 0);
      if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        accepted_.insert(next++);
        ++(to_green ? on_green_ : on_blue_);
        auto now = std::chrono::steady_clock::now();
        if (!to_green) last_blue_ = now;
        if (to_green && first_green_ == std::chrono::steady_clock::time_point()) first_green_ = now;
      } else if (PQstatus(c) != CONNECTION_OK) {
        PQreset(c);
      }
      PQclear(r);
    }
    PQfinish(blue);
    if (green) PQfinish(green);
  }
  PGconn* Connect(const testing::PgServer& s) {
    std::string info = s.Conninfo(bg_.db) + " password=" + s.password;
    return PQconnectdb(info.c_str());
  }

  BlueGreen& bg_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::set<int64_t> accepted_;
  int64_t on_blue_ = 0, on_green_ = 0;
  std::chrono::steady_clock::time_point last_blue_, first_green_;
};

std::set<int64_t> Ids(const testing::PgServer& s, const std::string& db) {
  std::string list = s.AdminValue("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') "
                                  "FROM writes", db);
  std::set<int64_t> out;
  for (size_t at = 0; at < list.size();) {
    size_t comma = list.find(',', at);
    out.insert(std::stoll(list.substr(at, comma - at)));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

// One upgrade under the writer, killed at up to `max_kills` random instants
// and resumed each time, then checked; returns the number of kills.
int CutoverOnce(std::mt19937_64& rng, int max_kills, int iteration, bool replication = false) {
  BlueGreen bg(replication);
  Writer writer(bg);
  std::this_thread::sleep_for(milliseconds(300));  // the application is writing
  // A full run here takes about 5 to 10 s.
  std::uniform_int_distribution<int> instant(50, 5000);
  std::string log = "iteration " + std::to_string(iteration) + "\n";
  std::string run_id;
  int kills = 0, rounds = 0;
  for (;; ++rounds) {
    INFO(log);
    REQUIRE(rounds < max_kills + 10);
    std::vector<std::string> args = run_id.empty()
                                        ? bg.Args()
                                        : std::vector<std::string>{"resume", run_id, "--yes"};
    Background proc(bg.t.Spec(args, bg.Env()));
    bool killed = false;
    if (kills < max_kills) {
      int wait = instant(rng);
      auto until = std::chrono::steady_clock::now() + milliseconds(wait);
      while (std::chrono::steady_clock::now() < until && proc.Running()) proc.Drain(milliseconds(5));
      if (proc.Running()) {
        proc.KillHard();
        killed = true;
        ++kills;
        log += "round " + std::to_string(rounds) + ": " + args[0] + ", killed at " +
               std::to_string(wait) + " ms\n";
      }
    }
    if (!killed) {
      if (!proc.WaitExit(std::chrono::minutes(3))) {
        proc.KillHard();
        FAIL("round " << rounds << ": " << args[0] << " did not end in 3 minutes:\n"
                      << proc.out() << proc.err());
      }
      log += "round " + std::to_string(rounds) + ": " + args[0] + " ended:\n" + proc.out() +
             proc.err();
    }
    // (Killed before it made the store, the engine left none to check.)
    if (Exists(bg.t.state())) REQUIRE(IntegrityCheck(bg.t.state()) == "ok");
    if (run_id.empty()) run_id = bg.t.LastRunId();
    if (run_id.empty() || killed) continue;  // killed before the run was recorded: start again
    std::string status = bg.t.RunStatus(run_id)["status"].get<std::string>();
    INFO("status " << status);
    if (status == "succeeded") break;
    FAIL("the run ended " << status << " without a kill:\n" << log);
  }
  std::this_thread::sleep_for(milliseconds(300));  // writes to green after the switch
  writer.Stop();
  INFO(log);
  fprintf(stderr, "cutover crash test, iteration %d: %d kills, %d rounds; writes: %lld on blue, "
          "%lld on green; write freeze %lld ms (kills included)\n", iteration, kills, rounds,
          static_cast<long long>(writer.on_blue()), static_cast<long long>(writer.on_green()),
          static_cast<long long>(writer.FreezeMs()));
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");
  CHECK(bg.AppReplicas() == 2);
  // Green holds exactly the accepted rows: blue's (copied) and its own.
  CHECK(writer.on_blue() > 0);
  CHECK(Ids(bg.green, bg.db) == writer.accepted());
  auto steps = bg.t.Steps(run_id);
  CHECK(steps["switch"]["status"] == "succeeded");
  CHECK(steps["verify"]["status"] == "succeeded");
  if (replication) {
    CHECK(steps["caught-up"]["status"] == "succeeded");
    CHECK(bg.Subscriptions() == "false");
    // One publication and one slot on blue: a resume never made a second.
    CHECK(bg.blue.AdminValue("SELECT count(*) FROM pg_replication_slots WHERE database = "
                             "current_database()", bg.db) == "1");
    CHECK(bg.blue.AdminValue("SELECT count(*) FROM pg_publication", bg.db) == "1");
  }
  return kills;
}

TEST_CASE("cutover under writes: SIGKILL at random instants, resume; nothing lost or doubled",
          "[e2e][crash][seed004][cutover]") {
  std::mt19937_64 rng(CrashSeed("cutover crash"));
  const int want = Kills();
  int kills = 0;
  for (int iteration = 1; kills < want; ++iteration) {
    // An iteration whose run ends before its first kill instant kills nothing.
    REQUIRE(iteration <= 2 * want);
    kills += CutoverOnce(rng, std::min(4, want - kills), iteration);
  }
  CHECK(kills >= want);
}

TEST_CASE("cutover under writes with sync=replication: SIGKILL at random instants, resume",
          "[e2e][crash][seed004][cutover][replication]") {
  std::mt19937_64 rng(CrashSeed("cutover crash replication"));
  int kills = 0;
  for (int iteration = 1; kills < 4; ++iteration) {
    REQUIRE(iteration <= 8);
    kills += CutoverOnce(rng, 4 - kills, iteration, /*replication=*/true);
  }
}

TEST_CASE("cutover rollback under writes: SIGKILL at random instants during the rollback, "
          "resume; back on blue, nothing lost",
          "[e2e][crash][seed004][cutover][rollback]") {
  std::mt19937_64 rng(CrashSeed("cutover rollback crash"));
  // Iteration 1 is not killed: it measures how long the rollback takes, and
  // later kills fall inside that time.
  int rollback_ms = -1, kills = 0;
  auto instant = [&] {
    return std::uniform_int_distribution<int>(0, std::max(100, rollback_ms * 8 / 10))(rng);
  };
  for (int iteration = 1; kills < 4; ++iteration) {
    REQUIRE(iteration <= 8);
    BlueGreen bg;
    // The API server refuses every patch of the database Service: the run
    // fails at the switch and rolls every stage back.
    bg.sim.AddFault(Value{{"match", {{"method", "PATCH"},
                                     {"path_regex", "/namespaces/dsm/services/chronicle-db(\\?|$)"}}},
                          {"status", 403}, {"count", 0}, {"message", "injected: patch forbidden"}});
    Writer writer(bg);
    std::this_thread::sleep_for(milliseconds(300));
    std::string log = "iteration " + std::to_string(iteration) + "\n", run_id;
    {
      Background proc(bg.t.Spec(bg.Args(), bg.Env()));
      auto until = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      while (proc.out().find("rolling back, newest step first") == std::string::npos && proc.Running() &&
             std::chrono::steady_clock::now() < until) {
        proc.Drain(milliseconds(5));
      }
      INFO(proc.out() << proc.err());
      REQUIRE(proc.out().find("rolling back, newest step first") != std::string::npos);
      auto began = std::chrono::steady_clock::now();
      int wait = rollback_ms < 0 ? 0 : instant();
      auto at = began + milliseconds(wait);
      while (std::chrono::steady_clock::now() < at && proc.Running()) proc.Drain(milliseconds(5));
      if (rollback_ms < 0) {
        REQUIRE(proc.WaitExit(std::chrono::minutes(2)));
        rollback_ms = static_cast<int>(std::chrono::duration_cast<milliseconds>(
                                           std::chrono::steady_clock::now() - began).count());
        log += "run: not killed; the rollback took " + std::to_string(rollback_ms) + " ms\n";
      } else if (proc.Running()) {
        proc.KillHard();
        ++kills;
        log += "run: killed " + std::to_string(wait) + " ms into the rollback\n";
      } else {
        log += "run: the rollback ended before the kill at " + std::to_string(wait) + " ms\n";
      }
      run_id = bg.t.LastRunId();
      REQUIRE(IntegrityCheck(bg.t.state()) == "ok");
    }
    for (int round = 0;; ++round) {
      INFO(log);
      REQUIRE(round < 10);
      std::string status = bg.t.RunStatus(run_id)["status"].get<std::string>();
      log += "round " + std::to_string(round) + ": status " + status + "\n";
      if (status == "rolled_back") break;
      REQUIRE(status == "interrupted_rollback");  // killed: no engine holds its lock
      Background proc(bg.t.Spec({"resume", run_id, "--yes"}, bg.Env()));
      int wait = instant();
      auto at = std::chrono::steady_clock::now() + milliseconds(wait);
      while (std::chrono::steady_clock::now() < at && proc.Running()) proc.Drain(milliseconds(5));
      if (round < 2 && proc.Running()) {
        proc.KillHard();
        ++kills;
        log += "  resume killed at " + std::to_string(wait) + " ms\n";
      } else {
        REQUIRE(proc.WaitExit(std::chrono::minutes(2)));
        log += "  resume ended:\n" + proc.out() + proc.err();
      }
      REQUIRE(IntegrityCheck(bg.t.state()) == "ok");
    }
    std::this_thread::sleep_for(milliseconds(300));  // the application writes to blue again
    writer.Stop();
    INFO(log);
    fprintf(stderr, "cutover rollback crash test, iteration %d: %d kills so far (a rollback "
            "takes %d ms)\n", iteration, kills, rollback_ms);
    CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
    CHECK(bg.AppReplicas() == 2);
    CHECK_FALSE(bg.green_dbs.Exists(bg.db));
    CHECK_FALSE(bg.GreenDeployed());
    CHECK(writer.on_green() == 0);
    CHECK(Ids(bg.blue, bg.db) == writer.accepted());
    for (const char* id : {"stop-writers", "initial-sync", "create-database", "deploy-green"}) {
      INFO(id);
      CHECK(bg.t.Steps(run_id)[id]["status"] == "undone");
    }
  }
}

// Fault injection under the same writer: `fire` is polled every 10 ms from
// another thread until it returns true (it acts itself), for up to a minute.
class FaultWhen {
 public:
  explicit FaultWhen(std::function<bool()> fire)
      : thread_([this, fire] {
          auto until = std::chrono::steady_clock::now() + std::chrono::minutes(1);
          while (!stop_ && std::chrono::steady_clock::now() < until) {
            try {
              if (fire()) {
                fired_ = true;
                return;
              }
            } catch (...) {
            }
            std::this_thread::sleep_for(milliseconds(10));
          }
        }) {}
  ~FaultWhen() {
    stop_ = true;
    thread_.join();
  }
  bool fired() const { return fired_; }

 private:
  std::atomic<bool> stop_{false}, fired_{false};
  std::thread thread_;
};

// A COPY into green's copy of the database is running now.
bool CopyRunning(const BlueGreen& bg) {
  return bg.green.AdminValue("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + bg.db +
                             "' AND state = 'active' AND query LIKE 'COPY%'") != "0";
}

// After a failed upgrade: everything is back on blue, green is gone, and
// blue holds every write the application made (none went to green).
void CheckRolledBackNothingLost(BlueGreen& bg, Writer& writer, const CliResult& r) {
  INFO(r.All());
  CHECK(r.code == 1);  // failed, and the rollback completed (an undo failure is 6)
  std::this_thread::sleep_for(milliseconds(300));  // the application writes to blue again
  writer.Stop();
  CHECK(bg.Selector() == R"({"app":"chronicle-db"})");
  CHECK(bg.AppReplicas() == 2);
  CHECK_FALSE(bg.green_dbs.Exists(bg.db));
  CHECK_FALSE(bg.GreenDeployed());
  CHECK(writer.on_green() == 0);
  CHECK(writer.on_blue() > 0);
  CHECK(Ids(bg.blue, bg.db) == writer.accepted());
}

TEST_CASE("cutover faults: a PostgreSQL backend terminated mid-copy fails the step; rollback; "
          "nothing lost",
          "[e2e][seed004][cutover][faults]") {
  // The copy can end between two polls (a fast machine): then the whole
  // upgrade is tried again on fresh servers' databases, up to 3 times.
  for (int attempt = 0; attempt < 3; ++attempt) {
    BlueGreen bg;
    Writer writer(bg);
    std::this_thread::sleep_for(milliseconds(300));
    FaultWhen terminate([&] {
      return bg.green.AdminValue(
                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = '" +
                 bg.db +
                 "' AND state = 'active' AND "
                 "query LIKE 'COPY%'") != "0";
    });
    CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
    if (!terminate.fired()) continue;
    auto steps = bg.t.Steps(bg.t.LastRunId());
    CHECK(steps["initial-sync"]["status"] == "undone");
    CHECK_THAT(steps["initial-sync"]["error"].get<std::string>(), Catch::Contains("terminat"));
    CheckRolledBackNothingLost(bg, writer, r);
    return;
  }
  FAIL("no COPY was seen running in 3 upgrades: the fault never landed");
}

TEST_CASE("cutover faults: green restarted mid-copy fails the step; rollback; nothing lost",
          "[e2e][seed004][cutover][faults]") {
  for (int attempt = 0; attempt < 3; ++attempt) {  // as above
    BlueGreen bg;
    Writer writer(bg);
    std::this_thread::sleep_for(milliseconds(300));
    FaultWhen restart([&] {
      if (!CopyRunning(bg)) return false;
      bg.green.Stop();
      bg.green.Start();
      return true;
    });
    CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
    if (!restart.fired()) continue;
    auto steps = bg.t.Steps(bg.t.LastRunId());
    CHECK(steps["initial-sync"]["status"] == "undone");
    CheckRolledBackNothingLost(bg, writer, r);
    return;
  }
  FAIL("no COPY was seen running in 3 upgrades: the fault never landed");
}

TEST_CASE("cutover faults: the API server's 500 and 409 during the cutover are retried; nothing "
          "lost",
          "[e2e][seed004][cutover][faults]") {
  BlueGreen bg;
  Writer writer(bg);
  std::this_thread::sleep_for(milliseconds(300));
  bg.sim.AddFault(Value{{"match", {{"path_regex", "/deployments/chronicle-service/scale"}}},
                        {"status", 500}, {"count", 1}});
  bg.sim.AddFault(Value{{"match", {{"method", "PATCH"},
                                   {"path_regex", "/namespaces/dsm/services/chronicle-db(\\?|$)"}}},
                        {"status", 409}, {"count", 1}});
  CliResult r = bg.t.Run(bg.Args(), bg.Env(), std::chrono::minutes(5));
  INFO(r.All());
  REQUIRE(r.code == 0);
  std::this_thread::sleep_for(milliseconds(300));  // writes to green
  writer.Stop();
  Value faults = bg.sim.Request("GET", "/_sim/faults");
  INFO(faults.dump());
  REQUIRE(faults["faults"].size() == 2);
  for (const auto& rule : faults["faults"]) {
    CHECK(rule.value("hits", 0) == 1);  // each fault was hit, and the step went on
  }
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");
  CHECK(bg.AppReplicas() == 2);
  CHECK(writer.on_green() > 0);
  CHECK(Ids(bg.green, bg.db) == writer.accepted());
}

}  // namespace
}  // namespace runbook::e2e
