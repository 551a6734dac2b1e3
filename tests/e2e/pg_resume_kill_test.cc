// Resume after a kill, per PostgreSQL primitive: the real
// `runbook` binary is SIGKILLed while a pg.* step runs against a real
// PostgreSQL 15 server, then `runbook resume` (answering --retry-step or
// --mark-done only when the engine asks, as a careful human would) must end
// in exactly the state one clean run gives, and `runbook rollback` must then
// restore the start where the primitive has an undo.
//
// pg.copy, pg.dump/pg.restore and pg.replicate (with pg.wait_caught_up and
// pg.sync_sequences) are covered elsewhere; here: pg.exec (with and without
// rollback_sql), pg.create_database, pg.drop_database,
// pg.terminate_connections, pg.refresh_collation, and the read-only pg.query
// and pg.compare_counts.
//
// Kill instants are random in a window measured by a first run without a
// kill; the seed is printed and RUNBOOK_CRASH_SEED=N replays it (as far as
// the machine's timing allows).
#include <libpq-fe.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <regex>
#include <stdexcept>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::BlueServer;
using testing::LocaleServer;
using testing::PgServer;
using testing::PgTestDb;

int MsSince(steady_clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<milliseconds>(steady_clock::now() - start).count());
}

// A libpq session of the test's own: the superuser over the unix socket.
class Session {
 public:
  Session(const PgServer& s, const std::string& db) {
    std::string info = "host=" + s.socket_dir + " port=" + std::to_string(s.port) +
                       " dbname=" + db + " user=" + s.superuser + " application_name=test-app";
    conn_ = PQconnectdb(info.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string why = PQerrorMessage(conn_);
      PQfinish(conn_);
      throw std::runtime_error("test session: " + why);
    }
  }
  ~Session() { PQfinish(conn_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The first column of the first row ("" if none); throws on error.
  std::string Get(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      std::string why = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error("test session: " + sql + ": " + why);
    }
    std::string out = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    return out;
  }
  // False once the server has ended this session.
  bool Alive() {
    PGresult* r = PQexec(conn_, "SELECT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
  }

 private:
  PGconn* conn_ = nullptr;
};

// What a careful human does before answering the engine: waits until the
// killed engine's sessions have ended on the server. A statement the server
// was running when the engine died runs on, and may still commit.
void WaitEngineSessionsGone(const PgServer& server, const std::string& run_id) {
  Session s(server, "postgres");
  auto deadline = steady_clock::now() + std::chrono::seconds(30);
  std::string left;
  while (steady_clock::now() < deadline) {
    left = s.Get("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'runbook/" +
                 run_id + "/%'");
    if (left == "0") return;
    std::this_thread::sleep_for(milliseconds(20));
  }
  FAIL("the killed engine's sessions of run " << run_id << " still run after 30 s: " << left);
}

// How the engine is killed: waits (draining its output) until the instant.
using KillInstant = std::function<void(Background&)>;

KillInstant AtRandom(std::mt19937_64& rng, int lo_ms, int hi_ms) {
  return [&rng, lo_ms, hi_ms](Background& bg) {
    int wait = std::uniform_int_distribution<int>(lo_ms, std::max(lo_ms + 1, hi_ms) - 1)(rng);
    auto until = steady_clock::now() + milliseconds(wait);
    while (steady_clock::now() < until && bg.Running()) bg.Drain(milliseconds(2));
  };
}

struct Crash {
  E2e& t;
  const PgServer& server;  // where the engine's sessions run
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  KillInstant instant;
  int max_kills = 2;
  // Asked about a step: did it take effect? (--mark-done if so, else --retry-step)
  std::function<bool(const std::string&)> took_effect;
};

struct Killed {
  std::string run_id, status, error;
  int kills = 0;
  std::vector<std::string> killed_in;  // per kill, the step found running ("-": none)
  std::vector<std::string> asked;      // the steps the engine asked a human about
  std::string log;                     // what happened, for failures
  int In(const std::string& step) const {
    return static_cast<int>(std::count(killed_in.begin(), killed_in.end(), step));
  }
  int Asked(const std::string& step) const {
    return static_cast<int>(std::count(asked.begin(), asked.end(), step));
  }
};

// Runs c.args, SIGKILLs the engine at c.instant up to c.max_kills times (the
// first run and the resumes alike) and resumes after each kill, until a
// round ends by itself. A resume that stops and asks about a step is
// answered once the killed engine's sessions are gone, from c.took_effect.
Killed KillAndResume(const Crash& c) {
  Killed k;
  const size_t runs_before = c.t.Runs().size();
  std::vector<std::string> decide;
  for (int round = 0;; ++round) {
    INFO(k.log);
    REQUIRE(round < c.max_kills + 8);
    std::vector<std::string> args = c.args;
    if (!k.run_id.empty()) {
      args = {"resume", k.run_id};
      args.insert(args.end(), decide.begin(), decide.end());
    }
    k.log += "round " + std::to_string(round) + ": runbook " + args[0] +
             (decide.empty() ? "" : " " + decide[0] + " " + decide[1]) + "\n";
    decide.clear();
    Background bg(c.t.Spec(args, c.env));
    bool killed = false;
    if (k.kills < c.max_kills) {
      auto start = steady_clock::now();
      c.instant(bg);
      bg.Drain();
      if (bg.Running()) {
        bg.KillHard();
        killed = true;
        ++k.kills;
        k.log += "  killed at " + std::to_string(MsSince(start)) + " ms; output was:\n";
      }
    }
    if (!killed) {
      if (!bg.WaitExit(std::chrono::seconds(90))) {
        bg.KillHard();
        FAIL("runbook " << args[0] << " did not end in 90 s:\n" << bg.out() << bg.err());
      }
      k.log += "  ended; output:\n";
    }
    k.log += bg.out() + bg.err();
    if (Exists(c.t.state())) REQUIRE(IntegrityCheck(c.t.state()) == "ok");
    if (k.run_id.empty() && c.t.Runs().size() > runs_before) k.run_id = c.t.LastRunId();
    if (killed) {
      std::string in = "-";
      if (!k.run_id.empty()) {
        for (const auto& [id, s] : c.t.Steps(k.run_id)) {
          if (s["status"] == "running") in = id;
        }
      }
      k.killed_in.push_back(in);
      k.log += "  (killed inside step " + in + ")\n";
      continue;  // killed before the run was recorded: start it again
    }
    REQUIRE_FALSE(k.run_id.empty());
    Value st = c.t.RunStatus(k.run_id);
    k.status = st["status"].get<std::string>();
    k.error = st["error"].get<std::string>();
    std::smatch m;
    if (k.status == "stopped" && std::regex_search(k.error, m, std::regex("--retry-step (\\S+)"))) {
      std::string step = m[1];
      CHECK(k.error.find("--mark-done " + step) != std::string::npos);
      k.asked.push_back(step);
      WaitEngineSessionsGone(c.server, k.run_id);
      bool done = c.took_effect && c.took_effect(step);
      decide = {done ? "--mark-done" : "--retry-step", step};
      continue;
    }
    return k;
  }
}

// A run without a kill: its duration in ms.
int CleanRunMs(E2e& t, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env) {
  auto start = steady_clock::now();
  CliResult r = t.Run(args, env);
  int ms = MsSince(start);
  INFO(r.All());
  REQUIRE(r.code == 0);
  return ms;
}

void CheckAllSucceeded(E2e& t, const std::string& run_id) {
  for (const auto& [id, s] : t.Steps(run_id)) {
    INFO("step " << id << ": " << s.dump());
    CHECK(s["status"] == "succeeded");
  }
}

// ---- pg.exec -----------------------------------------------------------------------------

// pay inserts a ledger row and adds 10 to a balance, in one transaction with
// a pause in the middle: neither is idempotent, and pg.exec cannot check.
const char* kPay = R"yaml(format: 1
name: pay
params:
  db: {type: string}
  tag: {type: string}
connections:
  db: {postgres: {dsn: "${{ params.db }}"}}
on_failure: stop
steps:
  - id: warm-up
    pg.query: {conn: db, sql: "SELECT pg_sleep(0.1)"}
  - id: pay
    idempotent: false
    pg.exec:
      conn: db
      sql: |
        INSERT INTO ledger (tag) VALUES ('${{ params.tag }}');
        SELECT pg_sleep(0.6);
        INSERT INTO balance VALUES ('${{ params.tag }}', 10)
          ON CONFLICT (tag) DO UPDATE SET n = balance.n + 10;
  - id: cool-down
    pg.query: {conn: db, sql: "SELECT pg_sleep(0.1)"}
)yaml";

TEST_CASE(
    "pg.exec INSERT (idempotent: false, no rollback_sql) killed and resumed: the engine "
    "asks, and the row lands exactly once",
    "[e2e][pg][crash]") {
  E2e t;
  PgTestDb db(BlueServer(), "kpay");
  db.Exec(
      "CREATE TABLE ledger (tag text NOT NULL, at timestamptz DEFAULT clock_timestamp());"
      "CREATE TABLE balance (tag text PRIMARY KEY, n int NOT NULL)");
  t.Write("pay.yaml", kPay);
  auto args = [&](const std::string& tag) {
    return std::vector<std::string>{"run", "pay.yaml",  "-p", "db=" + db.Conninfo(),
                                    "-p",  "tag=" + tag};
  };
  // "ledger rows/balance" for one run's tag.
  auto effect = [&](const std::string& tag) {
    return db.Value("SELECT count(*) FROM ledger WHERE tag = '" + tag + "'") + "/" +
           db.Value("SELECT coalesce(sum(n), 0) FROM balance WHERE tag = '" + tag + "'");
  };
  const int full_ms = CleanRunMs(t, args("clean"), BlueServer().ClientEnv());
  REQUIRE(effect("clean") == "1/10");
  std::mt19937_64 rng(CrashSeed("pg.exec insert kill"));
  int in_pay = 0, asked = 0, iterations = 0;
  while (in_pay < 4) {
    ++iterations;
    REQUIRE(iterations <= 14);
    const std::string tag = "i" + std::to_string(iterations);
    Crash c{t,
            BlueServer(),
            args(tag),
            BlueServer().ClientEnv(),
            AtRandom(rng, 20, full_ms * 9 / 10),
            2,
            [&](const std::string& step) {
              REQUIRE(step == "pay");
              return db.Value("SELECT count(*) FROM ledger WHERE tag = '" + tag + "'") != "0";
            }};
    Killed k = KillAndResume(c);
    INFO(k.log);
    CHECK(k.status == "succeeded");
    CHECK(effect(tag) == "1/10");                                  // nothing missing, nothing twice
    CHECK(k.asked.size() == static_cast<size_t>(k.Asked("pay")));  // only pay may ask
    if (k.In("pay") > 0) CHECK(k.Asked("pay") > 0);  // killed inside it: the engine asks
    CheckAllSucceeded(t, k.run_id);
    in_pay += k.In("pay");
    asked += k.Asked("pay");
  }
  fprintf(stderr,
          "pg.exec insert: a run takes %d ms; %d iterations, %d kills inside pay, %d "
          "questions\n",
          full_ms, iterations, in_pay, asked);
}

// migrate archives half of the orders and doubles every total, with a pause
// in the middle; rollback_sql undoes both.
const char* kMigrate = R"yaml(format: 1
name: migrate
params:
  db: {type: string}
connections:
  db: {postgres: {dsn: "${{ params.db }}"}}
on_failure: stop
steps:
  - id: migrate
    pg.exec:
      conn: db
      sql: |
        CREATE TABLE orders_archive AS SELECT * FROM orders WHERE id % 2 = 0;
        SELECT pg_sleep(0.6);
        UPDATE orders SET total = total * 2;
      rollback_sql: |
        UPDATE orders SET total = total / 2;
        DROP TABLE orders_archive;
  - id: check
    pg.query: {conn: db, sql: "SELECT count(*) AS n FROM orders_archive"}
    assert: result[1].n == 250
)yaml";

const char* kOrders =
    "CREATE TABLE orders (id int PRIMARY KEY, total numeric(12,2) NOT NULL);"
    "INSERT INTO orders SELECT g, g * 1.25 FROM generate_series(1, 500) g";

// The public schema's relations and the content of orders (and the archive).
std::string OrdersState(const PgTestDb& db) {
  std::string s = db.Value(
      "SELECT (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) "
      "FROM pg_class WHERE relnamespace = 'public'::regnamespace) || ' orders=' || "
      "(SELECT md5(string_agg(id || ':' || total, ',' ORDER BY id)) FROM orders)");
  if (!db.Value("SELECT to_regclass('orders_archive')").empty()) {
    s += " archive=" + db.Value(
                           "SELECT md5(string_agg(id || ':' || total, ',' ORDER BY id)) "
                           "FROM orders_archive");
  }
  return s;
}

TEST_CASE(
    "pg.exec with rollback_sql killed and resumed: the end state of one clean run, and "
    "rollback restores the start",
    "[e2e][pg][crash]") {
  E2e t;
  t.Write("migrate.yaml", kMigrate);
  std::string start, end;
  int full_ms;
  {
    PgTestDb db(BlueServer(), "kmig");
    db.Exec(kOrders);
    start = OrdersState(db);
    full_ms =
        CleanRunMs(t, {"run", "migrate.yaml", "-p", "db=" + db.Conninfo()}, BlueServer().ClientEnv());
    end = OrdersState(db);
    REQUIRE(end != start);
    REQUIRE_THAT(end, Catch::Contains("orders_archive:r") && Catch::Contains("archive="));
  }
  std::mt19937_64 rng(CrashSeed("pg.exec rollback_sql kill"));
  int in_step = 0, asked = 0, iterations = 0;
  while (in_step < 4) {
    ++iterations;
    REQUIRE(iterations <= 12);
    PgTestDb db(BlueServer(), "kmig");
    db.Exec(kOrders);
    REQUIRE(OrdersState(db) == start);
    Crash c{t,
            BlueServer(),
            {"run", "migrate.yaml", "-p", "db=" + db.Conninfo()},
            BlueServer().ClientEnv(),
            AtRandom(rng, 20, full_ms * 9 / 10),
            2,
            [&](const std::string& step) {
              REQUIRE(step == "migrate");
              return !db.Value("SELECT to_regclass('orders_archive')").empty();
            }};
    Killed k = KillAndResume(c);
    INFO(k.log);
    CHECK(k.status == "succeeded");
    CHECK(OrdersState(db) == end);  // archived once, doubled once
    CheckAllSucceeded(t, k.run_id);
    if (k.In("migrate") > 0) CHECK(k.Asked("migrate") > 0);
    CHECK(k.asked.size() == static_cast<size_t>(k.Asked("migrate")));
    CliResult r = t.Run({"rollback", k.run_id}, BlueServer().ClientEnv());
    INFO(r.All());
    CHECK(r.code == 0);
    CHECK(OrdersState(db) == start);  // halved once, archive gone
    in_step += k.In("migrate");
    asked += k.Asked("migrate");
  }
  fprintf(stderr,
          "pg.exec rollback_sql: a run takes %d ms; %d iterations, %d kills inside "
          "migrate, %d questions\n",
          full_ms, iterations, in_step, asked);
}

// ---- pg.drop_database ----------------------------------------------------------------------

const char* kDrop = R"yaml(format: 1
name: drop
params:
  server: {type: string}
  name: {type: string}
  if_exists: {type: bool}
connections:
  server: {postgres: {dsn: "${{ params.server }}"}}
on_failure: stop
steps:
  - id: drop
    pg.drop_database:
      conn: server
      name: "${{ params.name }}"
      terminate: true
      if_exists: "${{ params.if_exists }}"
  - id: gone
    pg.query:
      conn: server
      sql: "SELECT count(*) AS n FROM pg_database WHERE datname = $1"
      params: ["${{ params.name }}"]
    assert: result[1].n == 0
)yaml";

// Holds SHARE on pg_database for `hold`: DROP DATABASE, which takes ROW
// EXCLUSIVE on it first, waits that long on the server (a drop that takes
// its time, as a big database's does), wide enough to be killed in.
class CatalogLock {
 public:
  CatalogLock(const PgServer& s, milliseconds hold) : session_(s, "postgres") {
    session_.Get("BEGIN");
    session_.Get("LOCK TABLE pg_database IN SHARE MODE");
    thread_ = std::thread([this, hold] {
      std::this_thread::sleep_for(hold);
      try {
        session_.Get("COMMIT");
      } catch (const std::exception& e) {
        fprintf(stderr, "%s\n", e.what());
      }
    });
  }
  ~CatalogLock() { thread_.join(); }

 private:
  Session session_;
  std::thread thread_;
};

void DropDatabaseKilled(bool if_exists) {
  const PgServer& s = BlueServer();
  E2e t;
  t.Write("drop.yaml", kDrop);
  const milliseconds hold(1200);
  auto args = [&](const std::string& name) {
    return std::vector<std::string>{
        "run", "drop.yaml",    "-p", "server=" + s.Conninfo("postgres"),
        "-p",  "name=" + name, "-p", std::string("if_exists=") + (if_exists ? "true" : "false")};
  };
  auto exists = [&](const std::string& name) {
    return s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "1";
  };
  int full_ms;
  {
    std::string name = testing::UniqueName("kdrop");
    s.AdminExec("CREATE DATABASE " + name);
    CatalogLock lock(s, hold);
    full_ms = CleanRunMs(t, args(name), s.ClientEnv());
    REQUIRE_FALSE(exists(name));
  }
  REQUIRE(full_ms >= hold.count() - 100);  // the drop did wait for the lock
  std::mt19937_64 rng(
      CrashSeed(if_exists ? "pg.drop_database if_exists kill" : "pg.drop_database kill"));
  int in_drop = 0, iterations = 0;
  while (in_drop < 3) {
    ++iterations;
    REQUIRE(iterations <= 8);
    std::string name = testing::UniqueName("kdrop");
    s.AdminExec("CREATE DATABASE " + name);
    Killed k;
    {
      // The application's sessions, which terminate: true ends.
      Session app1(s, name), app2(s, name);
      CatalogLock lock(s, hold);
      // Only the first run meets the lock; resumes come while the killed
      // engine's DROP may still wait on the server.
      Crash c{t, s, args(name), s.ClientEnv(), AtRandom(rng, 50, hold.count() - 50), 1, nullptr};
      k = KillAndResume(c);
      INFO(k.log);
      CHECK_FALSE(app1.Alive());
      CHECK_FALSE(app2.Alive());
    }
    INFO(k.log);
    CHECK(k.status == "succeeded");
    CHECK(k.asked.empty());  // drop can check (or, with if_exists, re-run): no question
    CHECK_FALSE(exists(name));
    CheckAllSucceeded(t, k.run_id);
    in_drop += k.In("drop");
    s.AdminExec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  }
  fprintf(stderr,
          "pg.drop_database (if_exists %d): a run takes %d ms; %d iterations, %d kills "
          "inside drop\n",
          if_exists, full_ms, iterations, in_drop);
}

TEST_CASE("pg.drop_database killed while the server drops, resumed: checked, gone, no question",
          "[e2e][pg][crash]") {
  DropDatabaseKilled(false);
}

TEST_CASE("pg.drop_database if_exists killed while the server drops, resumed: re-run, gone",
          "[e2e][pg][crash]") {
  DropDatabaseKilled(true);
}

// ---- pg.create_database --------------------------------------------------------------------

const char* kCreate = R"yaml(format: 1
name: create
params:
  server: {type: string}
  name: {type: string}
connections:
  server: {postgres: {dsn: "${{ params.server }}"}}
on_failure: stop
steps:
  - id: create
    pg.create_database: {conn: server, name: "${{ params.name }}"}
  - id: there
    pg.query:
      conn: server
      sql: "SELECT count(*) AS n FROM pg_database WHERE datname = $1"
      params: ["${{ params.name }}"]
    assert: result[1].n == 1
)yaml";

// The CREATE DATABASE of the killed engine still waits on the server when the
// resume checks: without waiting for it, the resume saw no database, created
// it again, failed with "already exists", and recorded the database as not
// its own, so a rollback would have left it behind.
TEST_CASE(
    "pg.create_database killed while the server creates, resumed: created once, no "
    "question, and rollback drops it",
    "[e2e][pg][crash]") {
  const PgServer& s = BlueServer();
  E2e t;
  t.Write("create.yaml", kCreate);
  const milliseconds hold(1200);
  auto args = [&](const std::string& name) {
    return std::vector<std::string>{"run", "create.yaml", "-p", "server=" + s.Conninfo("postgres"),
                                    "-p",  "name=" + name};
  };
  auto exists = [&](const std::string& name) {
    return s.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") == "1";
  };
  int full_ms;
  {
    std::string name = testing::UniqueName("kcreate");
    CatalogLock lock(s, hold);
    full_ms = CleanRunMs(t, args(name), s.ClientEnv());
    REQUIRE(exists(name));
    s.AdminExec("DROP DATABASE " + name);
  }
  REQUIRE(full_ms >= hold.count() - 100);  // the create did wait for the lock
  std::mt19937_64 rng(CrashSeed("pg.create_database kill"));
  int in_create = 0, iterations = 0;
  while (in_create < 3) {
    ++iterations;
    REQUIRE(iterations <= 8);
    std::string name = testing::UniqueName("kcreate");
    Killed k;
    {
      CatalogLock lock(s, hold);
      Crash c{t, s, args(name), s.ClientEnv(), AtRandom(rng, 50, hold.count() - 50), 1, nullptr};
      k = KillAndResume(c);
    }
    INFO(k.log);
    CHECK(k.status == "succeeded");
    CHECK(k.asked.empty());  // create can check: no question
    CHECK(exists(name));
    CheckAllSucceeded(t, k.run_id);
    CliResult rb = t.Run({"rollback", k.run_id}, s.ClientEnv());
    INFO(rb.All());
    CHECK(rb.code == 0);
    CHECK_FALSE(exists(name));  // it was this run's, so the rollback dropped it
    in_create += k.In("create");
    s.AdminExec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  }
  fprintf(stderr, "pg.create_database: a run takes %d ms; %d iterations, %d kills inside create\n",
          full_ms, iterations, in_create);
}

// ---- pg.terminate_connections ----------------------------------------------------------------

const char* kTerminate = R"yaml(format: 1
name: terminate
params:
  server: {type: string}
  name: {type: string}
connections:
  server: {postgres: {dsn: "${{ params.server }}"}}
on_failure: stop
steps:
  - id: warm-up
    pg.query: {conn: server, sql: "SELECT pg_sleep(0.3)"}
  - id: end-sessions
    pg.terminate_connections: {conn: server, database: "${{ params.name }}"}
  - id: cool-down
    pg.query: {conn: server, sql: "SELECT pg_sleep(0.3)"}
)yaml";

// The step is one query of a millisecond: instead of a window, the kill
// comes 0 to 15 ms after the step's session shows its name on the server.
KillInstant WhenStepOnServer(Session& watch, std::mt19937_64& rng, const std::string& step) {
  return [&watch, &rng, step](Background& bg) {
    auto deadline = steady_clock::now() + std::chrono::seconds(30);
    while (bg.Running() && steady_clock::now() < deadline &&
           watch.Get("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                     "'runbook/%/" +
                     step + "'") == "0") {
      bg.Drain();
    }
    int extra = std::uniform_int_distribution<int>(0, 15)(rng);
    auto until = steady_clock::now() + milliseconds(extra);
    while (steady_clock::now() < until && bg.Running()) bg.Drain(milliseconds(1));
  };
}

TEST_CASE(
    "pg.terminate_connections killed around its step, resumed: every session ends, "
    "no question",
    "[e2e][pg][crash]") {
  const PgServer& s = BlueServer();
  E2e t;
  t.Write("terminate.yaml", kTerminate);
  PgTestDb db(s, "kterm");
  auto args = std::vector<std::string>{
      "run", "terminate.yaml", "-p", "server=" + s.Conninfo("postgres"), "-p", "name=" + db.name()};
  auto sessions_on_db = [&] {
    return s.AdminValue("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db.name() +
                        "' AND backend_type = 'client backend'");
  };
  auto wait_none = [&] {
    auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (sessions_on_db() != "0" && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    return sessions_on_db();
  };
  {
    Session a(s, db.name()), b(s, db.name());
    CleanRunMs(t, args, s.ClientEnv());
    CHECK_FALSE(a.Alive());
    CHECK_FALSE(b.Alive());
    CHECK(wait_none() == "0");
  }
  Session watch(s, "postgres");
  std::mt19937_64 rng(CrashSeed("pg.terminate_connections kill"));
  int in_step = 0, iterations = 0, kills = 0;
  // Until a kill landed inside the step (on a loaded machine most land just
  // before or after a one-millisecond step: 1 to 2 in 6 here, so 40
  // iterations without one would be a 1-in-1500 event).
  while (kills < 6 || in_step < 1) {
    ++iterations;
    REQUIRE(iterations <= 40);
    // The last run's sessions are gone (their name would set the kill off).
    auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (watch.Get("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                     "'runbook/%'") != "0") {
      REQUIRE(steady_clock::now() < deadline);
      std::this_thread::sleep_for(milliseconds(10));
    }
    Session a(s, db.name()), b(s, db.name()), c3(s, db.name());
    REQUIRE(sessions_on_db() == "3");
    Crash c{t, s, args, s.ClientEnv(), WhenStepOnServer(watch, rng, "end-sessions"), 1, nullptr};
    Killed k = KillAndResume(c);
    INFO(k.log);
    CHECK(k.status == "succeeded");
    CHECK(k.asked.empty());
    CheckAllSucceeded(t, k.run_id);
    CHECK_FALSE(a.Alive());
    CHECK_FALSE(b.Alive());
    CHECK_FALSE(c3.Alive());
    CHECK(wait_none() == "0");
    kills += k.kills;
    in_step += k.In("end-sessions");
  }
  fprintf(stderr, "pg.terminate_connections: %d iterations, %d kills, %d inside the step\n",
          iterations, kills, in_step);
}

// ---- pg.refresh_collation --------------------------------------------------------------------

const char* kRefresh = R"yaml(format: 1
name: refresh
params:
  server: {type: string}
  db: {type: string}
connections:
  server: {postgres: {dsn: "${{ params.server }}"}}
on_failure: stop
steps:
  - id: refresh
    pg.refresh_collation: {conn: server, databases: ["${{ params.db }}"], concurrently: true}
  - id: verify
    pg.query:
      conn: server
      sql: >-
        SELECT datcollversion = pg_database_collation_actual_version(oid) AS ok
        FROM pg_database WHERE datname = $1
      params: ["${{ params.db }}"]
    assert: result[1].ok == true
)yaml";

TEST_CASE(
    "pg.refresh_collation (REINDEX CONCURRENTLY) killed and resumed: refreshed, every "
    "index valid and intact, unaffected ones untouched",
    "[e2e][pg][crash]") {
  const PgServer& s = LocaleServer();
  E2e t;
  t.Write("refresh.yaml", kRefresh);
  PgTestDb db(s, "kcoll");
  db.Exec(
      "CREATE EXTENSION amcheck;"
      "CREATE TABLE words (id int PRIMARY KEY, w text NOT NULL, c text COLLATE \"C\");"
      "INSERT INTO words SELECT g, md5(g::text) || ' Wort ' || g, md5(g::text) "
      "FROM generate_series(1, 150000) g;"
      "CREATE INDEX words_w ON words (w);"
      "CREATE INDEX words_w_id ON words (w, id);"
      "CREATE INDEX words_c ON words (c)");
  const std::string actual = s.AdminValue(
      "SELECT pg_database_collation_actual_version(oid) FROM pg_database WHERE datname = '" +
      db.name() + "'");
  REQUIRE_FALSE(actual.empty());
  auto stale = [&] {
    s.AdminExec("UPDATE pg_database SET datcollversion = '1.0' WHERE datname = '" + db.name() +
                "'");
  };
  auto recorded = [&] {
    return s.AdminValue("SELECT datcollversion FROM pg_database WHERE datname = '" + db.name() +
                        "'");
  };
  auto filenode = [&](const std::string& index) {
    return db.Value("SELECT pg_relation_filenode('" + index + "')");
  };
  auto indexes = [&] {
    return db.Value(
        "SELECT string_agg(c.relname || (CASE WHEN i.indisvalid AND i.indisready "
        "THEN '' ELSE ' INVALID' END), ',' ORDER BY c.relname) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'words'::regclass");
  };
  const std::string all = "words_c,words_pkey,words_w,words_w_id";
  REQUIRE(indexes() == all);
  auto args = std::vector<std::string>{
      "run", "refresh.yaml", "-p", "server=" + s.Conninfo("postgres"), "-p", "db=" + db.name()};
  stale();
  const int full_ms = CleanRunMs(t, args, s.ClientEnv());
  REQUIRE(recorded() == actual);
  std::mt19937_64 rng(CrashSeed("pg.refresh_collation kill"));
  int in_step = 0, iterations = 0;
  while (in_step < 3) {
    ++iterations;
    REQUIRE(iterations <= 8);
    stale();
    const std::string w = filenode("words_w"), c = filenode("words_c"),
                      pkey = filenode("words_pkey");
    Crash cr{t, s, args, s.ClientEnv(), AtRandom(rng, 20, full_ms * 9 / 10), 2, nullptr};
    Killed k = KillAndResume(cr);
    INFO(k.log);
    CHECK(k.status == "succeeded");
    CHECK(k.asked.empty());  // idempotent: re-run
    CheckAllSucceeded(t, k.run_id);
    CHECK(recorded() == actual);
    CHECK(indexes() == all);          // no INVALID index, no _ccnew/_ccold left behind
    CHECK(filenode("words_w") != w);  // rebuilt
    CHECK(filenode("words_c") == c);  // C collation: left alone
    CHECK(filenode("words_pkey") == pkey);
    // Every index holds exactly the table's rows, in order.
    CHECK_NOTHROW(
        db.Value("SELECT bt_index_check(indexrelid, true) FROM pg_index "
                 "WHERE indrelid = 'words'::regclass"));
    in_step += k.In("refresh");
  }
  fprintf(stderr,
          "pg.refresh_collation: a run takes %d ms; %d iterations, %d kills inside "
          "refresh\n",
          full_ms, iterations, in_step);
}

// ---- read-only: pg.query and pg.compare_counts -------------------------------------------------

const char* kReadOnly = R"yaml(format: 1
name: read-only
params:
  source: {type: string}
  target: {type: string}
connections:
  source: {postgres: {dsn: "${{ params.source }}"}}
  target: {postgres: {dsn: "${{ params.target }}"}}
on_failure: stop
steps:
  - id: count
    pg.query: {conn: source, sql: "SELECT pg_sleep(0.4), count(*) AS n FROM orders"}
    assert: result[1].n == 500
  - id: compare
    pg.compare_counts: {source: source, target: target, all: true, mode: checksum}
  - id: again
    pg.query: {conn: target, sql: "SELECT pg_sleep(0.3), sum(total) AS s FROM orders"}
    assert: result[1].s == 156562.5
)yaml";

TEST_CASE(
    "read-only pg.query and pg.compare_counts killed and resumed: simply re-run, nothing "
    "asked, nothing changed",
    "[e2e][pg][crash]") {
  E2e t;
  t.Write("read-only.yaml", kReadOnly);
  PgTestDb src(BlueServer(), "kro"), dst(BlueServer(), "kro");
  src.Exec(kOrders);
  dst.Exec(kOrders);
  const std::string before = OrdersState(src) + " | " + OrdersState(dst);
  auto args = std::vector<std::string>{
      "run", "read-only.yaml", "-p", "source=" + src.Conninfo(), "-p", "target=" + dst.Conninfo()};
  const int full_ms = CleanRunMs(t, args, BlueServer().ClientEnv());
  std::mt19937_64 rng(CrashSeed("pg read-only kill"));
  int kills = 0, inside = 0, iterations = 0;
  while (inside < 4) {
    ++iterations;
    REQUIRE(iterations <= 10);
    Crash c{t, BlueServer(), args, BlueServer().ClientEnv(), AtRandom(rng, 20, full_ms * 9 / 10),
            2, nullptr};
    Killed k = KillAndResume(c);
    INFO(k.log);
    CHECK(k.status == "succeeded");
    CHECK(k.asked.empty());
    CheckAllSucceeded(t, k.run_id);
    auto steps = t.Steps(k.run_id);
    for (const std::string id : {"count", "compare", "again"}) {
      // A step killed inside ran again: one more attempt.
      if (k.In(id) > 0) CHECK(steps[id]["attempts"].get<int>() >= 2);
      inside += k.In(id);
    }
    kills += k.kills;
  }
  CHECK(OrdersState(src) + " | " + OrdersState(dst) == before);
  fprintf(stderr, "pg read-only: a run takes %d ms; %d iterations, %d kills, %d inside a step\n",
          full_ms, iterations, kills, inside);
}

}  // namespace
}  // namespace runbook::e2e
