// pg.copy: a native clone of tables (or a whole database) into another
// database with no intermediate files. Schema without indexes and
// constraints first (pg_dump pre-data | psql), then the data as parallel
// COPY streams (pg_copy_jobs.h), then indexes, constraints and triggers
// (post-data), then sequences and ANALYZE. The source is read from one
// exported snapshot throughout: both pg_dump runs and every COPY.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "bindings/postgres/pg_copy.h"
#include "bindings/postgres/pg_copy_catalog.h"
#include "bindings/postgres/pg_copy_extras.h"
#include "bindings/postgres/pg_copy_jobs.h"
#include "bindings/postgres/pg_counts.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_tools.h"
#include "bindings/postgres/pg_undo_guard.h"

namespace runbook {
namespace {

// No table is split unless the runbook says so: splitting pays only where
// the servers have cores to spare beyond `jobs` streams, and costs FREEZE.
// Measured (bench/RESULTS.md, 2 cores, both servers on the machine): 4
// ranges of pgbench_accounts made the whole clone 12% slower (7.1 s vs
// 6.3 s, median of 5); pgcopydb's splitting lost there too.
constexpr int64_t kDefaultSplit = 0;

struct CopyArgs {
  std::string source, target, schema, bin_dir;
  std::vector<std::string> tables;
  bool all = false, replace = false, schema_only = false, keep_owners = false;
  bool owners_said = false;  // keep_owners given: dropping owners and grants is chosen
  bool text_only = false;    // format: text
  int jobs = 2;
  int64_t split = kDefaultSplit;  // split_tables_larger_than, in bytes (0: never)
  std::string Tool(const char* name) const { return ToolPath(bin_dir, name); }
};

CopyArgs ReadArgs(const Value& args) {
  CopyArgs a;
  a.source = StrArg(args, "source");
  a.target = StrArg(args, "target");
  a.schema = StrArg(args, "schema", "public");
  a.tables = StrListArg(args, "tables");
  a.all = BoolArg(args, "all", false);
  a.replace = BoolArg(args, "replace", false);
  a.schema_only = BoolArg(args, "schema_only", false);
  a.keep_owners = BoolArg(args, "keep_owners", false);
  a.owners_said = args.is_object() && args.contains("keep_owners");
  a.bin_dir = StrArg(args, "bin_dir");
  a.text_only = StrArg(args, "format", "auto") == "text";
  if (args.is_object() && args.contains("jobs") && args["jobs"].is_number_integer()) {
    a.jobs = std::clamp(args["jobs"].get<int>(), 1, 64);
  }
  Result<int64_t> split = SizeArg(args, "split_tables_larger_than", kDefaultSplit);
  a.split = split.ok() ? *split : kDefaultSplit;  // the schema refused a bad one
  return a;
}

// pg_dump of one section of the schema: as SQL on stdout, or as a custom
// archive in `file` (for pg_restore --jobs). Materialized views come out
// unpopulated (their data is data): RefreshMaterializedViews fills them.
std::vector<std::string> DumpArgv(const std::string& section, const CopyArgs& a,
                                  const std::vector<const CopyTable*>& only,
                                  const std::string& snapshot, const std::string& file = "") {
  // --no-subscriptions: a clone must not subscribe to what its source
  // does (enabled, it would compete for the same replication slot).
  std::vector<std::string> argv = {a.Tool("pg_dump"), "--no-password", "--schema-only",
                                   "--no-subscriptions", "--section=" + section};
  if (!file.empty()) {
    argv.push_back("--format=custom");
    argv.push_back("--file=" + file);
  }
  if (!snapshot.empty()) argv.push_back("--snapshot=" + snapshot);
  if (!a.keep_owners) {
    argv.push_back("--no-owner");
    argv.push_back("--no-privileges");
  }
  for (const CopyTable* t : only) {
    argv.push_back("-t");
    argv.push_back(t->Quoted());  // quoted: an exact name, not a pattern
    for (const auto& partition : t->partitions) {
      argv.push_back("-t");
      argv.push_back(partition);
    }
  }
  return argv;
}

// pg_restore of the post-data archive: the indexes and constraints of
// different tables are built in parallel (`jobs` connections), in the order
// their dependencies allow.
std::vector<std::string> PostDataRestoreArgv(const CopyArgs& a, const std::string& file) {
  std::vector<std::string> argv = {a.Tool("pg_restore"), "--no-password", "--exit-on-error"};
  if (a.jobs > 1) {
    argv.push_back("--jobs=" + std::to_string(a.jobs));
  } else {
    argv.push_back("--single-transaction");  // cannot be combined with --jobs
  }
  if (!a.keep_owners) {
    argv.push_back("--no-owner");
    argv.push_back("--no-privileges");
  }
  // The connection: --dbname, which RunStepPgTool adds. "--": the file is
  // never an option.
  argv.push_back("--");
  argv.push_back(file);
  return argv;
}

// A private directory (0700) for the post-data archive, removed with what is
// in it when this goes out of scope. The archive holds only DDL, no rows.
class ScratchDir {
 public:
  ScratchDir() = default;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  Status Create() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/runbook-pg-copy-XXXXXX";
    if (!mkdtemp(pattern.data())) {
      return Status::Failed("cannot create a temporary directory in " + pattern + ": " +
                            std::strerror(errno));
    }
    path_ = pattern;
    return Status::Ok();
  }
  // Only after Create() succeeded.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// -f -: stdin, so that --single-transaction applies to it.
std::vector<std::string> PsqlArgv(const CopyArgs& a) {
  return {a.Tool("psql"), "--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1",
          "--single-transaction", "-f", "-"};
}

std::string Join(const std::vector<std::string>& items, const std::string& sep = " ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// What Apply knows before it acts (and all a rehearsal reports).
struct Prepared {
  std::vector<CopyTable> tables;
  int source_version = 0;
  int64_t large_objects = 0;  // all: true only
  std::vector<MaterializedView> views;  // all: true only, dependencies first
};

// A transaction on the source whose snapshot the workers and pg_dump share;
// ended (rolled back: it only read) when this goes out of scope.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(PgLease& lease) : lease_(lease) {}
  ~SnapshotHolder() { Release(); }
  Result<std::string> Export() {
    Status s = lease_.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (!s.ok()) return s;
    Result<Value> id = lease_.Query("SELECT pg_export_snapshot() AS id");
    if (!id.ok()) return id.status();
    return (*id)[0]["id"].get<std::string>();
  }
  void Release() {
    if (lease_->ok() && lease_->in_transaction() && !lease_.Exec("ROLLBACK").ok()) lease_->Close();
  }

 private:
  PgLease& lease_;
};

Status AddForeignKeys(PgLease& dst, const Value& fks);  // below
Status CheckCarried(const CopyArgs& a, PgLease& src, PgLease& dst, Prepared* p);

// ResultOf (a real run, and Check on resume with bytes and seconds 0) and
// Estimate (a rehearsal).
FieldSpec CopyResult() {
  using T = FieldType;
  return MapResult(
      {ListOfMaps(
           "tables", "one per table copied",
           {Field("table", T::kString, "as the runbook named it (schema.name with all: true)"),
            Optional(Field("rows", T::kInt,
                           "rows copied; in a rehearsal the planner's estimate, null when the "
                           "table was never analyzed")),
            Field("bytes", T::kInt,
                  "COPY data streamed (0 on resume); in a rehearsal its size on the source"),
            Field("seconds", T::kNumber, "how long its copy took (0 in a rehearsal and on resume)"),
            Optional(Field("on_target", T::kBool,
                           "it exists on the target and its rows would be replaced; only in a "
                           "rehearsal")),
            Field("parts", T::kInt,
                  "ranges of its pages copied at once (1: not split; 1 on resume)"),
            Field("format", T::kString,
                  "the COPY format: binary or text (text on resume, whatever was used)")}),
       Field("rows", T::kInt, "rows copied in all; in a rehearsal the estimate"),
       Field("bytes", T::kInt, "COPY data streamed in all; in a rehearsal the tables' size"),
       Field("seconds", T::kNumber, "how long the copy took (0 in a rehearsal and on resume)"),
       Field("large_objects", T::kInt,
             "large objects copied (all: true only, else 0; 0 on resume); in a rehearsal those "
             "on the source"),
       Field("materialized_views", T::kInt,
             "materialized views refreshed (all: true only, else 0; 0 on resume); in a rehearsal "
             "those populated on the source"),
       Optional(Field("estimated", T::kBool,
                      "true: rows and bytes are estimates; only in a rehearsal"))});
}

class PgCopy : public NamedPrimitive {
 public:
  PgCopy()
      : NamedPrimitive(
            "pg.copy",
            Schema{"Clones tables (or a whole database) into another database: schema, then the "
                   "data as parallel COPY streams from one snapshot, then indexes and "
                   "constraints, sequences and ANALYZE. Rollback drops what it created, unless "
                   "someone else wrote to it since and the source lacks those rows (refused).",
                   {PgConnArg("source", "the database to copy from"),
                    PgConnArg("target", "the database to copy into"),
                    Arg("tables", ArgType::kList, false, "tables (table or schema.table)"),
                    Arg("all", ArgType::kBool, false, "every table of every schema"),
                    Arg("schema", ArgType::kString, false, "schema of unqualified names (public)"),
                    Arg("jobs", ArgType::kInt, false, "parallel COPY streams (2)"),
                    Arg("split_tables_larger_than", ArgType::kSize, false,
                        "copy a table larger than this (e.g. 256MB) in ranges of its pages, "
                        "`jobs` at a time, for servers with cores to spare (default 0: never; "
                        "each range loses COPY FREEZE). Needs PostgreSQL 14 or later on the "
                        "source; only tables the copy creates"),
                    Arg("schema_only", ArgType::kBool, false, "copy the schema, no data"),
                    Arg("replace", ArgType::kBool, false,
                        "overwrite target tables that already have rows"),
                    Arg("keep_owners", ArgType::kBool, false,
                        "true: keep owners and grants (the roles must exist on the target); "
                        "false: drop them; not given: refused if the source has any"),
                    Arg("format", ArgType::kString, false,
                        "auto (binary COPY where both sides can exchange it safely) or text",
                        {"auto", "text"}),
                    Arg("bin_dir", ArgType::kString, false,
                        "directory of pg_dump, pg_restore, psql and vacuumdb (default: PATH)")},
                   {{"tables", "all"}},
                   ""},
            CopyResult()) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }

  PlanEffect Plan(const Value& args) const override {
    CopyArgs a = ReadArgs(args);
    std::string only;
    for (const auto& t : a.tables) only += " -t " + t;
    std::string pipe = " on " + a.source + " | " + Join(PsqlArgv(a)) + " on " + a.target + "\n";
    std::string text = "pg_dump --schema-only --section=pre-data" + only + pipe;
    if (!a.schema_only) {
      text += "per table, " + std::to_string(a.jobs) +
              " at a time, from one REPEATABLE READ "
              "snapshot of " +
              a.source +
              ": COPY t TO STDOUT -> BEGIN; TRUNCATE ONLY t; COPY t FROM "
              "STDIN (FREEZE); COMMIT on " +
              a.target + "\n";
      if (a.split > 0 && a.jobs > 1) {
        text += "tables larger than " + HumanBytes(static_cast<double>(a.split)) +
                " that the copy creates, from a source of PostgreSQL 14 or later: in ranges "
                "of their pages, " +
                std::to_string(a.jobs) +
                " at a time, each COPY (SELECT ... WHERE ctid in the range) TO STDOUT -> "
                "BEGIN; COPY t FROM STDIN; COMMIT (no FREEZE); the rehearsal names them\n";
      }
    }
    if (!a.schema_only && a.all) {
      text += "large objects (same oids" + std::string(a.keep_owners ? ", owners and grants" : "") +
              "), in one transaction on " + a.target + "\n";
    }
    text += "pg_dump --schema-only --section=post-data --format=custom" + only + " on " +
            a.source + " (into a private temporary directory); pg_restore " +
            (a.jobs > 1 ? "--jobs=" + std::to_string(a.jobs) : std::string("--single-transaction")) +
            " of it on " + a.target + "\n";
    if (!a.schema_only && a.all) {
      text += "REFRESH MATERIALIZED VIEW of those populated on " + a.source +
              ", dependencies first\n";
    }
    if (!a.schema_only) {
      text += "setval() of the copied sequences; " +
              (a.jobs > 1 ? "vacuumdb --analyze-only --jobs=" + std::to_string(a.jobs) + " of"
                          : std::string("ANALYZE")) +
              " the copied tables";
    }
    return {text, UndoKind::kUndoes,
            "drop the tables, sequences, views, types, routines, schemas, extensions and large "
            "objects the copy created on " +
                a.target + " (rows replaced in tables that existed are not restored)"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    CopyArgs a = ReadArgs(args);
    if (a.source == a.target) {
      return Status::Invalid("source and target are the same connection '" + a.source + "'");
    }
    Result<PgLease> src = LeaseConnection(ctx, a.source);
    if (!src.ok()) return src.status();
    Result<PgLease> dst = LeaseConnection(ctx, a.target);
    if (!dst.ok()) return dst.status();
    // The client programs of a killed attempt (pg_restore --jobs, vacuumdb)
    // outlive it: a resume must not drop and rebuild under them.
    if (!ctx.dry_run()) {
      if (Status s = WaitForInterruptedAttempt(ctx, *dst); !s.ok()) return s;
    }
    const Value previous = ctx.PreviousUndo();
    Result<Prepared> p = Prepare(ctx, a, *src, *dst, previous);
    if (!p.ok()) return p.status();
    if (ctx.dry_run()) return Estimate(ctx, a, *p);
    return Copy(ctx, a, *src, *dst, &*p, previous);
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("before")) return NothingToUndo(ctx);  // never acted
    Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
    if (!dst.ok()) return dst.status();
    Value created = state.contains("created") ? state["created"] : Value();
    if (created.is_null()) {
      Result<Value> now = Inventory(dst->conn(), dst->deadline(), InventoryVersion(state));
      if (!now.ok()) return now.status();
      created = Created(state["before"], *now);
    }
    Status s = DropObjects(dst->conn(), dst->deadline(), created);
    if (!s.ok()) return s;
    if (state.contains("foreign_keys")) {  // dropped for the data copy
      s = AddForeignKeys(*dst, state["foreign_keys"]);
      if (!s.ok()) return s;
    }
    ctx.Log(LogLevel::kInfo, "dropped " + std::to_string(created.size()) +
                                 " objects pg.copy created on '" + StrArg(args, "target") + "'");
    if (state.contains("replaced") && !state["replaced"].empty()) {
      ctx.Log(LogLevel::kWarn, "rows replaced in tables that existed before are not restored: " +
                                   state["replaced"].dump());
    }
    return Status::Ok();
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value&) override;
  Status CheckUndo(StepContext& ctx, const Value& args, const Value& state) override;

 private:
  static Result<Prepared> Prepare(StepContext& ctx, const CopyArgs& a, PgLease& src, PgLease& dst,
                                  const Value& previous);
  static Result<Value> Estimate(StepContext& ctx, const CopyArgs& a, const Prepared& p);
  static Result<Value> Copy(StepContext& ctx, const CopyArgs& a, PgLease& src, PgLease& dst,
                            Prepared* p, const Value& previous);
};

// Whether `tool` is an executable file in one of $PATH's directories (where
// the process runner will look for it).
bool OnPath(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (access(((dir.empty() ? "." : dir) + "/" + tool).c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// Refuses, before anything is done, a pg_dump older than the source server,
// a connection its programs cannot be given, or a missing client program
// (found later, it would fail a half-done copy).
Status CheckTools(StepContext& ctx, const CopyArgs& a, PgLease& src, PgLease& dst,
                  int source_version) {
  for (PgLease* side : {&src, &dst}) {
    if (Status s = CheckToolReach(ctx, *side); !s.ok()) return s;
  }
  Result<std::string> v =
      CheckPgDumpVersion(ctx, "connection '" + a.source + "': pg.copy", a.Tool("pg_dump"),
                         ServerMajor(source_version), "the server");
  if (!v.ok()) return v.status();
  for (const char* tool : {"pg_restore", "psql", "vacuumdb"}) {
    const bool found =
        a.bin_dir.empty() ? OnPath(tool) : access(a.Tool(tool).c_str(), X_OK) == 0;
    if (!found) {
      return Status::Failed(
          (a.bin_dir.empty() ? std::string(tool) + " is not on PATH"
                             : a.Tool(tool) + " is not an executable file") +
          ": pg.copy needs PostgreSQL's client programs (pg_dump, pg_restore, psql, vacuumdb); "
          "nothing was done");
    }
  }
  return Status::Ok();
}

Result<Prepared> PgCopy::Prepare(StepContext& ctx, const CopyArgs& a, PgLease& src, PgLease& dst,
                                 const Value& previous) {
  Result<std::string> id_src = DatabaseFingerprint(src.conn(), src.deadline());
  if (!id_src.ok()) return id_src.status();
  Result<std::string> id_dst = DatabaseFingerprint(dst.conn(), dst.deadline());
  if (!id_dst.ok()) return id_dst.status();
  if (*id_src == *id_dst) {
    return Status::Invalid("source '" + a.source + "' and target '" + a.target +
                           "' are the same database; nothing was done");
  }
  Prepared p;
  p.source_version = src->server_version();
  if (Status s = CheckTools(ctx, a, src, dst, p.source_version); !s.ok()) return s;
  Result<std::vector<CopyTable>> tables =
      a.all ? AllTables(src.conn(), src.deadline())
            : ResolveTables(src.conn(), src.deadline(), a.tables, a.schema);
  if (!tables.ok()) return tables.status();
  p.tables = std::move(*tables);
  if (Status s = ProbeTarget(dst.conn(), dst.deadline(), &p.tables); !s.ok()) return s;
  if (!a.text_only && src->server_version() / 10000 == dst->server_version() / 10000) {
    if (Status s = MarkBinarySafe(src.conn(), src.deadline(), &p.tables); !s.ok()) return s;
  }
  // Tables an earlier attempt of this step filled are ours to redo.
  std::vector<std::string> ours;
  if (previous.is_object() && previous.contains("tables")) {
    for (const auto& t : previous["tables"]) ours.push_back(t.get<std::string>());
  }
  std::vector<std::string> full;
  for (const auto& t : p.tables) {
    bool mine = std::find(ours.begin(), ours.end(), t.key) != ours.end();
    if (t.target_has_rows && !mine) full.push_back(t.key);
  }
  if (!full.empty() && !a.replace) {
    return Status::Failed("connection '" + a.target + "': the target already has rows in " +
                          Join(full, ", ") + " (replace: true overwrites them); nothing was done");
  }
  if (Status s = CheckCarried(a, src, dst, &p); !s.ok()) return s;
  return p;
}

// Refuses, before anything is done, a copy that would carry less than the
// source holds without the runbook saying so (RefuseLosses), or large
// objects the user may not read. Lists what the whole copy carries beyond
// tables.
Status CheckCarried(const CopyArgs& a, PgLease& src, PgLease& dst, Prepared* p) {
  OwnersChoice owners{a.owners_said, a.keep_owners, a.all};
  if (Status s = RefuseLosses(src.conn(), dst.conn(), src.deadline(), p->tables, owners); !s.ok()) {
    return s;
  }
  auto refuse = [&](const std::string& conn, const std::string& what) {
    return Status::Failed("connection '" + conn + "': " + what + "; nothing was done");
  };
  if (!a.all || a.schema_only) return Status::Ok();
  LargeObjectStats lo;
  if (Status s = ProbeLargeObjects(src.conn(), src.deadline(), &lo); !s.ok()) {
    return refuse(a.source, s.message());
  }
  p->large_objects = lo.objects;
  Result<std::vector<MaterializedView>> views = MaterializedViews(src.conn(), src.deadline());
  if (!views.ok()) return views.status();
  p->views = std::move(*views);
  return Status::Ok();
}

// "public.t (640.0 MiB, larger than 256.0 MiB) in 4 ranges of its 81964 pages"
std::string SplitLabel(const CopyArgs& a, const CopyTable& t) {
  return t.key + " (" + HumanBytes(static_cast<double>(t.bytes)) + ", larger than " +
         HumanBytes(static_cast<double>(a.split)) + ") in " + std::to_string(t.parts) +
         " ranges of its " + std::to_string(t.pages) + " pages";
}

// Decides which tables are copied in ranges (SplitLargeTables) and says so:
// `would` for a rehearsal.
void Split(StepContext& ctx, const CopyArgs& a, int source_version, std::vector<CopyTable>* tables,
           bool would) {
  if (a.schema_only) return;
  for (const auto& why : SplitLargeTables(tables, a.split, a.jobs, source_version)) {
    ctx.Log(LogLevel::kInfo, std::string(would ? "would copy" : "copying") +
                                 " in one transaction, not in ranges, " + why);
  }
  for (const auto& t : *tables) {
    if (t.parts > 1) {
      ctx.Log(LogLevel::kInfo, std::string(would ? "would copy " : "copying ") + SplitLabel(a, t) +
                                   ", " + std::to_string(a.jobs) +
                                   " at a time, each in its own transaction (no FREEZE)");
    }
  }
}

Result<Value> PgCopy::Estimate(StepContext& ctx, const CopyArgs& a, const Prepared& p) {
  Value tables = Value::array();
  int64_t rows = 0, bytes = 0;
  std::vector<CopyTable> split = p.tables;
  Split(ctx, a, p.source_version, &split, true);
  for (const auto& t : split) {
    const bool known = t.estimated_rows >= 0;  // reltuples is -1 before VACUUM or ANALYZE
    tables.push_back(Value{{"table", t.key},
                           {"rows", known ? Value(t.estimated_rows) : Value()},
                           {"bytes", t.bytes},
                           {"seconds", 0},
                           {"on_target", t.on_target},
                           {"parts", t.parts},
                           {"format", t.binary ? "binary" : "text"}});
    rows += known ? t.estimated_rows : 0;
    bytes += t.bytes;
    ctx.Log(LogLevel::kInfo, "would copy " + t.key + ": " +
                                 (known ? "about " + std::to_string(t.estimated_rows) + " rows"
                                        : std::string("rows not estimated (never analyzed)")) +
                                 ", " + HumanBytes(static_cast<double>(t.bytes)) +
                                 (t.on_target ? " (replacing the target's table contents)" : ""));
  }
  int64_t populated = 0;
  for (const auto& v : p.views) populated += v.populated ? 1 : 0;
  if (a.all && !a.schema_only) {
    ctx.Log(LogLevel::kInfo, "would copy " + std::to_string(p.large_objects) +
                                 " large objects and refresh " + std::to_string(populated) +
                                 " materialized views (of " + std::to_string(p.views.size()) + ")");
  }
  return Value{{"tables", tables},         {"rows", rows},
               {"bytes", bytes},           {"seconds", 0},
               {"estimated", true},        {"large_objects", p.large_objects},
               {"materialized_views", populated}};
}

// The objects the target had before the first attempt; a later attempt
// (retry, resume) first drops what an earlier one created, then redoes it all.
Result<Value> StartClean(StepContext& ctx, const CopyArgs& a, PgLease& dst, Prepared* p,
                         const Value& previous) {
  const bool earlier = previous.is_object() && previous.contains("before");
  const int version = earlier ? InventoryVersion(previous) : kInventoryVersion;
  Result<Value> now = Inventory(dst.conn(), dst.deadline(), version);
  if (!now.ok()) return now.status();
  if (!earlier) return *now;
  Value before = previous["before"];
  Value leftovers = Created(before, *now);
  if (!leftovers.empty()) {
    ctx.Log(LogLevel::kInfo, "dropping the " + std::to_string(leftovers.size()) +
                                 " objects an earlier attempt created on '" + a.target + "'");
    if (Status s = DropObjects(dst.conn(), dst.deadline(), leftovers); !s.ok()) return s;
    if (Status s = ProbeTarget(dst.conn(), dst.deadline(), &p->tables); !s.ok()) return s;
  }
  if (version == kInventoryVersion) return before;
  // The record of an older binary: what is there after the clean-up is
  // what this attempt starts from.
  return Inventory(dst.conn(), dst.deadline());
}

Result<std::vector<CopyStats>> CopyData(StepContext& ctx, const CopyArgs& a, PgLease& src,
                                        PgLease& dst, const std::string& snapshot,
                                        const std::vector<CopyTable>& tables,
                                        const std::string& own_key) {
  CopyJobsSpec spec;
  // The jobs import the holder's snapshot: they must reach its server.
  Result<PgConnectOptions> so = LeaseEndpoint(ctx, src);
  if (!so.ok()) return so.status();
  Result<PgConnectOptions> to = LeaseEndpoint(ctx, dst);
  if (!to.ok()) return to.status();
  spec.source = *so;
  spec.target = *to;
  spec.snapshot = snapshot;
  spec.jobs = a.jobs;
  spec.deadline = ctx.deadline();
  spec.log = [&ctx](const std::string& m) { ctx.Log(LogLevel::kInfo, m); };
  // The rows this copy writes are the run's own: a later copy of the same
  // run (the final sync, replace: true) must not make an earlier copy's
  // undo guard see them as someone else's.
  if (!own_key.empty()) {
    spec.before_commit = [&ctx, own_key](const std::string& xid) {
      return ctx.NoteOwnWrite(own_key, xid);
    };
  }
  int64_t total = 0;
  for (const auto& t : tables) total += t.bytes;
  spec.progress = [&ctx, total](const std::string& table, const CopyStats& st) {
    ProgressInfo info;
    info.done_bytes = st.bytes;
    info.total_bytes = total;
    info.done_rows = st.rows;
    info.seconds = st.seconds;
    info.what = "table data (now " + table + ")";
    ctx.Progress(info);
  };
  Result<std::vector<CopyStats>> r = CopyTablesInParallel(spec, tables);
  if (r.ok()) return r;
  std::string msg = ctx.redactor().Redact(r.status().message());
  if (r.status().code() == Status::Code::kTimeout) return Status::Timeout(msg);
  if (r.status().code() == Status::Code::kUnavailable) return Status::Unavailable(msg);
  return Status::Failed(msg);
}

// Schemas the named tables live in (pg_dump -t does not create them).
Status CreateSchemas(PgLease& dst, const std::vector<const CopyTable*>& tables) {
  std::vector<std::string> done;
  for (const CopyTable* t : tables) {
    if (std::find(done.begin(), done.end(), t->name.schema) != done.end()) continue;
    done.push_back(t->name.schema);
    Status s = dst.Exec("CREATE SCHEMA IF NOT EXISTS " + dst.Ident(t->name.schema));
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Value ResultOf(StepContext& ctx, const std::vector<CopyTable>& tables,
               const std::vector<CopyStats>& stats, double seconds, int64_t large_objects = 0,
               int64_t views = 0) {
  Value list = Value::array();
  int64_t rows = 0, bytes = 0;
  Table report{"Copied tables", {"Table", "Rows", "Bytes", "Seconds"}, {}};
  for (size_t i = 0; i < tables.size(); ++i) {
    const CopyStats& st = stats[i];
    list.push_back(Value{{"table", tables[i].key},
                         {"rows", st.rows},
                         {"bytes", st.bytes},
                         {"seconds", st.seconds},
                         {"parts", tables[i].parts},
                         {"format", tables[i].binary ? "binary" : "text"}});
    rows += st.rows;
    bytes += st.bytes;
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", st.seconds);
    report.rows.push_back(
        {tables[i].key, std::to_string(st.rows), HumanBytes(static_cast<double>(st.bytes)), secs});
  }
  ctx.AddTable(report);
  return Value{{"tables", list},
               {"rows", rows},
               {"bytes", bytes},
               {"seconds", seconds},
               {"large_objects", large_objects},
               {"materialized_views", views}};
}

// Foreign keys on the target that involve a table whose rows are replaced
// ({table, name, definition}). TRUNCATE refuses a table another one
// references, so the copy drops them for the data and adds them back after
// it, which validates every row again. Also the replaced tables' CHECK
// constraints that are NOT VALID: the source has rows that break them
// (which is why they are NOT VALID), and COPY would refuse those rows; they
// are added back NOT VALID, as pg_dump orders it (constraints after data).
Result<Value> ForeignKeysOn(PgLease& dst, const std::vector<CopyTable>& tables) {
  std::string list;
  for (const auto& t : tables) {
    if (!t.on_target) continue;
    list += (list.empty() ? "" : ", ") + QuoteLiteralPlain(t.Quoted());
  }
  if (list.empty()) return Value::array();
  return dst.Query(
      "SELECT conrelid::regclass::text AS table, conname AS name, "
      "pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE (contype = 'f' AND "
      "(conrelid = ANY (ARRAY[" +
      list +
      "]::regclass[]) OR "
      "confrelid = ANY (ARRAY[" +
      list + "]::regclass[]))) OR (contype = 'c' AND NOT convalidated AND conrelid = ANY (ARRAY[" +
      list + "]::regclass[])) ORDER BY 1, 2");
}

bool SameKey(const Value& a, const Value& b) {
  return a.value("table", "") == b.value("table", "") && a.value("name", "") == b.value("name", "");
}

Status DropForeignKeys(PgLease& dst, const Value& fks) {
  if (fks.empty()) return Status::Ok();
  std::string sql = "BEGIN;";
  for (const auto& fk : fks) {
    sql += " ALTER TABLE " + fk.value("table", "") + " DROP CONSTRAINT IF EXISTS " +
           dst.Ident(fk.value("name", "")) + ";";
  }
  Result<PgResult> r = dst.RunScript(sql + " COMMIT;");
  if (!r.ok() && dst->ok() && dst->in_transaction()) dst.Exec("ROLLBACK");
  return r.status().Prefixed("dropping foreign keys for the copy");
}

// Adds back those of `fks` that are missing (and whose table still exists).
Status AddForeignKeys(PgLease& dst, const Value& fks) {
  for (const auto& fk : fks) {
    Result<Value> there = dst.Query(
        "SELECT to_regclass($1) IS NOT NULL AS table_exists, EXISTS (SELECT 1 FROM pg_constraint "
        "WHERE conrelid = to_regclass($1) AND conname = $2) AS fk_exists",
        {fk.value("table", ""), fk.value("name", "")});
    if (!there.ok()) return there.status();
    if (there->empty() || !(*there)[0]["table_exists"].get<bool>() ||
        (*there)[0]["fk_exists"].get<bool>()) {
      continue;
    }
    Status s = dst.Exec("ALTER TABLE " + fk.value("table", "") + " ADD CONSTRAINT " +
                        dst.Ident(fk.value("name", "")) + " " + fk.value("definition", ""));
    if (!s.ok()) return s.Prefixed("adding back foreign key " + fk.value("name", ""));
  }
  return Status::Ok();
}

// ANALYZE of the copied tables; with several jobs through vacuumdb --jobs,
// which analyzes that many tables at once, a thousand tables a run (so that
// a database with tens of thousands of tables stays within the argv limit).
Status Analyze(StepContext& ctx, const CopyArgs& a, PgLease& dst,
               const std::vector<CopyTable>& tables) {
  std::vector<std::string> names;
  for (const auto& t : tables) names.push_back(t.Quoted());
  if (a.jobs <= 1 || tables.size() < 2) return dst.Exec("ANALYZE " + Join(names, ", "));
  constexpr size_t kPerRun = 1000;
  for (size_t from = 0; from < names.size(); from += kPerRun) {
    const size_t to = std::min(names.size(), from + kPerRun);
    std::vector<std::string> argv = {
        a.Tool("vacuumdb"), "--no-password", "--analyze-only", "--quiet",
        "--jobs=" + std::to_string(std::min<size_t>(static_cast<size_t>(a.jobs), to - from))};
    for (size_t i = from; i < to; ++i) argv.push_back("--table=" + names[i]);
    Result<std::string> r = RunStepPgTool(ctx, dst, argv);
    if (!r.ok()) return r.status().Prefixed("analyzing the copied tables");
  }
  return Status::Ok();
}

Result<Value> PgCopy::Copy(StepContext& ctx, const CopyArgs& a, PgLease& src, PgLease& dst,
                           Prepared* p, const Value& previous) {
  const auto start = std::chrono::steady_clock::now();
  Result<Value> before = StartClean(ctx, a, dst, p, previous);
  if (!before.ok()) return before.status();
  Value keys = Value::array(), replaced = Value::array();
  std::vector<const CopyTable*> create;
  for (const auto& t : p->tables) {
    keys.push_back(t.key);
    if (t.on_target)
      replaced.push_back(t.key);
    else
      create.push_back(&t);
  }
  Result<Value> fks = ForeignKeysOn(dst, p->tables);
  if (!fks.ok()) return fks.status();
  // An earlier attempt may have dropped some and died: they are ours to add.
  if (previous.is_object() && previous.contains("foreign_keys")) {
    for (const auto& old_fk : previous["foreign_keys"]) {
      bool known = false;
      for (const auto& fk : *fks) known = known || SameKey(fk, old_fk);
      if (!known) fks->push_back(old_fk);
    }
  }
  Value record{{"target", a.target}, {"before", *before},    {"inventory", kInventoryVersion},
               {"tables", keys},     {"replaced", replaced}, {"foreign_keys", *fks}};
  if (Status s = ctx.RecordUndo(record); !s.ok()) return s;

  SnapshotHolder holder(src);
  Result<std::string> snapshot = holder.Export();
  if (!snapshot.ok()) return snapshot.status();
  // A whole-database dump also brings types, functions, views and schemas.
  const bool whole = a.all && create.size() == p->tables.size();
  std::vector<const CopyTable*> only = whole ? std::vector<const CopyTable*>{} : create;
  ScratchDir scratch;  // the post-data archive: a private directory per attempt
  std::string post_data;
  if (!create.empty()) {
    if (Status s = scratch.Create(); !s.ok()) return s;
    post_data = scratch.File("post-data.dump");
    // Both sections at once (each pg_dump spends most of its time reading
    // the catalog); the post-data one runs on a thread of its own, through
    // the stateless process runner, and its error is redacted here.
    Result<PgConnectOptions> source = LeaseEndpoint(ctx, src);
    if (!source.ok()) return source.status();
    Result<ToolRun> post = ToolRun{};
    std::thread post_dump([&] {
      post = RunPgTool(ctx.processes(), DumpArgv("post-data", a, only, *snapshot, post_data),
                       *source, ctx.deadline());
    });
    Result<std::string> pre =
        ToolResult(ctx, RunPgTool(ctx.processes(), DumpArgv("pre-data", a, only, *snapshot),
                                  *source, ctx.deadline()));
    post_dump.join();
    if (!pre.ok()) return pre.status();
    if (Result<std::string> p = ToolResult(ctx, std::move(post)); !p.ok()) return p.status();
    if (!whole) {
      if (Status s = CreateSchemas(dst, create); !s.ok()) return s;
    }
    Result<std::string> applied = RunStepPgTool(ctx, dst, PsqlArgv(a), *pre);
    if (!applied.ok()) return applied.status().Prefixed("applying the schema (pre-data)");
  }
  std::vector<CopyStats> stats(p->tables.size());
  if (!a.schema_only) {
    if (Status s = DropForeignKeys(dst, *fks); !s.ok()) return s;
    Split(ctx, a, p->source_version, &p->tables, false);
    Result<std::vector<CopyStats>> copied = CopyData(ctx, a, src, dst, *snapshot, p->tables,
                                                     ServerWriteKey(dst.conn(), dst.deadline()));
    if (!copied.ok()) return copied.status();
    stats = std::move(*copied);
    if (Status s = AddForeignKeys(dst, *fks); !s.ok()) return s;
  }
  // Large objects from the same snapshot, on the holder's own transaction.
  LargeObjectStats lo;
  if (a.all && !a.schema_only) {
    if (Status s = CopyLargeObjects(src.conn(), dst.conn(), dst.deadline(), a.keep_owners,
                                    a.replace, &lo);
        !s.ok()) {
      return s;
    }
    if (lo.objects > 0 || lo.removed > 0) {
      ctx.Log(LogLevel::kInfo, "copied " + std::to_string(lo.objects) + " large objects (" +
                                   HumanBytes(static_cast<double>(lo.bytes)) + ")" +
                                   (lo.removed ? ", removed " + std::to_string(lo.removed) +
                                                     " the source does not have"
                                               : std::string()));
    }
  }
  holder.Release();
  if (!post_data.empty()) {
    Result<std::string> applied = RunStepPgTool(ctx, dst, PostDataRestoreArgv(a, post_data));
    if (!applied.ok())
      return applied.status().Prefixed("applying indexes and constraints (post-data)");
  }
  if (!a.schema_only) {
    Result<std::vector<std::string>> seqs =
        CopySequences(src.conn(), src.deadline(), p->tables, whole);
    if (!seqs.ok()) return seqs.status();
    if (Status s = SyncSequences(src.conn(), dst.conn(), dst.deadline(), *seqs); !s.ok()) return s;
    if (Status s = Analyze(ctx, a, dst, p->tables); !s.ok()) return s;
  }
  int64_t refreshed = 0;
  if (a.all && !a.schema_only) {
    Result<int64_t> r = RefreshMaterializedViews(dst.conn(), dst.deadline(), p->views);
    if (!r.ok()) return r.status();
    refreshed = *r;
  }
  Result<Value> after = Inventory(dst.conn(), dst.deadline());
  if (!after.ok()) return after.status();
  record["created"] = Created(*before, *after);
  // What each table held when the copy ended: rows gone since were deleted
  // by someone (CheckUndo).
  Value left = Value::object();
  for (size_t i = 0; i < p->tables.size() && i < stats.size(); ++i) {
    if (!p->tables[i].partitioned) left[p->tables[i].name.Display()] = stats[i].rows;
  }
  record["left"] = left;
  // Every row this copy wrote is older than this transaction id: a row
  // younger than it was written by someone else (CheckUndo).
  Result<Value> xid = dst.Query("SELECT (txid_current() % 4294967296)::text AS x");
  if (!xid.ok()) return xid.status();
  record["written_before_xid"] = (*xid)[0]["x"];
  if (Status s = ctx.RecordUndo(record); !s.ok()) return s;
  // Its tables are this step's to guard: an older undo that drops the whole
  // database (pg.create_database's) leaves them to it.
  std::vector<std::string> guarded;
  for (const auto& o : record["created"]) {
    if (o["kind"] != "table") continue;
    Result<TableName> name = ParseTableName(o["name"].get<std::string>(), "public");
    if (name.ok()) guarded.push_back(name->Display());
  }
  if (Status s = NoteGuardedTables(ctx, dst.conn(), dst.deadline(), guarded); !s.ok()) return s;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ResultOf(ctx, p->tables, stats, seconds, lo.objects, refreshed);
}

// The undo drops the tables the copy created. If someone wrote to one since
// (the application, after a switch to the target), its rows would be lost:
// refused, unless the table holds exactly what the source holds (then
// nothing is lost; a later copy of this run, replace: true, also writes
// younger rows).
Status PgCopy::CheckUndo(StepContext& ctx, const Value& args, const Value& state) {
  if (!state.is_object() || !state.contains("written_before_xid") || !state.contains("created")) {
    return Status::Ok();  // not finished: no one could have used its tables yet
  }
  std::vector<TableName> names;
  for (const auto& o : state["created"]) {
    if (o["kind"] != "table") continue;
    Result<TableName> name = ParseTableName(o["name"].get<std::string>(), "public");
    if (name.ok()) names.push_back(*name);
  }
  if (names.empty()) return Status::Ok();
  CopyArgs a = ReadArgs(args);
  // Rows this run's own later steps wrote (pg.exec: a stale lock cleared on
  // the copy) are not someone else's.
  std::vector<TableCount> younger;
  {
    Result<PgLease> dst = LeaseConnection(ctx, a.target);
    if (!dst.ok()) return dst.status();
    std::map<std::string, int64_t> left;
    const Value recorded = state.value("left", Value::object());
    for (const auto& [table, rows] : recorded.items()) {
      if (rows.is_number_integer()) left[table] = rows.get<int64_t>();
    }
    Result<std::vector<ForeignRows>> foreign =
        FindForeignRows(ctx, dst->conn(), dst->deadline(),
                        state["written_before_xid"].get<std::string>(), &names,
                        state.contains("left") ? &left : nullptr);
    if (!foreign.ok()) return foreign.status();
    for (const auto& f : *foreign) {
      // A partition of a table it created is named as itself.
      Result<TableName> n = ParseTableName(f.table, "public");
      if (!n.ok()) return n.status();
      const bool listed = std::any_of(younger.begin(), younger.end(),
                                      [&](const TableCount& t) { return t.key == f.table; });
      if (!listed) younger.push_back(TableCount{f.table, *n, true, 0, ""});
    }
  }
  if (younger.empty()) return Status::Ok();
  // Nothing is lost if the source holds the same rows.
  std::vector<TableCount> s = younger, d = younger;
  {
    Result<PgLease> src = LeaseConnection(ctx, a.source);
    if (!src.ok()) return src.status();
    if (Status st = CountTables(src->conn(), src->deadline(), &s, true); !st.ok()) return st;
  }
  {
    Result<PgLease> dst = LeaseConnection(ctx, a.target);
    if (!dst.ok()) return dst.status();
    if (Status st = CountTables(dst->conn(), dst->deadline(), &d, true); !st.ok()) return st;
  }
  std::string lost;
  for (size_t i = 0; i < d.size(); ++i) {
    if (s[i].exists && s[i].rows == d[i].rows && s[i].digest == d[i].digest) continue;
    lost += (lost.empty() ? "" : ", ") + d[i].key + " (" + std::to_string(d[i].rows) + " rows on '" +
            a.target + "', " + (s[i].exists ? std::to_string(s[i].rows) : std::string("none")) +
            " on '" + a.source + "')";
  }
  if (lost.empty()) return Status::Ok();
  return Status::Failed("tables pg.copy created on '" + a.target + "' were written to since (rows "
                        "added, changed or deleted that '" + a.source + "' does not have): " +
                        lost + "; dropping them would lose those writes");
}

CheckResult PgCopy::Check(StepContext& ctx, const Value& args, const Value& undo_state) {
  // The record gets "created" only once everything is done: an attempt
  // killed after the rows but before the indexes, constraints, sequences
  // or ANALYZE has equal counts and is still not done.
  if (undo_state.is_object() && undo_state.contains("before") && !undo_state.contains("created")) {
    return {CheckOutcome::kNotDone, nullptr};
  }
  CopyArgs a = ReadArgs(args);
  Result<PgLease> src = LeaseConnection(ctx, a.source);
  if (!src.ok()) return {};
  Result<PgLease> dst = LeaseConnection(ctx, a.target);
  if (!dst.ok() || !WaitForInterruptedAttempt(ctx, *dst).ok()) return {};
  Result<std::vector<CopyTable>> tables =
      a.all ? AllTables(src->conn(), src->deadline())
            : ResolveTables(src->conn(), src->deadline(), a.tables, a.schema);
  if (!tables.ok()) return {};
  std::vector<TableCount> s, d;
  for (const auto& t : *tables) s.push_back(TableCount{t.key, t.name, true, 0, ""});
  d = s;
  if (!CountTables(src->conn(), src->deadline(), &s, false).ok()) return {};
  if (!CountTables(dst->conn(), dst->deadline(), &d, false).ok()) return {};
  std::vector<CopyStats> stats(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (!d[i].exists || d[i].rows != s[i].rows) return {CheckOutcome::kNotDone, nullptr};
    stats[i].rows = d[i].rows;
  }
  return {CheckOutcome::kDone, ResultOf(ctx, *tables, stats, 0)};
}

}  // namespace

void AddPgCopyPrimitives(Registry* r) { r->Add(std::make_unique<PgCopy>()); }

}  // namespace runbook
