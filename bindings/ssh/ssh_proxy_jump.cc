#include "bindings/ssh/ssh_proxy_jump.h"

#include <libssh/libssh.h>

#include <cstdlib>
#include <sstream>

// libssh 0.11 connects ProxyJump hops itself (no ProxyCommand to read back),
// outside the engine's rules for host keys and authentication. Revisit this
// file before building with it.
#if LIBSSH_VERSION_INT >= SSH_VERSION_INT(0, 11, 0)
#error "ssh_proxy_jump.cc reads libssh 0.9/0.10's ProxyJump; libssh 0.11 handles ProxyJump itself"
#endif

namespace runbook {
namespace {

Result<int> Port(const std::string& text, const std::string& spec) {
  char* end = nullptr;
  long port = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || port < 1 || port > 65535) {
    return Status::Invalid("bad port in jump host '" + spec + "'");
  }
  return static_cast<int>(port);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

}  // namespace

Result<JumpHop> ParseJumpHop(const std::string& spec) {
  std::string rest = spec;
  if (rest.rfind("ssh://", 0) == 0) rest = rest.substr(6);
  JumpHop hop;
  if (size_t at = rest.rfind('@'); at != std::string::npos) {
    hop.user = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) return Status::Invalid("bad jump host '" + spec + "'");
    hop.host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Status::Invalid("bad jump host '" + spec + "'");
      port = after.substr(1);
    }
  } else if (size_t colon = rest.find(':');
             colon != std::string::npos && rest.find(':', colon + 1) == std::string::npos) {
    hop.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    hop.host = rest;  // no port, or a bare IPv6 address
  }
  if (hop.host.empty() || hop.host[0] == '-' || (!hop.user.empty() && hop.user[0] == '-')) {
    return Status::Invalid("bad jump host '" + spec + "'");
  }
  if (!port.empty() || rest.back() == ':') {
    Result<int> p = Port(port, spec);
    if (!p.ok()) return p.status();
    hop.port = *p;
  }
  return hop;
}

Result<std::vector<JumpHop>> JumpsFromProxyCommand(const std::string& proxy_command) {
  // libssh 0.10, config.c: "ssh[ -l USER][ -p PORT][ -J NEXT] -W '[%h]:%p' HOST"
  // (0.9 leaves the quotes out); and the ProxyCommand people wrote before
  // ProxyJump existed, "ssh [-q] -W %h:%p HOST", which means the same.
  std::vector<std::string> words = Split(proxy_command, ' ');
  const Status not_jump = Status::NotFound("not a ProxyJump");
  if (words.size() < 4 || words[0] != "ssh") return not_jump;
  JumpHop first;
  std::string port, next;
  bool forward = false;
  size_t i = 1;
  for (; i < words.size() - 1; ++i) {  // options, then HOST
    const std::string& flag = words[i];
    if (flag == "-q") continue;
    if (i + 1 >= words.size() - 1) return not_jump;  // an option without its value
    const std::string& value = words[++i];
    if (flag == "-l") {
      first.user = value;
    } else if (flag == "-p") {
      port = value;
    } else if (flag == "-J") {
      next = value;
    } else if (flag == "-W" && (value == "'[%h]:%p'" || value == "[%h]:%p" || value == "%h:%p")) {
      forward = true;
    } else {
      return not_jump;
    }
  }
  if (!forward || i != words.size() - 1) return not_jump;
  first.host = words.back();
  if (first.host.empty() || first.host[0] == '-') {
    return Status::Invalid("bad jump host '" + first.host + "'");
  }
  if (!port.empty()) {
    Result<int> p =
        Port(port, (first.user.empty() ? "" : first.user + "@") + first.host + ":" + port);
    if (!p.ok()) return p.status();
    first.port = *p;
  }
  std::vector<JumpHop> hops{first};
  if (!next.empty()) {
    for (const std::string& spec : Split(next, ',')) {
      Result<JumpHop> hop = ParseJumpHop(spec);
      if (!hop.ok()) return hop.status();
      hops.push_back(*hop);
    }
  }
  return hops;
}

}  // namespace runbook
