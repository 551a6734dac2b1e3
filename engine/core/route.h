// Routes (`via:`): a connection type that can carry another connection's
// traffic — kube (a kubectl port-forward to a pod), ssh (a tunnel through
// the host) — opens a route kept for the run, and the routed connection
// connects to its local end. A binding says where its server is as the far
// end sees it (RouteRequest) and never names the type that routes it: a
// new binding gets every route, a new route type serves every binding.
#pragma once

#include <optional>
#include <string>

#include "engine/core/status.h"

namespace runbook {

class StepContext;

// Where the server is, as seen from the far end of the route. Which fields
// a route needs is its own: kube a pod, ssh a host.
struct RouteRequest {
  std::string host;  // a host name or address (ssh)
  std::string pod;   // a pod name or TYPE/NAME: svc/db, deployment/db (kube)
  int port = 0;      // the server's port there
};

// Opens (or reuses, for the run) the route through connection `via`, and
// returns the local port on 127.0.0.1 that leads to `to`. nullopt when
// `via` names no connection whose type routes (the caller says what it
// accepts). Errors say what `to` lacks and hold no secret.
Result<std::optional<int>> OpenRoute(StepContext& ctx, const std::string& via,
                                     const RouteRequest& to);

}  // namespace runbook
