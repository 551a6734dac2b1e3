// PgConnection against real PostgreSQL servers (tests/fixtures/pg_fixture.h).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "bindings/postgres/pg_client.h"
#include "bindings/postgres/pg_conninfo.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook {
namespace {

using testing::BlueServer;
using testing::PgTestDb;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

PgConnectOptions OptionsFor(const PgTestDb& db, std::optional<std::string> password) {
  PgConnectOptions o;
  o.conn_name = "blue";
  o.dsn = db.Conninfo();
  o.password = std::move(password);
  o.application_name = "runbook/test";
  return o;
}

// A TCP port that accepts connections (the kernel's backlog) but never
// answers: what a hung or stopped server looks like to a client.
struct SilentListener {
  int fd = -1;
  int port = 0;
  SilentListener() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd, 8);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd); }
};

int FreePort() {
  SilentListener l;  // bound then closed: nothing listens there afterwards
  return l.port;
}

}  // namespace

TEST_CASE("a query returns typed rows", "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  REQUIRE(conn.Connect(OptionsFor(db, BlueServer().password)).ok());
  Result<Value> rows = conn.Query(
      "SELECT 1::int2 AS a, 2::int4 AS b, 9007199254740993::int8 AS c, 1.5::float8 AS d, "
      "12.25::numeric AS e, 123456789012345678901234::numeric AS f, true AS g, NULL::text AS h, "
      "'x'::text AS i, '{\"k\": [1]}'::jsonb AS j, 'NaN'::float8 AS k, 1 AS a");
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  const Value& r = (*rows)[0];
  CHECK(r["a"] == 1);
  CHECK(r["b"] == 2);
  CHECK(r["c"].get<int64_t>() == 9007199254740993LL);
  CHECK(r["d"] == 1.5);
  CHECK(r["e"] == 12.25);
  CHECK(r["f"] == "123456789012345678901234");
  CHECK(r["g"] == true);
  CHECK(r["h"].is_null());
  CHECK(r["i"] == "x");
  CHECK(r["j"]["k"][0] == 1);
  CHECK(r["k"] == "NaN");
  CHECK(r["a_2"] == 1);
}

TEST_CASE("parameters travel as $n values, never spliced into the SQL", "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  REQUIRE(conn.Connect(OptionsFor(db, BlueServer().password)).ok());
  Result<Value> rows = conn.Query("SELECT $1::text AS s, $2::int AS n, $3::text IS NULL AS z",
                                  {"it's; DROP TABLE x", "42", std::nullopt});
  REQUIRE(rows.ok());
  CHECK((*rows)[0]["s"] == "it's; DROP TABLE x");
  CHECK((*rows)[0]["n"] == 42);
  CHECK((*rows)[0]["z"] == true);
}

TEST_CASE("a script of several statements returns the last result", "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  REQUIRE(conn.Connect(OptionsFor(db, BlueServer().password)).ok());
  Result<PgResult> r = conn.RunScript(
      "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2); UPDATE t SET id = id + 1");
  REQUIRE(r.ok());
  CHECK(r->command == "UPDATE 2");
  CHECK(r->affected == 4);
  CHECK(db.Value("SELECT sum(id) FROM t") == "5");
}

TEST_CASE("a wrong password fails naming the connection and without the password",
          "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  const std::string wrong = "Wr0ngPassw0rd-s3cr3t";
  Status s = conn.Connect(OptionsFor(db, wrong));
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kFailed);
  CHECK_THAT(s.message(), Catch::Contains("connection 'blue'"));
  CHECK_THAT(s.message(), Catch::Contains("password authentication failed"));
  CHECK(s.message().find(wrong) == std::string::npos);

  // Also when the password is inside the dsn, as a keyword or in a URI.
  PgConnectOptions o = OptionsFor(db, std::nullopt);
  o.dsn = db.Conninfo() + " password=" + wrong;
  s = conn.Connect(o);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find(wrong) == std::string::npos);
  o.dsn = "postgresql://postgres:" + wrong + "@127.0.0.1:" + std::to_string(BlueServer().port) +
          "/" + db.name();
  s = conn.Connect(o);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("password authentication failed"));
  CHECK(s.message().find(wrong) == std::string::npos);
}

TEST_CASE(
    "a session's endpoint is where it arrived: the host of a list it reached, its "
    "database and role",
    "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  PgConnectOptions o = OptionsFor(db, BlueServer().password);
  CHECK(conn.endpoint().keywords.empty());  // not connected: nothing to pin
  const std::string port = std::to_string(BlueServer().port);
  // A host list whose first entry cannot be reached: libpq goes on to the next.
  o.dsn = "host=/nonexistent-runbook-socket-dir,127.0.0.1 port=" + port + "," + port +
          " dbname=" + db.name() + " user=postgres";
  REQUIRE(conn.Connect(o).ok());
  PgConnectOptions at = conn.endpoint();
  CHECK(at.keywords["host"] == "127.0.0.1");
  CHECK(at.keywords["hostaddr"] == "127.0.0.1");
  CHECK(at.keywords["port"] == port);
  CHECK(at.keywords["dbname"] == db.name());
  CHECK(at.keywords["user"] == "postgres");
  CHECK(at.password == o.password);
  // The pinned keywords win over the dsn's list: a session made from them
  // goes there (libpq takes keywords over the dsn).
  PgConnection again;
  o.keywords = at.keywords;
  REQUIRE(again.Connect(o).ok());
  CHECK(again.server() == "127.0.0.1:" + port);
}

TEST_CASE("a URI with the right password connects", "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  PgConnectOptions o = OptionsFor(db, BlueServer().password);
  o.dsn = "postgresql://postgres@127.0.0.1:" + std::to_string(BlueServer().port) + "/" + db.name() +
          "?sslmode=disable";
  REQUIRE(conn.Connect(o).ok());
  CHECK(conn.database() == db.name());
  CHECK(conn.Query("SELECT current_setting('application_name') AS a")->at(0)["a"] ==
        "runbook/test");
}

TEST_CASE("a server that is down gives a transient error naming the connection",
          "[postgres][client]") {
  PgConnection conn;
  PgConnectOptions o;
  o.conn_name = "green";
  o.dsn = "host=127.0.0.1 port=" + std::to_string(FreePort()) + " dbname=x user=postgres";
  Status s = conn.Connect(o);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("connection 'green'"));
  CHECK_THAT(s.message(), Catch::Contains("Connection refused"));
}

TEST_CASE("a server that never answers cannot hold a connect past its deadline",
          "[postgres][client]") {
  SilentListener silent;
  PgConnection conn;
  PgConnectOptions o;
  o.conn_name = "hung";
  o.dsn = "host=127.0.0.1 port=" + std::to_string(silent.port) + " dbname=x user=postgres";
  auto start = steady_clock::now();
  Status s = conn.Connect(o, start + milliseconds(700));
  auto took = steady_clock::now() - start;
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kTimeout);
  CHECK_THAT(s.message(), Catch::Contains("connection 'hung'"));
  CHECK(took < milliseconds(1500));
}

TEST_CASE("the deadline becomes statement_timeout", "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  REQUIRE(conn.Connect(OptionsFor(db, BlueServer().password)).ok());
  auto start = steady_clock::now();
  Status s = conn.Exec("SELECT pg_sleep(10)", {}, start + milliseconds(500));
  auto took = steady_clock::now() - start;
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kTimeout);
  CHECK(took < milliseconds(1500));
  // The connection stays usable, and without a deadline the server's default
  // statement_timeout is back.
  REQUIRE(conn.ok());
  Result<Value> t = conn.Query("SELECT current_setting('statement_timeout') AS t");
  INFO((t.ok() ? std::string() : t.status().message()));
  REQUIRE(t.ok());
  CHECK(t->at(0)["t"] == "0");
}

TEST_CASE("a stopped backend is cancelled and then abandoned at the deadline",
          "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  REQUIRE(conn.Connect(OptionsFor(db, BlueServer().password)).ok());
  Result<Value> pid = conn.Query("SELECT pg_backend_pid() AS pid");
  REQUIRE(pid.ok());
  pid_t backend = (*pid)[0]["pid"].get<pid_t>();
  REQUIRE(kill(backend, SIGSTOP) == 0);  // neither statement_timeout nor cancel can act now
  auto start = steady_clock::now();
  Status s = conn.Exec("SELECT 1", {}, start + milliseconds(500));
  auto took = steady_clock::now() - start;
  kill(backend, SIGCONT);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kTimeout);
  CHECK_THAT(s.message(), Catch::Contains("did not answer"));
  CHECK(took < milliseconds(500) + PgConnection::kCancelGrace + milliseconds(500));
  CHECK_FALSE(conn.ok());
}

TEST_CASE("SQL errors carry SQLSTATE and hint and name the connection", "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  REQUIRE(conn.Connect(OptionsFor(db, BlueServer().password)).ok());
  Status s = conn.Exec("SELEC 1");
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kFailed);
  CHECK_THAT(s.message(), Catch::Contains("connection 'blue'") && Catch::Contains("42601"));
  s = conn.Exec("SELECT * FROM no_such_table");
  CHECK_THAT(s.message(), Catch::Contains("no_such_table") && Catch::Contains("42P01"));
  CHECK(conn.ok());
}

TEST_CASE("server notices are collected instead of printed", "[postgres][client]") {
  PgTestDb db(BlueServer());
  PgConnection conn;
  REQUIRE(conn.Connect(OptionsFor(db, BlueServer().password)).ok());
  REQUIRE(conn.Exec("DO $$ BEGIN RAISE WARNING 'careful: %', 42; END $$").ok());
  std::vector<std::string> notices = conn.TakeNotices();
  REQUIRE(notices.size() == 1);
  CHECK(notices[0] == "WARNING: careful: 42");
  CHECK(conn.TakeNotices().empty());
}

TEST_CASE("connection configs describe themselves without the password", "[postgres][client]") {
  Value config = {{"dsn", "postgresql://app:s3cr%40t@db.example.com:6432/chronicle"},
                  {"password", "other-secret"}};
  std::string d = DescribePgConfig(config);
  CHECK(d == "host=db.example.com port=6432 dbname=chronicle user=app");
  std::vector<std::string> secrets = PgConfigSecrets(config);
  CHECK(std::find(secrets.begin(), secrets.end(), "s3cr@t") != secrets.end());
  CHECK(std::find(secrets.begin(), secrets.end(), "s3cr%40t") != secrets.end());
  CHECK(std::find(secrets.begin(), secrets.end(), "other-secret") != secrets.end());
  CHECK(DescribePgConfig({{"dsn", "host=a dbname=b password=zzz"}, {"port", 5433}}) ==
        "host=a port=5433 dbname=b");
  // A client key's passphrase is a secret too, and never described.
  const Value keyed{{"dsn", "host=a sslkey=/k sslpassword=KeyPass99"}};
  CHECK(PgConfigSecrets(keyed) == std::vector<std::string>{"KeyPass99"});
  CHECK(DescribePgConfig(keyed).find("KeyPass99") == std::string::npos);
  Result<PgConnectOptions> via = PgOptionsFromConfig("inner", {{"via", "bastion"}});
  REQUIRE_FALSE(via.ok());
  CHECK_THAT(via.status().message(), Catch::Contains("via 'bastion' must name an ssh or kube"));
  Result<PgConnectOptions> bad = PgOptionsFromConfig("x", {{"dsn", "host=a passwrd=hunter22"}});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("invalid dsn"));
}

}  // namespace runbook
