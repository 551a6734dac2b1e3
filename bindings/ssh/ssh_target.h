// The runbook's `ssh:` connection config and what a connect needs of it.
//
// Map form: {host (required), port, user, identity, known_hosts,
// global_known_hosts, config, jump, accept_new, connect_timeout, keepalive}.
// Scalar form: the host. Values the runbook leaves out come from the ssh
// client configuration (~/.ssh/config, or `config:`), then libssh defaults.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "engine/core/registry.h"

namespace runbook {

struct SshTarget {
  std::string conn_name;           // the runbook's name for it ("bastion")
  std::string host;                // as written (may be a ~/.ssh/config alias)
  int port = 0;                    // 0: ssh config, else 22
  std::string user;                // "": ssh config, else the local user
  std::string identity;            // private key file; "": ssh config, agent, defaults
  std::string known_hosts;         // "": ssh config, else ~/.ssh/known_hosts
  std::string global_known_hosts;  // "": libssh's default; "none": no global file
  std::string ssh_config;          // "": ~/.ssh/config and /etc/ssh/ssh_config; "none"
  std::string jump;                // another ssh connection to go through, or ""
  bool accept_new = false;         // trust (and record) a first-seen host key
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds keepalive{15000};  // 0: none
  int config_jumps = 0;  // jump hosts ProxyJump (ssh config) added on the way here

  // "user@host:port" with what is known before connecting.
  std::string Label() const;
};

// Reads a connection config; fails (kInvalid) for one that cannot work.
// Paths starting with ~/ are expanded.
Result<SshTarget> SshTargetFromConfig(const std::string& conn_name, const Value& config);

// The chain of targets to go through to reach `conn_name`: its jump hosts
// first (outermost first), the connection itself last. Fails on a jump that
// is not an ssh connection, or a loop.
Result<std::vector<SshTarget>> ResolveSshChain(StepContext& ctx, const std::string& conn_name);

// "ssh sre@bastion.example.com:22 via edge" for plan.
std::string DescribeSshConfig(const Value& config);

// "~/x" -> "$HOME/x".
std::string ExpandUserPath(const std::string& path);

class SshConnectionType : public ConnectionType {
 public:
  SshConnectionType();
  std::string name() const override { return "ssh"; }
  const Schema& schema() const override { return schema_; }
  std::string Describe(const Value& config) const override { return DescribeSshConfig(config); }
  // `via:` an ssh connection: a tunnel (tunnel.h) to the request's host as
  // the ssh server sees it, kept for the run.
  bool routes() const override { return true; }
  Result<int> OpenRoute(StepContext& ctx, const std::string& via,
                        const RouteRequest& to) const override;

 private:
  Schema schema_;
};

}  // namespace runbook
