// OpenRoute: a `via:` connection's type opens the route.
#include "engine/core/route.h"

#include "engine/core/primitive.h"

namespace runbook {

Result<std::optional<int>> OpenRoute(StepContext& ctx, const std::string& via,
                                     const RouteRequest& to) {
  Result<Connection> through = ctx.GetConnection(via);
  if (!through.ok()) return std::optional<int>();
  const ConnectionType* type = ctx.FindConnectionType(through->type);
  if (!type || !type->routes()) return std::optional<int>();
  Result<int> port = type->OpenRoute(ctx, via, to);
  if (!port.ok()) return port.status();
  return std::optional<int>(*port);
}

}  // namespace runbook
