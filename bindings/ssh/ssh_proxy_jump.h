// ProxyJump from the ssh client configuration. libssh 0.10 reads it but
// turns it into a ProxyCommand ("ssh -l U -p P -J REST -W '[%h]:%p' HOST")
// that it would run through a local shell; runbook runs no shell, so it
// reads the jump hosts back out of that command and goes through them
// itself, as it does for a connection's `jump:` (ssh_client.h).
#pragma once

#include <string>
#include <vector>

#include "engine/core/status.h"

namespace runbook {

struct JumpHop {
  std::string user;  // "": the ssh config's, else the local user
  std::string host;  // as written (may be a config alias)
  int port = 0;      // 0: the ssh config's, else 22
};

// One hop as ProxyJump and ssh -J take it: [user@]host[:port], an IPv6
// address in brackets ([::1]:22), or ssh://[user@]host[:port].
Result<JumpHop> ParseJumpHop(const std::string& spec);

// The hops of ProxyJump, outermost first, from the ProxyCommand libssh made
// of it. kNotFound: `proxy_command` is not that form (someone wrote a
// ProxyCommand); kInvalid: a hop that cannot be read.
Result<std::vector<JumpHop>> JumpsFromProxyCommand(const std::string& proxy_command);

}  // namespace runbook
