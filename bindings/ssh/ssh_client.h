// A Lua-free client over libssh 0.10: one authenticated session to one host,
// possibly through jump hosts.
//
// Connect never prompts: key files (unencrypted) and ssh-agent only, no
// password or keyboard-interactive. The host key is always checked against
// known_hosts (ssh_hostkey.h). ~/.ssh/config (or the connection's `config:`)
// is read first and the runbook's explicit values override it. ProxyJump
// from it is honoured as OpenSSH does (ssh_proxy_jump.h), unless the
// connection names its own `jump:` (as ssh -J overrides ProxyJump); a
// ProxyCommand is refused with an error, because it would run a local shell
// (the classic "ssh -W %h:%p HOST" is read as ProxyJump HOST). As with
// OpenSSH's jump process, a ProxyJump host gets the connection's config file
// and timeouts, not its identity, known_hosts or accept_new: the config's
// (IdentityFile, UserKnownHostsFile), the agent and the defaults apply.
//
// Jump hosts: libssh 0.10 has no ProxyJump of its own. The jump host gets a
// session of its own, a direct-tcpip channel to the target, and a
// socketpair: one end is handed to the inner session (SSH_OPTIONS_FD), the
// other is relayed to the channel by a ChannelRelay thread that is the only
// user of the jump session. The inner session talks end to end with the
// target, so its host key is checked like any other.
//
// Thread-safety: none. One thread at a time (the SshSessionResource mutex);
// a client handed to a ChannelRelay belongs to its thread.
#pragma once

#include <libssh/libssh.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bindings/ssh/ssh_target.h"
#include "engine/core/clock.h"
#include "engine/core/registry.h"

namespace runbook {

class ChannelRelay;
using SshLogFn = std::function<void(LogLevel, const std::string&)>;

class SshClient {
 public:
  SshClient();
  ~SshClient();
  SshClient(const SshClient&) = delete;
  SshClient& operator=(const SshClient&) = delete;

  // chain: jump hosts first (outermost first), the target last.
  Status Connect(const std::vector<SshTarget>& chain, SteadyTime deadline, const SshLogFn& log);
  // False before Connect, after Disconnect, and once libssh saw it drop.
  bool connected() const;
  ssh_session session() { return session_; }
  const SshTarget& target() const { return target_; }
  // "connection 'bastion' (root@127.0.0.1:2222)".
  std::string Describe() const;
  // libssh's last error text for this session.
  std::string LastError() const;
  // Sends an SSH_MSG_IGNORE when the keepalive interval has passed, so a
  // dead peer is noticed (TCP_USER_TIMEOUT) while we wait on a command.
  void Keepalive();
  void Disconnect();

 private:
  Status Configure(const SshTarget& t, SteadyTime deadline);
  Status ConnectThroughJump(const std::vector<SshTarget>& jumps, SteadyTime deadline,
                            const SshLogFn& log);
  // The jump hosts the ssh config's ProxyJump names for this host.
  // Sets via_config_ (Describe).
  Result<std::vector<SshTarget>> ConfigJumps();
  Status Handshake(const SshLogFn& log);
  void TuneSocket();

  ssh_session session_ = nullptr;
  SshTarget target_;
  std::string host_;  // after ssh config (HostName)
  int port_ = 22;
  std::string user_;
  std::string config_proxy_;           // the ProxyCommand the ssh config set, "" for none
  std::string via_config_;             // "alice@bastion:2222,inner" when ProxyJump is used
  std::unique_ptr<ChannelRelay> via_;  // the jump host's relay, if any
  SteadyTime last_keepalive_{};
};

// Verifies the server's host key (ssh_hostkey.cc); see SshTarget::accept_new.
Status VerifyHostKey(ssh_session session, const SshTarget& t, const std::string& what,
                     const SshLogFn& log);
// Key and agent authentication (ssh_auth.cc).
Status Authenticate(ssh_session session, const SshTarget& t, const std::string& what);

}  // namespace runbook
