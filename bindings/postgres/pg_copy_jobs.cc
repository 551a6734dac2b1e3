#include "bindings/postgres/pg_copy_jobs.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

namespace runbook {
namespace {

// One transaction of work: a whole table, or one range of a split table's
// pages ([from_page, to_page); the first range has no lower bound and the
// last no upper one, so rows on pages added since the count are not missed).
struct Unit {
  size_t table = 0;
  int part = 0;  // 0 .. parts-1
  int64_t from_page = 0, to_page = 0;
  int64_t bytes = 0;  // its share of the table's size
};

// State shared by the workers; everything behind mu except the atomics.
struct Shared {
  const CopyJobsSpec& spec;
  const std::vector<CopyTable>& tables;
  std::vector<Unit> units;  // largest first
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  Status first_error;
  std::vector<CopyStats> stats;
  std::vector<int> parts_left;                               // per table: ranges not yet committed
  std::vector<std::chrono::steady_clock::time_point> began;  // per table: its first range
  const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  CopyStats finished;                        // the units done
  std::map<std::string, CopyStats> running;  // the units in flight, so far

  void Fail(Status s) {
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok()) first_error = std::move(s);
    stop = true;
  }
  void Log(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    if (spec.log) spec.log(message);
  }
  void Began(const Unit& u) {
    std::lock_guard<std::mutex> lock(mu);
    if (began[u.table] == std::chrono::steady_clock::time_point{}) {
      began[u.table] = std::chrono::steady_clock::now();
    }
  }
  // Unit `u` committed with `st`; true when it was its table's last range
  // (then *table holds the table's totals, its seconds from its first range).
  bool Done(const Unit& u, const CopyStats& st, CopyStats* table) {
    std::lock_guard<std::mutex> lock(mu);
    CopyStats& t = stats[u.table];
    t.rows += st.rows;
    t.bytes += st.bytes;
    t.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began[u.table]).count();
    *table = t;
    return --parts_left[u.table] == 0;
  }
  // Unit `u` has streamed `so_far` (done: it has committed). Bytes count as
  // its share of the table's size on the source (what the total adds up),
  // so that the sum reaches the total exactly when the last unit commits: a
  // unit in flight counts its COPY bytes, at most its share.
  void Progress(const Unit& u, const CopyStats& so_far, bool done) {
    const CopyTable& t = tables[u.table];
    const std::string key = t.key + "#" + std::to_string(u.part);
    std::lock_guard<std::mutex> lock(mu);
    if (done) {
      running.erase(key);
      finished.bytes += u.bytes;
      finished.rows += so_far.rows;
    } else {
      running[key] = CopyStats{so_far.rows, std::min(so_far.bytes, u.bytes), 0};
    }
    if (!spec.progress) return;
    CopyStats all = finished;
    for (const auto& [name, st] : running) {
      all.bytes += st.bytes;
      all.rows += st.rows;
    }
    all.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spec.progress(t.key, all);
  }
};

// The source side of a worker: a read-only transaction on the shared snapshot.
Status OpenSource(const CopyJobsSpec& spec, PgConnection* src) {
  Status s = src->Connect(spec.source, spec.deadline);
  if (s.ok()) s = src->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", {}, spec.deadline);
  // A row-level security policy never hides rows silently: COPY fails instead.
  if (s.ok()) s = src->Exec("SET LOCAL row_security = off", {}, spec.deadline);
  if (s.ok()) {
    s = src->Exec("SET TRANSACTION SNAPSHOT " + QuoteLiteralPlain(spec.snapshot), {},
                  spec.deadline);
  }
  return s;
}

// The columns COPY carries, quoted, in order: a query (SELECT) must name
// them, since SELECT * would also return generated columns, which COPY into
// the table refuses.
Result<std::string> CopyColumns(PgConnection& src, SteadyTime deadline, const std::string& table) {
  Result<Value> r = src.Query(
      "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS cols FROM pg_attribute "
      "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
      {table}, deadline);
  if (!r.ok()) return r.status();
  if (r->empty() || !(*r)[0]["cols"].is_string()) return Status::Failed("has no columns to copy");
  return (*r)[0]["cols"].get<std::string>();
}

// "(pages 20491-40982 of 81964, range 2 of 4)"
std::string RangeLabel(const CopyTable& t, const Unit& u) {
  return "(pages " + std::to_string(u.from_page) + "-" + std::to_string(u.to_page) + " of " +
         std::to_string(t.pages) + ", range " + std::to_string(u.part + 1) + " of " +
         std::to_string(t.parts) + ")";
}

// One unit in one target transaction. A whole table: BEGIN; TRUNCATE; COPY
// (FREEZE); COMMIT. A range of a split table: BEGIN; COPY; COMMIT, with
// neither TRUNCATE (it would lock the other ranges out until this one
// commits) nor FREEZE (which needs it); the table was created by this copy,
// empty, so each range adds its rows exactly once, and an attempt that dies
// half-way leaves a table that the next attempt drops and redoes (a range
// cannot be resumed on its own: the snapshot dies with the attempt, and the
// ctid ranges of two snapshots do not hold the same rows).
Status CopyOne(Shared& sh, const Unit& u, PgConnection& src, PgConnection& dst, CopyStats* stats) {
  const CopyTable& t = sh.tables[u.table];
  const SteadyTime deadline = sh.spec.deadline;
  const std::string name = t.Quoted();
  const bool split = t.parts > 1;
  const std::string what = "table " + t.key + (split ? " " + RangeLabel(t, u) : "");
  Status s = dst.Exec("BEGIN", {}, deadline);
  // ONLY: an inheritance parent's TRUNCATE would empty its children too
  // (copied as tables of their own, perhaps already). A partitioned parent
  // holds no rows of its own and refuses ONLY: its partitions go with it.
  if (s.ok() && !split) {
    s = dst.Exec(std::string("TRUNCATE ") + (t.partitioned ? "" : "ONLY ") + name, {}, deadline);
  }
  if (!s.ok()) return s.Prefixed("copying " + what);
  std::vector<std::string> triggers_back;
  if (t.on_target) {
    Result<std::vector<std::string>> back = DisableTriggers(dst, deadline, name);
    if (!back.ok()) return back.status().Prefixed("copying " + what);
    triggers_back = std::move(*back);
  }
  const std::string format = t.binary ? " (FORMAT binary)" : "";
  std::string out_sql = "COPY " + name + " TO STDOUT", in_sql = "COPY " + name;
  if (t.partitioned || split) {
    Result<std::string> cols = CopyColumns(src, deadline, name);
    if (!cols.ok()) return cols.status().Prefixed("copying " + what);
    std::string where;
    if (u.part > 0) where = "ctid >= '(" + std::to_string(u.from_page) + ",0)'::tid";
    if (u.part + 1 < t.parts) {
      where += (where.empty() ? "" : " AND ") + std::string("ctid < '(") +
               std::to_string(u.to_page) + ",0)'::tid";
    }
    out_sql = "COPY (SELECT " + *cols + " FROM " + (t.partitioned ? "" : "ONLY ") + name +
              (where.empty() ? "" : " WHERE " + where) + ") TO STDOUT";
    in_sql += " (" + *cols + ")";
  }
  // FREEZE: the rows go in already frozen and their pages all-visible (the
  // table was truncated in this transaction, so no other one can see them
  // before it commits). The index builds and ANALYZE that follow, and the
  // application's first reads, then find no hint bits to set (which would
  // write every page again), and no later VACUUM has to freeze the clone.
  // Only into tables this copy created from an ordinary table: PostgreSQL
  // refuses FREEZE for a partitioned table (and for a foreign one), and a
  // table that was on the target (replace: true) may be either.
  const bool freeze = !t.on_target && !t.partitioned && !split;
  std::string in_options = t.binary ? "FORMAT binary" : "";
  if (freeze) in_options += in_options.empty() ? "FREEZE" : ", FREEZE";
  if (!in_options.empty()) in_options = " (" + in_options + ")";
  s = StreamCopy(
      src, dst, out_sql + format, in_sql + " FROM STDIN" + in_options, deadline, &sh.stop,
      [&](const CopyStats& so_far) { sh.Progress(u, so_far, false); }, stats);
  for (const auto& stmt : triggers_back) {
    if (s.ok()) s = dst.Exec(stmt, {}, deadline);
  }
  if (s.ok() && sh.spec.before_commit) {
    Result<Value> x =
        dst.Query("SELECT (txid_current_if_assigned() % 4294967296)::text AS x", {}, deadline);
    if (!x.ok()) {
      s = x.status();
    } else if (!x->empty() && (*x)[0]["x"].is_string()) {
      std::lock_guard<std::mutex> lock(sh.mu);
      s = sh.spec.before_commit((*x)[0]["x"].get<std::string>());
    }
  }
  if (s.ok()) s = dst.Exec("COMMIT", {}, deadline);
  if (!s.ok()) return s.Prefixed("copying " + what);
  return Status::Ok();
}

std::string Rate(const CopyStats& st) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.2fs", st.seconds);
  return std::to_string(st.rows) + " rows, " + HumanBytes(static_cast<double>(st.bytes)) + " in " +
         secs + " (" + HumanBytes(st.seconds > 0 ? st.bytes / st.seconds : 0.0) + "/s)";
}

void Worker(Shared& sh) {
  PgConnection src, dst;
  for (;;) {
    if (sh.stop) return;
    size_t i = sh.next.fetch_add(1);
    if (i >= sh.units.size()) return;
    const Unit& u = sh.units[i];
    const CopyTable& t = sh.tables[u.table];
    Status s;
    if (!src.ok()) s = OpenSource(sh.spec, &src);
    if (s.ok() && !dst.ok()) s = dst.Connect(sh.spec.target, sh.spec.deadline);
    CopyStats stats;
    sh.Began(u);
    if (s.ok()) s = CopyOne(sh, u, src, dst, &stats);
    if (!s.ok()) {
      if (!sh.stop) sh.Fail(s);  // a worker stopped by another's failure adds nothing
      return;
    }
    CopyStats table;
    const bool last = sh.Done(u, stats, &table);
    if (t.parts > 1) sh.Log("copied " + t.key + " " + RangeLabel(t, u) + ": " + Rate(stats));
    if (last) sh.Log("copied " + t.key + ": " + Rate(table));
    sh.Progress(u, stats, true);
  }
}

}  // namespace

// A table that already existed on the target (replace: true) has its
// triggers: COPY would fire them for every row (an audit trigger writing
// rows elsewhere, a BEFORE trigger rewriting values), which pg_dump's order
// (triggers after the data) never does. They are disabled inside the
// table's transaction and put back as they were (ENABLE, ALWAYS or REPLICA)
// before it commits: a failure leaves them untouched. Returns the statements
// that put them back.
Result<std::vector<std::string>> DisableTriggers(PgConnection& dst, SteadyTime deadline,
                                                 const std::string& table) {
  Result<Value> rows = dst.Query(
      "SELECT format('ALTER TABLE ONLY %s DISABLE TRIGGER %I', $1::text, tgname) AS off, "
      "format('ALTER TABLE ONLY %s ENABLE %s TRIGGER %I', $1::text, CASE tgenabled WHEN 'A' THEN "
      "'ALWAYS' WHEN 'R' THEN 'REPLICA' ELSE '' END, tgname) AS back FROM pg_trigger WHERE "
      "tgrelid = $1::regclass AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY tgname",
      {table}, deadline);
  if (!rows.ok()) return rows.status();
  std::vector<std::string> back;
  for (const auto& r : *rows) {
    if (Status s = dst.Exec(r["off"].get<std::string>(), {}, deadline); !s.ok()) return s;
    back.push_back(r["back"].get<std::string>());
  }
  return back;
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

Result<std::vector<CopyStats>> CopyTablesInParallel(const CopyJobsSpec& spec,
                                                    const std::vector<CopyTable>& tables) {
  if (tables.empty()) return std::vector<CopyStats>{};
  Shared sh{spec, tables};
  sh.stats.resize(tables.size());
  sh.parts_left.resize(tables.size());
  sh.began.resize(tables.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    const CopyTable& t = tables[i];
    const int parts = std::max(1, t.parts);
    sh.parts_left[i] = parts;
    for (int k = 0; k < parts; ++k) {
      Unit u{i, k, t.pages * k / parts, t.pages * (k + 1) / parts, t.bytes / parts};
      if (k == parts - 1) u.bytes = t.bytes - t.bytes / parts * (parts - 1);
      sh.units.push_back(u);
    }
  }
  std::stable_sort(sh.units.begin(), sh.units.end(),
                   [](const Unit& a, const Unit& b) { return a.bytes > b.bytes; });
  size_t n = std::clamp<size_t>(static_cast<size_t>(std::max(spec.jobs, 1)), 1, sh.units.size());
  std::vector<std::thread> workers;
  for (size_t i = 1; i < n; ++i) workers.emplace_back([&sh] { Worker(sh); });
  Worker(sh);
  for (auto& w : workers) w.join();
  if (!sh.first_error.ok()) return sh.first_error;
  return std::move(sh.stats);
}

}  // namespace runbook
