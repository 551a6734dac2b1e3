// The run lock taken where a PostgreSQL target is, so that engines with
// different state stores (two laptops, a laptop and CI) cannot act on the
// same server at once: a session advisory lock, held on a connection of its
// own for as long as the run's engine lives. See README, "Locks".
//
// It lives in the server's `postgres` database (the connection's own one
// when `postgres` cannot be reached), not in the target database: a runbook
// may create that database, and two engines must meet in the same place
// whether it exists yet or not. Session advisory locks need a direct
// connection (behind a transaction pooler they would be taken and released
// on whatever server session the pooler lends).
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

#include "bindings/postgres/pg_conninfo.h"

namespace runbook {
namespace {

// pg_try_advisory_lock(int, int): this class, then the key's hash.
constexpr int32_t kLockClass = 0x52424c4b;  // "RBLK"

int32_t KeyHash(const std::string& key) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : key) h = (h ^ c) * 16777619u;
  return static_cast<int32_t>(h & 0x7fffffff);
}

SteadyTime SteadyNow() { return std::chrono::steady_clock::now(); }

class PgTargetLock : public TargetLock {
 public:
  explicit PgTargetLock(std::unique_ptr<PgConnection> conn) : conn_(std::move(conn)) {}

 private:
  std::unique_ptr<PgConnection> conn_;  // closing the session releases the lock
};

std::string Local() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

// The holder is an engine on this host that is gone ("runbook RUN HOST:PID"
// with that pid dead): its server session ends in a moment.
bool HolderGone(const std::string& app) {
  const size_t colon = app.rfind(':'), space = app.rfind(' ', colon);
  if (app.rfind("runbook ", 0) != 0 || colon == std::string::npos || space == std::string::npos) {
    return false;
  }
  if (app.substr(space + 1, colon - space - 1) != Local()) return false;
  const std::string pid = app.substr(colon + 1);
  if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  return kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH;
}

// "runbook RUN HOST:PID": both name the same run.
bool SameRun(const std::string& a, const std::string& b) {
  auto run = [](const std::string& h) {
    if (h.rfind("runbook ", 0) != 0) return std::string();
    return h.substr(8, h.find(' ', 8) - 8);
  };
  return !run(a).empty() && run(a) == run(b);
}

Result<std::unique_ptr<PgConnection>> Open(const PgConnectOptions& base, const std::string& holder,
                                           bool maintenance) {
  PgConnectOptions o = base;
  if (maintenance) o.keywords["dbname"] = "postgres";
  o.application_name = holder;
  o.connect_timeout = std::min(o.connect_timeout, std::chrono::seconds(5));
  auto conn = std::make_unique<PgConnection>();
  if (Status s = conn->Connect(o); !s.ok()) return s;
  // A lost engine (a dead node, a cut cable) must not keep the lock for the
  // kernel's two hours: the server probes the client. Settings a server
  // lacks (client_connection_check_interval before 14) or a Unix socket
  // ignores are no matter.
  for (const char* set :
       {"SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5",
        "SET tcp_keepalives_count = 3", "SET client_connection_check_interval = '5s'",
        "SET idle_session_timeout = 0"}) {
    conn->Exec(set, {}, SteadyNow() + std::chrono::seconds(10));
  }
  return conn;
}

}  // namespace

Result<std::unique_ptr<TargetLock>> PgConnectionType::LockTarget(const std::string& conn_name,
                                                                 const Value& config,
                                                                 const std::string& key,
                                                                 const std::string& holder) const {
  if (config.is_object() && !config.value("via", "").empty()) return std::unique_ptr<TargetLock>();
  Result<PgConnectOptions> options = PgOptionsFromConfig(conn_name, config);
  if (!options.ok()) return std::unique_ptr<TargetLock>();  // the first step using it says why
  Result<std::unique_ptr<PgConnection>> conn = Open(*options, holder, true);
  if (!conn.ok()) conn = Open(*options, holder, false);
  if (!conn.ok()) {
    return Status::Failed("the run lock could not be taken on connection '" + conn_name +
                          "': " + conn.status().message());
  }
  PgConnection& c = **conn;
  const PgParams ids = {std::to_string(kLockClass), std::to_string(KeyHash(key))};
  const SteadyTime give_up = SteadyNow() + std::chrono::seconds(20);
  for (;;) {
    Result<Value> got = c.Query("SELECT pg_try_advisory_lock($1::int, $2::int) AS got", ids,
                                SteadyNow() + std::chrono::seconds(10));
    if (!got.ok()) return got.status();
    if ((*got)[0]["got"].get<bool>())
      return std::unique_ptr<TargetLock>(new PgTargetLock(std::move(*conn)));
    Result<Value> who = c.Query(
        "SELECT coalesce(a.application_name, '') AS app, l.pid::text AS pid, "
        "coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '') AS since "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
        "AND l.classid = $1::int::oid AND l.objid = $2::int::oid "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ids, SteadyNow() + std::chrono::seconds(10));
    if (!who.ok()) return who.status();
    if (who->empty()) continue;  // released in between: try again
    const std::string app = (*who)[0]["app"].get<std::string>();
    if (app == holder) return std::unique_ptr<TargetLock>();  // this run, by another connection
    // The same run by another engine: the state store gave this engine the
    // run (that engine is gone or was presumed dead and its lease taken
    // over), so its session goes too.
    if (SameRun(app, holder) && SteadyNow() < give_up) {
      c.Exec("SELECT pg_terminate_backend($1::int)", {(*who)[0]["pid"].get<std::string>()},
             SteadyNow() + std::chrono::seconds(10));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (HolderGone(app) && SteadyNow() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    const std::string since = (*who)[0]["since"].get<std::string>();
    return Status::Unavailable(
        "run lock '" + key + "' is held on connection '" + conn_name + "' (" + c.server() +
        ") by " + (app.empty() ? "backend " + (*who)[0]["pid"].get<std::string>() : app) +
        (since.empty() ? "" : " since " + since) +
        ": another engine, with another state store, is acting on this target");
  }
}

}  // namespace runbook
