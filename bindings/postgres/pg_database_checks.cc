#include "bindings/postgres/pg_database_checks.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "engine/core/rehearsal_plan.h"

namespace runbook {
namespace {

// One row of facts. Collation versions exist from PostgreSQL 15 on.
std::string FactsSql(int server_version) {
  std::string coll = server_version >= 150000
                         ? "t.datcollversion AS template_version, "
                           "pg_database_collation_actual_version(t.oid) AS template_actual, "
                         : "NULL::text AS template_version, NULL::text AS template_actual, ";
  return "SELECT me.rolname AS me, me.rolsuper AS superuser, me.rolcreatedb AS createdb, "
         "EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS name_taken, "
         "t.oid IS NOT NULL AS template_exists, t.datistemplate AS is_template, "
         "t.datdba = me.oid AS template_owned, " +
         coll +
         "(SELECT count(*) FROM pg_stat_activity WHERE datname = $2 "
         "AND pid <> pg_backend_pid()) AS template_sessions, "
         "($3 = '' OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $3)) AS owner_exists, "
         "($3 = '' OR me.rolsuper OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $3) "
         "OR pg_has_role(me.oid, (SELECT oid FROM pg_roles WHERE rolname = $3), 'MEMBER')) "
         "AS owner_allowed "
         "FROM pg_roles me LEFT JOIN pg_database t ON t.datname = $2 "
         "WHERE me.rolname = current_user";
}

std::string Str(const Value& v) { return v.is_string() ? v.get<std::string>() : ""; }

}  // namespace

Status CheckCreateDatabase(PgLease& lease, const std::string& name, const std::string& templ,
                           const std::string& owner, bool if_not_exists, const RehearsalPlan* plan,
                           std::vector<std::string>* notes) {
  // The template as earlier rehearsed steps would leave it.
  std::string templ_gone, templ_made;
  bool refreshed_earlier = false;
  if (plan) {
    const std::string server = lease.conn().identity(lease.deadline());
    templ_gone = plan->GoneBy(PlannedDatabaseKey(server, templ));
    if (templ_gone.empty()) templ_made = plan->StepFor(PlannedDatabaseKey(server, templ));
    refreshed_earlier = !plan->StepFor(PlannedRefreshKey(server, templ)).empty();
  }
  Result<Value> rows = lease.Query(FactsSql(lease->server_version()), {name, templ, owner});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return Status::Internal("no pg_roles row for current_user");
  // CREATE DATABASE itself waits up to 5 s for other sessions on the
  // template to end (a backend exits a moment after its client closed, as
  // an earlier step's connection to template1 does); so does this check.
  auto patience = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((*rows)[0]["template_sessions"].is_number() &&
         (*rows)[0]["template_sessions"].get<int64_t>() > 0 &&
         std::chrono::steady_clock::now() < std::min(patience, lease.deadline())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    rows = lease.Query(FactsSql(lease->server_version()), {name, templ, owner});
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return Status::Internal("no pg_roles row for current_user");
  }
  const Value& f = (*rows)[0];
  std::vector<std::string> problems;
  const std::string me = Str(f["me"]);
  const bool super = f["superuser"].get<bool>();
  if (!super && !f["createdb"].get<bool>()) {
    problems.push_back("permission denied: role '" + me + "' has neither SUPERUSER nor CREATEDB");
  }
  if (f["name_taken"].get<bool>() && !if_not_exists) {
    problems.push_back("database '" + name + "' already exists");
  }
  if (!templ_gone.empty()) {
    problems.push_back("template database '" + templ + "' would not exist by now: step '" +
                       templ_gone + "' drops it earlier in this run");
  } else if (!templ_made.empty()) {
    // What the server has now is not what a real run would copy.
    notes->push_back("template database '" + templ + "' would be made by step '" + templ_made +
                     "' earlier in this run: what a real run meets in it (other sessions, its "
                     "collation version, the right to copy it) is not checked now");
  } else if (!f["template_exists"].get<bool>()) {
    problems.push_back("template database '" + templ + "' does not exist");
  } else {
    if (!super && !f["is_template"].get<bool>() && !f["template_owned"].get<bool>()) {
      problems.push_back("role '" + me + "' may not copy database '" + templ +
                         "' (not a template and not its owner)");
    }
    std::string recorded = Str(f["template_version"]);
    std::string actual = Str(f["template_actual"]);
    if (!recorded.empty() && recorded != actual && refreshed_earlier) {
      notes->push_back("template database '" + templ + "' has a collation version mismatch "
                       "(recorded " + recorded + "), which an earlier step would refresh");
    } else if (!recorded.empty() && recorded != actual) {
      problems.push_back("template database '" + templ + "' has a collation version mismatch "
                         "(recorded " + recorded + ", the server's locale is " +
                         (actual.empty() ? "unversioned" : actual) +
                         "): run pg.refresh_collation (REINDEX, then ALTER DATABASE " + templ +
                         " REFRESH COLLATION VERSION)");
    }
    if (f["template_sessions"].get<int64_t>() > 0) {
      problems.push_back("template database '" + templ + "' is being accessed by " +
                         std::to_string(f["template_sessions"].get<int64_t>()) +
                         " other session(s)");
    }
  }
  if (!f["owner_exists"].get<bool>()) {
    problems.push_back("owner role '" + owner + "' does not exist");
  } else if (!f["owner_allowed"].get<bool>()) {
    problems.push_back("role '" + me + "' may not create databases owned by '" + owner +
                       "' (not a member of it)");
  }
  if (problems.empty()) return Status::Ok();
  std::string msg;
  for (const auto& p : problems) msg += (msg.empty() ? "" : "; ") + p;
  return Status::Failed("connection '" + lease.name() + "': CREATE DATABASE " + name +
                        " would fail: precondition failed: " + msg);
}

std::string PgIntArray(const std::vector<int>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out + "}";
}

Result<Value> RehearseDropDatabase(StepContext& ctx, PgLease& lease, const std::string& name,
                                   bool terminate, bool if_exists,
                                   const std::vector<int>& closed_first) {
  RehearsalPlan* plan = PlanOf(ctx);
  const std::string key = PlannedDatabaseKey(lease.conn().identity(lease.deadline()), name);
  const std::string made_by = plan ? plan->StepFor(key) : "";
  const std::string gone_by = plan ? plan->GoneBy(key) : "";
  // Another role's session shows no backend_type to a role without
  // pg_read_all_stats (its usesysid it does show).
  Result<Value> rows = lease.Query(
      "SELECT pg_has_role(d.datdba, 'USAGE') OR me.rolsuper AS may, d.datistemplate AS "
      "is_template, count(a.pid) AS sessions, count(a.pid) FILTER (WHERE NOT (me.rolsuper OR "
      "(NOT coalesce(ar.rolsuper, false) AND (pg_has_role(a.usesysid, 'USAGE') OR "
      "pg_has_role('pg_signal_backend', 'USAGE'))))) AS unendable "
      "FROM pg_database d CROSS JOIN pg_roles me "
      "LEFT JOIN pg_stat_activity a ON a.datname = d.datname AND a.pid <> pg_backend_pid() "
      "AND a.pid <> ALL($2::int[]) AND " +
          ClientSessionSql("a") +
          " "
          "LEFT JOIN pg_roles ar ON ar.oid = a.usesysid "
          "WHERE d.datname = $1 AND me.rolname = current_user "
          "GROUP BY d.datdba, d.datistemplate, me.rolsuper",
      {name, PgIntArray(closed_first)});
  if (!rows.ok()) return rows.status();
  const bool there = (!rows->empty() && gone_by.empty()) || !made_by.empty();
  Value out{{"name", name}, {"rehearsal", "preconditions checked"}};
  if (!there) {
    const std::string why = gone_by.empty() ? "does not exist"
                                            : "would not exist by now: step '" + gone_by +
                                                  "' drops it earlier in this run";
    if (!if_exists) {
      return Status::Failed("connection '" + lease.name() + "': database '" + name + "' " + why +
                            " (a real run would stop here)");
    }
    out["dropped"] = false;
    return out;
  }
  std::vector<std::string> problems, notes;
  if (!made_by.empty()) {
    // The one there now (if any) is not the one a real run would drop.
    notes.push_back("the database step '" + made_by +
                    "' would create: its owner and sessions are not known yet");
  } else {
    const Value& f = (*rows)[0];
    if (!f["may"].get<bool>()) {
      problems.push_back("permission denied: only the owner of database '" + name +
                         "' or a superuser may drop it");
    }
    if (f["is_template"].get<bool>()) {
      problems.push_back("database '" + name +
                         "' is a template (ALTER DATABASE ... IS_TEMPLATE false first)");
    }
    const int64_t sessions = f["sessions"].get<int64_t>();
    const int64_t unendable = f["unendable"].get<int64_t>();
    if (sessions > 0 && !terminate) {
      notes.push_back(std::to_string(sessions) +
                      " session(s) on it now: a real run fails unless they have ended "
                      "(terminate: true ends them)");
    } else if (unendable > 0) {
      notes.push_back(std::to_string(unendable) +
                      " session(s) on it now that this role may not end (another role's, "
                      "without pg_signal_backend): a real run fails unless they have ended");
    } else if (sessions > 0) {
      notes.push_back(std::to_string(sessions) +
                      " session(s) on it now: a real run ends them (terminate: true)");
    }
  }
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "; ") + p;
    return Status::Failed("connection '" + lease.name() + "': precondition failed: " + msg);
  }
  if (plan) plan->NoteGone(key, ctx.step_id());
  out["dropped"] = true;
  if (!notes.empty()) out["notes"] = notes;
  return out;
}

std::string ClientSessionSql(const std::string& alias) {
  const std::string a = alias.empty() ? "" : alias + ".";
  return "(" + a + "backend_type = 'client backend' OR (" + a + "backend_type IS NULL AND " + a +
         "usesysid IS NOT NULL))";
}

}  // namespace runbook
