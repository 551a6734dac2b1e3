// Every pg.* primitive, applied and rehearsed, against a server that is down
// and with a wrong password: a clear error naming the connection, never the
// password.
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

// Minimal valid arguments of each primitive, all against connection "x"
// (and "y" as the second one).
std::vector<std::pair<std::string, Value>> EveryPrimitive() {
  return {
      {"pg.query", {{"conn", "x"}, {"sql", "SELECT 1"}}},
      {"pg.exec", {{"conn", "x"}, {"sql", "CREATE TABLE t (id int)"}}},
      {"pg.counts", {{"conn", "x"}, {"tables", {"t"}}}},
      {"pg.compare_counts", {{"source", "x"}, {"target", "y"}, {"all", true}}},
      {"pg.wait_ready", {{"conn", "x"}, {"timeout", "1s"}, {"interval", "200ms"}}},
      {"pg.create_database", {{"conn", "x"}, {"name", "never_created"}}},
      {"pg.drop_database", {{"conn", "x"}, {"name", "never_dropped"}}},
      {"pg.terminate_connections", {{"conn", "x"}, {"database", "postgres"}}},
      {"pg.collation_status", {{"conn", "x"}}},
      {"pg.refresh_collation", {{"conn", "x"}}},
      {"pg.assert_schema", {{"conn", "x"}, {"tables", {{"t", {"id"}}}}}},
      {"pg.schema_diff", {{"source", "x"}, {"target", "y"}}},
      {"pg.dump", {{"conn", "x"}, {"file", "/tmp/runbook-errors-test-never-written.dump"}}},
  };
}

void ExpectClearFailure(PgCase& c, const std::string& name, const Value& args, bool dry_run,
                        const std::string& secret) {
  INFO(name << (dry_run ? " (rehearsal)" : ""));
  if (dry_run && c.P(name).rehearsal(args) == Rehearsal::kSkip) return;  // not called
  Result<Value> r = dry_run ? c.Rehearse(name, args) : c.Apply(name, args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'x'"));
  CHECK(r.status().message().find(secret) == std::string::npos);
  CHECK(c.ctx.AllLogs().find(secret) == std::string::npos);
}

}  // namespace

TEST_CASE("every pg primitive names the connection when its server is down",
          "[postgres][errors]") {
  const std::string secret = "down-server-secret-7731";
  for (bool dry_run : {false, true}) {
    for (const auto& [name, args] : EveryPrimitive()) {
      PgCase c;
      for (const char* conn : {"x", "y"}) {
        c.ctx.AddConnection(conn, "postgres",
                            Value{{"dsn", "host=127.0.0.1 port=1 dbname=d user=u password=" +
                                              secret}});
      }
      ExpectClearFailure(c, name, args, dry_run, secret);
    }
  }
}

TEST_CASE("every pg primitive fails on a wrong password without showing it",
          "[postgres][errors]") {
  const std::string wrong = "wrong-password-5190";
  PgTestDb db(BlueServer());
  for (bool dry_run : {false, true}) {
    for (const auto& [name, args] : EveryPrimitive()) {
      PgCase c;
      c.Connect("x", db, "", wrong);
      c.Connect("y", db);
      ExpectClearFailure(c, name, args, dry_run, wrong);
      if (!dry_run || c.P(name).rehearsal(args) != Rehearsal::kSkip) {
        Result<Value> r = dry_run ? c.Rehearse(name, args) : c.Apply(name, args);
        CHECK_THAT(r.status().message(), Catch::Contains("password authentication failed"));
      }
    }
  }
  CHECK(db.Value("SELECT count(*) FROM pg_class WHERE relname = 't'") == "0");
}

TEST_CASE("pg primitives refuse a tunnelled connection they cannot open",
          "[postgres][errors]") {
  PgCase c;
  c.ctx.AddConnection("x", "postgres", Value{{"via", "nowhere"}, {"host", "db.internal"}});
  Result<Value> r = c.Apply("pg.query", {{"conn", "x"}, {"sql", "SELECT 1"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("'nowhere'"));

  // A route is its type's: each says what it lacks, before anything opens.
  c.ctx.AddConnection("bastion", "ssh", Value{{"host", "bastion.example.com"}});
  c.ctx.AddConnection("cluster", "kube", Value{{"context", "prod"}});
  c.ctx.AddConnection("other", "postgres", Value{{"host", "db.internal"}});
  auto refused = [&](const std::string& name, Value config) {
    c.ctx.AddConnection(name, "postgres", std::move(config));
    Result<Value> q = c.Apply("pg.query", {{"conn", name}, {"sql", "SELECT 1"}});
    REQUIRE_FALSE(q.ok());
    return q.status().message();
  };
  CHECK_THAT(refused("ssh-pod", Value{{"via", "bastion"}, {"pod", "db-0"}, {"host", "db"}}),
             Catch::Contains("connection 'ssh-pod' via ssh 'bastion': pod: is for a route "
                             "through a kube connection"));
  CHECK_THAT(refused("ssh-hosts", Value{{"via", "bastion"}, {"host", "a,b"}}),
             Catch::Contains("connection 'ssh-hosts' via ssh 'bastion': needs one host (as the "
                             "ssh server sees it), got 'a,b'"));
  CHECK_THAT(refused("ssh-socket", Value{{"via", "bastion"}, {"dsn", "host=/run/postgresql"}}),
             Catch::Contains("needs one host (as the ssh server sees it), got '/run/postgresql'"));
  CHECK_THAT(refused("kube-nopod", Value{{"via", "cluster"}, {"host", "db"}}),
             Catch::Contains("connection 'kube-nopod' via kube 'cluster': needs pod:"));
  CHECK_THAT(refused("bad-port", Value{{"via", "cluster"}, {"pod", "db-0"}, {"port", "-p"}}),
             Catch::Contains("connection 'bad-port' via kube 'cluster': bad port '-p'"));
  // A postgres connection carries no other.
  CHECK_THAT(refused("via-pg", Value{{"via", "other"}, {"host", "db"}}),
             Catch::Contains("via 'other' must name an ssh or kube connection"));
}

}  // namespace runbook::testing
