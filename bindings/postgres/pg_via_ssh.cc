#include "bindings/postgres/pg_via_ssh.h"

#include <libpq-fe.h>

#include <cstdlib>

#include "bindings/ssh/tunnel.h"

namespace runbook {
namespace {

std::string Text(const Value& config, const char* key) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) return "";
  const Value& v = config[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// The dsn's value for `key`, or "".
std::string DsnValue(const std::string& dsn, const char* key) {
  if (dsn.empty()) return "";
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), nullptr);
  if (!opts) return "";
  std::string out;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (o->val && std::string(o->keyword) == key) out = o->val;
  }
  PQconninfoFree(opts);
  return out;
}

}  // namespace

Status RouteThroughSshTunnel(StepContext& ctx, const std::string& conn_name, Value* config) {
  const std::string via = Text(*config, "via");
  if (via.empty()) return Status::Ok();
  Result<Connection> through = ctx.GetConnection(via);
  if (!through.ok() || through->type != "ssh") return Status::Ok();  // not ours to route
  const std::string where = "connection '" + conn_name + "' via ssh '" + via + "'";
  const std::string dsn = Text(*config, "dsn");
  std::string host = Text(*config, "host");
  if (host.empty()) host = DsnValue(dsn, "host");
  std::string port_text = Text(*config, "port");
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
  config->erase("via");
  (*config)["host"] = "127.0.0.1";
  (*config)["port"] = *local;
  return Status::Ok();
}

}  // namespace runbook
