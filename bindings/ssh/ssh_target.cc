#include "bindings/ssh/ssh_target.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "bindings/ssh/ssh_primitive.h"
#include "bindings/ssh/tunnel.h"
#include "engine/core/duration.h"

namespace runbook {
namespace {

constexpr int kMaxJumps = 8;

std::string Text(const Value& config, const char* key) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) return "";
  const Value& v = config[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

Result<std::chrono::milliseconds> DurationField(const Value& config, const char* key,
                                                std::chrono::milliseconds fallback) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  const Value& v = config[key];
  if (v.is_number()) return std::chrono::milliseconds(static_cast<int64_t>(v.get<double>() * 1000));
  if (v.is_string()) {
    if (auto d = ParseDuration(v.get<std::string>())) return *d;
  }
  return Status::Invalid(std::string(key) + " must be a duration such as 10s");
}

}  // namespace

std::string ExpandUserPath(const std::string& path) {
  if (path != "~" && path.rfind("~/", 0) != 0) return path;
  const char* home = getenv("HOME");
  std::string h = home && *home ? home : "";
  if (h.empty()) {
    if (const passwd* pw = getpwuid(getuid())) h = pw->pw_dir;
  }
  return h + path.substr(1);
}

std::string SshTarget::Label() const {
  std::string out = user.empty() ? host : user + "@" + host;
  if (port != 0) out += ":" + std::to_string(port);
  return out;
}

Result<SshTarget> SshTargetFromConfig(const std::string& conn_name, const Value& config) {
  const std::string where = "connection '" + conn_name + "': ";
  if (!config.is_object()) return Status::Invalid(where + "expected a host or a map");
  SshTarget t;
  t.conn_name = conn_name;
  t.host = Text(config, "host");
  if (t.host.empty()) return Status::Invalid(where + "host is required");
  if (t.host.find_first_of(" \t\n@") != std::string::npos) {
    return Status::Invalid(where + "bad host '" + t.host + "' (give the user in user:)");
  }
  std::string port = Text(config, "port");
  if (!port.empty()) {
    char* end = nullptr;
    long p = strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) {
      return Status::Invalid(where + "port must be a number from 1 to 65535, got " + port);
    }
    t.port = static_cast<int>(p);
  }
  t.user = Text(config, "user");
  t.identity = ExpandUserPath(Text(config, "identity"));
  t.known_hosts = ExpandUserPath(Text(config, "known_hosts"));
  t.global_known_hosts = ExpandUserPath(Text(config, "global_known_hosts"));
  t.ssh_config = ExpandUserPath(Text(config, "config"));
  t.jump = Text(config, "jump");
  if (config.contains("accept_new") && !config["accept_new"].is_null()) {
    if (!config["accept_new"].is_boolean()) {
      return Status::Invalid(where + "accept_new must be true or false");
    }
    t.accept_new = config["accept_new"].get<bool>();
  }
  auto timeout = DurationField(config, "connect_timeout", t.connect_timeout);
  if (!timeout.ok()) return Status::Invalid(where + timeout.status().message());
  t.connect_timeout = std::max(*timeout, std::chrono::milliseconds(1000));
  auto keepalive = DurationField(config, "keepalive", t.keepalive);
  if (!keepalive.ok()) return Status::Invalid(where + keepalive.status().message());
  t.keepalive = *keepalive;
  return t;
}

Result<std::vector<SshTarget>> ResolveSshChain(StepContext& ctx, const std::string& conn_name) {
  std::vector<SshTarget> chain;
  std::string name = conn_name;
  while (!name.empty()) {
    for (const auto& seen : chain) {
      if (seen.conn_name == name) {
        return Status::Invalid("connection '" + conn_name + "': the jump hosts form a loop at '" +
                               name + "'");
      }
    }
    if (static_cast<int>(chain.size()) > kMaxJumps) {
      return Status::Invalid("connection '" + conn_name + "': more than " +
                             std::to_string(kMaxJumps) + " jump hosts");
    }
    Result<Connection> conn = ctx.GetConnection(name);
    if (!conn.ok()) return conn.status();
    if (conn->type != "ssh") {
      std::string role = chain.empty() ? "" : " (jump host of '" + chain.back().conn_name + "')";
      return Status::Invalid("connection '" + name + "'" + role + " is a " + conn->type +
                             " connection, not ssh");
    }
    Result<SshTarget> t = SshTargetFromConfig(name, conn->config);
    if (!t.ok()) return t.status();
    name = t->jump;
    chain.push_back(std::move(*t));
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

std::string DescribeSshConfig(const Value& config) {
  SshTarget t;
  t.host = Text(config, "host");
  t.user = Text(config, "user");
  std::string port = Text(config, "port");
  std::string out = "ssh " + t.Label() + (port.empty() ? "" : ":" + port);
  std::string jump = Text(config, "jump");
  if (!jump.empty()) out += " via " + jump;
  return out;
}

Result<int> SshConnectionType::OpenRoute(StepContext& ctx, const std::string& via,
                                         const RouteRequest& to) const {
  if (!to.pod.empty()) {
    return Status::Invalid(
        "pod: is for a route through a kube connection; an ssh tunnel goes "
        "to host:");
  }
  if (to.host.empty() || to.host.find(',') != std::string::npos || to.host[0] == '/') {
    return Status::Invalid("needs one host (as the ssh server sees it), got '" + to.host + "'");
  }
  return EnsureSshTunnel(ctx, via, to.host, to.port);
}

SshConnectionType::SshConnectionType() {
  schema_.help = "An ssh server: key or agent authentication, host keys checked against "
                 "known_hosts, ~/.ssh/config honoured.";
  schema_.scalar_arg = "host";
  ArgSpec jump = Arg("jump", ArgType::kConnection, false,
                     "another ssh connection to go through (a jump host)");
  jump.conn_type = "ssh";
  schema_.args = {
      Arg("host", ArgType::kString, true, "host name or address (or a ~/.ssh/config alias)"),
      Arg("port", ArgType::kAny, false, "port (default: ssh config, else 22)"),
      Arg("user", ArgType::kString, false, "remote user (default: ssh config, else local user)"),
      Arg("identity", ArgType::kString, false,
          "private key file (unencrypted; encrypted keys go through ssh-agent)"),
      Arg("known_hosts", ArgType::kString, false, "known_hosts file (default ~/.ssh/known_hosts)"),
      Arg("global_known_hosts", ArgType::kString, false,
          "system known_hosts file (default /etc/ssh/ssh_known_hosts; none: ignore)"),
      Arg("config", ArgType::kString, false,
          "ssh client config file (default ~/.ssh/config; none)"),
      jump,
      Arg("accept_new", ArgType::kBool, false,
          "trust and record a host key seen for the first time (never a changed one)"),
      Arg("connect_timeout", ArgType::kDuration, false, "how long a connect may take (10s)"),
      Arg("keepalive", ArgType::kDuration, false,
          "interval of keepalive messages while waiting (15s; 0 for none)"),
  };
}

}  // namespace runbook
