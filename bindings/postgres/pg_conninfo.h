// The runbook's `postgres:` connection config and how it becomes libpq
// connect options.
//
// Scalar form: a libpq conninfo string or URI (normalised to {dsn: ...}).
// Map form: {dsn, password, host, port, dbname, user, connect_timeout,
// sslmode, via, pod}. The dsn is passed to libpq with expand_dbname=1 and the
// other keys as separate keywords after it (they win), so libpq's own
// conventions keep working: PG* environment, ~/.pgpass, service files.
#pragma once

#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"
#include "engine/core/registry.h"

namespace runbook {

// Connect options for connection `conn_name`. Fails (kInvalid) for a config
// that cannot work, and for a `via`/`pod` still there (the ssh and kube
// bindings replace a usable one with the tunnel's local end first).
Result<PgConnectOptions> PgOptionsFromConfig(const std::string& conn_name, const Value& config);

// A config key's value as text (numbers without quotes), "" when absent.
std::string PgConfigValue(const Value& config, const char* key);
// The dsn's value of `key` as libpq parses it (a URI too), "" when absent.
std::string DsnValue(const std::string& dsn, const char* key);

// "host=db port=5432 dbname=app user=sre" (never the password).
std::string DescribePgConfig(const Value& config);

// Every secret the config holds: the password, and the dsn's (DsnSecrets).
std::vector<std::string> PgConfigSecrets(const Value& config);

// The `postgres` connection type for the registry.
class PgConnectionType : public ConnectionType {
 public:
  PgConnectionType();
  std::string name() const override { return "postgres"; }
  const Schema& schema() const override { return schema_; }
  std::string Describe(const Value& config) const override;
  void CollectSecrets(const Value& config, Redactor& r) const override;
  // A session advisory lock in the server's `postgres` database
  // (pg_target_lock.cc); none through `via` (no tunnel is open yet).
  Result<std::unique_ptr<TargetLock>> LockTarget(const std::string& conn_name, const Value& config,
                                                 const TargetLockRequest& req) const override;
  // In a READ ONLY transaction, rolled back; not through `via`.
  Result<Value> QueryRows(const std::string& conn_name, const Value& config,
                          const std::string& sql) const override;

 private:
  Schema schema_;
};

}  // namespace runbook
