// The one place that builds a remote command line (STYLE.md): an argv, an
// environment and sudo become one POSIX sh command line that the remote
// login shell parses back into exactly that argv.
//
// Every argument is single-quoted ('it'\''s'); nothing is ever left bare, so
// $, `, \, ", *, newlines and unicode reach the program byte for byte.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/core/status.h"

namespace runbook {

// 'arg' with each ' written as '\''. The empty string becomes ''.
std::string ShellQuote(const std::string& arg);

// True for a portable environment variable name: [A-Za-z_][A-Za-z0-9_]*.
bool ValidEnvName(const std::string& name);

struct RemoteCommand {
  std::vector<std::string> argv;          // the program and its arguments
  std::map<std::string, std::string> env;  // passed as `env K=V ...`
  bool sudo = false;                       // `sudo -n -- ...` (never prompts)
};

// "sudo -n -- env 'K=V' 'prog' 'arg 1'". Fails (kInvalid) on an empty argv,
// a bad environment name, or a NUL byte (which no argv can hold).
Result<std::string> BuildCommandLine(const RemoteCommand& cmd);

// A shell command (`command:` of ssh.exec) as an argv: sh -c COMMAND.
std::vector<std::string> ShellArgv(const std::string& command);

}  // namespace runbook
