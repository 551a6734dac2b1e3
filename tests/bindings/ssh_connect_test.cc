// ssh connections: host keys, authentication, ssh config, jump hosts and
// dropped connections, against real sshd servers.
#include <chrono>
#include <future>
#include <thread>

#include "bindings/ssh/ssh_proxy_jump.h"
#include "tests/bindings/ssh_test_util.h"

namespace runbook::testing {
namespace {

Result<Value> Echo(SshCase& c, const std::string& conn) {
  return c.Apply("ssh.exec", {{"conn", conn}, {"argv", {"echo", "hi"}}});
}

}  // namespace

TEST_CASE("an unknown host key is refused with its fingerprint and the known_hosts line", "[ssh]") {
  const SshdServer& server = SharedSshd();
  std::string dir = FreshDir(server, "kh");
  Spit(dir + "/known_hosts", "");
  SshCase c;
  c.Connect("box", server, {{"known_hosts", dir + "/known_hosts"}});
  Result<Value> r = Echo(c, "box");
  REQUIRE_FALSE(r.ok());
  const std::string& m = r.status().message();
  CHECK_THAT(m, Catch::Contains("connection 'box'"));
  CHECK_THAT(m, Catch::Contains("unknown host key"));
  CHECK_THAT(m, Catch::Contains(server.host_fingerprint()));
  CHECK_THAT(m, Catch::Contains(server.known_hosts_line()));
  CHECK_THAT(m, Catch::Contains("[127.0.0.1]:" + std::to_string(server.port()) + " ssh-ed25519 AAAA"));
  CHECK(Slurp(dir + "/known_hosts").empty());
}

TEST_CASE("accept_new trusts a first-seen host key and records it", "[ssh]") {
  const SshdServer& server = SharedSshd();
  std::string dir = FreshDir(server, "kh");
  std::string file = dir + "/sub/known_hosts";  // the directory is created too
  {
    SshCase c;
    c.Connect("box", server, {{"known_hosts", file}, {"accept_new", true}});
    REQUIRE(Echo(c, "box").ok());
    CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("trusted a host key seen for the first time"));
    CHECK_THAT(c.ctx.AllLogs(), Catch::Contains(server.host_fingerprint()));
  }
  CHECK(Slurp(file) == server.known_hosts_line() + "\n");
  SshCase again;  // a new run: the recorded key is now simply known
  again.Connect("box", server, {{"known_hosts", file}});
  REQUIRE(Echo(again, "box").ok());
}

TEST_CASE("a changed host key is refused, even with accept_new", "[ssh]") {
  SshdServer server;
  std::string old_line = server.known_hosts_line();
  server.RegenerateHostKey();
  for (bool accept_new : {false, true}) {
    SshCase c;
    c.Connect("box", server, {{"accept_new", accept_new}});  // known_hosts has the old key
    Result<Value> r = Echo(c, "box");
    REQUIRE_FALSE(r.ok());
    const std::string& m = r.status().message();
    CHECK_THAT(m, Catch::Contains("host key has CHANGED"));
    CHECK_THAT(m, Catch::Contains(server.host_fingerprint()));
    CHECK_THAT(m, Catch::Contains(server.known_hosts_line()));
    CHECK(Slurp(server.known_hosts()) == old_line + "\n");
  }
}

TEST_CASE("a client key the server does not know is refused with a clear error", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd(), {{"identity", SharedSshd().other_key()}});
  Result<Value> r = Echo(c, "box");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'box'"));
  CHECK_THAT(r.status().message(), Catch::Contains("authentication failed"));
  CHECK_THAT(r.status().message(), Catch::Contains(SharedSshd().other_key()));
  CHECK_THAT(r.status().message(), Catch::Contains("authorized_keys"));
}

TEST_CASE("an encrypted key is refused without a prompt or the passphrase in the error", "[ssh]") {
  std::string dir = FreshDir(SharedSshd(), "enc");
  RunOrThrow({"ssh-keygen", "-q", "-t", "ed25519", "-N", "hunter2-secret", "-f", dir + "/key"});
  SshCase c;
  c.Connect("box", SharedSshd(), {{"identity", dir + "/key"}});
  Result<Value> r = Echo(c, "box");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("is encrypted"));
  CHECK_THAT(r.status().message(), Catch::Contains("ssh-agent"));
  CHECK_THAT(r.status().message(), !Catch::Contains("hunter2"));
}

TEST_CASE("a refused TCP connection names the connection and is retryable", "[ssh]") {
  SshCase c;
  Value config = SharedSshd().Config();
  c.ctx.AddConnection("gone", "ssh", config);
  Value bad = config;
  bad["port"] = 1;  // nothing listens there
  c.ctx.AddConnection("gone", "ssh", bad);
  Result<Value> r = Echo(c, "gone");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'gone' (root@127.0.0.1:1)"));
}

TEST_CASE("ssh config supplies what the runbook leaves out, and explicit values win", "[ssh]") {
  const SshdServer& server = SharedSshd();
  std::string dir = FreshDir(server, "cfg");
  Spit(dir + "/config", "Host db-box\n  HostName 127.0.0.1\n  Port " +
                            std::to_string(server.port()) + "\n  User root\n  IdentityFile " +
                            server.client_key() + "\n  UserKnownHostsFile " + server.known_hosts() +
                            "\n  GlobalKnownHostsFile /dev/null\n  ProxyCommand nc %h %p\n"
                            "Host wrong-port\n  HostName 127.0.0.1\n  Port 1\n");
  SshCase c;
  c.ctx.AddConnection("alias", "ssh", Value{{"host", "db-box"}, {"config", dir + "/config"}});
  // A ProxyCommand would run a local shell: refused, saying so, not ignored
  // (a connection that then went around the proxy could reach another host).
  Result<Value> r = c.Apply("ssh.exec", {{"conn", "alias"}, {"argv", {"id", "-un"}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kInvalid);
  CHECK_THAT(r.status().message(), Catch::Contains("sets a ProxyCommand (nc ...)") &&
                                       Catch::Contains("use ProxyJump there, or jump:"));
  // Not the command itself: it may carry a secret.
  CHECK_THAT(r.status().message(), !Catch::Contains("%h"));
  // The connection's own jump: wins over the config's proxy, as ssh -J does.
  c.Connect("bastion", server);
  c.ctx.AddConnection("alias-jump", "ssh",
                      Value{{"host", "db-box"}, {"config", dir + "/config"}, {"jump", "bastion"}});
  r = c.Apply("ssh.exec", {{"conn", "alias-jump"}, {"argv", {"id", "-un"}}});
  REQUIRE(r.ok());
  CHECK((*r)["stdout"] == "root\n");
  Value explicit_port = server.Config();
  explicit_port["host"] = "wrong-port";
  explicit_port["config"] = dir + "/config";
  c.ctx.AddConnection("override", "ssh", explicit_port);
  // The known_hosts entry is for [127.0.0.1]:PORT, and HostName resolves to it.
  REQUIRE(Echo(c, "override").ok());
}

TEST_CASE("ProxyJump is read back from the ProxyCommand libssh 0.10 makes of it", "[ssh_config]") {
  auto hops = [](const std::string& cmd) {
    Result<std::vector<JumpHop>> r = JumpsFromProxyCommand(cmd);
    REQUIRE(r.ok());
    std::string out;
    for (const JumpHop& h : *r) {
      out += (out.empty() ? "" : " ") + h.user + "@" + h.host + ":" + std::to_string(h.port);
    }
    return out;
  };
  CHECK(hops("ssh -W '[%h]:%p' bastion") == "@bastion:0");
  CHECK(hops("ssh -l alice -p 2222 -J bob@inner,[::1]:23,ssh://c@d:24,e -W '[%h]:%p' bastion") ==
        "alice@bastion:2222 bob@inner:0 @::1:23 c@d:24 @e:0");
  CHECK(hops("ssh -p 2222 -J ssh://u@h:22 -W '[%h]:%p' ::1") == "@::1:2222 u@h:22");
  // libssh 0.9 leaves the quotes out; the ProxyCommand written before ProxyJump means the same.
  CHECK(hops("ssh -W [%h]:%p bastion") == "@bastion:0");
  CHECK(hops("ssh -W %h:%p bastion") == "@bastion:0");
  CHECK(hops("ssh -q -l sre -W %h:%p -q bastion") == "sre@bastion:0");
  // A ProxyCommand someone wrote is not a ProxyJump.
  for (const char* cmd :
       {"nc %h %p", "ssh -W %h bastion", "ssh -W '[%h]:%p'", "ssh -i key -W %h:%p bastion",
        "ssh -W '[%h]:%p' bastion extra", "ssh bastion -W %h:%p", "ssh -l u -W %h:%p", ""}) {
    INFO(cmd);
    CHECK(JumpsFromProxyCommand(cmd).status().code() == Status::Code::kNotFound);
  }
  for (const char* cmd :
       {"ssh -p 0 -W '[%h]:%p' h", "ssh -p x -W '[%h]:%p' h", "ssh -J h:70000 -W '[%h]:%p' h",
        "ssh -J [::1 -W '[%h]:%p' h", "ssh -J -oProxyCommand=x -W '[%h]:%p' h",
        "ssh -J u@ -W '[%h]:%p' h", "ssh -W '[%h]:%p' -h"}) {
    INFO(cmd);
    CHECK(JumpsFromProxyCommand(cmd).status().code() == Status::Code::kInvalid);
  }
}

// sshd's log has one "Accepted publickey" line per session it authenticated.
int Sessions(const SshdServer& server) {
  const std::string log = server.Log();
  int n = 0;
  for (size_t at = log.find("Accepted publickey"); at != std::string::npos;
       at = log.find("Accepted publickey", at + 1)) {
    ++n;
  }
  return n;
}

TEST_CASE("ProxyJump in the ssh config is honoured, hop by hop, loops and bad hops named",
          "[ssh]") {
  const SshdServer& server = SharedSshd();
  const std::string port = std::to_string(server.port());
  std::string dir = FreshDir(server, "proxyjump");
  Spit(dir + "/config", "Host hop1\n  HostName 127.0.0.1\n  User root\n  Port " + port +
                            "\n"
                            "Host one-hop\n  HostName 127.0.0.1\n  Port " +
                            port + "\n  ProxyJump root@127.0.0.1:" + port +
                            "\n"
                            "Host two-hops\n  HostName 127.0.0.1\n  Port " +
                            port + "\n  ProxyJump hop1,root@127.0.0.1:" + port +
                            "\n"
                            "Host dead-hop\n  HostName 127.0.0.1\n  Port " +
                            port +
                            "\n  ProxyJump hop1,root@127.0.0.1:1\n"
                            "Host loop\n  HostName 127.0.0.1\n  Port " +
                            port +
                            "\n  ProxyJump loop\n"
                            "Host bad-port\n  HostName 127.0.0.1\n  ProxyJump hop1:99999\n"
                            // The hops' key and known hosts: theirs, not the connection's.
                            "Host *\n  IdentityFile " +
                            server.client_key() + "\n  UserKnownHostsFile " + server.known_hosts() +
                            "\n  GlobalKnownHostsFile /dev/null\n");
  SshCase c;
  auto via_config = [&](const std::string& name, const std::string& host) {
    c.Connect(name, server, {{"host", host}, {"port", nullptr}, {"config", dir + "/config"}});
  };
  // Each hop is a session of its own on the server, the target one more.
  for (const auto& [host, sessions] :
       std::vector<std::pair<std::string, int>>{{"hop1", 1}, {"one-hop", 2}, {"two-hops", 3}}) {
    INFO(host);
    via_config(host, host);
    const int before = Sessions(server);
    Result<Value> r = Echo(c, host);
    REQUIRE(r.ok());
    CHECK((*r)["stdout"] == "hi\n");
    CHECK(Sessions(server) - before == sessions);
  }
  // A hop that cannot be reached is named, with the target it was for.
  via_config("dead", "dead-hop");
  Result<Value> r = Echo(c, "dead");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kUnavailable);
  CHECK_THAT(r.status().message(),
             Catch::Contains("via ProxyJump hop1,root@127.0.0.1:1") &&
                 Catch::Contains("jump host") &&
                 // hop1 was reached first, and could not go on to the second
                 Catch::Contains("could not open a connection to 127.0.0.1:1"));
  via_config("loop", "loop");
  r = Echo(c, "loop");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("more than 8 jump hosts (a loop?)"));
  via_config("bad-port", "bad-port");
  r = Echo(c, "bad-port");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kInvalid);
  CHECK_THAT(r.status().message(), Catch::Contains("bad port in jump host 'hop1:99999'"));
}

TEST_CASE("a jump host carries the connection to the target", "[ssh]") {
  const SshdServer& server = SharedSshd();
  SshCase c;
  c.Connect("bastion", server);
  c.Connect("inner", server, {{"jump", "bastion"}});
  Result<Value> r = c.Apply("ssh.exec", {{"conn", "inner"}, {"command", "echo $SSH_CONNECTION"}});
  REQUIRE(r.ok());
  CHECK_THAT((*r)["stdout"].get<std::string>(), Catch::StartsWith("127.0.0.1 "));
  // Large transfers go through the relay too.
  r = c.Apply("ssh.exec", {{"conn", "inner"}, {"command", "head -c 2000000 /dev/zero"}});
  REQUIRE(r.ok());
  CHECK((*r)["stdout"].get<std::string>().size() == 2000000);

  c.Connect("a", server, {{"jump", "b"}});
  c.Connect("b", server, {{"jump", "a"}});
  r = Echo(c, "a");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("loop"));
  c.ctx.AddConnection("pg", "postgres", Value{{"dsn", "host=x"}});
  c.Connect("via-pg", server, {{"jump", "pg"}});
  r = Echo(c, "via-pg");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("is a postgres connection, not ssh"));
}

TEST_CASE("sshd killed mid-command fails the step clearly and the next step reconnects", "[ssh]") {
  SshdServer server;
  SshCase c;
  c.Connect("box", server);
  REQUIRE(Echo(c, "box").ok());
  auto pending = std::async(std::launch::async, [&] {
    return c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"sleep", "30"}}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  server.KillSessions();
  REQUIRE(pending.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  Result<Value> r = pending.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'box' (root@127.0.0.1:" +
                                                   std::to_string(server.port()) + ")"));
  CHECK_THAT(r.status().message(), Catch::Contains("connection was lost"));
  // The session died between steps: the next step opens a new one.
  r = Echo(c, "box");
  REQUIRE(r.ok());
  CHECK((*r)["stdout"] == "hi\n");
  // And a server that is gone altogether is reported, not waited for.
  server.Stop();
  r = Echo(c, "box");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'box'"));
  server.Start();
}

}  // namespace runbook::testing
