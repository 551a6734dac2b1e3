#include "bindings/postgres/pg_via_ssh.h"

#include <cstdlib>

#include "bindings/postgres/pg_conninfo.h"
#include "bindings/postgres/pg_passfile.h"
#include "bindings/ssh/tunnel.h"

namespace runbook {

Status RouteThroughSshTunnel(StepContext& ctx, const std::string& conn_name, Value* config) {
  const std::string via = PgConfigValue(*config, "via");
  if (via.empty()) return Status::Ok();
  Result<Connection> through = ctx.GetConnection(via);
  if (!through.ok() || through->type != "ssh") return Status::Ok();  // not ours to route
  const std::string where = "connection '" + conn_name + "' via ssh '" + via + "'";
  const std::string dsn = PgConfigValue(*config, "dsn");
  std::string host = PgConfigValue(*config, "host");
  if (host.empty()) host = DsnValue(dsn, "host");
  std::string port_text = PgConfigValue(*config, "port");
  if (port_text.empty()) port_text = DsnValue(dsn, "port");
  if (host.empty() || host.find(',') != std::string::npos || host[0] == '/') {
    return Status::Invalid(where + ": needs one host (as the ssh server sees it), got '" + host + "'");
  }
  char* end = nullptr;
  long port = port_text.empty() ? 5432 : strtol(port_text.c_str(), &end, 10);
  if ((end && *end != '\0') || port < 1 || port > 65535) {
    return Status::Invalid(where + ": bad port '" + port_text + "'");
  }
  Result<int> local = EnsureSshTunnel(ctx, via, host, static_cast<int>(port));
  if (!local.ok()) return local.status().Prefixed(where);
  // libpq would look ~/.pgpass up for 127.0.0.1 and the local port.
  if (auto password = TunnelledPassword(*config, host, static_cast<int>(port))) {
    ctx.redactor().Add(*password);
    (*config)["password"] = *password;
  }
  config->erase("via");
  (*config)["host"] = "127.0.0.1";
  (*config)["port"] = *local;
  return Status::Ok();
}

}  // namespace runbook
