// The run lock taken where a PostgreSQL target is, so that engines with
// different state stores (two laptops, a laptop and CI) cannot act on the
// same server at once: a session advisory lock, held on a connection of its
// own for as long as the run's engine lives. See README, "Locks".
//
// It lives in the server's `postgres` database, not in the target
// database: a runbook may create that database, and two engines must meet
// in the same place whether it exists yet or not (a server without one, or
// a role that may not connect to it, takes no lock: a warning says so). Session advisory locks need
// a direct connection (behind a transaction pooler they would be taken and released on whatever
// server session the pooler lends).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "bindings/postgres/pg_conninfo.h"
#include "engine/core/holder.h"
#include "engine/core/process.h"

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

// A holder names an engine (engine/core/holder.h), cut (as the server cuts
// application_name) to 63 bytes, so the host may be cut short.
constexpr size_t kNameMax = 63;

Result<std::unique_ptr<PgConnection>> Open(const PgConnectOptions& base,
                                           const std::string& holder) {
  PgConnectOptions o = base;
  o.keywords["dbname"] = "postgres";
  o.application_name = holder;
  o.connect_timeout = std::min(o.connect_timeout, std::chrono::seconds(5));
  auto conn = std::make_unique<PgConnection>();
  conn->set_stops_with_run(false);  // the engine's own, not a step's
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

// A lock as one connection takes it.
struct Want {
  std::string conn_name;
  std::string key, shown_key;
  std::string me;  // the holder, cut to a session name's length
};

// Takes lock `w.key` on a session of its own, named `w.me`: the session;
// nullptr when this engine holds it already (through another connection);
// kUnavailable when another engine holds it; any other error: it could not
// be taken. `same_run_wins`: a session of another engine of the same run is
// ended (the state store gave this engine the run), else that engine holds
// it. Waits at most `patience` for a holder that is going.
Result<std::unique_ptr<PgConnection>> Take(const PgConnectOptions& options, const Want& w,
                                           bool same_run_wins, std::chrono::seconds patience) {
  const std::string& conn_name = w.conn_name;
  const std::string& me = w.me;
  const std::string where = "the run lock could not be taken on connection '" + conn_name + "': ";
  Result<std::unique_ptr<PgConnection>> conn = Open(options, me);
  if (!conn.ok()) return Status::Failed(where + conn.status().message());
  PgConnection& c = **conn;
  const PgParams ids = {std::to_string(kLockClass), std::to_string(KeyHash(w.key))};
  const std::string tag =
      "l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = $1::int::oid "
      "AND l.objid = $2::int::oid AND l.database = (SELECT oid FROM pg_database WHERE datname = "
      "current_database())";
  const SteadyTime give_up = SteadyNow() + patience;
  for (;;) {
    const SteadyTime deadline = SteadyNow() + std::chrono::seconds(10);
    Result<Value> got =
        c.Query("SELECT pg_try_advisory_lock($1::int, $2::int) AS got", ids, deadline);
    if (!got.ok()) return Status::Failed(where + got.status().message());
    if ((*got)[0]["got"].get<bool>()) return conn;
    Result<Value> who = c.Query(
        "SELECT coalesce(a.application_name, '') AS app, coalesce(l.pid::text, '') AS pid, "
        "coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '') AS since "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE " +
            tag,
        ids, deadline);
    if (!who.ok()) return Status::Failed(where + who.status().message());
    const bool waiting = SteadyNow() < give_up;
    if (who->empty()) {  // released in between: try again
      if (!waiting) return Status::Failed(where + "it was neither free nor held for long");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    const std::string app = (*who)[0]["app"].get<std::string>();
    const std::string pid = (*who)[0]["pid"].get<std::string>();
    if (app == me) return std::unique_ptr<PgConnection>();  // this engine, by another connection
    // The same run by another engine: the state store gave this one the run
    // (the other is gone, or was presumed dead and its lease taken over), so
    // the other's session goes too; by pid and lock together, so that no
    // other session that took the pid meanwhile is hit.
    if (same_run_wins && SameRun(app, me) && !pid.empty() && waiting) {
      PgParams with_pid = ids;
      with_pid.push_back(pid);
      c.Exec("SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE " + tag +
                 " AND l.pid = $3::int",
             with_pid, deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (HolderGone(app) && waiting) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    const std::string since = (*who)[0]["since"].get<std::string>();
    const std::string by = !app.empty()  ? app
                           : pid.empty() ? std::string("a prepared transaction")
                                         : "backend " + pid;
    return Status::Unavailable("run lock '" + w.shown_key + "' is held on connection '" +
                               conn_name + "' (" + c.server() + ") by " + by +
                               (since.empty() ? "" : " since " + since) +
                               ": another engine, with another state store, is acting on this "
                               "target");
  }
}

// Held for as long as its session lives. A session that ended while the run
// goes on (a server restart, a failover, a step that terminated it) is
// replaced at the next check, unless another engine took the lock meanwhile:
// then the lock is lost and the run stops before its next step acts. A server
// that cannot be reached then (a step stopped it) lets nobody act there: the
// run goes on, and each check tries again until the lock is taken.
class PgTargetLock : public TargetLock {
 public:
  PgTargetLock(std::unique_ptr<PgConnection> conn, PgConnectOptions options, Want want)
      : conn_(std::move(conn)), options_(std::move(options)), want_(std::move(want)) {}

  Status Held() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!lost_.ok() || SteadyNow() < next_check_) return lost_;
    next_check_ = SteadyNow() + std::chrono::seconds(1);
    if (conn_ && conn_->Exec("SELECT 1", {}, SteadyNow() + std::chrono::seconds(5)).ok()) {
      return Status::Ok();
    }
    // At most a few seconds, whatever the server does: the step waits.
    Result<std::unique_ptr<PgConnection>> again =
        Take(options_, want_, /*same_run_wins=*/false, std::chrono::seconds(3));
    if (again.ok()) {
      // nullptr: the ended session is still seen holding it; tried again.
      conn_ = std::move(*again);
      return Status::Ok();
    }
    conn_.reset();
    if (again.status().code() == Status::Code::kUnavailable) {
      lost_ = Status::Unavailable(
          "the server ended the session that held the run lock on "
          "connection '" +
          want_.conn_name + "', and now " + again.status().message());
    }
    return lost_;
  }

 private:
  mutable std::mutex mu_;                       // guards what follows
  mutable std::unique_ptr<PgConnection> conn_;  // closing the session releases the lock
  const PgConnectOptions options_;
  const Want want_;
  mutable SteadyTime next_check_{};
  mutable Status lost_;
};

}  // namespace

Result<std::unique_ptr<TargetLock>> PgConnectionType::LockTarget(
    const std::string& conn_name, const Value& config, const TargetLockRequest& req) const {
  if (config.is_object() && !config.value("via", "").empty()) return std::unique_ptr<TargetLock>();
  Result<PgConnectOptions> options = PgOptionsFromConfig(conn_name, config);
  if (!options.ok()) return std::unique_ptr<TargetLock>();  // the first step using it says why
  Want want{conn_name, req.key, req.shown_key, req.holder.substr(0, kNameMax)};
  Result<std::unique_ptr<PgConnection>> conn =
      Take(*options, want, /*same_run_wins=*/true, std::chrono::seconds(20));
  if (!conn.ok()) return conn.status();
  if (!*conn) return std::unique_ptr<TargetLock>();
  return std::unique_ptr<TargetLock>(new PgTargetLock(std::move(*conn), *options, want));
}

}  // namespace runbook
