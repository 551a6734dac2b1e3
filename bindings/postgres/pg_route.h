// `postgres: {via: <connection>, ...}`: the server is reached through a
// route the `via` connection's type opens (engine/core/route.h) — a kube
// connection's port-forward to `pod:` (a pod name, or svc/NAME), an ssh
// connection's tunnel to `host:` — shared with any kube.port_forward or
// ssh.tunnel step to the same place and kept for the run.
#pragma once

#include <string>

#include "engine/core/registry.h"

namespace runbook {

// When `via` names a connection whose type routes: opens (or reuses) the
// route to the config's pod or host and port (default 5432; host and port
// from the dsn when the map has none) and rewrites `config` to connect to
// its local end on 127.0.0.1, without `via` and `pod`. A connection with no
// password of its own gets the password file's entry for the server's own
// name (host:, else the pod's NAME) and port (pg_passfile.h). Any other
// `via` is left for PgOptionsFromConfig to refuse.
Status RouteConnection(StepContext& ctx, const std::string& conn_name, Value* config);

}  // namespace runbook
