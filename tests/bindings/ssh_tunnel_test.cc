// ssh.tunnel and postgres connections `via:` an ssh connection, against a
// real sshd and a real PostgreSQL server.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "bindings/postgres/register.h"
#include "bindings/ssh/tunnel.h"
#include "tests/bindings/ssh_test_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::testing {
namespace {

// Connects to 127.0.0.1:port and returns the first line the server sends.
std::string FirstLine(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "(connect failed)";
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line += c;
  close(fd);
  return line;
}

}  // namespace

TEST_CASE("ssh.tunnel forwards a local port through the host", "[ssh]") {
  const SshdServer& server = SharedSshd();
  SshCase c;
  c.Connect("bastion", server);
  // The sshd itself is the remote service: its banner comes through the tunnel.
  Value args{{"conn", "bastion"}, {"remote_host", "127.0.0.1"}, {"remote_port", server.port()}};
  Result<Value> r = c.Apply("ssh.tunnel", args);
  REQUIRE(r.ok());
  int port = (*r)["local_port"];
  CHECK((*r)["host"] == "127.0.0.1");
  CHECK_THAT(FirstLine(port), Catch::StartsWith("SSH-2.0-OpenSSH"));
  CHECK_THAT(FirstLine(port), Catch::StartsWith("SSH-2.0-OpenSSH"));  // one channel each
  // The same tunnel for the rest of the run.
  Result<Value> again = c.Apply("ssh.tunnel", args);
  REQUIRE(again.ok());
  CHECK((*again)["local_port"] == port);
  Result<int> shared = EnsureSshTunnel(c.ctx, "bastion", "127.0.0.1", server.port());
  REQUIRE(shared.ok());
  CHECK(*shared == port);
  CHECK(c.P("ssh.tunnel").Plan(args).undo_kind == UndoKind::kNothingToUndo);
  CHECK(c.P("ssh.tunnel").rehearsal(args) == Rehearsal::kProbe);
  // Nothing listens at the far end: the connection is closed at once.
  Result<int> dead = EnsureSshTunnel(c.ctx, "bastion", "127.0.0.1", 1);
  REQUIRE(dead.ok());
  CHECK(FirstLine(*dead).empty());
}

TEST_CASE("a tunnel whose ssh connection dropped is reopened on its port", "[ssh]") {
  SshdServer server;
  SshCase c;
  c.Connect("bastion", server);
  Result<int> port = EnsureSshTunnel(c.ctx, "bastion", "127.0.0.1", server.port());
  REQUIRE(port.ok());
  CHECK_THAT(FirstLine(*port), Catch::StartsWith("SSH-2.0-"));
  server.KillSessions();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the relay notices the drop
  Result<int> again = EnsureSshTunnel(c.ctx, "bastion", "127.0.0.1", server.port());
  REQUIRE(again.ok());
  CHECK(*again == *port);
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("was down"));
  CHECK_THAT(FirstLine(*again), Catch::StartsWith("SSH-2.0-"));
}

TEST_CASE("a postgres connection goes through an ssh tunnel with via", "[ssh][postgres]") {
  const PgServer& pg = BlueServer();
  SshCase c;
  RegisterPostgres(&c.registry());
  c.Connect("bastion", SharedSshd());
  c.ctx.AddConnection("inner", "postgres",
                      Value{{"via", "bastion"}, {"host", "127.0.0.1"}, {"port", pg.port},
                            {"dbname", "postgres"}, {"user", pg.superuser},
                            {"password", pg.password}});
  Result<Value> r = c.Apply("pg.query", {{"conn", "inner"},
                                         {"sql", "select host(inet_client_addr()) as addr, 42 as n"}});
  REQUIRE(r.ok());
  CHECK((*r)[0]["n"] == 42);
  CHECK((*r)[0]["addr"] == "127.0.0.1");
  // The tunnel is the one ssh.tunnel would open to the same place.
  Result<int> tunnel = EnsureSshTunnel(c.ctx, "bastion", "127.0.0.1", pg.port);
  REQUIRE(tunnel.ok());
  r = c.Apply("pg.query", {{"conn", "inner"},
                           {"sql", "select count(*) as n from pg_stat_activity where "
                                   "client_port is not null and application_name like 'runbook/%'"}});
  REQUIRE(r.ok());
  CHECK((*r)[0]["n"] >= 1);

  // The dsn form, with the host in the dsn.
  c.ctx.AddConnection("inner2", "postgres",
                      Value{{"dsn", "host=127.0.0.1 port=" + std::to_string(pg.port) +
                                        " dbname=postgres user=" + pg.superuser},
                            {"password", pg.password}, {"via", "bastion"}});
  r = c.Apply("pg.query", {{"conn", "inner2"}, {"sql", "select 1 as one"}});
  REQUIRE(r.ok());
  CHECK((*r)[0]["one"] == 1);
}

TEST_CASE("a tunnelled postgres connection uses the password file's entry for the real server",
          "[ssh][postgres]") {
  const PgServer& pg = BlueServer();
  SshCase c;
  RegisterPostgres(&c.registry());
  c.Connect("bastion", SharedSshd());
  // A role whose password has the characters the file escapes.
  const std::string secret = "tun:nel\\pw-" + std::to_string(getpid());
  c.ctx.AddConnection("admin", "postgres",
                      Value{{"host", "127.0.0.1"},
                            {"port", pg.port},
                            {"dbname", "postgres"},
                            {"user", pg.superuser},
                            {"password", pg.password}});
  REQUIRE(c.Apply("pg.exec", {{"conn", "admin"},
                              {"sql",
                               "drop role if exists pgpass_user; create role pgpass_user "
                               "login password '" +
                                   secret + "'"}})
              .ok());
  std::string escaped;
  for (char ch : secret) {
    if (ch == ':' || ch == '\\') escaped += '\\';
    escaped += ch;
  }
  const std::string dir = FreshDir(SharedSshd(), "pgpass");
  const std::string file = dir + "/pgpass";
  auto write = [&](const std::string& text, mode_t mode) {
    Spit(file, text);
    chmod(file.c_str(), mode);
  };
  auto query = [&](const std::string& name) {
    c.ctx.AddConnection(name, "postgres",
                        Value{{"via", "bastion"},
                              {"host", "127.0.0.1"},
                              {"port", pg.port},
                              {"dbname", "postgres"},
                              {"user", "pgpass_user"},
                              {"dsn", "passfile=" + file}});
    return c.Apply("pg.query", {{"conn", name}, {"sql", "select current_user as u"}});
  };
  // The entry for the server's own host and port: libpq alone would look up
  // 127.0.0.1 and the tunnel's local port, and find nothing.
  write("127.0.0.1:" + std::to_string(pg.port) + ":postgres:pgpass_user:" + escaped + "\n", 0600);
  Result<Value> r = query("tunnelled");
  REQUIRE(r.ok());
  CHECK((*r)[0]["u"] == "pgpass_user");
  // The password is a secret from then on: masked wherever it would show.
  CHECK(c.ctx.redactor().Redact("x " + secret + " y").find(secret) == std::string::npos);

  // An entry for another port is not this server's.
  write("127.0.0.1:1:postgres:pgpass_user:" + escaped + "\n", 0600);
  r = query("other-port");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("no password supplied"));
  CHECK(r.status().message().find(secret) == std::string::npos);
  // A file others may read is ignored, as libpq ignores it.
  write("*:*:*:pgpass_user:" + escaped + "\n", 0644);
  r = query("world-readable");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("no password supplied"));
  REQUIRE(c.Apply("pg.exec", {{"conn", "admin"}, {"sql", "drop role pgpass_user"}}).ok());
}

}  // namespace runbook::testing
