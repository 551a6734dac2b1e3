// The PostgreSQL state store (see pg_store.h). libpq stays in this file.
#include "engine/state/pg_store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/process.h"
#include "engine/core/renewal.h"
#include "engine/core/sha256.h"
#include "engine/state/sqlite_stmt.h"  // DumpJson, ParseJson

namespace runbook {

using state_internal::DumpJson;
using state_internal::ParseJson;

namespace {

// Schema migrations: kMigrations[v] takes runbook.meta's version v to v + 1.
// Append only; never edit a shipped entry.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE runbook.meta (application text NOT NULL, schema_version integer NOT NULL);
INSERT INTO runbook.meta VALUES ('runbook state store', 0);
CREATE TABLE runbook.runs (
  id text PRIMARY KEY,
  runbook_name text NOT NULL,
  runbook_path text NOT NULL,
  digest text NOT NULL,
  sources text NOT NULL,
  params text NOT NULL,
  params_digest text NOT NULL,
  dry_run boolean NOT NULL,
  lock_key text NOT NULL,
  status text NOT NULL,
  error text NOT NULL,
  created_ms bigint NOT NULL,
  updated_ms bigint NOT NULL,
  options text NOT NULL
);
CREATE INDEX runs_by_created ON runbook.runs(created_ms, id);
CREATE INDEX runs_by_name ON runbook.runs(runbook_name);
CREATE TABLE runbook.steps (
  run_id text NOT NULL REFERENCES runbook.runs(id),
  step_id text NOT NULL,
  seq bigint NOT NULL,
  done_seq bigint NOT NULL,
  status text NOT NULL,
  attempts integer NOT NULL,
  started_ms bigint NOT NULL,
  finished_ms bigint NOT NULL,
  duration_ms bigint NOT NULL,
  action_name text NOT NULL,
  change text NOT NULL,
  result text NOT NULL,
  tables text NOT NULL,
  error text NOT NULL,
  undo text NOT NULL,
  undo_error text NOT NULL,
  item text NOT NULL,
  PRIMARY KEY (run_id, step_id)
);
CREATE INDEX steps_by_seq ON runbook.steps(run_id, seq);
CREATE TABLE runbook.events (
  id bigserial PRIMARY KEY,
  run_id text NOT NULL REFERENCES runbook.runs(id),
  step_id text NOT NULL,
  at_ms bigint NOT NULL,
  kind text NOT NULL,
  message text NOT NULL
);
CREATE INDEX events_by_run ON runbook.events(run_id, id);
CREATE TABLE runbook.approvals (
  run_id text NOT NULL REFERENCES runbook.runs(id),
  step_id text NOT NULL,
  approved_by text NOT NULL,
  at_ms bigint NOT NULL,
  PRIMARY KEY (run_id, step_id)
);
CREATE TABLE runbook.leases (
  key text PRIMARY KEY,
  run_id text NOT NULL,
  holder text NOT NULL,
  liveness text NOT NULL,
  token bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE SEQUENCE runbook.lease_tokens;
)sql",
};
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

// Any value of the schema migration's advisory lock ("RNBK").
constexpr const char kMigrationLock[] = "SELECT pg_advisory_xact_lock(1380860491)";

const char kRunColumns[] =
    "id, runbook_name, runbook_path, digest, sources, params, params_digest, dry_run, lock_key, "
    "status, error, created_ms, updated_ms, options";
const char kStepColumns[] =
    "run_id, step_id, seq, done_seq, status, attempts, started_ms, finished_ms, duration_ms, "
    "action_name, change, result, tables, error, undo, undo_error, item";

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// Text as PostgreSQL takes it: valid UTF-8 (invalid bytes replaced, as the
// JSON columns do) and no NUL (a command's stderr may hold either).
std::string Clean(const std::string& s) {
  std::string out;
  try {
    out = Value::parse(DumpJson(Value(s))).get<std::string>();
  } catch (const nlohmann::json::exception&) {
    out = s;
  }
  out.erase(std::remove(out.begin(), out.end(), '\0'), out.end());
  return out;
}

std::string FirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Field 22 of /proc/PID/stat (start time in clock ticks since boot), or "".
std::string StartTime(long pid) {
  std::string stat = FirstLine(("/proc/" + std::to_string(pid) + "/stat").c_str());
  const size_t paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return "";
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  for (int i = 3; i <= 22 && (fields >> f); ++i) {
  }
  return f;
}

// This kernel boot and pid namespace: a pid means the same process only
// where both match (a host name does not: cloned machines, pods with the
// node's network, a pod re-created on another node keep it).
std::string Machine() {
  struct stat st;
  const std::string ns = stat("/proc/self/ns/pid", &st) == 0 ? std::to_string(st.st_ino) : "?";
  return FirstLine("/proc/sys/kernel/random/boot_id") + " " + ns;
}

}  // namespace

std::string ProcessLiveness(long pid) {
  return Machine() + " " + std::to_string(pid) + " " + StartTime(pid);
}

namespace {

// Whether the holder identified by `liveness` ("BOOT NS PID START") is a
// process of this machine that is gone (or whose pid now names another
// process). Anything unknown is alive: its lease is waited for.
bool HolderIsDeadHere(const std::string& liveness) {
  std::istringstream in(liveness);
  std::string boot, ns, start;
  long pid = 0;
  if (!(in >> boot >> ns >> pid >> start) || boot + " " + ns != Machine()) return false;
  if (pid <= 0 || pid == getpid()) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0) return errno == ESRCH;
  const std::string now = StartTime(pid);
  return !now.empty() && now != start;
}

// The lease row's key: the lock key, or for a long one (a key over the
// index's row size) its start and its hash, as lock.cc names lock files.
std::string LeaseKey(const std::string& key) {
  return key.size() <= 200 ? Clean(key) : Clean(key.substr(0, 100)) + "-" + Sha256Hex(key);
}

PGconn* Connect(const std::string& uri);

// The channel an approval is announced on (NOTIFY, payload the run id):
// an engine waiting at a gate LISTENs on it.
constexpr char kApprovalChannel[] = "runbook_approval";

// One connection, shared by the store and the lease it holds.
class Session {
 public:
  ~Session() {
    if (conn) PQfinish(conn);
  }
  std::mutex mu;  // guards everything below
  PGconn* conn = nullptr;
  std::string uri;       // as given (may hold a password: never shown)
  std::string shown;     // for messages
  std::string password;  // to scrub from libpq's messages
  int64_t lease_ms = 30000;
  // The lease this engine holds: every write renews it by token, and fails
  // when another engine has taken it over.
  std::string fence_key;
  int64_t fence_token = 0;
  // When a write last renewed it (steady clock): read without `mu`.
  std::atomic<std::chrono::steady_clock::rep> fence_renewed{0};

  std::string Scrub(std::string msg) const {
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    if (password.empty()) return msg;
    for (size_t at; (at = msg.find(password)) != std::string::npos;)
      msg.replace(at, password.size(), "***");
    return msg;
  }
  Status Error(const std::string& op, const PGresult* r = nullptr) const {
    std::string msg = r ? PQresultErrorMessage(r) : "";
    if (msg.empty()) msg = conn ? PQerrorMessage(conn) : "out of memory";
    return Status::Internal("state store " + shown + ": " + op + ": " + Scrub(msg));
  }
  // A connection lost since the last call (the server restarted) is
  // reopened once before the next operation.
  bool Ready() {
    if (PQstatus(conn) != CONNECTION_OK) PQreset(conn);
    return PQstatus(conn) == CONNECTION_OK;
  }
  // A statement outside a transaction that may run twice (a read): run
  // again once on a new connection if the server went away (it restarted).
  PgResult Read(const char* sql, const std::vector<std::string>& params = {}) {
    if (!Ready()) return nullptr;
    PgResult r = Exec(sql, params);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK && PQstatus(conn) == CONNECTION_BAD && Ready()) {
      r = Exec(sql, params);
    }
    return r;
  }
  PgResult Exec(const char* sql, const std::vector<std::string>& params = {}) {
    // Without parameters, the simple protocol (a migration is several
    // statements).
    if (params.empty()) return PgResult(PQexec(conn, sql));
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    return PgResult(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(),
                                 nullptr, nullptr, 0));
  }
};

bool Ok(const PgResult& r) {
  const ExecStatusType st = PQresultStatus(r.get());
  return r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}
std::string Text(const PgResult& r, int row, int col) { return PQgetvalue(r.get(), row, col); }
int64_t Int(const PgResult& r, int row, int col) {
  return std::strtoll(PQgetvalue(r.get(), row, col), nullptr, 10);
}
int64_t Affected(const PgResult& r) { return std::strtoll(PQcmdTuples(r.get()), nullptr, 10); }

// A transaction that rolls back unless Commit() succeeded.
class Txn {
 public:
  explicit Txn(Session* s) : s_(s) {}
  ~Txn() {
    if (open_) s_->Exec("ROLLBACK");
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  PgResult Begin() {
    PgResult r = s_->Exec("BEGIN");
    open_ = Ok(r);
    return r;
  }
  PgResult Commit() {
    open_ = false;
    return s_->Exec("COMMIT");
  }

 private:
  Session* s_;
  bool open_ = false;
};

// The lease of lock `key` (its row) is no longer this engine's: who has it.
Status TakenOver(Session* s, const std::string& key) {
  PgResult who = s->Exec("SELECT run_id, holder FROM runbook.leases WHERE key = $1", {Clean(key)});
  std::string by = Ok(who) && PQntuples(who.get()) == 1
                       ? " by run " + Text(who, 0, 0) + " (" + Text(who, 0, 1) + ")"
                       : "";
  return Status::Unavailable("lock '" + key + "': this engine's lease was taken over" + by +
                             " (it was presumed dead); nothing more is done by this engine");
}

// Inside a write transaction: renews this engine's lease by token, or says
// it was taken over. Ok when no lease is held.
Status CheckFence(Session* s) {
  if (s->fence_key.empty()) return Status::Ok();
  PgResult r = s->Exec(
      "UPDATE runbook.leases SET expires_at = now() + $3::bigint * interval '1 millisecond'"
      " WHERE key = $1 AND token = $2::bigint",
      {Clean(s->fence_key), std::to_string(s->fence_token), std::to_string(s->lease_ms)});
  if (!Ok(r)) return s->Error("cannot renew the lease of lock '" + s->fence_key + "'", r.get());
  if (Affected(r) != 1) return TakenOver(s, s->fence_key);
  s->fence_renewed = std::chrono::steady_clock::now().time_since_epoch().count();
  return Status::Ok();
}

// Runs `write` in a transaction behind the fence; `op` names it in errors.
template <typename F>
Status Write(Session* s, const std::string& op, bool durable, F write) {
  if (!s->Ready()) return s->Error(op);
  Txn txn(s);
  PgResult r = txn.Begin();
  // A connection the server closed since the last call (it restarted) is
  // found out here, before anything was sent: reconnect and begin again.
  if (!Ok(r) && PQstatus(s->conn) == CONNECTION_BAD && s->Ready()) r = txn.Begin();
  if (!Ok(r)) return s->Error(op, r.get());
  // Durability is set for each transaction, whatever the session or the
  // role says (a pooler's server connection may carry another client's
  // settings); a write waits at most a minute (a lock, a stuck server).
  r = s->Exec(durable
                  ? "SET LOCAL synchronous_commit TO on; SET LOCAL statement_timeout TO '60s'"
                  : "SET LOCAL synchronous_commit TO off; SET LOCAL statement_timeout TO '60s'");
  if (!Ok(r)) return s->Error(op, r.get());
  Status fence = CheckFence(s);
  if (!fence.ok()) return fence;
  Status st = write();
  if (!st.ok()) return st;
  r = txn.Commit();
  if (!Ok(r)) return s->Error(op, r.get());
  return Status::Ok();
}

Status ReadRun(const PgResult& r, int row, RunRecord* run) {
  run->id = Text(r, row, 0);
  run->runbook_name = Text(r, row, 1);
  run->runbook_path = Text(r, row, 2);
  run->digest = Text(r, row, 3);
  const std::string what = "run '" + run->id + "' column ";
  Status s = ParseJson(Text(r, row, 4), what + "sources", &run->sources);
  if (s.ok()) s = ParseJson(Text(r, row, 5), what + "params", &run->params);
  if (s.ok()) s = ParseJson(Text(r, row, 13), what + "options", &run->options);
  if (!s.ok()) return s;
  run->params_digest = Text(r, row, 6);
  run->dry_run = Text(r, row, 7) == "t";
  run->lock_key = Text(r, row, 8);
  std::optional<RunStatus> status = ParseRunStatus(Text(r, row, 9));
  if (!status) {
    return Status::Internal("unknown status '" + Text(r, row, 9) + "' of run '" + run->id + "'");
  }
  run->status = *status;
  run->error = Text(r, row, 10);
  run->created_ms = Int(r, row, 11);
  run->updated_ms = Int(r, row, 12);
  return Status::Ok();
}

Status ReadStep(const PgResult& r, int row, StepRecord* step) {
  step->run_id = Text(r, row, 0);
  step->step_id = Text(r, row, 1);
  step->seq = Int(r, row, 2);
  step->done_seq = Int(r, row, 3);
  std::optional<StepStatus> status = ParseStepStatus(Text(r, row, 4));
  if (!status) {
    return Status::Internal("unknown status '" + Text(r, row, 4) + "' of step '" + step->step_id +
                            "'");
  }
  step->status = *status;
  step->attempts = static_cast<int>(Int(r, row, 5));
  step->started_ms = Int(r, row, 6);
  step->finished_ms = Int(r, row, 7);
  step->duration_ms = Int(r, row, 8);
  step->action = Text(r, row, 9);
  step->change = Text(r, row, 10);
  step->error = Text(r, row, 13);
  step->undo_error = Text(r, row, 15);
  const std::string what = "step '" + step->step_id + "' column ";
  Value undo;
  Status s = ParseJson(Text(r, row, 11), what + "result", &step->result);
  if (s.ok()) s = ParseJson(Text(r, row, 12), what + "tables", &step->tables);
  if (s.ok()) s = ParseJson(Text(r, row, 14), what + "undo", &undo);
  if (s.ok()) s = ParseJson(Text(r, row, 16), what + "item", &step->item);
  if (s.ok()) s = state_internal::UndoFromValue(undo, what + "undo", &step->undo);
  return s;
}

std::vector<std::string> EventParams(const Event& e) {
  return {Clean(e.run_id), Clean(e.step_id), std::to_string(e.at_ms), Clean(e.kind),
          Clean(e.message)};
}
const char kInsertEvent[] =
    "INSERT INTO runbook.events(run_id, step_id, at_ms, kind, message)"
    " VALUES($1, $2, $3::bigint, $4, $5)";

// The lease of a run lock this engine holds: renewed every third of its
// length until destroyed, then released. Held() says once a renewal found
// it taken over, or none succeeded for two thirds of its length (another
// engine may take it when it ends): the executor then stops the step that
// acts (engine/core/interrupt.h), the writes stop at the fence.
class PgLease final : public StoreLock {
 public:
  PgLease(std::shared_ptr<Session> s, std::string key, int64_t token)
      : s_(std::move(s)),
        key_(std::move(key)),
        token_(token),
        renewal_(Every(*s_), [this] { return Renew(); }) {}
  ~PgLease() override {
    renewal_.Stop();
    std::lock_guard<std::mutex> lock(s_->mu);
    if (s_->fence_key == key_ && s_->fence_token == token_) {
      s_->fence_key.clear();
      s_->fence_token = 0;
    }
    if (s_->Ready()) {
      s_->Exec("DELETE FROM runbook.leases WHERE key = $1 AND token = $2::bigint",
               {Clean(key_), std::to_string(token_)});
    }
  }

  Status Held() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!lost_.ok()) return lost_;
    // A write's renewal counts too (one rolled back fails its write).
    const std::chrono::steady_clock::time_point by_write{
        std::chrono::steady_clock::duration(s_->fence_renewed.load())};
    const auto since = std::chrono::steady_clock::now() - std::max(renewed_, by_write);
    if (since > std::chrono::milliseconds(s_->lease_ms * 2 / 3)) {
      return Status::Unavailable("lock '" + key_ + "': the lease could not be renewed for " +
                                 std::to_string(s_->lease_ms * 2 / 3 / 1000) +
                                 " s: another engine may take it from now on");
    }
    return Status::Ok();
  }

 private:
  static std::chrono::milliseconds Every(const Session& s) {
    return std::chrono::milliseconds(std::max<int64_t>(s.lease_ms / 3, 100));
  }

  std::optional<std::chrono::milliseconds> Renew() {
    const auto sent = std::chrono::steady_clock::now();
    Status taken;
    bool renewed = false;
    {
      std::lock_guard<std::mutex> session(s_->mu);
      // A lease lost here is found out by the next write (CheckFence) too.
      const std::vector<std::string> args{Clean(key_), std::to_string(token_),
                                          std::to_string(s_->lease_ms)};
      const char* renew =
          "UPDATE runbook.leases SET expires_at = now() + $3::bigint * interval '1 millisecond'"
          " WHERE key = $1 AND token = $2::bigint";
      if (s_->Ready()) {
        PgResult r = s_->Exec(renew, args);
        // The server went away since (it restarted): once more, anew.
        if (!Ok(r) && PQstatus(s_->conn) == CONNECTION_BAD && s_->Ready())
          r = s_->Exec(renew, args);
        renewed = Ok(r) && Affected(r) == 1;
        if (Ok(r) && !renewed) taken = TakenOver(s_.get(), key_);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (renewed) renewed_ = sent;
    if (!taken.ok()) {
      lost_ = taken;
      return std::nullopt;  // another engine's now
    }
    return renewed ? Every(*s_) : std::min(Every(*s_), std::chrono::milliseconds(1000));
  }

  std::shared_ptr<Session> s_;
  std::string key_;
  int64_t token_;
  mutable std::mutex mu_;  // guards what follows
  Status lost_;
  std::chrono::steady_clock::time_point renewed_ = std::chrono::steady_clock::now();
  RenewalThread renewal_;  // last: started once the rest is ready
};

class PgStateStore final : public StateStore {
 private:
  std::mutex listen_mu_;      // guards what follows
  PGconn* listen_ = nullptr;  // LISTENing on kApprovalChannel, or null
  std::chrono::steady_clock::time_point listen_retry_{};  // after a failure, not before

  // Opens the listener; false if it cannot (tried again a minute later),
  // or if RUNBOOK_STATE_LISTEN=off (behind a transaction pooler, where a
  // LISTEN stays on whichever server connection ran it).
  bool Listening() {
    if (listen_) return true;
    const char* off = std::getenv("RUNBOOK_STATE_LISTEN");
    if (off && std::string(off) == "off") return false;
    if (std::chrono::steady_clock::now() < listen_retry_) return false;
    listen_ = Connect(s_->uri);
    PgResult r(listen_ && PQstatus(listen_) == CONNECTION_OK
                   ? PQexec(listen_, (std::string("LISTEN ") + kApprovalChannel).c_str())
                   : nullptr);
    if (!Ok(r)) {
      DropListener();
      listen_retry_ = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      return false;
    }
    return true;
  }
  void DropListener() {
    if (listen_) PQfinish(listen_);
    listen_ = nullptr;
  }

 public:
  explicit PgStateStore(std::shared_ptr<Session> s) : s_(std::move(s)) {}
  const std::string& path() const override { return s_->shown; }

  Status Migrate();

  Status CreateRun(const RunRecord& run) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot create run '" + run.id + "'";
    return Write(s_.get(), op, true, [&]() -> Status {
      PgResult r = s_->Exec(
          "INSERT INTO runbook.runs(id, runbook_name, runbook_path, digest, sources, params,"
          " params_digest, dry_run, lock_key, status, error, created_ms, updated_ms, options)"
          " VALUES($1, $2, $3, $4, $5, $6, $7, $8::boolean, $9, $10, $11, $12::bigint,"
          " $13::bigint, $14)",
          {Clean(run.id), Clean(run.runbook_name), Clean(run.runbook_path), Clean(run.digest),
           DumpJson(run.sources), DumpJson(run.params), Clean(run.params_digest),
           run.dry_run ? "true" : "false", Clean(run.lock_key), RunStatusName(run.status),
           Clean(run.error), std::to_string(run.created_ms), std::to_string(run.updated_ms),
           DumpJson(run.options)});
      return Ok(r) ? Status::Ok() : s_->Error(op, r.get());
    });
  }

  Status UpdateRun(const std::string& run_id, RunStatus status, const std::string& error) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot update run '" + run_id + "'";
    return Write(s_.get(), op, true, [&]() -> Status {
      PgResult r = s_->Exec(
          "UPDATE runbook.runs SET status = $2, error = $3, updated_ms = $4::bigint"
          " WHERE id = $1",
          {Clean(run_id), RunStatusName(status), Clean(error),
           std::to_string(Clock::Real().NowMs())});
      if (!Ok(r)) return s_->Error(op, r.get());
      if (Affected(r) == 0) {
        return Status::NotFound("no run '" + run_id + "' in state store " + s_->shown);
      }
      return Status::Ok();
    });
  }

  Result<RunRecord> GetRun(const std::string& run_id) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot read run '" + run_id + "'";
    PgResult r = s_->Read(
        (std::string("SELECT ") + kRunColumns + " FROM runbook.runs WHERE id = $1").c_str(),
        {Clean(run_id)});
    if (!Ok(r)) return s_->Error(op, r.get());
    if (PQntuples(r.get()) == 0) {
      return Status::NotFound("no run '" + run_id + "' in state store " + s_->shown);
    }
    RunRecord run;
    Status s = ReadRun(r, 0, &run);
    if (!s.ok()) return s.Prefixed("state store " + s_->shown);
    return run;
  }

  Result<std::vector<RunRecord>> ListRuns(int limit) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    PgResult r = s_->Read((std::string("SELECT ") + kRunColumns +
                           " FROM runbook.runs ORDER BY created_ms DESC, id DESC"
                           " LIMIT NULLIF($1::bigint, 0)")
                              .c_str(),
                          {std::to_string(limit > 0 ? limit : 0)});
    if (!Ok(r)) return s_->Error("cannot list runs", r.get());
    std::vector<RunRecord> runs(PQntuples(r.get()));
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      Status s = ReadRun(r, i, &runs[i]);
      if (!s.ok()) return s.Prefixed("state store " + s_->shown);
    }
    return runs;
  }

  Status PutStep(StepRecord* step, const Event* event, bool durable) override {
    if (!step) return Status::Internal("PutStep: no step");
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot write step '" + step->step_id + "'";
    StepRecord row = *step;
    Status st = Write(s_.get(), op, durable, [&]() -> Status {
      // The stored seq and done_seq win over the caller's (as in SQLite); the
      // run's row lock orders concurrent writers of one run.
      PgResult r =
          s_->Exec("SELECT 1 FROM runbook.runs WHERE id = $1 FOR UPDATE", {Clean(step->run_id)});
      if (!Ok(r)) return s_->Error(op, r.get());
      r = s_->Exec(
          "SELECT COALESCE((SELECT seq FROM runbook.steps WHERE run_id = $1 AND step_id = $2),"
          "   (SELECT COALESCE(MAX(seq), 0) + 1 FROM runbook.steps WHERE run_id = $1)),"
          " COALESCE((SELECT done_seq FROM runbook.steps WHERE run_id = $1 AND step_id = $2), 0),"
          " (SELECT COALESCE(MAX(done_seq), 0) + 1 FROM runbook.steps WHERE run_id = $1)",
          {Clean(step->run_id), Clean(step->step_id)});
      if (!Ok(r) || PQntuples(r.get()) != 1) return s_->Error(op, r.get());
      row.seq = Int(r, 0, 0);
      row.done_seq = Int(r, 0, 1);
      if (row.status == StepStatus::kSucceeded && row.done_seq == 0) row.done_seq = Int(r, 0, 2);
      r = s_->Exec(
          "INSERT INTO runbook.steps(run_id, step_id, seq, done_seq, status, attempts,"
          " started_ms, finished_ms, duration_ms, action_name, change, result, tables, error,"
          " undo, undo_error, item) VALUES($1, $2, $3::bigint, $4::bigint, $5, $6::integer,"
          " $7::bigint, $8::bigint, $9::bigint, $10, $11, $12, $13, $14, $15, $16, $17)"
          " ON CONFLICT (run_id, step_id) DO UPDATE SET seq = excluded.seq,"
          " done_seq = excluded.done_seq, status = excluded.status,"
          " attempts = excluded.attempts, started_ms = excluded.started_ms,"
          " finished_ms = excluded.finished_ms, duration_ms = excluded.duration_ms,"
          " action_name = excluded.action_name, change = excluded.change,"
          " result = excluded.result, tables = excluded.tables, error = excluded.error,"
          " undo = excluded.undo, undo_error = excluded.undo_error, item = excluded.item",
          {Clean(row.run_id), Clean(row.step_id), std::to_string(row.seq),
           std::to_string(row.done_seq), StepStatusName(row.status), std::to_string(row.attempts),
           std::to_string(row.started_ms), std::to_string(row.finished_ms),
           std::to_string(row.duration_ms), Clean(row.action), Clean(row.change),
           DumpJson(row.result), DumpJson(row.tables), Clean(row.error),
           DumpJson(state_internal::UndoToValue(row.undo)), Clean(row.undo_error),
           DumpJson(row.item)});
      if (!Ok(r)) return s_->Error(op, r.get());
      if (event) {
        // An event written with a step belongs to it unless it says otherwise.
        Event e = *event;
        if (e.run_id.empty()) e.run_id = step->run_id;
        if (e.step_id.empty()) e.step_id = step->step_id;
        r = s_->Exec(kInsertEvent, EventParams(e));
        if (!Ok(r)) return s_->Error(op + " (event '" + e.kind + "')", r.get());
      }
      return Status::Ok();
    });
    if (!st.ok()) return st;
    step->seq = row.seq;
    step->done_seq = row.done_seq;
    return Status::Ok();
  }

  Result<std::vector<StepRecord>> GetSteps(const std::string& run_id) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot read the steps of run '" + run_id + "'";
    PgResult r = s_->Read((std::string("SELECT ") + kStepColumns +
                           " FROM runbook.steps WHERE run_id = $1 ORDER BY seq")
                              .c_str(),
                          {Clean(run_id)});
    if (!Ok(r)) return s_->Error(op, r.get());
    std::vector<StepRecord> steps(PQntuples(r.get()));
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      Status s = ReadStep(r, i, &steps[i]);
      if (!s.ok()) return s.Prefixed("state store " + s_->shown);
    }
    return steps;
  }

  Result<std::optional<StepRecord>> GetStep(const std::string& run_id,
                                            const std::string& step_id) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot read step '" + step_id + "'";
    PgResult r = s_->Read((std::string("SELECT ") + kStepColumns +
                           " FROM runbook.steps WHERE run_id = $1 AND step_id = $2")
                              .c_str(),
                          {Clean(run_id), Clean(step_id)});
    if (!Ok(r)) return s_->Error(op, r.get());
    if (PQntuples(r.get()) == 0) return std::optional<StepRecord>();
    StepRecord step;
    Status s = ReadStep(r, 0, &step);
    if (!s.ok()) return s.Prefixed("state store " + s_->shown);
    return std::optional<StepRecord>(std::move(step));
  }

  Status AppendEvent(const Event& e) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot write event '" + e.kind + "'";
    return Write(s_.get(), op, true, [&]() -> Status {
      PgResult r = s_->Exec(kInsertEvent, EventParams(e));
      return Ok(r) ? Status::Ok() : s_->Error(op, r.get());
    });
  }

  Result<std::vector<Event>> GetEvents(const std::string& run_id) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot read the events of run '" + run_id + "'";
    PgResult r = s_->Read(
        "SELECT id, run_id, step_id, at_ms, kind, message FROM runbook.events"
        " WHERE run_id = $1 ORDER BY id",
        {Clean(run_id)});
    if (!Ok(r)) return s_->Error(op, r.get());
    std::vector<Event> events;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      events.push_back(Event{Int(r, i, 0), Text(r, i, 1), Text(r, i, 2), Int(r, i, 3),
                             Text(r, i, 4), Text(r, i, 5)});
    }
    return events;
  }

  Status RecordApproval(const Approval& a) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot record the approval of step '" + a.step_id + "'";
    // An approval is given from another engine than the run's: it is not
    // behind the run's fence, and needs no lease of its own.
    return Write(s_.get(), op, true, [&]() -> Status {
      PgResult r = s_->Exec(
          "INSERT INTO runbook.approvals(run_id, step_id, approved_by, at_ms)"
          " VALUES($1, $2, $3, $4::bigint) ON CONFLICT (run_id, step_id) DO UPDATE"
          " SET approved_by = excluded.approved_by, at_ms = excluded.at_ms",
          {Clean(a.run_id), Clean(a.step_id), Clean(a.by), std::to_string(a.at_ms)});
      if (!Ok(r)) return s_->Error(op, r.get());
      // Delivered at commit, to every engine waiting on this store.
      r = s_->Exec("SELECT pg_notify($1, $2)", {kApprovalChannel, Clean(a.run_id)});
      return Ok(r) ? Status::Ok() : s_->Error(op, r.get());
    });
  }

  bool NotifiesApprovals() const override { return true; }

  // LISTENs on a connection of its own (the store's is shared with the
  // lease, whose renewals must not wait behind this), then reads the
  // approval: one recorded after the LISTEN wakes the wait. Without a
  // listener (it cannot connect, or a transaction pooler drops
  // notifications) this is a read after `max`: the caller's loop polls.
  Result<std::optional<Approval>> WaitForApproval(const std::string& run_id,
                                                  const std::string& step_id,
                                                  std::chrono::milliseconds max) override {
    const auto until = std::chrono::steady_clock::now() + max;
    std::unique_lock<std::mutex> lock(listen_mu_);
    if (!Listening()) {
      lock.unlock();
      Result<std::optional<Approval>> a = GetApproval(run_id, step_id);
      if (!a.ok() || a->has_value()) return a;
      std::this_thread::sleep_until(until);
      return GetApproval(run_id, step_id);
    }
    for (;;) {
      Result<std::optional<Approval>> a = GetApproval(run_id, step_id);
      if (a.ok() && a->has_value()) DropListener();  // the gate is passed: one connection again
      if (!a.ok() || a->has_value()) return a;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return a;
      pollfd fd{PQsocket(listen_), POLLIN, 0};
      const int ready = poll(&fd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno != EINTR) {
        DropListener();
        return GetApproval(run_id, step_id);
      }
      if (ready <= 0) continue;        // the time is up (or a signal): read once more
      if (!PQconsumeInput(listen_)) {  // the connection is gone: poll from now on
        DropListener();
        return GetApproval(run_id, step_id);
      }
      // Any approval on this store wakes it: the read above decides.
      while (PGnotify* n = PQnotifies(listen_)) PQfreemem(n);
    }
  }

  ~PgStateStore() override { DropListener(); }

  Result<std::optional<Approval>> GetApproval(const std::string& run_id,
                                              const std::string& step_id) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot read the approval of step '" + step_id + "'";
    PgResult r = s_->Read(
        "SELECT run_id, step_id, approved_by, at_ms FROM runbook.approvals"
        " WHERE run_id = $1 AND step_id = $2",
        {Clean(run_id), Clean(step_id)});
    if (!Ok(r)) return s_->Error(op, r.get());
    if (PQntuples(r.get()) == 0) return std::optional<Approval>();
    return std::optional<Approval>(
        Approval{Text(r, 0, 0), Text(r, 0, 1), Text(r, 0, 2), Int(r, 0, 3)});
  }

  Result<std::map<std::string, int64_t>> RecentDurations(const std::string& runbook_name) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot read the durations of runbook '" + runbook_name + "'";
    // As in SQLite: real runs first, then newest first; the first row of
    // each step id wins.
    PgResult r = s_->Read(
        "SELECT s.step_id, s.duration_ms FROM runbook.steps s JOIN runbook.runs r"
        " ON r.id = s.run_id WHERE r.runbook_name = $1 AND s.status = $2"
        " ORDER BY r.dry_run ASC, s.finished_ms DESC, r.created_ms DESC, r.id DESC",
        {Clean(runbook_name), StepStatusName(StepStatus::kSucceeded)});
    if (!Ok(r)) return s_->Error(op, r.get());
    std::map<std::string, int64_t> durations;
    for (int i = 0; i < PQntuples(r.get()); ++i) durations.emplace(Text(r, i, 0), Int(r, i, 1));
    return durations;
  }

  Result<std::unique_ptr<StoreLock>> AcquireLock(const std::string& key,
                                                 const std::string& run_id) override {
    if (key.empty()) return Status::Invalid("lock key is empty");
    std::lock_guard<std::mutex> lock(s_->mu);
    const std::string op = "cannot take the lease of lock '" + key + "'";
    if (!s_->fence_key.empty()) {
      return Status::Internal(op + ": this engine already holds lock '" + s_->fence_key + "'");
    }
    if (!s_->Ready()) return s_->Error(op);
    const std::string row = LeaseKey(key);
    const std::string host = HostName();
    const std::string me = (host.empty() ? "unknown" : host) + " " + std::to_string(getpid());
    const std::string liveness = ProcessLiveness(getpid());
    // A holder on this machine whose process is gone is not waited for; the
    // upsert below takes the row only if it still names that holder.
    std::string dead = "\x01";  // matches no holder
    PgResult r = s_->Read(
        "SELECT liveness FROM runbook.leases WHERE key = $1 AND expires_at > now()", {row});
    if (!Ok(r)) return s_->Error(op, r.get());
    if (PQntuples(r.get()) == 1 && HolderIsDeadHere(Text(r, 0, 0))) dead = Text(r, 0, 0);
    r = s_->Exec(
        "INSERT INTO runbook.leases AS l(key, run_id, holder, liveness, token, expires_at)"
        " VALUES($1, $2, $3, $4, nextval('runbook.lease_tokens'),"
        "        now() + $5::bigint * interval '1 millisecond')"
        " ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, holder = excluded.holder,"
        " liveness = excluded.liveness, token = excluded.token, expires_at = excluded.expires_at"
        " WHERE l.expires_at <= now() OR l.liveness = $6"
        " RETURNING token",
        {row, Clean(run_id), Clean(me), liveness, std::to_string(s_->lease_ms), Clean(dead)});
    if (!Ok(r)) return s_->Error(op, r.get());
    if (PQntuples(r.get()) == 1) {
      const int64_t token = Int(r, 0, 0);
      std::unique_ptr<StoreLock> lease;
      try {
        lease.reset(new PgLease(s_, row, token));
      } catch (const std::system_error& e) {  // no thread for the renewals
        s_->Exec("DELETE FROM runbook.leases WHERE key = $1 AND token = $2::bigint",
                 {row, std::to_string(token)});
        return Status::Internal(op + ": " + e.what());
      }
      s_->fence_key = row;
      s_->fence_token = token;
      return lease;
    }
    r = s_->Exec(
        "SELECT run_id, holder, ceil(extract(epoch FROM expires_at - now()))::bigint"
        " FROM runbook.leases WHERE key = $1",
        {row});
    if (!Ok(r)) return s_->Error(op, r.get());
    if (PQntuples(r.get()) != 1)
      return Status::Unavailable("lock '" + key + "' is held by another run");
    return Status::Unavailable("lock '" + key + "' is held by run " + Text(r, 0, 0) + " (" +
                               Text(r, 0, 1) + "; its lease ends in " + Text(r, 0, 2) +
                               " s unless renewed)");
  }

  bool LockHeld(const std::string& key) override {
    if (key.empty()) return false;
    std::lock_guard<std::mutex> lock(s_->mu);
    // Unknown (the server is unreachable) counts as held: a run is not
    // called interrupted on a guess.
    PgResult r =
        s_->Read("SELECT liveness FROM runbook.leases WHERE key = $1 AND expires_at > now()",
                 {LeaseKey(key)});
    if (!Ok(r)) return true;
    return PQntuples(r.get()) == 1 && !HolderIsDeadHere(Text(r, 0, 0));
  }

 private:
  std::shared_ptr<Session> s_;
};

Status PgStateStore::Migrate() {
  const std::string op = "cannot create or migrate the schema";
  // `schema`: a schema "runbook" exists; `empty`: it holds nothing (a DBA
  // may create it for us); `ours`: it holds our runbook.meta.
  auto version = [&](int* v, bool* ours, bool* schema, bool* empty) -> Status {
    PgResult r = s_->Exec(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'runbook'),"
        " NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "             WHERE n.nspname = 'runbook'),"
        " EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('runbook.meta')"
        "         AND attname = 'application' AND NOT attisdropped)");
    if (!Ok(r)) return s_->Error(op, r.get());
    *schema = Text(r, 0, 0) == "t";
    *empty = Text(r, 0, 1) == "t";
    *ours = false;
    *v = 0;
    if (Text(r, 0, 2) != "t") return Status::Ok();
    r = s_->Exec(
        "SELECT max(schema_version) FROM runbook.meta WHERE application = 'runbook state store'");
    if (!Ok(r)) return s_->Error(op, r.get());
    *ours = !PQgetisnull(r.get(), 0, 0);
    *v = static_cast<int>(Int(r, 0, 0));
    return Status::Ok();
  };
  auto check = [&](int v, bool ours, bool schema, bool empty) -> Status {
    if (schema && !ours && !empty) {
      return Status::Invalid("state store " + s_->shown +
                             ": the schema \"runbook\" of this database belongs to something "
                             "else (it holds tables and no runbook.meta of ours); nothing was "
                             "changed in it");
    }
    if (v > kSchemaVersion) {
      return Status::Invalid("state store " + s_->shown + ": schema version " + std::to_string(v) +
                             " is newer than this runbook supports (" +
                             std::to_string(kSchemaVersion) + ")");
    }
    return Status::Ok();
  };
  int v = 0;
  bool ours = false, schema = false, empty = false;
  Status st = version(&v, &ours, &schema, &empty);
  if (st.ok()) st = check(v, ours, schema, empty);
  if (!st.ok() || (ours && v == kSchemaVersion)) return st;

  // Again under the migration lock: another engine may have migrated.
  Txn txn(s_.get());
  PgResult r = txn.Begin();
  if (!Ok(r)) return s_->Error(op, r.get());
  r = s_->Exec(kMigrationLock);
  if (!Ok(r)) return s_->Error(op, r.get());
  st = version(&v, &ours, &schema, &empty);
  if (st.ok()) st = check(v, ours, schema, empty);
  if (!st.ok() || (ours && v == kSchemaVersion)) return st;
  if (!schema) {
    r = s_->Exec("CREATE SCHEMA runbook");
    if (!Ok(r)) return s_->Error(op, r.get());
  }
  for (int i = v; i < kSchemaVersion; ++i) {
    r = s_->Exec(kMigrations[i]);
    if (!Ok(r)) return s_->Error(op, r.get());
  }
  r = s_->Exec("UPDATE runbook.meta SET schema_version = $1::integer",
               {std::to_string(kSchemaVersion)});
  if (!Ok(r)) return s_->Error(op, r.get());
  r = txn.Commit();
  if (!Ok(r)) return s_->Error(op, r.get());
  return Status::Ok();
}

}  // namespace

namespace {

// libpq takes the scheme in lower case only; IsPostgresLocation any case.
std::string LowerScheme(std::string uri) {
  if (const size_t colon = uri.find("://"); colon != std::string::npos && colon <= 10) {
    for (size_t i = 0; i < colon; ++i) uri[i] = static_cast<char>(tolower(uri[i]));
  }
  return uri;
}

// The settings of a state URI (any case of scheme); nullopt if libpq cannot
// parse it.
std::optional<std::map<std::string, std::string>> UriSettings(const std::string& given) {
  const std::string uri = LowerScheme(given);
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(uri.c_str(), &err);
  if (err) PQfreemem(err);
  if (!opts) return std::nullopt;
  std::map<std::string, std::string> o;
  for (PQconninfoOption* p = opts; p->keyword; ++p) {
    if (p->val && *p->val) o[p->keyword] = p->val;
  }
  PQconninfoFree(opts);
  return o;
}

}  // namespace

std::string ShownPostgresLocation(const std::string& uri) {
  std::optional<std::map<std::string, std::string>> settings = UriSettings(uri);
  if (!settings) return "";
  std::map<std::string, std::string>& o = *settings;
  std::string shown = "postgresql://";
  if (o.count("user")) shown += o["user"] + "@";
  shown += o.count("host") ? o["host"] : o.count("hostaddr") ? o["hostaddr"] : "";
  if (o.count("port")) shown += ":" + o["port"];
  shown += "/" + (o.count("dbname") ? o["dbname"] : "");
  if (o.count("service")) shown += "?service=" + o["service"];
  return shown;
}

std::string PostgresPassword(const std::string& uri) {
  std::optional<std::map<std::string, std::string>> settings = UriSettings(uri);
  if (!settings || !settings->count("password")) return "";
  return settings->at("password");
}

namespace {

// A connection to the store at `uri` (libpq's conventions), never null.
// Defaults the URI and the PG* variables override: a state store that
// cannot be reached fails in seconds (keepalives and tcp_user_timeout: a
// dead network is found out in about half a minute, not the kernel's
// fifteen), and is named in pg_stat_activity.
PGconn* Connect(const std::string& uri) {
  std::vector<const char*> keys, values;
  if (!std::getenv("PGCONNECT_TIMEOUT")) keys.push_back("connect_timeout"), values.push_back("10");
  static const char* const kNetwork[][2] = {{"keepalives", "1"},
                                            {"keepalives_idle", "10"},
                                            {"keepalives_interval", "5"},
                                            {"keepalives_count", "3"},
                                            {"tcp_user_timeout", "30000"}};
  for (const auto& kv : kNetwork) keys.push_back(kv[0]), values.push_back(kv[1]);
  if (!std::getenv("PGAPPNAME")) {
    keys.push_back("application_name"), values.push_back("runbook state store");
  }
  keys.push_back("dbname"), values.push_back(uri.c_str());
  // Text is UTF-8 both ways, whatever the client's locale.
  keys.push_back("client_encoding"), values.push_back("UTF8");
  keys.push_back(nullptr), values.push_back(nullptr);
  return PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
}

}  // namespace

Result<std::unique_ptr<StateStore>> OpenPostgresStore(const std::string& given,
                                                      const PgStoreOptions& options) {
  const std::string uri = LowerScheme(given);
  auto s = std::make_shared<Session>();
  s->uri = uri;
  s->shown = ShownPostgresLocation(uri);
  s->lease_ms = options.lease_ms;
  if (s->shown.empty()) {
    return Status::Invalid(
        "state store: not a PostgreSQL connection URI (postgresql://[user@]host[:port]/dbname"
        "[?param=value...], as libpq takes it)");
  }
  s->password = PostgresPassword(uri);
  s->conn = Connect(uri);
  if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) return s->Error("cannot connect");
  const char* enc = PQparameterStatus(s->conn, "server_encoding");
  if (!enc || (std::string(enc) != "UTF8" && std::string(enc) != "SQL_ASCII")) {
    return Status::Invalid("state store " + s->shown + ": the database's encoding is " +
                           (enc ? enc : "unknown") +
                           "; a state store needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')");
  }
  auto store = std::make_unique<PgStateStore>(s);
  Status st = store->Migrate();
  if (!st.ok()) return st;
  return std::unique_ptr<StateStore>(std::move(store));
}

Result<std::unique_ptr<StateStore>> OpenPostgresStore(const std::string& uri) {
  PgStoreOptions options;
  Result<std::chrono::seconds> length = LeaseLength();
  if (!length.ok()) return length.status();
  options.lease_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*length).count();
  return OpenPostgresStore(uri, options);
}

}  // namespace runbook
