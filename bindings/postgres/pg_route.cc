#include "bindings/postgres/pg_route.h"

#include <cstdlib>

#include "bindings/postgres/pg_conninfo.h"
#include "bindings/postgres/pg_passfile.h"
#include "engine/core/primitive.h"
#include "engine/core/route.h"

namespace runbook {

Status RouteConnection(StepContext& ctx, const std::string& conn_name, Value* config) {
  const std::string via = PgConfigValue(*config, "via");
  if (via.empty()) return Status::Ok();
  Result<Connection> through = ctx.GetConnection(via);
  const ConnectionType* type = through.ok() ? ctx.FindConnectionType(through->type) : nullptr;
  // PgOptionsFromConfig says what via must name.
  if (!type || !type->routes()) return Status::Ok();
  const std::string where =
      "connection '" + conn_name + "' via " + through->type + " '" + via + "'";
  const std::string dsn = PgConfigValue(*config, "dsn");
  RouteRequest to;
  to.host = PgConfigValue(*config, "host");
  if (to.host.empty()) to.host = DsnValue(dsn, "host");
  to.pod = PgConfigValue(*config, "pod");
  std::string port_text = PgConfigValue(*config, "port");
  if (port_text.empty()) port_text = DsnValue(dsn, "port");
  char* end = nullptr;
  long port = port_text.empty() ? 5432 : strtol(port_text.c_str(), &end, 10);
  if ((end && *end != '\0') || port < 1 || port > 65535) {
    return Status::Invalid(where + ": bad port '" + port_text + "'");
  }
  to.port = static_cast<int>(port);
  Result<std::optional<int>> local = OpenRoute(ctx, via, to);
  if (!local.ok()) return local.status().Prefixed(where);
  if (!local->has_value()) return Status::Ok();  // its type routes nothing
  // libpq would look ~/.pgpass up for 127.0.0.1 and the local port: the
  // entry is the one for the server's own name (host:, else the pod's
  // NAME) and its port.
  std::string name = to.host;
  if (name.empty())
    name = to.pod.substr(to.pod.find('/') == std::string::npos ? 0 : to.pod.find('/') + 1);
  if (auto password = TunnelledPassword(*config, name, to.port)) {
    ctx.redactor().Add(*password);
    (*config)["password"] = *password;
  }
  config->erase("via");
  config->erase("pod");
  (*config)["host"] = "127.0.0.1";
  (*config)["port"] = **local;
  return Status::Ok();
}

}  // namespace runbook
