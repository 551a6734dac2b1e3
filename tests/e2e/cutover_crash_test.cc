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

#include <atomic>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>

#include "tests/e2e/blue_green_util.h"

namespace runbook::e2e {
namespace {

using std::chrono::milliseconds;

uint64_t CrashSeed() {
  const char* s = getenv("RUNBOOK_CRASH_SEED");
  uint64_t seed = s && *s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
  fprintf(stderr, "cutover crash seed: %llu (RUNBOOK_CRASH_SEED=%llu replays it)\n",
          static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

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

TEST_CASE("cutover under writes: SIGKILL at random instants, resume; nothing lost or doubled",
          "[e2e][crash][seed004][cutover]") {
  BlueGreen bg;
  std::mt19937_64 rng(CrashSeed());
  Writer writer(bg);
  std::this_thread::sleep_for(milliseconds(300));  // the application is writing
  const int want_kills = Kills();
  // Kill instants are spread over the first seconds of each attempt: a full
  // run here takes about 5 to 10 s.
  std::uniform_int_distribution<int> instant(50, 6000);
  std::string log, run_id;
  int kills = 0, rounds = 0;
  for (;; ++rounds) {
    INFO(log);
    REQUIRE(rounds < want_kills + 20);
    std::vector<std::string> args = run_id.empty()
                                        ? bg.Args()
                                        : std::vector<std::string>{"resume", run_id, "--yes"};
    Background proc(bg.t.Spec(args, bg.Env()));
    bool killed = false;
    if (kills < want_kills) {
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
      REQUIRE(proc.WaitExit(std::chrono::minutes(3)));
      log += "round " + std::to_string(rounds) + ": " + args[0] + " ended:\n" + proc.out() +
             proc.err();
    }
    REQUIRE(IntegrityCheck(bg.t.state()) == "ok");
    if (run_id.empty()) run_id = bg.t.LastRunId();
    if (run_id.empty() || killed) continue;  // killed before the run was recorded: start again
    std::string status = bg.t.RunStatus(run_id)["status"].get<std::string>();
    INFO("status " << status);
    if (status == "succeeded") break;
    // A kill can land after the last step's result but before the run's own
    // status; resume finishes it. Anything else is a failure of the promise.
    FAIL("the run ended " << status << " without a kill");
  }
  std::this_thread::sleep_for(milliseconds(300));  // writes to green after the switch
  writer.Stop();
  INFO(log);
  fprintf(stderr, "cutover crash test: %d kills, %d rounds; writes: %lld on blue, %lld on green\n",
          kills, rounds, static_cast<long long>(writer.on_blue()),
          static_cast<long long>(writer.on_green()));
  CHECK(kills >= std::min(want_kills, 10));
  CHECK(bg.Selector() == R"({"app":"chronicle-db-v17"})");
  CHECK(bg.AppReplicas() == 2);
  // Green holds exactly the accepted rows: blue's (copied) and its own.
  std::set<int64_t> on_green = Ids(bg.green, bg.db);
  CHECK(writer.on_blue() > 0);
  CHECK(on_green == writer.accepted());
  auto steps = bg.t.Steps(run_id);
  CHECK(steps["switch"]["status"] == "succeeded");
  CHECK(steps["verify"]["status"] == "succeeded");
}

}  // namespace
}  // namespace runbook::e2e
