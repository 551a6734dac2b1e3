#include "bindings/postgres/pg_database_checks.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

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
                           const std::string& owner, bool if_not_exists, bool refreshed_earlier,
                           std::vector<std::string>* notes) {
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
  if (!f["template_exists"].get<bool>()) {
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

}  // namespace runbook
