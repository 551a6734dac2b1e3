// Local port forwards through an ssh connection, for ssh.tunnel and for
// `postgres: {via: <ssh connection>, host, port}`.
//
// A tunnel is a listening socket on 127.0.0.1 plus a ChannelRelay thread
// with an ssh session of its own (so a long query through the tunnel never
// waits for, or blocks, the steps' session). Each accepted connection gets
// its own direct-tcpip channel to remote_host:remote_port as the ssh server
// sees it. It lives in ctx.resources() under
// "ssh-tunnel:<conn>#<digest>:<remote_host>:<remote_port>" until the run
// ends; both callers share that key, so a runbook that opens the tunnel with
// ssh.tunnel and a postgres connection `via:` the same host get one tunnel.
// A tunnel whose session dropped is reopened (on the same local port when
// it is free) by the next call.
#pragma once

#include <string>

#include "engine/core/registry.h"

namespace runbook {

// The local port of the tunnel, opened if needed. local_port 0: any free port.
Result<int> EnsureSshTunnel(StepContext& ctx, const std::string& ssh_conn,
                            const std::string& remote_host, int remote_port, int local_port = 0);

}  // namespace runbook
