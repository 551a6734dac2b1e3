#include "bindings/ssh/tunnel.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bindings/ssh/ssh_lease.h"
#include "bindings/ssh/ssh_relay.h"

namespace runbook {
namespace {

class TunnelResource : public Resource {
 public:
  std::unique_ptr<ChannelRelay> relay;
  int local_port = 0;
};

// A listening TCP socket on 127.0.0.1:port (0: the kernel picks).
Result<int> Listen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::Internal(std::string("socket: ") + strerror(errno));
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 64) != 0) {
    int err = errno;
    close(fd);
    return Status::Failed("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " +
                          strerror(err));
  }
  return fd;
}

Result<std::unique_ptr<Resource>> OpenTunnel(StepContext& ctx, const std::vector<SshTarget>& chain,
                                             const std::string& host, int port, int local_port,
                                             bool exact) {
  auto client = std::make_unique<SshClient>();
  SteadyTime deadline = std::min(ctx.deadline(),
                                 std::chrono::steady_clock::now() + chain.back().connect_timeout);
  Status s = client->Connect(chain, deadline,
                             [&ctx](LogLevel l, const std::string& m) { ctx.Log(l, m); });
  if (!s.ok()) return s;
  std::string what = client->Describe();
  Result<int> fd = Listen(local_port);
  if (!fd.ok() && !exact) fd = Listen(0);  // the old port of a reopened tunnel is taken
  if (!fd.ok()) return fd.status().Prefixed(what + ": tunnel to " + host + ":" + std::to_string(port));
  auto tunnel = std::make_unique<TunnelResource>();
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len);
  tunnel->local_port = ntohs(addr.sin_port);
  tunnel->relay = std::make_unique<ChannelRelay>(std::move(client));
  tunnel->relay->SetListener(*fd, host, port);
  tunnel->relay->Start();
  ctx.Log(LogLevel::kInfo, what + ": tunnel 127.0.0.1:" + std::to_string(tunnel->local_port) +
                               " -> " + host + ":" + std::to_string(port));
  return std::unique_ptr<Resource>(std::move(tunnel));
}

}  // namespace

Result<int> EnsureSshTunnel(StepContext& ctx, const std::string& ssh_conn,
                            const std::string& remote_host, int remote_port, int local_port) {
  if (remote_host.empty() || remote_port < 1 || remote_port > 65535) {
    return Status::Invalid("tunnel through '" + ssh_conn + "': needs a remote host and a port "
                           "from 1 to 65535");
  }
  if (local_port < 0 || local_port > 65535) {
    return Status::Invalid("tunnel through '" + ssh_conn + "': bad local port " +
                           std::to_string(local_port));
  }
  Result<std::vector<SshTarget>> chain = ResolveSshChain(ctx, ssh_conn);
  if (!chain.ok()) return chain.status();
  const std::string key = "ssh-tunnel:" + ssh_conn + "#" + SshChainDigest(*chain) + ":" +
                          remote_host + ":" + std::to_string(remote_port);
  int want = local_port;
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<Resource*> res = ctx.resources().GetOrCreate(key, [&] {
      return OpenTunnel(ctx, *chain, remote_host, remote_port, want, local_port != 0);
    });
    if (!res.ok()) return res.status();
    auto* tunnel = dynamic_cast<TunnelResource*>(*res);
    if (!tunnel) return Status::Internal("resource " + key + " is not a tunnel");
    if (!tunnel->relay->alive()) {
      ctx.Log(LogLevel::kWarn, "tunnel through '" + ssh_conn + "' to " + remote_host + ":" +
                                   std::to_string(remote_port) + " was down (" +
                                   tunnel->relay->error() + "); reopening it");
      if (want == 0) want = tunnel->local_port;
      ctx.resources().Drop(key);
      continue;
    }
    if (local_port != 0 && tunnel->local_port != local_port) {
      return Status::Failed("tunnel through '" + ssh_conn + "' to " + remote_host + ":" +
                            std::to_string(remote_port) + " is already open on local port " +
                            std::to_string(tunnel->local_port) + ", not " +
                            std::to_string(local_port));
    }
    return tunnel->local_port;
  }
  return Status::Unavailable("tunnel through '" + ssh_conn + "' to " + remote_host + ":" +
                             std::to_string(remote_port) + " keeps going down");
}

}  // namespace runbook
