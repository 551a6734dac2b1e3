// pg.dump: a database to an archive file through pg_dump (see pg_tools.h).
//
// pg_dump writes to FILE.partial, the archive is verified (pg_restore --list,
// or the plain dump's trailer), and only then renamed to FILE: a failed or
// interrupted dump never leaves something at FILE that looks like a backup.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_tools.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {
namespace fs = std::filesystem;
namespace {

std::string FormatLetter(const std::string& format) {
  return format == "directory" ? "d" : format == "plain" ? "p" : "c";
}

std::string PartialPath(const std::string& file) { return file + ".partial"; }

// pg_dump's argv; `dbname` is the conninfo (or a placeholder in plan text).
std::vector<std::string> DumpArgv(const Value& args, const std::string& out,
                                  const std::string& dbname) {
  const std::string format = StrArg(args, "format", "custom");
  std::vector<std::string> argv{ToolPath(StrArg(args, "bin_dir"), "pg_dump"),
                                "--format=" + FormatLetter(format), "--file=" + out,
                                "--no-password"};
  if (format == "directory" && args.contains("jobs"))
    argv.push_back("--jobs=" + StrArg(args, "jobs"));
  for (const auto& s : StrListArg(args, "schema")) argv.push_back("--schema=" + s);
  for (const auto& t : StrListArg(args, "tables")) argv.push_back("--table=" + t);
  argv.push_back("--dbname=" + dbname);
  return argv;
}

std::string PlanDbname(const Value& args) {
  std::string db = StrArg(args, "database");
  return "<connection " + StrArg(args, "conn") + (db.empty() ? "" : ", database " + db) + ">";
}

// Makes a rename in `dir` durable (pg_dump has synced the archive itself).
void SyncDirectory(const fs::path& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

void RemovePath(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

class PgDump : public NamedPrimitive {
 public:
  PgDump()
      : NamedPrimitive(
            "pg.dump",
            Schema{"Dumps a database with pg_dump to a file (custom, plain) or directory; "
                   "verifies it and records its size and sha256. Rollback removes it.",
                   {PgConnArg("conn", "a connection to the server"),
                    Arg("database", ArgType::kString, false,
                        "the database to dump (default: the connection's)"),
                    Arg("file", ArgType::kString, true, "the archive file or directory"),
                    Arg("format", ArgType::kString, false, "custom (default), directory, plain",
                        {"custom", "directory", "plain"}),
                    Arg("jobs", ArgType::kInt, false, "parallel jobs (directory format only)"),
                    Arg("tables", ArgType::kList, false, "only these tables (pg_dump -t)"),
                    Arg("schema", ArgType::kList, false, "only these schemas (pg_dump -n)"),
                    Arg("overwrite", ArgType::kBool, false,
                        "replace an existing file (rollback then cannot bring it back)"),
                    Arg("bin_dir", ArgType::kString, false,
                        "directory of pg_dump and pg_restore (default: PATH)")},
                   {},
                   ""},
            MapResult(
                {Field("file", FieldType::kString, "the archive file or directory"),
                 Field("format", FieldType::kString, "custom, directory or plain"),
                 Field("database", FieldType::kString, "the database dumped"),
                 Field("server_version", FieldType::kInt,
                       "the server's version number (server_version_num, e.g. 170002)"),
                 Optional(Field("size", FieldType::kInt,
                                "bytes written (a directory: all its files); absent in a "
                                "rehearsal")),
                 Optional(Field("sha256", FieldType::kString,
                                "of the file (a directory: of its files' sorted `name sha256` "
                                "lines); absent in a rehearsal")),
                 Optional(Field("tables", FieldType::kInt,
                                "TABLE DATA entries in the archive; absent in a rehearsal")),
                 Optional(Field("pg_dump", FieldType::kString,
                                "the pg_dump --version line; only in a rehearsal")),
                 Optional(Field("rehearsal", FieldType::kString,
                                "only in a rehearsal: what was checked, nothing written"))})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  PlanEffect Plan(const Value& args) const override {
    const std::string file = StrArg(args, "file");
    const bool plain = StrArg(args, "format", "custom") == "plain";
    return {FormatToolArgv(DumpArgv(args, PartialPath(file), PlanDbname(args))) + "   # then " +
                (plain ? "check its \"dump complete\" line" : "pg_restore --list") +
                ", rename to " + file,
            UndoKind::kUndoes, "remove " + file + " (only if this step created it)"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string file = StrArg(args, "file"), format = StrArg(args, "format", "custom");
    const std::string conn = StrArg(args, "conn");
    const std::string where = "connection '" + conn + "': pg.dump";
    if (file.empty()) return Status::Invalid(where + ": file must not be empty");
    if (args.contains("jobs") && format != "directory") {
      return Status::Invalid(where + ": jobs needs format: directory");
    }
    Result<PgToolTarget> target = ToolTarget(ctx, conn, StrArg(args, "database"));
    if (!target.ok()) return target.status();
    // Connecting to the database itself proves it exists and the password works.
    Result<std::unique_ptr<PgConnection>> db = ConnectToDatabase(ctx, conn, target->database);
    if (!db.ok() && db.status().code() == Status::Code::kNotYet) {
      // A database an earlier step would create: a real run writes the
      // archive, and a later pg.restore of it follows the plan.
      if (RehearsalPlan* plan = PlanOf(ctx)) plan->Note(PlannedFileKey(file), ctx.step_id());
    }
    if (!db.ok()) return db.status();
    const int server_version = (*db)->server_version();
    // pg_dump dumps the server whose version was read, whatever a host list
    // or DNS would pick now (database: libpq's default when none was named).
    target = PgToolConnect((*db)->endpoint());
    if (!target.ok()) return target.status();
    target->conn_name = conn;
    db->reset();
    const std::string pg_dump = ToolPath(StrArg(args, "bin_dir"), "pg_dump");
    Result<std::string> version =
        CheckPgDumpVersion(ctx, where, pg_dump, ServerMajor(server_version), "the server");
    if (!version.ok()) return version.status();

    std::error_code ec;
    const bool existed = fs::exists(file, ec);
    const Value previous = ctx.PreviousUndo();
    const bool ours_before = previous.is_object() && previous.value("created", false);
    if (existed && !BoolArg(args, "overwrite", false) && !ours_before) {
      return Status::Failed(where + ": " + file +
                            " already exists; set overwrite: true to "
                            "replace it");
    }
    fs::path dir = fs::absolute(file, ec).parent_path();
    if (!fs::is_directory(dir, ec) || access(dir.c_str(), W_OK) != 0) {
      return Status::Failed(where + ": cannot write to directory " + dir.string());
    }
    Value base{{"file", file},
               {"format", format},
               {"database", target->database},
               {"server_version", server_version}};
    if (ctx.dry_run()) {
      // A later step of this rehearsal (pg.restore) reads the archive as written.
      if (RehearsalPlan* plan = PlanOf(ctx)) plan->Note(PlannedFileKey(file), ctx.step_id());
      Value out = base;
      out["pg_dump"] = *version;
      out["rehearsal"] = "connected, pg_dump version and destination checked; nothing written";
      return out;
    }
    // Recorded before acting: a crash mid-dump still lets rollback clean up.
    const bool created = !existed || ours_before;
    if (Status s = ctx.RecordUndo(Value{{"file", file}, {"created", created}}); !s.ok()) return s;
    const std::string partial = PartialPath(file);
    RemovePath(partial);  // left by an interrupted earlier attempt
    std::vector<std::string> argv = DumpArgv(args, partial, target->conninfo);
    ctx.Log(LogLevel::kInfo, ctx.redactor().Redact(FormatToolArgv(argv)));
    Result<Value> done = DumpAndVerify(ctx, args, where, argv, target->env, partial);
    if (!done.ok()) {
      RemovePath(partial);
      return done.status();
    }
    if (existed && fs::is_directory(file, ec)) RemovePath(file);  // rename cannot replace one
    fs::rename(partial, file, ec);
    if (ec) {
      RemovePath(partial);
      return Status::Failed(where + ": cannot rename " + partial + " to " + file + ": " +
                            ec.message());
    }
    SyncDirectory(dir);
    Value out = base;
    for (const auto& [k, v] : done->items()) out[k] = v;
    ctx.RecordUndo(
        Value{{"file", file}, {"created", created}, {"sha256", out["sha256"]}, {"result", out}});
    return out;
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& undo) override {
    if (!undo.is_object()) return NothingToUndo(ctx);
    const std::string file = StrArg(undo, "file", StrArg(args, "file"));
    RemovePath(PartialPath(file));
    if (!undo.value("created", false)) {
      ctx.Log(LogLevel::kInfo, "pg.dump: " + file + " existed before this step; left in place");
      return Status::Ok();
    }
    std::error_code ec;
    if (!fs::exists(file, ec)) return Status::Ok();  // never written, or undone already
    if (undo.contains("sha256")) {
      Result<PathDigest> now = DigestPath(file);
      if (now.ok() && now->sha256 != undo["sha256"].get<std::string>()) {
        return Status::Failed("pg.dump: " + file +
                              " changed since this step wrote it "
                              "(sha256 differs); not removing it");
      }
    }
    fs::remove_all(file, ec);
    if (ec) return Status::Failed("pg.dump: cannot remove " + file + ": " + ec.message());
    return Status::Ok();
  }

  CheckResult Check(StepContext&, const Value& args, const Value& undo) override {
    const std::string file = StrArg(args, "file");
    std::error_code ec;
    if (!undo.is_object() || !undo.contains("sha256") || !undo.contains("result")) {
      return {fs::exists(file, ec) ? CheckOutcome::kCannotTell : CheckOutcome::kNotDone, Value()};
    }
    if (!fs::exists(file, ec)) return {CheckOutcome::kNotDone, Value()};
    Result<PathDigest> now = DigestPath(file);
    // Changed since: not ours any more, and not to be overwritten by a re-run.
    if (!now.ok() || now->sha256 != undo["sha256"].get<std::string>()) return {};
    return {CheckOutcome::kDone, undo["result"]};
  }

 private:
  // Runs pg_dump, then verifies what it wrote at `partial`; returns
  // {size, sha256, tables}.
  static Result<Value> DumpAndVerify(StepContext& ctx, const Value& args, const std::string& where,
                                     const std::vector<std::string>& argv,
                                     const std::map<std::string, std::string>& env,
                                     const std::string& partial) {
    if (Result<std::string> r = RunTool(ctx, where, argv, env); !r.ok()) return r.status();
    std::vector<TocEntry> toc;
    if (StrArg(args, "format", "custom") == "plain") {
      Result<std::vector<TocEntry>> plain = ReadPlainToc(partial);
      if (!plain.ok()) return plain.status().Prefixed(where);
      toc = *plain;
    } else {
      Result<std::string> list =
          RunTool(ctx, where + " (verifying with pg_restore --list)",
                  {ToolPath(StrArg(args, "bin_dir"), "pg_restore"), "--list", "--", partial});
      if (!list.ok()) return list.status();
      toc = ParseTocList(*list);
    }
    Result<PathDigest> digest = DigestPath(partial);
    if (!digest.ok()) return digest.status().Prefixed(where);
    return Value{{"size", digest->size},
                 {"sha256", digest->sha256},
                 {"tables", CountType(toc, "TABLE DATA")}};
  }
};

}  // namespace

void AddPgDumpPrimitives(Registry* r) { r->Add(std::make_unique<PgDump>()); }

}  // namespace runbook
