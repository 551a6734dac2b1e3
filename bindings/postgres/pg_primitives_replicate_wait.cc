// pg.wait_caught_up and pg.sync_sequences: the cutover half of logical
// replication (pg.replicate, pg_primitives_replicate.cc). Waiting reads both
// servers and changes nothing; sequences are copied by setval() on the
// target, with the previous values recorded for undo.
#include <algorithm>

#include "bindings/postgres/pg_copy_catalog.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_replication.h"
#include "bindings/postgres/pg_session.h"

namespace runbook {

Result<CatchUp> MeasureCatchUp(PgLease& src, PgLease& dst, const std::string& sub,
                               const std::string& start_lsn) {
  Result<Value> t = dst.Query(
      "SELECT s.subslotname AS slot, count(r.srrelid) AS tables, "
      "count(r.srrelid) FILTER (WHERE r.srsubstate = 'r') AS ready FROM pg_subscription s "
      "LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid WHERE s.subname = $1 AND s.subdbid = "
      "(SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY s.subslotname",
      {sub});
  if (!t.ok()) return t.status();
  if (t->empty()) {
    return Status::Failed("connection '" + dst.name() + "': no subscription named " + sub);
  }
  CatchUp c;
  c.tables = (*t)[0]["tables"].get<int64_t>();
  c.ready = (*t)[0]["ready"].get<int64_t>();
  const std::string slot = (*t)[0]["slot"].is_null() ? "" : (*t)[0]["slot"].get<std::string>();
  Result<Value> l = src.Query(
      "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::int8 AS lag, "
      "pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::int8 AS behind "
      "FROM pg_replication_slots WHERE slot_name = $1",
      {slot, start_lsn});
  if (!l.ok()) return l.status();
  if (l->empty() || (*l)[0]["lag"].is_null()) {
    return Status::Failed("connection '" + src.name() + "': no active replication slot " + slot +
                          " for subscription " + sub);
  }
  c.lag_bytes = std::max<int64_t>(0, (*l)[0]["lag"].get<int64_t>());
  c.behind_start = (*l)[0]["behind"].get<int64_t>();
  return c;
}

Result<Value> WaitCaughtUp(StepContext& ctx, PgLease& src, PgLease& dst, const std::string& sub,
                           int64_t max_lag, SteadyTime give_up) {
  // The insert position, not pg_current_wal_lsn() (the write position): with
  // synchronous_commit = off a commit that already returned can still be
  // unwritten, and a slot confirmed up to the write position (a keepalive
  // from a walsender that decoded its rows but not yet its commit) would
  // "catch up" before that transaction is applied.
  Result<Value> start = src.Query("SELECT pg_current_wal_insert_lsn()::text AS lsn");
  if (!start.ok()) return start.status();
  const std::string lsn = (*start)[0]["lsn"].get<std::string>();
  const SteadyTime begin = ctx.clock().Steady();
  for (;;) {
    Result<CatchUp> c = MeasureCatchUp(src, dst, sub, lsn);
    if (!c.ok()) return c.status();
    const int64_t waited = std::chrono::duration_cast<Millis>(ctx.clock().Steady() - begin).count();
    const bool done = c->ready == c->tables && c->behind_start <= max_lag;
    if (done || ctx.dry_run()) {
      if (ctx.dry_run()) {
        ctx.Log(LogLevel::kInfo, "subscription " + sub + ": " + std::to_string(c->ready) + "/" +
                                     std::to_string(c->tables) + " tables ready, " +
                                     std::to_string(c->lag_bytes) + " bytes behind");
      }
      return Value{{"lag_bytes", c->lag_bytes},
                   {"waited_ms", waited},
                   {"tables_ready", c->ready},
                   {"tables", c->tables},
                   {"caught_up", done}};
    }
    if (ctx.clock().Steady() >= give_up) {
      return Status::Timeout("subscription " + sub + " did not catch up: " +
                             std::to_string(c->ready) + "/" + std::to_string(c->tables) +
                             " tables ready, " + std::to_string(c->behind_start) +
                             " bytes short of " + lsn + " after " + std::to_string(waited) + " ms");
    }
    ctx.clock().Sleep(Millis(100));
  }
}

namespace {

class PgWaitCaughtUp : public NamedPrimitive {
 public:
  PgWaitCaughtUp()
      : NamedPrimitive(
            "pg.wait_caught_up",
            Schema{"Waits until a subscription has copied every table and has applied the "
                   "source's WAL up to where it was when the wait began (within max_lag bytes).",
                   {PgConnArg("source", "the publishing database"),
                    PgConnArg("target", "the subscribing database"),
                    Arg("subscription", ArgType::kString, true, "the subscription's name"),
                    Arg("max_lag", ArgType::kInt, false, "bytes of WAL allowed behind (0)"),
                    Arg("timeout", ArgType::kDuration, false, "how long to wait (5m)")},
                   {},
                   ""},
            MapResult({Field("lag_bytes", FieldType::kInt,
                             "bytes of WAL the slot's confirmed position is behind the source's "
                             "current one"),
                       Field("waited_ms", FieldType::kInt, "how long it waited, in milliseconds"),
                       Field("tables_ready", FieldType::kInt, "tables whose initial copy is done"),
                       Field("tables", FieldType::kInt, "tables of the subscription"),
                       Field("caught_up", FieldType::kBool,
                             "it caught up (always true in a real run; a rehearsal does not wait "
                             "and says whether it already has)")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing("poll pg_subscription_rel on " + StrArg(args, "target") +
                              " and pg_replication_slots.confirmed_flush_lsn on " +
                              StrArg(args, "source") + " until subscription " +
                              StrArg(args, "subscription") + " has caught up",
                          "read-only");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string sub = StrArg(args, "subscription");
    int64_t max_lag = 0;
    if (args.contains("max_lag") && args["max_lag"].is_number_integer()) {
      max_lag = args["max_lag"].get<int64_t>();
    }
    Result<Millis> timeout = DurationArg(args, "timeout", std::chrono::minutes(5));
    if (!timeout.ok()) return timeout.status();
    Result<PgLease> src = LeaseConnection(ctx, StrArg(args, "source"));
    if (!src.ok()) return src.status();
    Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
    if (!dst.ok()) return dst.status();
    const SteadyTime give_up = std::min(ctx.deadline(), ctx.clock().Steady() + *timeout);
    return WaitCaughtUp(ctx, *src, *dst, sub, max_lag, give_up);
  }
};

}  // namespace

// The sequences of the tables (or all), with the source's and the target's
// values: [{sequence, source: {last_value, is_called}, target: {...}}].
Result<Value> SequenceValues(StepContext& ctx, const Value& args, PgLease& src, PgLease& dst) {
  const bool all = BoolArg(args, "all", false);
  Result<std::vector<CopyTable>> tables =
      all ? AllTables(src.conn(), src.deadline())
          : ResolveTables(src.conn(), src.deadline(), StrListArg(args, "tables"), "public");
  if (!tables.ok()) return tables.status();
  Result<std::vector<std::string>> seqs = CopySequences(src.conn(), src.deadline(), *tables, all);
  if (!seqs.ok()) return seqs.status();
  Value out = Value::array();
  const std::string read = "SELECT last_value::text AS last_value, is_called FROM ";
  for (const auto& seq : *seqs) {
    Result<Value> there = dst.Query("SELECT to_regclass($1) IS NOT NULL AS there", {seq});
    if (!there.ok()) return there.status();
    if (!(*there)[0]["there"].get<bool>()) {
      ctx.Log(LogLevel::kWarn, "sequence " + seq + " is not on '" + dst.name() + "': left out");
      continue;
    }
    Result<Value> s = src.Query(read + seq);
    if (!s.ok()) return s.status();
    Result<Value> d = dst.Query(read + seq);
    if (!d.ok()) return d.status();
    out.push_back(Value{{"sequence", seq}, {"source", (*s)[0]}, {"target", (*d)[0]}});
  }
  return out;
}

Status SetSequence(PgLease& dst, const std::string& seq, const Value& v) {
  return dst.Exec("SELECT setval($1::regclass, $2::int8, $3::bool)",
                  {seq, v["last_value"].get<std::string>(),
                   std::string(v["is_called"].get<bool>() ? "true" : "false")});
}

namespace {

class PgSyncSequences : public NamedPrimitive {
 public:
  PgSyncSequences()
      : NamedPrimitive(
            "pg.sync_sequences",
            Schema{"Sets the target's sequences (of the tables, or all) to the source's "
                   "last_value / is_called: logical replication does not carry them. Rollback "
                   "restores the previous values.",
                   {PgConnArg("source", "the database to read sequences from"),
                    PgConnArg("target", "the database whose sequences are set"),
                    Arg("tables", ArgType::kList, false, "tables whose sequences to sync"),
                    Arg("all", ArgType::kBool, false, "every sequence")},
                   {{"tables", "all"}},
                   ""},
            MapResult(
                {Field("sequences", FieldType::kInt,
                       "sequences of the tables (or all) the target has too"),
                 ListOfMaps(
                     "set",
                     "the sequences whose value differed, set (in a rehearsal: would be set)",
                     {Field("sequence", FieldType::kString, "schema.sequence, quoted where needed"),
                      MapField("from", "the target's value before",
                               {Field("last_value", FieldType::kString, "as text (int8)"),
                                Field("is_called", FieldType::kBool, "")}),
                      MapField("to", "the source's value, now the target's",
                               {Field("last_value", FieldType::kString, "as text (int8)"),
                                Field("is_called", FieldType::kBool, "")})})})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    return {"SELECT setval(seq, last_value, is_called) on " + StrArg(args, "target") +
                " for each sequence, with the values read on " + StrArg(args, "source"),
            UndoKind::kUndoes, "setval() back to the values recorded before"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Result<PgLease> src = LeaseConnection(ctx, StrArg(args, "source"));
    if (!src.ok()) return src.status();
    Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
    if (!dst.ok()) return dst.status();
    Result<Value> seqs = SequenceValues(ctx, args, *src, *dst);
    if (!seqs.ok()) return seqs.status();
    Value changed = Value::array(), before = Value::array();
    // A retry keeps the values the first attempt found.
    const Value previous = ctx.PreviousUndo();
    for (const auto& s : *seqs) {
      Value old = s["target"];
      if (previous.is_object() && previous.contains("before")) {
        for (const auto& p : previous["before"]) {
          if (p["sequence"] == s["sequence"]) old = p["value"];
        }
      }
      before.push_back(Value{{"sequence", s["sequence"]}, {"value", old}});
      if (s["source"] != s["target"]) {
        changed.push_back(
            Value{{"sequence", s["sequence"]}, {"from", s["target"]}, {"to", s["source"]}});
        ctx.Log(LogLevel::kInfo, std::string(ctx.dry_run() ? "would set " : "setting ") +
                                     s["sequence"].get<std::string>() + " to " +
                                     s["source"]["last_value"].get<std::string>());
      }
    }
    // "set", not "changed": the engine adds `changed` (StepContext::SetChanged).
    Value result{{"sequences", seqs->size()}, {"set", changed}};
    if (ctx.dry_run()) return result;
    if (Status s = ctx.RecordUndo(Value{{"before", before}}); !s.ok()) return s;
    for (const auto& c : changed) {
      if (Status s = SetSequence(*dst, c["sequence"].get<std::string>(), c["to"]); !s.ok()) {
        return s;
      }
    }
    return result;
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("before")) return NothingToUndo(ctx);
    Result<PgLease> dst = LeaseConnection(ctx, StrArg(args, "target"));
    if (!dst.ok()) return dst.status();
    for (const auto& b : state["before"]) {
      if (Status s = SetSequence(*dst, b["sequence"].get<std::string>(), b["value"]); !s.ok()) {
        return s;
      }
    }
    ctx.Log(LogLevel::kInfo, "restored " + std::to_string(state["before"].size()) + " sequences");
    return Status::Ok();
  }
};

}  // namespace

void AddPgCatchUpPrimitives(Registry* r) {
  r->Add(std::make_unique<PgWaitCaughtUp>());
  r->Add(std::make_unique<PgSyncSequences>());
}

}  // namespace runbook
