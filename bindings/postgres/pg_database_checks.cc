#include "bindings/postgres/pg_database_checks.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <set>
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
                           "t.datlocprovider::text AS template_provider, "
                         : "NULL::text AS template_version, NULL::text AS template_actual, "
                           "'c' AS template_provider, ";
  return "SELECT me.rolname AS me, me.rolsuper AS superuser, me.rolcreatedb AS createdb, "
         "EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS name_taken, "
         "t.oid IS NOT NULL AS template_exists, t.datistemplate AS is_template, "
         "t.datdba = me.oid AS template_owned, t.encoding AS template_encoding, "
         "pg_encoding_to_char(t.encoding) AS template_encoding_name, "
         "t.datcollate AS template_collate, t.datctype AS template_ctype, " +
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

// The options CREATE DATABASE knows at `server_version`.
bool KnownOption(const std::string& name, int server_version) {
  static const char* const kAll[] = {
      "template",         "owner",       "encoding",   "locale",
      "lc_collate",       "lc_ctype",    "tablespace", "allow_connections",
      "connection_limit", "is_template", "location"};
  static const char* const k15[] = {"strategy", "locale_provider", "icu_locale",
                                    "collation_version", "oid"};
  for (const char* n : kAll) {
    if (name == n) return true;
  }
  for (const char* n : k15) {
    if (name == n) return server_version >= 150000;
  }
  if (name == "icu_rules") return server_version >= 160000;
  if (name == "builtin_locale") return server_version >= 170000;
  return false;
}

// A locale's name as glibc looks it up: its codeset part ("UTF-8") in
// lower case without punctuation ("utf8"); the rest as written.
std::string NormalizedLocale(const std::string& locale) {
  const size_t dot = locale.find('.');
  if (dot == std::string::npos) return locale;
  const size_t at = locale.find('@', dot);
  std::string codeset;
  for (char c :
       locale.substr(dot + 1, at == std::string::npos ? std::string::npos : at - dot - 1)) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      codeset += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return locale.substr(0, dot + 1) + codeset + (at == std::string::npos ? "" : locale.substr(at));
}

// The problems (and notes) of CREATE DATABASE's `options` on this server,
// its template's facts `f` (null when an earlier step makes the template:
// not known yet).
Status CheckOptions(PgLease& lease, const std::string& templ,
                    const std::vector<DatabaseOption>& options, const Value* f, bool super,
                    std::vector<std::string>* problems, std::vector<std::string>* notes) {
  const int version = lease->server_version();
  std::map<std::string, std::string> given;
  bool encoding_number = false;
  for (const DatabaseOption& o : options) {
    if (!KnownOption(o.name, version)) {
      problems->push_back("option \"" + o.name + "\" not recognized (PostgreSQL " +
                          std::to_string(version / 10000) + ")");
      continue;
    }
    // LOCATION (ignored, with a warning) and OID may be repeated.
    if (!given.emplace(o.name, o.value).second && o.name != "location" && o.name != "oid") {
      problems->push_back("conflicting or redundant options: " + o.name + " is given twice");
    }
    if (o.name == "encoding") encoding_number = o.number;
  }
  auto has = [&](const char* n) { return given.count(n) > 0 && !given[n].empty(); };
  if (version < 150000 && given.count("locale") &&
      (given.count("lc_collate") || given.count("lc_ctype"))) {
    problems->push_back("LOCALE cannot be specified together with LC_COLLATE or LC_CTYPE");
  }
  if (f && Str((*f)["template_provider"]) != "c") {
    notes->push_back("template database '" + templ +
                     "' has a locale provider other than libc: its locale rules are not probed");
  }
  if (has("strategy")) {
    std::string v = given["strategy"];
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    if (v != "wal_log" && v != "file_copy") {
      problems->push_back("invalid create database strategy \"" + given["strategy"] +
                          "\" (wal_log or file_copy)");
    }
  }
  for (const char* icu : {"locale_provider", "icu_locale", "icu_rules", "builtin_locale"}) {
    if (given.count(icu)) {
      notes->push_back(std::string(icu) + " is not probed: the server checks it when it runs");
    }
  }
  // The encoding and locales the database would have.
  int64_t encoding = f ? (*f)["template_encoding"].get<int64_t>() : -1;
  std::string encoding_name = f ? Str((*f)["template_encoding_name"]) : "";
  if (has("encoding")) {
    const std::string& e = given["encoding"];
    const bool number = encoding_number;
    if (number && (e.size() > 9 || e.find_first_not_of("0123456789") != std::string::npos)) {
      problems->push_back(e + " is not a valid encoding code");
      return Status::Ok();
    }
    // Server encodings are those before SJIS, the first client-only one.
    Result<Value> rows = lease.Query(
        number
            ? "SELECT $1::int AS id, pg_encoding_to_char($1::int) AS name, "
              "pg_char_to_encoding('SJIS') AS first_client"
            : "SELECT pg_char_to_encoding($1) AS id, pg_encoding_to_char(pg_char_to_encoding($1)) "
              "AS name, pg_char_to_encoding('SJIS') AS first_client",
        {e});
    if (!rows.ok()) return rows.status();
    const Value& r = (*rows)[0];
    const int64_t id = r["id"].get<int64_t>();
    if (Str(r["name"]).empty() || id < 0) {
      problems->push_back(number ? e + " is not a valid encoding code"
                                 : "\"" + e + "\" is not a valid encoding name");
      return Status::Ok();
    }
    if (id >= r["first_client"].get<int64_t>()) {
      problems->push_back("encoding " + Str(r["name"]) + " is not a server encoding");
      return Status::Ok();
    }
    encoding = id;
    encoding_name = Str(r["name"]);
  }
  std::string collate = f ? Str((*f)["template_collate"]) : "";
  std::string ctype = f ? Str((*f)["template_ctype"]) : "";
  if (has("locale")) collate = ctype = given["locale"];
  if (has("lc_collate")) collate = given["lc_collate"];
  if (has("lc_ctype")) ctype = given["lc_ctype"];
  if (f && templ != "template0") {
    // Only template0 may be copied with another encoding or locale.
    if (encoding != (*f)["template_encoding"].get<int64_t>()) {
      problems->push_back("new encoding (" + encoding_name +
                          ") is incompatible with the encoding of the template database (" +
                          Str((*f)["template_encoding_name"]) + "): use template0");
    }
    if (collate != Str((*f)["template_collate"])) {
      problems->push_back("new collation (" + collate +
                          ") is incompatible with the collation of the template database (" +
                          Str((*f)["template_collate"]) + "): use template0");
    }
    if (ctype != Str((*f)["template_ctype"])) {
      problems->push_back("new LC_CTYPE (" + ctype +
                          ") is incompatible with the LC_CTYPE of the template database (" +
                          Str((*f)["template_ctype"]) + "): use template0");
    }
  }
  if (!has("encoding") && !has("locale") && !has("lc_collate") && !has("lc_ctype")) {
    return Status::Ok();  // the template's, which go together
  }
  if (encoding < 0) return Status::Ok();  // the template's, not known yet
  // The encoding each locale needs, as the server's catalog lists the
  // system's locales (pg_collation, imported at initdb): -1 for any (C,
  // POSIX), 0 (SQL_ASCII) goes with any.
  std::set<std::string> seen;
  for (const std::string& locale : {ctype, collate}) {
    if (locale.empty() || !seen.insert(locale).second) continue;
    Result<Value> rows = lease.Query(
        "SELECT collencoding AS id, pg_encoding_to_char(collencoding) AS name FROM pg_collation "
        "WHERE collprovider = 'c' AND collctype IN ($1, $2) AND collcollate IN ($1, $2) "
        "ORDER BY collencoding = -1 DESC LIMIT 1",
        {locale, NormalizedLocale(locale)});
    if (!rows.ok()) return rows.status();
    if (rows->empty() && locale != "C" && locale != "POSIX") {
      // Not listed (made after initdb, or not at all): a name with a
      // codeset ("en_US.UTF-8") still says the encoding it needs, as glibc
      // names its locales; whether the server has it is not probed.
      notes->push_back("locale '" + locale +
                       "' is not one the server's catalog lists (pg_collation): whether the "
                       "server has it is not probed");
      const size_t dot = locale.find('.');
      if (dot == std::string::npos) continue;
      const std::string codeset = locale.substr(dot + 1, locale.find('@', dot) - dot - 1);
      rows = lease.Query(
          "SELECT pg_char_to_encoding($1) AS id, pg_encoding_to_char(pg_char_to_encoding($1)) "
          "AS name WHERE pg_char_to_encoding($1) >= 0",
          {codeset});
      if (!rows.ok()) return rows.status();
    }
    if (rows->empty()) continue;
    const int64_t needs = (*rows)[0]["id"].get<int64_t>();
    if (needs != encoding && needs != -1 && needs != 0 && !(encoding == 0 && super)) {
      problems->push_back("encoding \"" + encoding_name + "\" does not match locale \"" + locale +
                          "\" (it needs " + Str((*rows)[0]["name"]) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

Status CheckCreateDatabase(PgLease& lease, const std::string& name, const std::string& templ,
                           const std::string& owner, bool if_not_exists, const RehearsalPlan* plan,
                           std::vector<std::string>* notes,
                           const std::vector<DatabaseOption>& options) {
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
  if (!options.empty()) {
    const bool known = templ_gone.empty() && templ_made.empty() && f["template_exists"].get<bool>();
    Status o = CheckOptions(lease, templ, options, known ? &f : nullptr, super, &problems, notes);
    if (!o.ok()) return o;
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
