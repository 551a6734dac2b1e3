// pg.compare: the full comparison of two databases (pg_compare.h), the
// guardrail a clone or an upgrade must pass: schema as pg_dump sees it,
// every relation's rows, large objects, sequences, materialized views.
#include <thread>

#include "bindings/postgres/pg_compare.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_replication.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_tools.h"

namespace runbook {
namespace {

struct CompareArgs {
  std::string source, target, bin_dir;
  CompareOptions options;
  bool schema = true;
  bool allow_mismatch = false;
};

CompareArgs ReadArgs(const Value& args) {
  CompareArgs a;
  a.source = StrArg(args, "source");
  a.target = StrArg(args, "target");
  a.bin_dir = StrArg(args, "bin_dir");
  a.options.checksums = StrArg(args, "rows", "checksum") == "checksum";
  a.options.owners = BoolArg(args, "owners", true);
  a.schema = BoolArg(args, "schema", true);
  a.allow_mismatch = BoolArg(args, "allow_mismatch", false);
  return a;
}

std::vector<std::string> DumpArgv(const CompareArgs& a, const std::string& snapshot) {
  // Publications and subscriptions are the plumbing of the replication
  // being checked (the source publishes, the target subscribes), not data.
  std::vector<std::string> argv = {ToolPath(a.bin_dir, "pg_dump"), "--no-password",
                                   "--schema-only", "--no-publications", "--no-subscriptions",
                                   "--snapshot=" + snapshot};
  if (!a.options.owners) {
    argv.push_back("--no-owner");
    argv.push_back("--no-privileges");
  }
  return argv;
}

// One side: the read transaction, pg_dump on its snapshot meanwhile.
struct Side {
  std::string conn;
  DatabaseImage image;
  Status status;
  std::vector<ImageDifference> diffs;  // source side: what differs from the target
  std::vector<std::string> notes;      // and what differs harmlessly (stale views)
};

void ReadSide(StepContext& ctx, const CompareArgs& a, PgLease& lease, Side* side) {
  PgConnection& c = lease.conn();
  // pg_dump goes to the session's own server: it imports its snapshot.
  Result<PgConnectOptions> at = LeaseEndpoint(ctx, lease);
  if (!at.ok()) {
    side->status = at.status();
    return;
  }
  Result<std::string> snapshot = BeginRead(c, lease.deadline());
  if (!snapshot.ok()) {
    side->status = snapshot.status();
    return;
  }
  Result<std::string> dump = std::string();
  std::thread dumper;
  if (a.schema) {
    dumper = std::thread([&, at = *at] {
      dump =
          ToolResult(ctx, RunPgTool(ctx.processes(), DumpArgv(a, *snapshot), at, ctx.deadline()));
    });
  }
  side->status = ReadData(c, lease.deadline(), a.options, &side->image);
  if (dumper.joinable()) dumper.join();
  EndRead(c, lease.deadline());
  if (side->status.ok() && !dump.ok()) side->status = dump.status().Prefixed("dumping the schema");
  if (side->status.ok()) side->image.schema = ParseSchemaDump(*dump);
}

// What Report returns (a rehearsal is a real comparison: the same).
FieldSpec CompareResult() {
  using T = FieldType;
  return MapResult(
      {Field("match", T::kBool, "no difference found"),
       Field("mismatched", T::kInt, "how many differences"),
       ListOfMaps("differences", "one per difference",
                  {Field("kind", T::kString,
                         "schema, relation, rows, materialized view, large object or sequence"),
                   Field("object", T::kString,
                         "what differs: TABLE public.t, public.t, large object 16402, ..."),
                   Field("source", T::kString, "what the source has (missing when absent)"),
                   Field("target", T::kString, "what the target has (missing when absent)")}),
       Field("relations", T::kInt,
             "tables, partitions, materialized views and foreign tables of the source"),
       Field("relations_read", T::kInt,
             "those whose rows were read (not partitioned parents, foreign tables or "
             "unpopulated materialized views)"),
       Field("rows", T::kInt, "rows of the source's relations read"),
       Field("large_objects", T::kInt, "large objects on the source"),
       Field("sequences", T::kInt, "sequences on the source"),
       Field("schema_entries", T::kInt,
             "pg_dump entries of the source's schema (0 with schema: false)"),
       ListField("not_compared", T::kString,
                 "what was not compared, such as rows of foreign table public.f"),
       ListField("notes", T::kString,
                 "differences found harmless: a materialized view stale on the source whose "
                 "target holds its query's rows")});
}

class PgCompare : public NamedPrimitive {
 public:
  PgCompare()
      : NamedPrimitive(
            "pg.compare",
            Schema{"Compares two databases in full, as PostgreSQL's upgrade test does: the schema "
                   "as pg_dump sees it, every table's, partition's and materialized view's rows "
                   "(count and checksum), large objects, sequences, and which materialized "
                   "views are populated. Fails on any difference unless allow_mismatch.",
                   {PgConnArg("source", "the original"), PgConnArg("target", "the copy"),
                    Arg("rows", ArgType::kString, false,
                        "checksum (default: count and content) or count", {"checksum", "count"}),
                    Arg("owners", ArgType::kBool, false, "compare owners and grants too (true)"),
                    Arg("schema", ArgType::kBool, false, "compare the schema with pg_dump (true)"),
                    Arg("bin_dir", ArgType::kString, false,
                        "directory of the pg_dump to use (default: PATH); it must be at least "
                        "the newer server's major version"),
                    Arg("allow_mismatch", ArgType::kBool, false,
                        "report differences without failing")},
                   {},
                   ""},
            CompareResult()) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    CompareArgs a = ReadArgs(args);
    std::string text = "on " + a.source + " and " + a.target +
                       " at the same time, each in one REPEATABLE READ READ ONLY snapshot:";
    if (a.schema) {
      text += "\n  pg_dump --schema-only --no-publications --no-subscriptions --snapshot=<it>" +
              std::string(a.options.owners ? "" : " --no-owner --no-privileges") +
              " (normalised, compared entry by entry)";
    }
    text += std::string("\n  every table, partition and materialized view: count(*)") +
            (a.options.checksums ? " and a content checksum" : "") +
            " (FROM ONLY); which materialized views are populated";
    text += "\n  large objects (size, md5" + std::string(a.options.owners ? ", owner, grants" : "") +
            "); every sequence's last_value and is_called";
    return ChangesNothing(text, "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override { return Compare(ctx, args); }

  static Result<Value> Compare(StepContext& ctx, const Value& args) {
    CompareArgs a = ReadArgs(args);
    Side src{a.source, {}, Status::Ok()}, dst{a.target, {}, Status::Ok()};
    {
      Result<PgLease> ls = LeaseConnection(ctx, a.source);
      if (!ls.ok()) return ls.status();
      if (a.source == a.target) return Status::Invalid("source and target are the same connection");
      Result<PgLease> ld = LeaseConnection(ctx, a.target);
      if (!ld.ok()) return ld.status();
      if (a.schema) {
        const int major =
            NewerMajor(ServerMajor((*ls)->server_version()), ServerMajor((*ld)->server_version()));
        // pg_dump must know both servers' catalogs: at least the newer major.
        Result<std::string> v = CheckPgDumpVersion(
            ctx, "pg.compare of '" + a.source + "' and '" + a.target + "'",
            ToolPath(a.bin_dir, "pg_dump"), major, "the newer server of the two");
        if (!v.ok()) return v.status();
      }
      std::thread other([&] { ReadSide(ctx, a, *ld, &dst); });
      ReadSide(ctx, a, *ls, &src);
      other.join();
      if (!src.status.ok()) return src.status;
      if (!dst.status.ok()) return dst.status;
      if (a.schema) {
        Status s = PrintLikeTarget(ld->conn(), ld->deadline(), &src.image, &dst.image);
        if (!s.ok()) return s.Prefixed("printing the source's views as the target does");
      }
      src.diffs = CompareImages(src.image, dst.image);
      Status s = SettleStaleViews(ls->conn(), ls->deadline(), dst.image, &src.diffs, &src.notes);
      if (!s.ok()) return s.Prefixed("reading the source's materialized views' queries");
    }
    return Report(ctx, a, src, dst);
  }

 private:
  static Result<Value> Report(StepContext& ctx, const CompareArgs& a, const Side& src,
                              const Side& dst) {
    const std::vector<ImageDifference>& diffs = src.diffs;
    for (const auto& n : src.notes) ctx.Log(LogLevel::kWarn, n);
    int64_t rows = 0, read = 0;
    for (const auto& [name, rel] : src.image.relations) {
      if (!rel.read) continue;
      rows += rel.rows;
      ++read;
    }
    Table summary{"Full comparison: " + a.source + " vs " + a.target,
                  {"Compared", "Source", "Target"},
                  {}};
    auto count_row = [&summary](const std::string& what, size_t x, size_t y) {
      summary.rows.push_back({what, std::to_string(x), std::to_string(y)});
    };
    count_row("schema entries (pg_dump)", src.image.schema.size(), dst.image.schema.size());
    count_row("relations", src.image.relations.size(), dst.image.relations.size());
    count_row("large objects", src.image.large_objects.size(), dst.image.large_objects.size());
    count_row("sequences", src.image.sequences.size(), dst.image.sequences.size());
    summary.rows.push_back({"differences", std::to_string(diffs.size()), ""});
    ctx.AddTable(summary);
    Value list = Value::array();
    std::string text;
    Table table{"Differences: " + a.source + " vs " + a.target,
                {"Kind", "Object", "Source", "Target"},
                {}};
    for (size_t i = 0; i < diffs.size(); ++i) {
      const ImageDifference& d = diffs[i];
      list.push_back(
          Value{{"kind", d.kind}, {"object", d.object}, {"source", d.source}, {"target", d.target}});
      if (i < 200) table.rows.push_back({d.kind, d.object, d.source, d.target});
      if (i < 20) text += (text.empty() ? "" : "; ") + d.kind + " " + d.object + ": " + d.source +
                          " vs " + d.target;
    }
    if (!diffs.empty()) ctx.AddTable(table);
    Value not_compared = Value::array();
    for (const auto& n : src.image.not_compared) not_compared.push_back(n);
    Value notes = Value::array();
    for (const auto& n : src.notes) notes.push_back(n);
    Value out{{"match", diffs.empty()},
              {"mismatched", diffs.size()},
              {"differences", list},
              {"relations", src.image.relations.size()},
              {"relations_read", read},
              {"rows", rows},
              {"large_objects", src.image.large_objects.size()},
              {"sequences", src.image.sequences.size()},
              {"schema_entries", src.image.schema.size()},
              {"not_compared", not_compared},
              {"notes", notes}};
    if (!diffs.empty() && !a.allow_mismatch) {
      if (diffs.size() > 20) text += "; and " + std::to_string(diffs.size() - 20) + " more";
      return Status::Failed(std::to_string(diffs.size()) + " difference(s) between '" + a.source +
                            "' and '" + a.target + "': " + ctx.redactor().Redact(text));
    }
    ctx.Log(LogLevel::kInfo, "compared '" + a.source + "' and '" + a.target + "': " +
                                 std::to_string(src.image.schema.size()) + " schema entries, " +
                                 std::to_string(read) + " relations (" + std::to_string(rows) +
                                 " rows), " + std::to_string(src.image.large_objects.size()) +
                                 " large objects, " +
                                 std::to_string(src.image.sequences.size()) + " sequences: " +
                                 (diffs.empty() ? "identical" : std::to_string(diffs.size()) +
                                                                     " difference(s)"));
    return out;
  }
};

}  // namespace

Result<Value> RunCompare(StepContext& ctx, const Value& args) { return PgCompare::Compare(ctx, args); }

void AddPgComparePrimitives(Registry* r) { r->Add(std::make_unique<PgCompare>()); }

}  // namespace runbook
