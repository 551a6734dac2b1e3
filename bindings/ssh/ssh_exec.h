// Runs one command line on an ssh session: stdin in, stdout and stderr out
// (read alternately, so neither stream can stall the channel window), the
// exit code, and a deadline that ends the *remote* command.
//
// How the remote command is ended: OpenSSH ignores signal requests for
// sessions without a pty, and closing the channel does not stop a command
// that does not write. sshd starts every session's shell as a session (and
// process group) leader, so the command line is wrapped as
//     echo runbook-pgid=$$ >&2; exec LINE
// which reports that process group id first on stderr (the marker is
// removed from the output) and runs LINE in it. On timeout a second channel
// runs `kill -TERM -- -PGID`, waits up to 2 s, then `kill -KILL` (under
// sudo -n when the command ran under sudo), and the channel is closed. The
// remote login shell must be POSIX-like (sh, bash, dash, ksh, zsh).
#pragma once

#include <libssh/libssh.h>

#include <optional>
#include <string>

#include "bindings/ssh/ssh_client.h"

namespace runbook {

struct RemoteExecRequest {
  std::string command_line;               // from BuildCommandLine
  std::optional<std::string> stdin_data;  // nullopt: stdin is closed at once
  SteadyTime deadline = SteadyTime::max();
  size_t max_output = 16u << 20;          // per stream; the rest is read and dropped
  bool sudo = false;                      // the kill needs sudo too
  bool in_process_group = true;           // the wrapper; false for runbook's own commands
};

struct RemoteExecResult {
  int exit_code = -1;  // -1: no exit status (killed by a signal)
  bool timed_out = false;
  std::string out;
  std::string err;
  bool out_truncated = false;
  bool err_truncated = false;
  int pgid = 0;           // the remote process group, when reported
  std::string kill_note;  // after a timeout: how the remote command was ended
};

// The wrapper described above, around an already quoted line.
std::string WrapInProcessGroup(const std::string& line);

// Runs the request on `channel` (a fresh session channel, owned: it is
// closed and freed). A timeout is not an error here: the result says
// timed_out (and how the remote command was ended) so the caller can phrase
// it. A dropped connection is an error (kUnavailable) naming the connection.
Result<RemoteExecResult> RunRemote(SshClient& client, ssh_channel channel,
                                   const RemoteExecRequest& req);

}  // namespace runbook
