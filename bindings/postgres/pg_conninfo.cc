#include "bindings/postgres/pg_conninfo.h"

#include <libpq-fe.h>

#include <map>
#include <memory>

#include "bindings/postgres/pg_primitive.h"
#include "engine/core/duration.h"

namespace runbook {
namespace {

const char* const kKeywordKeys[] = {"host", "port", "dbname", "user", "sslmode"};

// A config value as text: strings as they are, numbers without quotes.
std::string Text(const Value& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

std::string Get(const Value& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  return Text(config[key]);
}

Result<std::chrono::seconds> ConnectTimeout(const Value& config) {
  if (!config.contains("connect_timeout")) return std::chrono::seconds(10);
  const Value& v = config["connect_timeout"];
  if (v.is_number_integer()) return std::chrono::seconds(std::max<int64_t>(1, v.get<int64_t>()));
  if (v.is_string()) {
    auto d = ParseDuration(v.get<std::string>());
    if (d) return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(*d));
  }
  return Status::Invalid("connect_timeout must be a duration (10s) or whole seconds");
}

}  // namespace

Result<PgConnectOptions> PgOptionsFromConfig(const std::string& conn_name, const Value& config) {
  const std::string where = "connection '" + conn_name + "': ";
  if (!config.is_object()) return Status::Invalid(where + "expected a dsn or a map");
  // A usable `via` was replaced by its route's local end before we get here
  // (pg_route.h); what is left cannot be reached.
  if (!Get(config, "via").empty()) {
    return Status::Invalid(where + "via '" + Get(config, "via") +
                           "' must name an ssh or kube connection of this runbook");
  }
  if (!Get(config, "pod").empty()) {
    return Status::Invalid(where + "pod: needs via: a kube connection");
  }
  PgConnectOptions o;
  o.conn_name = conn_name;
  o.dsn = Get(config, "dsn");
  std::string parse_error;
  DsnKeywords(o.dsn, &parse_error);
  if (!parse_error.empty()) {
    std::string msg = parse_error;
    for (const auto& s : DsnSecrets(o.dsn)) {
      for (size_t p; s.size() >= 3 && (p = msg.find(s)) != std::string::npos;) {
        msg.replace(p, s.size(), "***");
      }
    }
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return Status::Invalid(where + "invalid dsn: " + msg);
  }
  for (const char* key : kKeywordKeys) {
    std::string v = Get(config, key);
    if (!v.empty()) o.keywords[key] = v;
  }
  if (config.contains("password") && !config["password"].is_null()) {
    o.password = Text(config["password"]);
  }
  Result<std::chrono::seconds> timeout = ConnectTimeout(config);
  if (!timeout.ok()) return Status::Invalid(where + timeout.status().message());
  o.connect_timeout = *timeout;
  return o;
}

std::string PgConfigValue(const Value& config, const char* key) { return Get(config, key); }

std::string DsnValue(const std::string& dsn, const char* key) {
  std::map<std::string, std::string> opts = DsnKeywords(dsn, nullptr);
  auto it = opts.find(key);
  return it == opts.end() ? "" : it->second;
}

std::string DescribePgConfig(const Value& config) {
  std::string error;
  std::map<std::string, std::string> parts = DsnKeywords(Get(config, "dsn"), &error);
  if (!error.empty()) return "postgres (invalid dsn)";
  for (const char* key : kKeywordKeys) {
    std::string v = Get(config, key);
    if (!v.empty()) parts[key] = v;
  }
  std::string out;
  for (const char* key : {"service", "host", "hostaddr", "port", "dbname", "user", "sslmode"}) {
    auto it = parts.find(key);
    if (it == parts.end()) continue;
    if (!out.empty()) out += ' ';
    out += std::string(key) + "=" + it->second;
  }
  std::string via = Get(config, "via");
  if (!via.empty()) out += " via " + via;
  return out.empty() ? "postgres (libpq defaults)" : out;
}

std::vector<std::string> PgConfigSecrets(const Value& config) {
  std::vector<std::string> out = DsnSecrets(Get(config, "dsn"));
  std::string password = Get(config, "password");
  if (!password.empty()) out.push_back(password);
  return out;
}

PgConnectionType::PgConnectionType() {
  schema_.help = "A PostgreSQL server: a libpq conninfo string or URI, or a map.";
  schema_.scalar_arg = "dsn";
  schema_.args = {
      Arg("dsn", ArgType::kString, false, "libpq conninfo or postgresql:// URI"),
      Arg("password", ArgType::kString, false, "password (kept out of every output)"),
      Arg("host", ArgType::kString, false, "host name, address or socket directory"),
      Arg("port", ArgType::kAny, false, "port number"),
      Arg("dbname", ArgType::kString, false, "database name"),
      Arg("user", ArgType::kString, false, "role name"),
      Arg("connect_timeout", ArgType::kAny, false, "how long a connect may take (10s)"),
      Arg("sslmode", ArgType::kString, false, "libpq sslmode",
          {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}),
      Arg("via", ArgType::kString, false,
          "the ssh connection (a tunnel) or kube connection (a port-forward to pod:) to reach the "
          "server through"),
      WithForm(Arg("pod", ArgType::kString, false,
                   "pod to port-forward to, with via: a kube connection (NAME or TYPE/NAME)"),
               ArgForm::kKubeObject),
  };
}

std::string PgConnectionType::Describe(const Value& config) const {
  return DescribePgConfig(config);
}

void PgConnectionType::CollectSecrets(const Value& config, Redactor& r) const {
  for (const auto& s : PgConfigSecrets(config)) r.Add(s);
}

Result<Value> PgConnectionType::QueryRows(const std::string& conn_name, const Value& config,
                                          const std::string& sql) const {
  if (config.is_object() && !config.value("via", "").empty()) {
    return Status::Invalid("connection '" + conn_name + "': a query here cannot go through via:");
  }
  Result<PgConnectOptions> options = PgOptionsFromConfig(conn_name, config);
  if (!options.ok()) return options.status();
  options->application_name = "runbook";
  const SteadyTime deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  PgConnection conn;
  if (Status s = conn.Connect(*options, deadline); !s.ok()) return s;
  // One statement (the extended protocol takes no more), in a transaction
  // that may not write; nothing of it is kept.
  if (Status s = conn.Exec("BEGIN READ ONLY", {}, deadline); !s.ok()) return s;
  Result<Value> rows = conn.Query(sql, {}, deadline);
  conn.Exec("ROLLBACK", {}, deadline);
  return rows;
}

}  // namespace runbook
