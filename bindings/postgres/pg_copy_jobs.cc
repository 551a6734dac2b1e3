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

// State shared by the workers; everything behind mu except the atomics.
struct Shared {
  const CopyJobsSpec& spec;
  const std::vector<CopyTable>& tables;
  std::vector<size_t> order;  // largest first
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  Status first_error;
  std::vector<CopyStats> stats;
  const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  CopyStats finished;                        // the tables done
  std::map<std::string, CopyStats> running;  // the tables in flight, so far

  void Fail(Status s) {
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok()) first_error = std::move(s);
    stop = true;
  }
  void Log(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    if (spec.log) spec.log(message);
  }
  // Table `t` has streamed `so_far` (done: it has committed). Bytes count
  // as the table's size on the source (what the total adds up), so that the
  // sum reaches the total exactly when the last table commits: a table in
  // flight counts its COPY bytes, at most its size.
  void Progress(const CopyTable& t, const CopyStats& so_far, bool done) {
    std::lock_guard<std::mutex> lock(mu);
    if (done) {
      running.erase(t.key);
      finished.bytes += t.bytes;
      finished.rows += so_far.rows;
    } else {
      running[t.key] = CopyStats{so_far.rows, std::min(so_far.bytes, t.bytes), 0};
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

Status CopyOne(Shared& sh, const CopyTable& t, PgConnection& src, PgConnection& dst,
               CopyStats* stats) {
  const SteadyTime deadline = sh.spec.deadline;
  const std::string name = t.Quoted();
  Status s = dst.Exec("BEGIN", {}, deadline);
  // ONLY: an inheritance parent's TRUNCATE would empty its children too
  // (copied as tables of their own, perhaps already). A partitioned parent
  // holds no rows of its own and refuses ONLY: its partitions go with it.
  if (s.ok()) s = dst.Exec(std::string("TRUNCATE ") + (t.partitioned ? "" : "ONLY ") + name, {}, deadline);
  if (!s.ok()) return s.Prefixed("table " + t.key);
  std::vector<std::string> triggers_back;
  if (t.on_target) {
    Result<std::vector<std::string>> back = DisableTriggers(dst, deadline, name);
    if (!back.ok()) return back.status().Prefixed("table " + t.key);
    triggers_back = std::move(*back);
  }
  const std::string format = t.binary ? " (FORMAT binary)" : "";
  std::string out_sql =
      t.partitioned ? "COPY (SELECT * FROM " + name + ") TO STDOUT" : "COPY " + name + " TO STDOUT";
  // FREEZE: the rows go in already frozen and their pages all-visible (the
  // table was truncated in this transaction, so no other one can see them
  // before it commits). The index builds and ANALYZE that follow, and the
  // application's first reads, then find no hint bits to set (which would
  // write every page again), and no later VACUUM has to freeze the clone.
  // Only into tables this copy created from an ordinary table: PostgreSQL
  // refuses FREEZE for a partitioned table (and for a foreign one), and a
  // table that was on the target (replace: true) may be either.
  const bool freeze = !t.on_target && !t.partitioned;
  std::string in_options = t.binary ? "FORMAT binary" : "";
  if (freeze) in_options += in_options.empty() ? "FREEZE" : ", FREEZE";
  if (!in_options.empty()) in_options = " (" + in_options + ")";
  s = StreamCopy(
      src, dst, out_sql + format, "COPY " + name + " FROM STDIN" + in_options, deadline, &sh.stop,
      [&](const CopyStats& so_far) { sh.Progress(t, so_far, false); }, stats);
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
  if (!s.ok()) return s.Prefixed("copying table " + t.key);
  return Status::Ok();
}

void Worker(Shared& sh) {
  PgConnection src, dst;
  for (;;) {
    if (sh.stop) return;
    size_t i = sh.next.fetch_add(1);
    if (i >= sh.order.size()) return;
    const CopyTable& t = sh.tables[sh.order[i]];
    Status s;
    if (!src.ok()) s = OpenSource(sh.spec, &src);
    if (s.ok() && !dst.ok()) s = dst.Connect(sh.spec.target, sh.spec.deadline);
    CopyStats stats;
    if (s.ok()) s = CopyOne(sh, t, src, dst, &stats);
    if (!s.ok()) {
      if (!sh.stop) sh.Fail(s);  // a worker stopped by another's failure adds nothing
      return;
    }
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.2fs", stats.seconds);
    sh.Log("copied " + t.key + ": " + std::to_string(stats.rows) + " rows, " +
           HumanBytes(static_cast<double>(stats.bytes)) + " in " + rate + " (" +
           HumanBytes(stats.seconds > 0 ? stats.bytes / stats.seconds : 0.0) + "/s)");
    sh.Progress(t, stats, true);
    std::lock_guard<std::mutex> lock(sh.mu);
    sh.stats[sh.order[i]] = stats;
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
  sh.order.resize(tables.size());
  std::iota(sh.order.begin(), sh.order.end(), 0);
  std::stable_sort(sh.order.begin(), sh.order.end(),
                   [&](size_t a, size_t b) { return tables[a].bytes > tables[b].bytes; });
  size_t n = std::clamp<size_t>(static_cast<size_t>(std::max(spec.jobs, 1)), 1, tables.size());
  std::vector<std::thread> workers;
  for (size_t i = 1; i < n; ++i) workers.emplace_back([&sh] { Worker(sh); });
  Worker(sh);
  for (auto& w : workers) w.join();
  if (!sh.first_error.ok()) return sh.first_error;
  return std::move(sh.stats);
}

}  // namespace runbook
