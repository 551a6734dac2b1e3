// `postgres: {via: <kube connection>, pod: ..., port: 5432, ...}`: the
// server is reached through a kubectl port-forward (bindings/kube/
// port_forward.h), shared with any kube.port_forward step to the same pod
// and port and kept for the run.
#pragma once

#include <string>

#include "engine/core/registry.h"

namespace runbook {

// When `via` names a kube connection: starts (or reuses) a port-forward to
// `pod` (a pod name, or TYPE/NAME such as svc/db) port `port` (the pod's;
// default 5432) and rewrites `config` to connect to 127.0.0.1 on its local
// port, without `via` and `pod`; a connection with no password of its own
// gets the password file's entry for `host` (else the pod's NAME) and the
// pod's port (pg_passfile.h). Any other `via` (or none) leaves `config` as
// it is.
Status RouteThroughKubeForward(StepContext& ctx, const std::string& conn_name, Value* config);

}  // namespace runbook
