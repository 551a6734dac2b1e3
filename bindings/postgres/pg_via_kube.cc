#include "bindings/postgres/pg_via_kube.h"

#include <cstdlib>

#include "bindings/kube/port_forward.h"
#include "bindings/postgres/pg_conninfo.h"
#include "bindings/postgres/pg_passfile.h"

namespace runbook {

Status RouteThroughKubeForward(StepContext& ctx, const std::string& conn_name, Value* config) {
  const std::string via = PgConfigValue(*config, "via");
  if (via.empty()) return Status::Ok();
  Result<Connection> through = ctx.GetConnection(via);
  if (!through.ok() || through->type != "kube") return Status::Ok();  // not ours to route
  const std::string where = "connection '" + conn_name + "' via kube '" + via + "'";
  const std::string pod = PgConfigValue(*config, "pod");
  if (pod.empty()) {
    return Status::Invalid(where + ": needs pod: (a pod name, or svc/NAME, deployment/NAME)");
  }
  const std::string port_text = PgConfigValue(*config, "port");
  char* end = nullptr;
  long port = port_text.empty() ? 5432 : strtol(port_text.c_str(), &end, 10);
  if ((end && *end != '\0') || port < 1 || port > 65535) {
    return Status::Invalid(where + ": bad port '" + port_text + "'");
  }
  Result<int> local = EnsureKubePortForward(ctx, via, pod, static_cast<int>(port));
  if (!local.ok()) return local.status().Prefixed(where);
  // libpq would look ~/.pgpass up for 127.0.0.1 and the local port: the
  // entry is the one for the server's name in the cluster (host:, else the
  // pod's NAME) and its port.
  std::string host = PgConfigValue(*config, "host");
  if (host.empty()) host = DsnValue(PgConfigValue(*config, "dsn"), "host");
  if (host.empty()) host = pod.substr(pod.find('/') == std::string::npos ? 0 : pod.find('/') + 1);
  if (auto password = TunnelledPassword(*config, host, static_cast<int>(port))) {
    ctx.redactor().Add(*password);
    (*config)["password"] = *password;
  }
  config->erase("via");
  config->erase("pod");
  (*config)["host"] = "127.0.0.1";
  (*config)["port"] = *local;
  return Status::Ok();
}

}  // namespace runbook
