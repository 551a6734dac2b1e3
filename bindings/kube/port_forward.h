// Port-forwards: `kubectl port-forward` kept running for the length of a
// run, for kube.port_forward and for `postgres:` connections that go
// `via:` a kube connection.
#pragma once

#include <string>

#include "engine/core/registry.h"

namespace runbook {

// A local port on 127.0.0.1 that reaches `target` port `remote_port`
// through kube connection `kube_conn` (namespace `ns_override`, or the
// connection's). `target` is a pod name or TYPE/NAME (pod/db-0, svc/db,
// deployment/db). The forward is a resource of the run (ctx.resources(),
// one per connection, namespace, target and ports): started on first use,
// reused by later steps, restarted if its kubectl died, and stopped (kubectl
// killed) when the run ends. `local_port` 0 lets kubectl pick a free port.
Result<int> EnsureKubePortForward(StepContext& ctx, const std::string& kube_conn,
                                  const std::string& target, int remote_port,
                                  int local_port = 0, const std::string& ns_override = "");

}  // namespace runbook
