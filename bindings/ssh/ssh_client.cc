#include "bindings/ssh/ssh_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "bindings/ssh/ssh_proxy_jump.h"
#include "bindings/ssh/ssh_relay.h"

namespace runbook {
namespace {

std::string OptionString(ssh_session s, enum ssh_options_e what) {
  char* v = nullptr;
  if (ssh_options_get(s, what, &v) != SSH_OK || !v) return "";
  std::string out = v;
  ssh_string_free_char(v);
  return out;
}

std::string LocalUser() {
  const passwd* pw = getpwuid(getuid());
  return pw ? pw->pw_name : "";
}

// Jump hosts ProxyJump may add in all, its hosts' own ProxyJump included.
constexpr int kMaxConfigJumps = 8;

template <typename T>
Status SetOption(ssh_session s, enum ssh_options_e what, const T* value, const char* name) {
  if (ssh_options_set(s, what, value) == SSH_OK) return Status::Ok();
  return Status::Invalid(std::string("cannot set ssh option ") + name + ": " + ssh_get_error(s));
}

}  // namespace

SshClient::SshClient() = default;
SshClient::~SshClient() { Disconnect(); }

bool SshClient::connected() const { return session_ && ssh_is_connected(session_); }

std::string SshClient::Describe() const {
  std::string where = (user_.empty() ? "" : user_ + "@") + host_ + ":" + std::to_string(port_);
  if (!target_.jump.empty()) where += " via " + target_.jump;
  if (!via_config_.empty()) where += " via ProxyJump " + via_config_;
  return "connection '" + target_.conn_name + "' (" + where + ")";
}

std::string SshClient::LastError() const {
  if (!session_) return "not connected";
  std::string e = ssh_get_error(session_);
  return e.empty() ? "unknown libssh error" : e;
}

void SshClient::Keepalive() {
  if (!connected() || target_.keepalive.count() <= 0) return;
  SteadyTime now = std::chrono::steady_clock::now();
  if (now - last_keepalive_ < target_.keepalive) return;
  last_keepalive_ = now;
  ssh_send_ignore(session_, "keepalive");
}

void SshClient::Disconnect() {
  if (session_) {
    if (ssh_is_connected(session_)) ssh_disconnect(session_);
    ssh_free(session_);
    session_ = nullptr;
  }
  via_.reset();  // after the inner session closed its end of the socketpair
}

Status SshClient::Connect(const std::vector<SshTarget>& chain, SteadyTime deadline,
                          const SshLogFn& log) {
  Disconnect();
  if (chain.empty()) return Status::Internal("ssh connect without a target");
  target_ = chain.back();
  host_ = target_.host;
  port_ = target_.port ? target_.port : 22;
  user_ = target_.user;
  session_ = ssh_new();
  if (!session_) return Status::Internal("ssh_new failed");
  via_config_.clear();
  Status s = Configure(target_, deadline);
  if (s.ok() && chain.size() > 1) {
    s = ConnectThroughJump(std::vector<SshTarget>(chain.begin(), chain.end() - 1), deadline, log);
  } else if (s.ok() && !config_proxy_.empty()) {
    Result<std::vector<SshTarget>> jumps = ConfigJumps();
    s = jumps.ok() ? ConnectThroughJump(*jumps, deadline, log) : jumps.status();
  }
  if (s.ok()) s = Handshake(log);
  if (!s.ok()) {
    Disconnect();
    return s;
  }
  last_keepalive_ = std::chrono::steady_clock::now();
  return s;
}

Status SshClient::Configure(const SshTarget& t, SteadyTime deadline) {
  Status s = SetOption(session_, SSH_OPTIONS_HOST, t.host.c_str(), "host");
  if (!s.ok()) return s;
  if (t.ssh_config == "none") {
    bool no = false;
    s = SetOption(session_, SSH_OPTIONS_PROCESS_CONFIG, &no, "process_config");
  } else if (ssh_options_parse_config(session_, t.ssh_config.empty() ? nullptr
                                                                     : t.ssh_config.c_str()) < 0) {
    s = Status::Invalid("cannot read ssh config " +
                        (t.ssh_config.empty() ? std::string("~/.ssh/config") : t.ssh_config) +
                        ": " + ssh_get_error(session_));
  }
  if (!s.ok()) return s;
  // ProxyJump, as libssh 0.10 turned it into a ProxyCommand (ConfigJumps).
  config_proxy_ = t.ssh_config == "none" ? "" : OptionString(session_, SSH_OPTIONS_PROXYCOMMAND);
  if (config_proxy_ == "none") config_proxy_.clear();
  // Explicit values after the config, so they win. Never a local shell.
  s = SetOption(session_, SSH_OPTIONS_PROXYCOMMAND, "none", "proxycommand");
  if (s.ok() && t.port) s = SetOption(session_, SSH_OPTIONS_PORT, &t.port, "port");
  if (s.ok() && !t.user.empty()) s = SetOption(session_, SSH_OPTIONS_USER, t.user.c_str(), "user");
  std::string known = t.known_hosts;
  if (known.empty() && OptionString(session_, SSH_OPTIONS_KNOWNHOSTS).empty()) {
    known = ExpandUserPath("~/.ssh/known_hosts");
  }
  if (s.ok() && !known.empty()) {
    s = SetOption(session_, SSH_OPTIONS_KNOWNHOSTS, known.c_str(), "known_hosts");
  }
  if (s.ok() && !t.global_known_hosts.empty()) {
    std::string global = t.global_known_hosts == "none" ? "/dev/null" : t.global_known_hosts;
    s = SetOption(session_, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, global.c_str(), "global_known_hosts");
  }
  int off = 0, on = 1;
  if (s.ok()) s = SetOption(session_, SSH_OPTIONS_PASSWORD_AUTH, &off, "password_auth");
  if (s.ok()) s = SetOption(session_, SSH_OPTIONS_KBDINT_AUTH, &off, "kbdint_auth");
  if (s.ok()) s = SetOption(session_, SSH_OPTIONS_GSSAPI_AUTH, &off, "gssapi_auth");
  if (s.ok()) s = SetOption(session_, SSH_OPTIONS_NODELAY, &on, "nodelay");
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (deadline == SteadyTime::max()) left = t.connect_timeout;
  auto timeout = std::clamp(left, std::chrono::milliseconds(1000), t.connect_timeout);
  long sec = static_cast<long>(timeout.count() / 1000);
  long usec = static_cast<long>((timeout.count() % 1000) * 1000);
  if (s.ok()) s = SetOption(session_, SSH_OPTIONS_TIMEOUT, &sec, "timeout");
  if (s.ok()) s = SetOption(session_, SSH_OPTIONS_TIMEOUT_USEC, &usec, "timeout_usec");
  if (!s.ok()) return s.Prefixed("connection '" + t.conn_name + "'");
  host_ = OptionString(session_, SSH_OPTIONS_HOST);
  unsigned int port = 22;
  if (ssh_options_get_port(session_, &port) == SSH_OK) port_ = static_cast<int>(port);
  user_ = OptionString(session_, SSH_OPTIONS_USER);
  if (user_.empty()) user_ = LocalUser();
  return Status::Ok();
}

Result<std::vector<SshTarget>> SshClient::ConfigJumps() {
  const std::string file = target_.ssh_config.empty()
                               ? std::string("the ssh config (~/.ssh/config)")
                               : target_.ssh_config;
  Result<std::vector<JumpHop>> hops = JumpsFromProxyCommand(config_proxy_);
  if (hops.status().code() == Status::Code::kNotFound) {
    // Only the program: a ProxyCommand may carry a secret (sshpass -p ...).
    const std::string program = config_proxy_.substr(0, config_proxy_.find(' '));
    return Status::Invalid(Describe() + ": " + file + " sets a ProxyCommand (" + program +
                           " ...) for it; runbook runs no local command: use ProxyJump there, "
                           "or jump: in the connection");
  }
  if (!hops.ok()) return hops.status().Prefixed(Describe() + ": ProxyJump in " + file);
  const int depth = target_.config_jumps + static_cast<int>(hops->size());
  if (depth > kMaxConfigJumps) {
    return Status::Invalid(Describe() + ": ProxyJump in " + file + " goes through more than " +
                           std::to_string(kMaxConfigJumps) + " jump hosts (a loop?)");
  }
  std::vector<SshTarget> out;
  std::string label;
  for (const JumpHop& hop : *hops) {
    // As OpenSSH's jump process: the config file and timeouts carry over;
    // the connection's own key, known_hosts and accept_new are for its
    // host, not for hosts the runbook never named (the config's apply).
    SshTarget t = target_;
    t.host = hop.host;
    t.port = hop.port;
    t.user = hop.user;
    t.jump.clear();
    t.identity.clear();
    t.known_hosts.clear();
    t.global_known_hosts.clear();
    t.accept_new = false;
    t.config_jumps = depth;
    label += (label.empty() ? "" : ",") + t.Label();
    out.push_back(std::move(t));
  }
  via_config_ = label;
  return out;
}

Status SshClient::ConnectThroughJump(const std::vector<SshTarget>& jumps, SteadyTime deadline,
                                     const SshLogFn& log) {
  auto jump = std::make_unique<SshClient>();
  Status s = jump->Connect(jumps, deadline, log);
  if (!s.ok()) return s.Prefixed(Describe() + ": jump host");
  ssh_channel channel = ssh_channel_new(jump->session());
  if (!channel || ssh_channel_open_forward(channel, host_.c_str(), port_, "127.0.0.1", 0) != SSH_OK) {
    std::string why = jump->LastError();
    if (channel) ssh_channel_free(channel);
    return Status::Unavailable(Describe() + ": the jump host " + jump->Describe() +
                               " could not open a connection to " + host_ + ":" +
                               std::to_string(port_) + ": " + why);
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    ssh_channel_free(channel);
    return Status::Internal("socketpair failed");
  }
  via_ = std::make_unique<ChannelRelay>(std::move(jump));
  via_->AddPipe(sv[1], channel);
  via_->set_stop_when_idle(true);
  via_->Start();
  // libssh owns sv[0] from here and closes it on disconnect.
  return SetOption(session_, SSH_OPTIONS_FD, &sv[0], "fd");
}

Status SshClient::Handshake(const SshLogFn& log) {
  if (ssh_connect(session_) != SSH_OK) {
    return Status::Unavailable(Describe() + ": cannot connect: " + LastError());
  }
  Status s = VerifyHostKey(session_, target_, Describe(), log);
  if (!s.ok()) return s;
  s = Authenticate(session_, target_, Describe());
  if (!s.ok()) return s;
  TuneSocket();
  return Status::Ok();
}

// TCP keepalive and a user timeout: a peer that vanished (cable, reboot,
// firewall) is noticed in about a minute instead of TCP's quarter hour.
void SshClient::TuneSocket() {
  if (target_.keepalive.count() <= 0) return;
  int fd = ssh_get_fd(session_);
  sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (fd < 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return;
  int on = 1;
  int idle = std::max<int>(1, static_cast<int>(target_.keepalive.count() / 1000));
  int interval = 5, count = 3;
  unsigned int user_timeout =
      static_cast<unsigned int>(std::max<int64_t>(30000, 3 * target_.keepalive.count()));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
}

}  // namespace runbook
