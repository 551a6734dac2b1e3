// pg.counts and pg.compare_counts: exact row counts (and content digests),
// the table a change record shows after a copy.
#include <thread>

#include "bindings/postgres/pg_counts.h"
#include "bindings/postgres/pg_primitive.h"

namespace runbook {
namespace {

std::vector<ArgSpec> TableArgs() {
  return {Arg("tables", ArgType::kList, false, "tables (table or schema.table)"),
          Arg("all", ArgType::kBool, false, "every table of the schema"),
          Arg("schema", ArgType::kString, false, "schema for unqualified names (public)")};
}

bool AllTables(const Value& args) { return BoolArg(args, "all", false); }
std::string SchemaArg(const Value& args) { return StrArg(args, "schema", "public"); }

std::string PlanTables(const Value& args, bool checksum) {
  if (AllTables(args)) {
    return std::string("SELECT count(*)") + (checksum ? " and a content digest" : "") +
           " of every table in schema " + SchemaArg(args) + ", in one UNION ALL query";
  }
  Result<std::vector<TableCount>> tables = TablesFromNames(StrListArg(args, "tables"),
                                                           SchemaArg(args));
  if (!tables.ok()) return "count " + StrArg(args, "tables");
  return CountSql(*tables, checksum, QuoteIdentPlain);
}

class PgCounts : public NamedPrimitive {
 public:
  PgCounts()
      : NamedPrimitive("pg.counts",
                       Schema{"Exact row counts of tables, in one query (one snapshot).",
                              [] {
                                auto a = TableArgs();
                                a.insert(a.begin(), PgConnArg("conn", "the database"));
                                return a;
                              }(),
                              {{"tables", "all"}},
                              ""},
                       MapResult({MapField("counts",
                                           "rows by table, as the runbook named it (all: "
                                           "true: its name, schema.name outside public)",
                                           {}, /*open=*/true),
                                  Field("total", FieldType::kInt, "rows of all the tables")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing(PlanTables(args, false), "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string conn = StrArg(args, "conn");
    Result<PgLease> lease = LeaseConnection(ctx, conn);
    if (!lease.ok()) return lease.status();
    Result<std::vector<TableCount>> tables =
        AllTables(args) ? ListTables(lease->conn(), lease->deadline(), SchemaArg(args))
                        : TablesFromNames(StrListArg(args, "tables"), SchemaArg(args));
    if (!tables.ok()) return tables.status();
    Status s = CountTables(lease->conn(), lease->deadline(), &*tables, false);
    if (!s.ok()) return s;
    std::vector<const TableCount*> missing;
    Value counts = Value::object();
    int64_t total = 0;
    Table report{"Row counts on " + conn, {"Table", "Rows"}, {}};
    for (const auto& t : *tables) {
      if (!t.exists) {
        missing.push_back(&t);
        continue;
      }
      counts[t.key] = t.rows;
      total += t.rows;
      report.rows.push_back({t.key, std::to_string(t.rows)});
    }
    if (!missing.empty()) {
      return Status::Failed("connection '" + conn + "': no such table: " + JoinKeys(missing));
    }
    ctx.AddTable(report);
    return Value{{"counts", counts}, {"total", total}};
  }
};

struct Side {
  std::string conn;
  std::vector<TableCount> tables;
  Status status;
};

class PgCompareCounts : public NamedPrimitive {
 public:
  PgCompareCounts()
      : NamedPrimitive(
            "pg.compare_counts",
            Schema{"Compares exact row counts (and, in checksum mode, content) of tables in two "
                   "databases, queried at the same time. Any difference fails the step unless "
                   "allow_mismatch.",
                   [] {
                     auto a = TableArgs();
                     a.insert(a.begin(), PgConnArg("target", "the copy"));
                     a.insert(a.begin(), PgConnArg("source", "the original"));
                     a.push_back(Arg("mode", ArgType::kString, false, "count (default) or checksum",
                                     {"count", "checksum"}));
                     a.push_back(Arg("allow_mismatch", ArgType::kBool, false,
                                     "report differences without failing"));
                     return a;
                   }(),
                   {{"tables", "all"}},
                   ""},
            MapResult(
                {ListOfMaps(
                     "tables", "one per table of either side, the source's first",
                     {Field("table", FieldType::kString, "as the runbook named it"),
                      Optional(Field("source", FieldType::kInt,
                                     "its rows on the source; null when it has no such table")),
                      Optional(Field("target", FieldType::kInt,
                                     "its rows on the target; null when it has no such table")),
                      Field("match", FieldType::kBool,
                            "both have it with the same rows (and checksum, in checksum mode)"),
                      Optional(Field("source_checksum", FieldType::kString,
                                     "its content digest on the source; checksum mode only, "
                                     "null when it has no such table")),
                      Optional(Field("target_checksum", FieldType::kString,
                                     "its content digest on the target; checksum mode only, "
                                     "null when it has no such table"))}),
                 Field("mismatched", FieldType::kInt, "tables that differ"),
                 Field("mode", FieldType::kString, "count or checksum")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    std::string sql = PlanTables(args, Checksum(args));
    return ChangesNothing("on " + StrArg(args, "source") + " and " + StrArg(args, "target") +
                              " at the same time:\n" + sql,
                          "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Side src, dst;
    src.conn = StrArg(args, "source");
    dst.conn = StrArg(args, "target");
    Status s = CountBoth(ctx, args, &src, &dst);
    if (!s.ok()) return s;
    return Compare(ctx, args, src, dst);
  }

 private:
  static bool Checksum(const Value& args) { return StrArg(args, "mode", "count") == "checksum"; }

  // Leases both connections here (connect errors surface in this thread),
  // then counts on both at once; the threads touch only their connection.
  static Status CountBoth(StepContext& ctx, const Value& args, Side* src, Side* dst) {
    const bool checksum = Checksum(args);
    const bool same = src->conn == dst->conn;
    Result<PgLease> a = LeaseConnection(ctx, src->conn);
    if (!a.ok()) return a.status();
    Result<PgLease> b = same ? Result<PgLease>(PgLease()) : LeaseConnection(ctx, dst->conn);
    if (!b.ok()) return b.status();
    PgLease& lb = same ? *a : *b;
    auto work = [&args, checksum](PgLease& lease, Side* side) {
      Result<std::vector<TableCount>> tables =
          AllTables(args) ? ListTables(lease.conn(), lease.deadline(), SchemaArg(args))
                          : TablesFromNames(StrListArg(args, "tables"), SchemaArg(args));
      if (!tables.ok()) {
        side->status = tables.status();
        return;
      }
      side->tables = std::move(*tables);
      side->status = CountTables(lease.conn(), lease.deadline(), &side->tables, checksum);
    };
    if (same) {
      work(*a, src);
      work(lb, dst);
    } else {
      std::thread other([&] { work(lb, dst); });
      work(*a, src);
      other.join();
    }
    if (!src->status.ok()) return src->status;
    return dst->status;
  }

  static Result<Value> Compare(StepContext& ctx, const Value& args, const Side& src,
                               const Side& dst) {
    const bool checksum = Checksum(args);
    // Union of both sides' tables, in the source's order (matters for all: true).
    std::vector<std::pair<const TableCount*, const TableCount*>> pairs;
    for (const auto& t : src.tables) {
      const TableCount* other = nullptr;
      for (const auto& u : dst.tables) {
        if (u.key == t.key) other = &u;
      }
      pairs.emplace_back(&t, other);
    }
    for (const auto& u : dst.tables) {
      bool seen = false;
      for (const auto& t : src.tables) seen = seen || t.key == u.key;
      if (!seen) pairs.emplace_back(nullptr, &u);
    }
    Value rows = Value::array();
    Table report{"Row counts: " + src.conn + " vs " + dst.conn, {"Table", "Source", "Target",
                                                                 "Match"}, {}};
    std::vector<std::string> bad;
    for (const auto& [a, b] : pairs) {
      const TableCount* any = a ? a : b;
      bool has_a = a && a->exists, has_b = b && b->exists;
      bool counts_match = has_a && has_b && a->rows == b->rows;
      bool content_match = !checksum || (counts_match && a->digest == b->digest);
      bool match = counts_match && content_match;
      Value row{{"table", any->key},
                {"source", has_a ? Value(a->rows) : Value()},
                {"target", has_b ? Value(b->rows) : Value()},
                {"match", match}};
      if (checksum) {
        row["source_checksum"] = has_a ? Value(a->digest) : Value();
        row["target_checksum"] = has_b ? Value(b->digest) : Value();
      }
      rows.push_back(row);
      auto cell = [](bool has, const TableCount* t) {
        return has ? std::to_string(t->rows) : std::string("missing");
      };
      std::string verdict = match ? "match" : counts_match ? "MISMATCH (content)" : "MISMATCH";
      report.rows.push_back({any->key, cell(has_a, a), cell(has_b, b), verdict});
      if (!match) bad.push_back(any->key + " (" + cell(has_a, a) + " vs " + cell(has_b, b) +
                                (counts_match ? ", content differs" : "") + ")");
    }
    ctx.AddTable(report);
    Value out{{"tables", rows}, {"mismatched", bad.size()}, {"mode", checksum ? "checksum" : "count"}};
    if (!bad.empty() && !BoolArg(args, "allow_mismatch", false)) {
      std::string list;
      for (const auto& b : bad) list += (list.empty() ? "" : ", ") + b;
      return Status::Failed(std::to_string(bad.size()) + " of " + std::to_string(pairs.size()) +
                            " tables differ between '" + src.conn + "' and '" + dst.conn +
                            "': " + list);
    }
    return out;
  }
};

}  // namespace

void AddPgCountPrimitives(Registry* r) {
  r->Add(std::make_unique<PgCounts>());
  r->Add(std::make_unique<PgCompareCounts>());
}

}  // namespace runbook
