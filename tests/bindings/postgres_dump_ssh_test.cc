// pg.dump and pg.restore of a server reached through an ssh tunnel (`via:`):
// pg_dump and pg_restore connect to the tunnel's local end while the engine
// keeps relaying.
#include <stdlib.h>

#include <filesystem>

#include "bindings/postgres/register.h"
#include "tests/bindings/ssh_test_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::testing {

TEST_CASE("pg.dump and pg.restore work through an ssh tunnel",
          "[ssh][postgres][pg.dump][pg.restore]") {
  const PgServer& pg = BlueServer();
  PgTestDb source(pg, "tunsrc");
  source.Exec("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 300);");
  SshCase c;
  RegisterPostgres(&c.registry());
  c.Connect("bastion", SharedSshd());
  c.ctx.AddConnection("inner", "postgres",
                      Value{{"via", "bastion"},
                            {"host", "127.0.0.1"},
                            {"port", pg.port},
                            {"dbname", "postgres"},
                            {"user", pg.superuser},
                            {"password", pg.password}});
  char tmpl[] = "/tmp/runbook-dump-ssh-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string file = dir + "/t.dump";
  Result<Value> d =
      c.Apply("pg.dump", {{"conn", "inner"}, {"database", source.name()}, {"file", file}});
  REQUIRE(d.ok());
  CHECK((*d)["tables"] == 1);
  // pg_dump was pointed at the tunnel (pinned to where the engine's session
  // arrived), not at the server's own port.
  const std::string logs = c.ctx.AllLogs();
  CHECK_THAT(logs, Catch::Contains(" host=127.0.0.1 hostaddr=127.0.0.1 port="));
  CHECK(logs.find("port=" + std::to_string(pg.port) + " ") == std::string::npos);

  const std::string target = UniqueName("tundst");
  Value restore{{"conn", "inner"}, {"database", target}, {"file", file}, {"create", true}};
  REQUIRE(c.Apply("pg.restore", restore).ok());
  CHECK(pg.AdminValue("SELECT count(*) FROM t", target) == "300");
  REQUIRE(c.P("pg.restore").Undo(c.ctx, restore, c.ctx.undo_records.back()).ok());
  CHECK(pg.AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + target + "'") == "0");
  std::filesystem::remove_all(dir);
}

}  // namespace runbook::testing
