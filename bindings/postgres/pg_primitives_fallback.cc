// pg.fallback: the way back after a blue-green switch. Run inside the write
// freeze, after the guardrails and before the switch. With `replication`,
// blue subscribes to green (a publication and a slot on green, a
// subscription on blue that copies nothing: the two are equal at that
// instant), so blue stays current while the application writes to green.
//
// Its undo is the reverse cutover (the writers are stopped by then: the
// undo of the steps after it, newest first): wait until blue has applied
// everything green committed, carry sequences and what replication does not
// (large objects, unlogged tables, materialized views), prove blue holds
// what green holds (pg.compare), and only then take the fallback down. If
// the proof fails the rollback halts: nothing older is undone (the writers
// stay stopped), nothing on green is touched.
//
// Before any rollback (CheckUndo): without replication, or with a broken
// one, a rollback would leave green's writes behind; it is refused, saying
// which tables changed, unless the operator accepts the loss.
#include <algorithm>
#include <cctype>

#include "bindings/postgres/pg_compare.h"
#include "bindings/postgres/pg_primitive.h"
#include "bindings/postgres/pg_replication.h"
#include "bindings/postgres/pg_session.h"
#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_undo_guard.h"

namespace runbook {
namespace {

struct FallbackArgs {
  std::string blue, green, name, green_dsn, bin_dir;
  bool replication = true, owners = true;
  Millis catch_up{600000};
};

FallbackArgs ReadArgs(StepContext* ctx, const Value& args) {
  FallbackArgs a;
  a.blue = StrArg(args, "source");
  a.green = StrArg(args, "target");
  a.name = StrArg(args, "name");
  if (a.name.empty() && ctx) a.name = ReplicationObjectName(*ctx);
  a.green_dsn = StrArg(args, "target_dsn");
  a.bin_dir = StrArg(args, "bin_dir");
  a.replication = BoolArg(args, "replication", true);
  a.owners = BoolArg(args, "owners", true);
  a.catch_up = DurationArgOr(args, "catch_up_timeout", std::chrono::minutes(10));
  return a;
}

// Green's rows as {relation: "rows checksum"}: what a rollback without the
// replication compares against.
Result<Value> Fingerprint(PgLease& green) {
  CompareOptions options;
  options.owners = false;
  Result<std::string> snapshot = BeginRead(green.conn(), green.deadline());
  if (!snapshot.ok()) return snapshot.status();
  DatabaseImage image;
  Status s = ReadData(green.conn(), green.deadline(), options, &image);
  EndRead(green.conn(), green.deadline());
  if (!s.ok()) return s;
  Value out = Value::object();
  for (const auto& [name, rel] : image.relations) {
    if (rel.read) out[name] = std::to_string(rel.rows) + " " + rel.digest;
  }
  return out;
}

// Names the relations whose rows changed since `before`, with the counts.
std::vector<std::string> Changed(const Value& before, const Value& now) {
  std::vector<std::string> out;
  auto rows = [](const Value& v) { return v.is_string() ? v.get<std::string>().substr(0, v.get<std::string>().find(' ')) : std::string("none"); };
  for (auto it = now.begin(); it != now.end(); ++it) {
    const Value was = before.contains(it.key()) ? before[it.key()] : Value();
    if (was != it.value()) out.push_back(it.key() + " (" + rows(was) + " rows then, " + rows(it.value()) + " now)");
  }
  for (auto it = before.begin(); it != before.end(); ++it) {
    if (!now.contains(it.key())) out.push_back(it.key() + " (gone)");
  }
  return out;
}

std::string Join(const std::vector<std::string>& items, size_t max) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < max; ++i) out += (i ? "; " : "") + items[i];
  if (items.size() > max) out += "; and " + std::to_string(items.size() - max) + " more";
  return out;
}

// What would stop the reverse replication from working, checked before
// anything is created (and all a rehearsal does).
// `ours`: an earlier attempt of this step (killed part-way) made what is
// named a.name; it is reused, not refused.
Status Probe(const FallbackArgs& a, PgLease& blue, PgLease& green, bool ours) {
  Result<Value> g = green.Query(
      "SELECT current_setting('wal_level') AS wal_level, "
      "(SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user) AS repl, "
      "current_setting('max_replication_slots')::int - "
      "(SELECT count(*) FROM pg_replication_slots)::int AS free_slots, "
      "EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) OR "
      "EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS taken",
      {a.name});
  if (!g.ok()) return g.status();
  const Value& row = (*g)[0];
  auto refuse = [](const std::string& conn, const std::string& why) {
    return Status::Failed("connection '" + conn + "': " + why +
                          "; the fallback (blue following green) cannot be set up; nothing was "
                          "done");
  };
  if (row["wal_level"] != "logical") {
    return refuse(a.green, "wal_level is " + row["wal_level"].get<std::string>() +
                               ", and blue can follow green only with wal_level = logical on "
                               "green (set it in green's manifest: postgres -c wal_level=logical)");
  }
  if (!row["repl"].get<bool>()) return refuse(a.green, "the user has neither REPLICATION nor superuser");
  if (row["taken"].get<bool>() && !ours) {
    return refuse(a.green, "a publication or slot named " + a.name + " exists");
  }
  if (row["free_slots"].get<int64_t>() < 1 && !ours) return refuse(a.green, "no free replication slot");
  Result<Value> b = blue.Query(
      "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su, "
      "EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1) AS taken",
      {a.name});
  if (!b.ok()) return b.status();
  if (!(*b)[0]["su"].get<bool>()) return refuse(a.blue, "CREATE SUBSCRIPTION needs a superuser");
  if ((*b)[0]["taken"].get<bool>() && !ours) {
    return refuse(a.blue, "a subscription named " + a.name + " exists");
  }
  return Status::Ok();
}

class PgFallback : public NamedPrimitive {
 public:
  PgFallback()
      : NamedPrimitive(
            "pg.fallback",
            Schema{"The way back after a blue-green switch, set up inside the write freeze just "
                   "before it. replication: blue follows green (a subscription on blue to a "
                   "publication on green), so that a rollback after the switch is a reverse "
                   "cutover that loses no write: the undo waits until blue has applied "
                   "everything green committed, carries sequences, large objects, unlogged "
                   "tables and materialized views back, proves blue equal to green "
                   "(pg.compare), then drops the replication; if the proof fails the rollback "
                   "halts there. Without replication, a rollback is refused once green's rows "
                   "changed (unless --accept-data-loss).",
                   {PgConnArg("source", "blue: the database the application left"),
                    PgConnArg("target", "green: the database the application now writes to"),
                    Arg("replication", ArgType::kBool, false,
                        "blue follows green until the decommission (true); green needs "
                        "wal_level = logical, blue a superuser"),
                    Arg("target_dsn", ArgType::kString, false,
                        "how BLUE's server reaches green, key=value conninfo (e.g. "
                        "host=chronicle-db-v17.dsm.svc port=5432); default: the address the "
                        "engine used"),
                    Arg("name", ArgType::kString, false,
                        "publication, slot and subscription name (default from the run id)"),
                    Arg("owners", ArgType::kBool, false,
                        "the reverse cutover's proof compares owners and grants (true)"),
                    Arg("bin_dir", ArgType::kString, false,
                        "pg_dump for the proof (at least the newer server's major)"),
                    Arg("catch_up_timeout", ArgType::kDuration, false,
                        "how long the reverse cutover waits for blue to catch up (10m)")},
                   {},
                   ""},
            MapResult({Optional(Field("replication", FieldType::kString,
                                      "the publication, slot and subscription name; null "
                                      "without replication")),
                       Field("tables", FieldType::kInt,
                             "relations of green whose rows were noted (0 with replication)")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  // Run again after a crash, it reuses what its earlier attempt made.
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    FallbackArgs a = ReadArgs(nullptr, args);
    const std::string n = a.name.empty() ? "<runbook_run_step>" : a.name;
    if (!a.replication) {
      return {"read the rows of every table of " + a.green +
                  " (counts and checksums): a "
                  "rollback refuses once they change (no way back for writes made to " +
                  a.green + ")",
              UndoKind::kUndoes,
              "compare the rows of " + a.green +
                  " with those noted, again once the "
                  "writers are stopped: a difference halts the rollback (refused before acting "
                  "once " +
                  a.green + " has new writes)"};
    }
    return {"CREATE PUBLICATION " + n +
                " FOR ALL TABLES and SELECT "
                "pg_create_logical_replication_slot('" +
                n + "', 'pgoutput') on " + a.green + "\nCREATE SUBSCRIPTION " + n +
                " CONNECTION '<" + a.green + ", password redacted>' PUBLICATION " + n +
                " WITH (create_slot = false, copy_data = false) on " + a.blue,
            UndoKind::kUndoes,
            "the reverse cutover: wait until " + a.blue + " has applied everything " + a.green +
                " committed, setval() of its sequences, large objects, unlogged tables and "
                "materialized views from " +
                a.green + ", pg.compare " + a.green + " vs " + a.blue +
                " (a difference halts the rollback), then drop the subscription, "
                "publication and slot " +
                n};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    FallbackArgs a = ReadArgs(&ctx, args);
    Result<PgLease> blue = LeaseConnection(ctx, a.blue);
    if (!blue.ok()) return blue.status();
    Result<PgLease> green = LeaseConnection(ctx, a.green);
    if (!green.ok()) return green.status();
    // Killed part-way before (a resume runs it again): what the earlier
    // attempt recorded names what it may have made.
    const Value prev = ctx.PreviousUndo();
    const bool ours = prev.is_object() && prev.value("replication", false) &&
                      prev.value("name", std::string()) == a.name;
    if (a.replication) {
      if (Status s = Probe(a, *blue, *green, ours); !s.ok()) return s;
    }
    Value fingerprint = Value::object();
    if (!a.replication) {
      Result<Value> f = Fingerprint(*green);
      if (!f.ok()) return f.status();
      fingerprint = std::move(*f);
    }
    Value result{{"replication", a.replication ? Value(a.name) : Value()},
                 {"tables", fingerprint.size()}};
    if (ctx.dry_run()) {
      ctx.Log(LogLevel::kInfo, a.replication ? "would make '" + a.blue + "' follow '" + a.green +
                                                   "' as " + a.name
                                             : "would note the rows of '" + a.green + "'");
      return result;
    }
    Value record{{"replication", a.replication}, {"name", a.name}, {"fingerprint", fingerprint}};
    if (Status s = ctx.RecordUndo(record); !s.ok()) return s;
    if (!a.replication) return result;
    auto exists = [](PgLease& c, const char* sql, const std::string& name) -> Result<bool> {
      Result<Value> r = c.Query(sql, {name});
      if (!r.ok()) return r.status();
      return !r->empty();
    };
    Result<bool> have = exists(*green, "SELECT 1 FROM pg_publication WHERE pubname = $1", a.name);
    if (!have.ok()) return Redact(ctx, have.status());
    Status s;
    if (!*have) s = green->Exec("CREATE PUBLICATION " + green->Ident(a.name) + " FOR ALL TABLES");
    if (!s.ok()) return Redact(ctx, s);
    have = exists(*green, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", a.name);
    if (!have.ok()) return Redact(ctx, have.status());
    if (!*have) s = green->Exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {a.name});
    if (!s.ok()) return Redact(ctx, s);
    have = exists(*blue, "SELECT 1 FROM pg_subscription WHERE subname = $1", a.name);
    if (!have.ok()) return Redact(ctx, have.status());
    if (*have) {
      ctx.Log(LogLevel::kInfo, "'" + a.blue + "' follows '" + a.green + "' (" + a.name +
                                   ", set up by the earlier attempt) until the decommission");
      return result;
    }
    const std::string conninfo = ReplicationConninfo(green->conn(), a.green_dsn);
    if (const char* pw = PQpass(green->conn().native()); pw && *pw) ctx.redactor().Add(pw);
    s = blue->Exec("CREATE SUBSCRIPTION " + blue->Ident(a.name) + " CONNECTION " +
                   QuoteLiteralPlain(conninfo) + " PUBLICATION " + blue->Ident(a.name) +
                   " WITH (create_slot = false, slot_name = " + QuoteLiteralPlain(a.name) +
                   ", copy_data = false)");
    if (!s.ok()) return Redact(ctx, s.Prefixed("creating the subscription on '" + a.blue + "'"));
    ctx.Log(LogLevel::kInfo, "'" + a.blue + "' follows '" + a.green + "' (" + a.name +
                                 ") until the decommission");
    return result;
  }

  Status CheckUndo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("name")) return Status::Ok();
    FallbackArgs a = ReadArgs(&ctx, args);
    const std::string name = state["name"].get<std::string>();
    if (state.value("replication", false)) {
      if (state.value("proven", false)) return Status::Ok();  // blue was proven equal
      Result<PgLease> blue = LeaseConnection(ctx, a.blue);
      if (!blue.ok()) return blue.status();
      Result<Value> sub = blue->Query(
          "SELECT subenabled FROM pg_subscription WHERE subname = $1", {name});
      if (!sub.ok()) return sub.status();
      if (!sub->empty() && (*sub)[0]["subenabled"].get<bool>()) return Status::Ok();
      return Status::Failed("'" + a.blue + "' no longer follows '" + a.green + "' (subscription " +
                            name + (sub->empty() ? " is gone: decommissioned?" : " is disabled") +
                            "): switching back would leave behind what the application wrote "
                            "to '" + a.green + "' since the switch");
    }
    Result<PgLease> green = LeaseConnection(ctx, a.green);
    if (!green.ok()) return green.status();
    Result<Value> now = Fingerprint(*green);
    if (!now.ok()) return now.status();
    std::vector<std::string> changed = Changed(state.value("fingerprint", Value::object()), *now);
    if (changed.empty()) return Status::Ok();
    return Status::Failed("'" + a.green + "' has writes since the switch that '" + a.blue +
                          "' does not (no fallback replication): " + Join(changed, 10) +
                          "; switching back would lose them. Dump them first (runbooks/"
                          "pg-backup.yaml), or keep running on '" + a.green + "'");
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object()) return NothingToUndo(ctx);
    FallbackArgs a = ReadArgs(&ctx, args);
    if (!state.value("replication", false)) return CompareAgain(ctx, a, state);
    const std::string name = state["name"].get<std::string>();
    // Proven once (killed while the replication was being taken down, which
    // disables the subscription first): only the taking down is left.
    Value proven = state;
    if (!state.value("proven", false)) {
      // Every row of green older than this was committed before the
      // catch-up began, so the comparison below covers it: the older undos
      // that drop green's tables or database lose nothing older (a horizon).
      Result<PgLease> green = LeaseConnection(ctx, a.green);
      if (!green.ok()) return Status::Halt(green.status().message());
      Result<std::string> horizon = OldestRunningXid(green->conn(), green->deadline());
      if (!horizon.ok()) return Status::Halt(horizon.status().message());
      { PgLease release = std::move(*green); }
      Status caught = ReverseCutover(ctx, a, name);
      if (!caught.ok()) return caught;
      proven["proven"] = true;
      proven["horizon"] = *horizon;
      if (Status s = ctx.RecordUndo(proven); !s.ok()) return s;
    }
    if (proven.contains("horizon")) {  // noted again after a crash: harmless
      Result<PgLease> green = LeaseConnection(ctx, a.green);
      if (!green.ok()) return Status::Halt(green.status().message());
      Status s = NoteHorizon(ctx, green->conn(), green->deadline(),
                             proven["horizon"].get<std::string>());
      if (!s.ok()) return Status::Halt(s.message());
    }
    if (Status s = DropReplication(ctx, a.green, a.blue, name); !s.ok()) return s;
    ctx.Log(LogLevel::kInfo, "'" + a.blue + "' holds what '" + a.green +
                                 "' held (compared); the fallback replication " + name +
                                 " is taken down; '" + a.green + "' is kept as it is");
    return Status::Ok();
  }

 private:
  // Without replication, CheckUndo compared green's rows while the writers
  // still ran on green; this undo runs once they are stopped (the undos
  // newer than it scaled them to 0): writes made in between would be left
  // behind on green, so the rows are compared again and a difference halts
  // the rollback before the writers start on blue.
  static Status CompareAgain(StepContext& ctx, const FallbackArgs& a, const Value& state) {
    if (ctx.accept_data_loss() || !state.contains("fingerprint")) return Status::Ok();
    Result<PgLease> green = LeaseConnection(ctx, a.green);
    if (!green.ok()) return Status::Halt(green.status().message());
    Result<Value> now = Fingerprint(*green);
    if (!now.ok()) return Status::Halt(now.status().message());
    std::vector<std::string> changed = Changed(state["fingerprint"], *now);
    if (changed.empty()) return Status::Ok();
    return Status::Halt("'" + a.green + "' took writes after the rollback checked it, before "
                        "the writers stopped: " + Join(changed, 10) + ". The writers stay "
                        "stopped and nothing older is undone: dump those rows (or keep '" +
                        a.green + "': point the Service back at it and scale the writers up), "
                        "then runbook rollback again, or with --accept-data-loss");
  }

  static Status Redact(StepContext& ctx, const Status& s) {
    if (s.ok()) return s;
    const std::string msg = ctx.redactor().Redact(s.message());
    if (s.code() == Status::Code::kNotYet) return Status::NotYet(msg);  // a rehearsal's plan
    return Status::Failed(msg);
  }

  // Blue catches up with green, gets what replication does not carry, and
  // is compared; any failure halts the rollback (see the file comment).
  static Status ReverseCutover(StepContext& ctx, const FallbackArgs& a, const std::string& name) {
    auto halt = [&](const std::string& why) {
      return Status::Halt("the reverse cutover to '" + a.blue + "' did not complete: " + why +
                          ". The writers stay stopped (the Service already selects '" + a.blue +
                          "'s pods) and '" + a.green + "' is untouched: fix the cause and run "
                          "runbook rollback again; to stay on '" + a.green + "' instead, point "
                          "the Service back at it and scale the writers up by hand");
    };
    {
      Result<PgLease> green = LeaseConnection(ctx, a.green);
      if (!green.ok()) return halt(green.status().message());
      Result<PgLease> blue = LeaseConnection(ctx, a.blue);
      if (!blue.ok()) return halt(blue.status().message());
      const SteadyTime give_up = std::min(ctx.deadline(), ctx.clock().Steady() + a.catch_up);
      Result<Value> caught = WaitCaughtUp(ctx, *green, *blue, name, 0, give_up);
      if (!caught.ok()) return halt(ctx.redactor().Redact(caught.status().message()));
      Result<Value> seqs = SequenceValues(ctx, Value{{"all", true}}, *green, *blue);
      if (!seqs.ok()) return halt(seqs.status().message());
      for (const auto& q : *seqs) {
        if (q["source"] == q["target"]) continue;
        if (Status s = SetSequence(*blue, q["sequence"].get<std::string>(), q["source"]); !s.ok()) {
          return halt(s.message());
        }
      }
      // Green's snapshot for what replication does not carry.
      Status s = green->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      if (s.ok()) s = green->Exec("SET LOCAL row_security = off");
      Result<Value> rest = s.ok() ? CarryUnreplicated(ctx, *green, *blue, a.owners)
                                  : Result<Value>(s);
      if ((*green)->ok() && (*green)->in_transaction()) green->Exec("ROLLBACK");
      if (!rest.ok()) return halt(rest.status().message());
    }
    Value compare{{"source", a.green}, {"target", a.blue}, {"owners", a.owners},
                  {"allow_mismatch", true}};
    if (!a.bin_dir.empty()) compare["bin_dir"] = a.bin_dir;
    Result<Value> same = RunCompare(ctx, compare);
    if (!same.ok()) return halt(same.status().message());
    if ((*same)["mismatched"].get<int64_t>() > 0) {
      std::string list;
      int n = 0;
      for (const auto& d : (*same)["differences"]) {
        if (n++ == 10) break;
        list += (list.empty() ? "" : "; ") + d["kind"].get<std::string>() + " " +
                d["object"].get<std::string>();
      }
      return halt("'" + a.blue + "' differs from '" + a.green + "' after the catch-up (" +
                  std::to_string((*same)["mismatched"].get<int64_t>()) + " differences: " + list +
                  ")");
    }
    return Status::Ok();
  }
};

// pg.drop_replication: the end of a fallback window (the decommission).
class PgDropReplication : public NamedPrimitive {
 public:
  PgDropReplication()
      : NamedPrimitive(
            "pg.drop_replication",
            Schema{"Takes a logical replication down for good: the subscription on the "
                   "subscriber (detached from its slot first), the publication and its slots "
                   "on the publisher. Irreversible; what is already gone is fine.",
                   {PgConnArg("publisher", "the database that publishes"),
                    PgConnArg("subscriber", "the database that subscribes"),
                    Arg("name", ArgType::kString, true,
                        "the subscription's, publication's and slot's name")},
                   {},
                   ""},
            MapResult({Field("name", FieldType::kString, "the name given"),
                       Field("subscription", FieldType::kBool,
                             "the subscription existed (a rehearsal: exists)"),
                       Field("publication", FieldType::kBool,
                             "the publication or slot existed (a rehearsal: exists)")})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    const std::string n = StrArg(args, "name");
    return Irreversible(
        "ALTER SUBSCRIPTION " + n + " DISABLE, SET (slot_name = NONE), DROP SUBSCRIPTION " + n +
            " on " + StrArg(args, "subscriber") + "\nDROP PUBLICATION " + n +
            " and pg_drop_replication_slot('" + n + "') on " + StrArg(args, "publisher"),
        "irreversible: the replication is gone (run the upgrade again to set one up)");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string pub = StrArg(args, "publisher"), sub = StrArg(args, "subscriber");
    const std::string name = StrArg(args, "name");
    bool had_sub = false, had_pub = false;
    {
      Result<PgLease> s = LeaseConnection(ctx, sub);
      if (!s.ok()) return s.status();
      Result<Value> r = s->Query("SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1) "
                                 "AS e", {name});
      if (!r.ok()) return r.status();
      had_sub = (*r)[0]["e"].get<bool>();
    }
    {
      Result<PgLease> p = LeaseConnection(ctx, pub);
      if (!p.ok()) return p.status();
      Result<Value> r = p->Query(
          "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) OR EXISTS (SELECT 1 "
          "FROM pg_replication_slots WHERE slot_name = $1) AS e",
          {name});
      if (!r.ok()) return r.status();
      had_pub = (*r)[0]["e"].get<bool>();
    }
    Value result{{"name", name}, {"subscription", had_sub}, {"publication", had_pub}};
    if (ctx.dry_run()) {
      ctx.Log(LogLevel::kInfo, "would drop " + std::string(had_sub ? "subscription " + name : "") +
                                   (had_pub ? " publication and slot " + name : "") +
                                   (had_sub || had_pub ? "" : "nothing: " + name + " is gone"));
      return result;
    }
    if (Status s = DropReplication(ctx, pub, sub, name); !s.ok()) return s;
    ctx.SetChanged(had_sub || had_pub);
    return result;
  }
};

}  // namespace

void AddPgFallbackPrimitives(Registry* r) {
  r->Add(std::make_unique<PgFallback>());
  r->Add(std::make_unique<PgDropReplication>());
}

}  // namespace runbook
