// The state store: opening, schema migrations and runs. Steps, events and
// approvals are in store_steps.cc.
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "engine/core/clock.h"
#include "engine/state/lock.h"
#include "engine/state/pg_store.h"
#include "engine/state/private_dir.h"
#include "engine/state/sqlite_stmt.h"
#include "engine/state/sqlite_store.h"

namespace runbook {

using state_internal::ExecSql;
using state_internal::SqlError;
using state_internal::Stmt;
using state_internal::Transaction;

namespace {

const char* const kRunStatusNames[] = {
    "running", "succeeded",    "failed",      "paused",
    "stopped", "rolling_back", "rolled_back", "rollback_failed",
};
const char* const kStepStatusNames[] = {
    "pending", "running", "succeeded", "failed", "skipped",
    "unknown", "waiting", "undoing",   "undone", "undo_failed",
};

// Schema migrations: kMigrations[v] takes a store from user_version v to
// v + 1. Append only; never edit a shipped entry.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  runbook_name TEXT NOT NULL,
  runbook_path TEXT NOT NULL,
  digest TEXT NOT NULL,
  sources TEXT NOT NULL,
  params TEXT NOT NULL,
  params_digest TEXT NOT NULL,
  dry_run INTEGER NOT NULL,
  lock_key TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  options TEXT NOT NULL
);
CREATE INDEX runs_by_created ON runs(created_ms, id);
CREATE INDEX runs_by_name ON runs(runbook_name);
CREATE TABLE steps (
  run_id TEXT NOT NULL REFERENCES runs(id),
  step_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  done_seq INTEGER NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  action_name TEXT NOT NULL,
  change TEXT NOT NULL,
  result TEXT NOT NULL,
  tables TEXT NOT NULL,
  error TEXT NOT NULL,
  undo TEXT NOT NULL,
  undo_error TEXT NOT NULL,
  item TEXT NOT NULL,
  PRIMARY KEY (run_id, step_id)
);
CREATE INDEX steps_by_seq ON steps(run_id, seq);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES runs(id),
  step_id TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_run ON events(run_id, id);
CREATE TABLE approvals (
  run_id TEXT NOT NULL REFERENCES runs(id),
  step_id TEXT NOT NULL,
  approved_by TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id)
);
)sql",
    // 1 -> 2: a call's `changed` is a field of its undo entry. A step
    // recorded before said "nothing changed" with a result `changed: false`.
    R"sql(
UPDATE steps SET undo = json_set(undo, '$[0].changed', json('false'))
 WHERE json_type(result, '$.changed') = 'false' AND json_array_length(undo) = 1;
)sql",
};
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

const char kRunColumns[] =
    "id, runbook_name, runbook_path, digest, sources, params, params_digest, dry_run, lock_key, "
    "status, error, created_ms, updated_ms, options";

// Creates the file with mode 0600 before SQLite opens it (SQLite would use
// 0644), and syncs the directory so the new entry survives power loss.
Status CreatePrivateFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::Ok();
    return Status::Invalid("state store " + path + ": cannot create: " + strerror(errno));
  }
  close(fd);
  int dir = open(state_internal::DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  return Status::Ok();
}

// Runs a PRAGMA that returns one row and gives back its first column.
bool QueryPragma(sqlite3* db, const char* sql, std::string* out) {
  Stmt q(db, sql);
  if (q.Step() != Stmt::kRow) return false;
  *out = q.Text(0);
  return true;
}

bool UserVersion(sqlite3* db, int* version) {
  std::string text;
  if (!QueryPragma(db, "PRAGMA user_version", &text)) return false;
  *version = std::atoi(text.c_str());
  return true;
}

Status Configure(sqlite3* db, const std::string& path) {
  // busy_timeout first, so switching to WAL waits for a concurrent opener.
  if (!ExecSql(db, "PRAGMA busy_timeout=5000")) return SqlError(db, path, "cannot configure");
  std::string mode;
  if (!QueryPragma(db, "PRAGMA journal_mode=WAL", &mode)) {
    return SqlError(db, path, "cannot switch to WAL mode");
  }
  if (mode != "wal") {
    return Status::Internal("state store " + path +
                            ": cannot switch to WAL mode (journal mode is " + mode + ")");
  }
  std::string sync;
  if (!ExecSql(db, "PRAGMA synchronous=FULL") || !ExecSql(db, "PRAGMA foreign_keys=ON") ||
      !QueryPragma(db, "PRAGMA synchronous", &sync)) {
    return SqlError(db, path, "cannot configure");
  }
  if (sync != "2") {
    return Status::Internal("state store " + path + ": synchronous=FULL did not take (" + sync +
                            ")");
  }
  return Status::Ok();
}

// PRAGMA application_id of our stores ("RNBK"): a database of something
// else is never taken over.
constexpr int kApplicationId = 0x524e424b;

Status CheckOurs(sqlite3* db, const std::string& path) {
  std::string app, tables;
  if (!QueryPragma(db, "PRAGMA application_id", &app) ||
      !QueryPragma(db, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' "
                       "ESCAPE '\\'", &tables)) {
    return SqlError(db, path, "cannot read");
  }
  const int id = std::atoi(app.c_str());
  int version = 0;
  if (!UserVersion(db, &version)) return SqlError(db, path, "cannot read");
  const bool foreign = (id != 0 && id != kApplicationId) || (version == 0 && tables != "0");
  if (foreign) {
    return Status::Invalid("state store " + path +
                           ": this SQLite database belongs to something else (it has tables and "
                           "no runbook schema); nothing was changed in it. Give --state a new "
                           "file or an existing runbook state store");
  }
  return Status::Ok();
}

Status Migrate(sqlite3* db, const std::string& path) {
  const std::string op = "cannot migrate the schema";
  int version = 0;
  if (!UserVersion(db, &version)) return SqlError(db, path, op);
  if (version == kSchemaVersion) {
    // Stores made before the application id was set get it now.
    ExecSql(db, ("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
    return Status::Ok();
  }
  // Check again under the write lock: another process may have migrated.
  Transaction txn(db);
  if (!txn.Begin() || !UserVersion(db, &version)) return SqlError(db, path, op);
  if (version > kSchemaVersion) {
    return Status::Invalid("state store " + path + ": schema version " + std::to_string(version) +
                           " is newer than this runbook supports (" +
                           std::to_string(kSchemaVersion) + ")");
  }
  if (version == kSchemaVersion) return Status::Ok();  // the destructor ends the transaction
  for (int v = version; v < kSchemaVersion; ++v) {
    if (!ExecSql(db, kMigrations[v])) return SqlError(db, path, op);
  }
  std::string set = "PRAGMA user_version=" + std::to_string(kSchemaVersion) +
                    "; PRAGMA application_id=" + std::to_string(kApplicationId);
  if (!ExecSql(db, set.c_str()) || !txn.Commit()) return SqlError(db, path, op);
  return Status::Ok();
}

Status ReadRun(Stmt& q, RunRecord* run) {
  run->id = q.Text(0);
  run->runbook_name = q.Text(1);
  run->runbook_path = q.Text(2);
  run->digest = q.Text(3);
  std::string what = "run '" + run->id + "' column ";
  Status s = state_internal::ParseJson(q.Text(4), what + "sources", &run->sources);
  if (s.ok()) s = state_internal::ParseJson(q.Text(5), what + "params", &run->params);
  if (s.ok()) s = state_internal::ParseJson(q.Text(13), what + "options", &run->options);
  if (!s.ok()) return s;
  run->params_digest = q.Text(6);
  run->dry_run = q.Int(7) != 0;
  run->lock_key = q.Text(8);
  std::optional<RunStatus> status = ParseRunStatus(q.Text(9));
  if (!status)
    return Status::Internal("unknown status '" + q.Text(9) + "' of run '" + run->id + "'");
  run->status = *status;
  run->error = q.Text(10);
  run->created_ms = q.Int(11);
  run->updated_ms = q.Int(12);
  return Status::Ok();
}

}  // namespace

const char* EventKindName(EventKind k) {
  switch (k) {
    case EventKind::kStepStart:
      return "step.start";
    case EventKind::kStepOk:
      return "step.ok";
    case EventKind::kStepUnknown:
      return "step.unknown";
    case EventKind::kStepSkip:
      return "step.skip";
    case EventKind::kStepFail:
      return "step.fail";
    case EventKind::kStepRetry:
      return "step.retry";
    case EventKind::kStepWait:
      return "step.wait";
    case EventKind::kStepPause:
      return "step.pause";
    case EventKind::kStepCall:
      return "step.call";
    case EventKind::kStepUndoRecorded:
      return "step.undo_recorded";
    case EventKind::kUndoStart:
      return "undo.start";
    case EventKind::kUndoOk:
      return "undo.ok";
    case EventKind::kUndoFail:
      return "undo.fail";
    case EventKind::kUndoIrreversible:
      return "undo.irreversible";
    case EventKind::kUndoRetry:
      return "undo.retry";
    case EventKind::kOwnWrite:
      return "own_write";
    case EventKind::kPlanNote:
      return "plan.note";
    case EventKind::kRollbackLift:
      return "rollback.lift";
    case EventKind::kTargetStart:
      return "target.start";
    case EventKind::kTargetEnd:
      return "target.end";
    case EventKind::kFleetResume:
      return "fleet.resume";
    case EventKind::kWaveWait:
      return "wave.wait";
    case EventKind::kWaveApproved:
      return "wave.approved";
  }
  return "?";
}

std::set<std::string> StepsWithNothingUndone(const std::vector<Event>& events) {
  std::set<std::string> out;
  for (const Event& e : events) {
    if (!e.Is(EventKind::kUndoOk)) continue;
    if (e.message == kNothingToUndo) {
      out.insert(e.step_id);
    } else {
      out.erase(e.step_id);
    }
  }
  return out;
}

bool StepChangedNothing(const StepRecord& s) {
  if (s.undo.empty()) return false;
  for (const UndoEntry& e : s.undo) {
    if (!ChangedNothing(e)) return false;
  }
  return true;
}

std::string StepLabel(const StepRecord& s) {
  const Value& item = s.item;
  std::string text;
  auto scalar = [](const Value& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number() || v.is_boolean()) return v.dump();
    return std::nullopt;
  };
  if (auto t = scalar(item)) {
    text = *t;
  } else if (item.is_object()) {
    for (const char* key : {"name", "id", "database", "db", "host", "namespace", "table"}) {
      auto it = item.find(key);
      if (it == item.end()) continue;
      if (auto t = scalar(*it)) {
        text = *t;
        break;
      }
    }
    for (auto it = item.begin(); text.empty() && it != item.end(); ++it) {
      if (auto t = scalar(*it)) text = it.key() + "=" + *t;
    }
  }
  if (text.empty()) return s.step_id;
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return s.step_id + " (" + text + ")";
}

const char* RunStatusName(RunStatus s) { return kRunStatusNames[static_cast<int>(s)]; }
const char* StepStatusName(StepStatus s) { return kStepStatusNames[static_cast<int>(s)]; }

std::optional<RunStatus> ParseRunStatus(const std::string& s) {
  for (size_t i = 0; i < std::size(kRunStatusNames); ++i) {
    if (s == kRunStatusNames[i]) return static_cast<RunStatus>(i);
  }
  return std::nullopt;
}

std::optional<StepStatus> ParseStepStatus(const std::string& s) {
  for (size_t i = 0; i < std::size(kStepStatusNames); ++i) {
    if (s == kStepStatusNames[i]) return static_cast<StepStatus>(i);
  }
  return std::nullopt;
}

SqliteStateStore::~SqliteStateStore() { sqlite3_close_v2(db_); }

bool IsPostgresLocation(const std::string& location) {
  std::string lower;
  for (char c : location.substr(0, 16)) lower += static_cast<char>(tolower(c));
  if (lower.rfind("postgresql://", 0) == 0 || lower.rfind("postgres://", 0) == 0) return true;
  // libpq's keyword=value form: "host=db dbname=runbook", "service=runbook".
  size_t start = location.find_first_not_of(" \t");
  if (start == std::string::npos) return false;
  for (const char* key : {"host=", "hostaddr=", "dbname=", "service=", "user=", "port="}) {
    if (location.compare(start, strlen(key), key) == 0) return true;
  }
  return false;
}

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& location) {
  if (IsPostgresLocation(location)) return OpenPostgresStore(location);
  // A mistyped URI is no file name: a store of its own would hold its own
  // locks, and its name may hold a password.
  if (location.find("://") != std::string::npos) {
    return Status::Invalid(
        "state store: not a SQLite file path nor a postgresql:// URI (a URI's scheme is "
        "postgresql or postgres)");
  }
  return SqliteStateStore::Open(location);
}

Result<std::unique_ptr<StoreLock>> SqliteStateStore::AcquireLock(const std::string& key,
                                                                 const std::string& run_id) {
  Result<std::unique_ptr<RunLock>> lock = RunLock::Acquire(path_, key, run_id);
  if (!lock.ok()) return lock.status();
  return std::unique_ptr<StoreLock>(std::move(*lock));
}

bool SqliteStateStore::LockHeld(const std::string& key) { return RunLock::IsHeld(path_, key); }

Result<std::unique_ptr<StateStore>> SqliteStateStore::Open(const std::string& path) {
  if (path.empty()) return Status::Invalid("state store path is empty");
  // A device, a FIFO or a directory is no store (SQLite would put a
  // world-readable journal next to /dev/null).
  struct stat st;
  if (lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return Status::Invalid("state store " + path + " is not a regular file");
  }
  Status s = state_internal::MakePrivateDirs(state_internal::DirName(path));
  if (!s.ok()) return s.Prefixed("state store " + path);
  s = CreatePrivateFile(path);
  if (!s.ok()) return s;

  // SQLite gives -wal and -shm the main file's mode; the umask keeps them
  // private even if it did not.
  state_internal::UmaskGuard umask_guard(077);
  std::unique_ptr<SqliteStateStore> store(new SqliteStateStore());
  store->path_ = path;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &store->db_, flags, nullptr) != SQLITE_OK) {
    return SqlError(store->db_, path, "cannot open");
  }
  sqlite3_extended_result_codes(store->db_, 1);
  // Before the first read: another engine writing (a fleet's runs start
  // together) must make this one wait, not fail "database is locked".
  sqlite3_busy_timeout(store->db_, 5000);
  s = CheckOurs(store->db_, path);  // before anything is written to it
  if (s.ok()) s = Configure(store->db_, path);
  if (s.ok()) s = Migrate(store->db_, path);
  if (!s.ok()) return s;
  return std::unique_ptr<StateStore>(std::move(store));
}

Status SqliteStateStore::CreateRun(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("INSERT INTO runs(") + kRunColumns +
                    ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
  Stmt q(db_, sql.c_str());
  q.Bind(1, run.id).Bind(2, run.runbook_name).Bind(3, run.runbook_path).Bind(4, run.digest);
  q.BindJson(5, run.sources).BindJson(6, run.params).Bind(7, run.params_digest);
  q.Bind(8, int64_t{run.dry_run}).Bind(9, run.lock_key).Bind(10, RunStatusName(run.status));
  q.Bind(11, run.error).Bind(12, run.created_ms).Bind(13, run.updated_ms);
  q.BindJson(14, run.options);
  if (!q.Exec()) return SqlError(db_, path_, "cannot create run '" + run.id + "'");
  return Status::Ok();
}

Status SqliteStateStore::UpdateRun(const std::string& run_id, RunStatus status,
                                   const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt q(db_, "UPDATE runs SET status = ?2, error = ?3, updated_ms = ?4 WHERE id = ?1");
  q.Bind(1, run_id).Bind(2, RunStatusName(status)).Bind(3, error);
  q.Bind(4, Clock::Real().NowMs());
  if (!q.Exec()) return SqlError(db_, path_, "cannot update run '" + run_id + "'");
  if (sqlite3_changes(db_) == 0) {
    return Status::NotFound("no run '" + run_id + "' in state store " + path_);
  }
  return Status::Ok();
}

Result<RunRecord> SqliteStateStore::GetRun(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1";
  Stmt q(db_, sql.c_str());
  q.Bind(1, run_id);
  int rc = q.Step();
  if (rc == Stmt::kDone) return Status::NotFound("no run '" + run_id + "' in state store " + path_);
  if (rc != Stmt::kRow) return SqlError(db_, path_, "cannot read run '" + run_id + "'");
  RunRecord run;
  Status s = ReadRun(q, &run);
  if (!s.ok()) return s.Prefixed("state store " + path_);
  return run;
}

Result<std::vector<RunRecord>> SqliteStateStore::ListRuns(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kRunColumns +
                    " FROM runs ORDER BY created_ms DESC, id DESC LIMIT ?1";
  Stmt q(db_, sql.c_str());
  q.Bind(1, int64_t{limit > 0 ? limit : -1});  // -1: no limit
  std::vector<RunRecord> runs;
  int rc;
  while ((rc = q.Step()) == Stmt::kRow) {
    RunRecord run;
    Status s = ReadRun(q, &run);
    if (!s.ok()) return s.Prefixed("state store " + path_);
    runs.push_back(std::move(run));
  }
  if (rc != Stmt::kDone) return SqlError(db_, path_, "cannot list runs");
  return runs;
}

std::string NewRunId(int64_t now_ms) {
  time_t secs = static_cast<time_t>(now_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char when[32];
  strftime(when, sizeof(when), "%Y%m%d-%H%M%S", &tm);
  // 24 random bits: a fleet starts dozens of runs in one second (with 16,
  // two of 12 engines started together took the same id about once in 25).
  uint32_t r = 0;
  if (getrandom(&r, sizeof(r), 0) != static_cast<ssize_t>(sizeof(r))) r = std::random_device{}();
  char id[48];
  snprintf(id, sizeof(id), "%s-%06x", when, static_cast<unsigned>(r & 0xffffff));
  return id;
}

std::string DefaultStatePath() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  if (std::string p = env("RUNBOOK_STATE"); !p.empty()) return p;
  if (std::string x = env("XDG_STATE_HOME"); !x.empty()) return x + "/runbook/state.db";
  std::string home = env("HOME");
  if (home.empty()) {
    if (const struct passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) home = pw->pw_dir;
  }
  return home + "/.local/state/runbook/state.db";
}

}  // namespace runbook
