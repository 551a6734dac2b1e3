#include "bindings/postgres/pg_via_kube.h"

#include <cstdlib>

#include "bindings/kube/port_forward.h"

namespace runbook {
namespace {

std::string Text(const Value& config, const char* key) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) return "";
  const Value& v = config[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

Status RouteThroughKubeForward(StepContext& ctx, const std::string& conn_name, Value* config) {
  const std::string via = Text(*config, "via");
  if (via.empty()) return Status::Ok();
  Result<Connection> through = ctx.GetConnection(via);
  if (!through.ok() || through->type != "kube") return Status::Ok();  // not ours to route
  const std::string where = "connection '" + conn_name + "' via kube '" + via + "'";
  const std::string pod = Text(*config, "pod");
  if (pod.empty()) {
    return Status::Invalid(where + ": needs pod: (a pod name, or svc/NAME, deployment/NAME)");
  }
  const std::string port_text = Text(*config, "port");
  char* end = nullptr;
  long port = port_text.empty() ? 5432 : strtol(port_text.c_str(), &end, 10);
  if ((end && *end != '\0') || port < 1 || port > 65535) {
    return Status::Invalid(where + ": bad port '" + port_text + "'");
  }
  Result<int> local = EnsureKubePortForward(ctx, via, pod, static_cast<int>(port));
  if (!local.ok()) return local.status().Prefixed(where);
  config->erase("via");
  config->erase("pod");
  (*config)["host"] = "127.0.0.1";
  (*config)["port"] = *local;
  return Status::Ok();
}

}  // namespace runbook
