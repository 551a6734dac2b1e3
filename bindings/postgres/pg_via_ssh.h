// `postgres: {via: <ssh connection>, host, port, ...}`: the server is
// reached through an ssh tunnel (bindings/ssh/tunnel.h), shared with any
// ssh.tunnel step to the same place and kept for the run.
#pragma once

#include <string>

#include "engine/core/registry.h"

namespace runbook {

// When `via` names an ssh connection: opens (or reuses) the tunnel to the
// config's host and port (default 5432; from the dsn when the map has none)
// and rewrites `config` to connect to its local end, without `via`; a
// connection with no password of its own gets the password file's entry for
// the real host and port (pg_passfile.h). Any other `via` (or none) leaves
// `config` as it is.
Status RouteThroughSshTunnel(StepContext& ctx, const std::string& conn_name, Value* config);

}  // namespace runbook
