// Lock-safe DDL (issue 20): pg.exec's SQL that takes table locks waits at
// most lock_timeout at a time behind another transaction, so the
// application's queries never queue behind it for longer, and is tried
// again until it gets in or its retries run out (then nothing changed).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "bindings/postgres/pg_client.h"
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

using Clock = std::chrono::steady_clock;

void Open(PgConnection& c, const PgTestDb& db, const std::string& name) {
  REQUIRE(c.Connect(PgConnectOptions{name, db.Conninfo(), db.server().password}).ok());
}

// While `migrate` runs: a long transaction that read `accounts` (and so
// holds a lock ALTER TABLE must wait for) ends after `hold`, and the
// application reads `accounts` every 20 ms. Returns the longest read.
std::chrono::milliseconds LongestRead(const PgTestDb& db, std::chrono::milliseconds hold,
                                      const std::function<void()>& migrate) {
  PgConnection holder, app;
  Open(holder, db, "holder");
  Open(app, db, "app");
  REQUIRE(holder.Exec("BEGIN", {}).ok());
  REQUIRE(holder.Query("SELECT count(*) FROM accounts", {}).ok());
  std::atomic<bool> done{false};
  std::chrono::milliseconds longest{0};
  std::thread reader([&] {
    while (!done) {
      const auto t0 = Clock::now();
      (void)app.Query("SELECT count(*) FROM accounts", {});
      longest = std::max(longest,
                         std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::thread release([&] {
    std::this_thread::sleep_for(hold);
    (void)holder.Exec("COMMIT", {});
  });
  migrate();
  release.join();
  done = true;
  reader.join();
  return longest;
}

}  // namespace

TEST_CASE("pg.exec's DDL never queues the application behind it longer than lock_timeout",
          "[postgres][pg.exec][locks]") {
  PgTestDb db(BlueServer());
  db.Exec(
      "CREATE TABLE accounts (id int PRIMARY KEY, balance int); "
      "INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 100) g");
  PgCase c;
  c.Connect("blue", db);
  const std::chrono::milliseconds hold(3000);

  // Without a lock timeout (the old behaviour, lock_timeout: 0s), the ALTER
  // waits for the long transaction and every read queues behind it.
  Result<Value> r = Status::Ok();
  auto waited = LongestRead(db, hold, [&] {
    r = c.Apply("pg.exec", {{"conn", "blue"},
                            {"sql", "ALTER TABLE accounts ADD COLUMN a text"},
                            {"lock_timeout", "0s"}});
  });
  REQUIRE(r.ok());
  CHECK(waited >= std::chrono::milliseconds(1500));

  // With one, each attempt gives up after 300 ms and rolls back, the reads
  // go on in between, and an attempt after the long transaction ended gets in.
  c.ctx.logs.clear();
  waited = LongestRead(db, hold, [&] {
    r = c.Apply("pg.exec", {{"conn", "blue"},
                            {"sql", "ALTER TABLE accounts ADD COLUMN b text"},
                            {"lock_timeout", "300ms"},
                            {"lock_retries", 10}});
  });
  INFO(r.status().message());
  REQUIRE(r.ok());
  CHECK(waited < std::chrono::milliseconds(1500));
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("attempt 1 of 11 waited lock_timeout 300ms for a "
                                              "lock and was rolled back; trying again in 500ms") &&
                                  Catch::Contains("attempt 2 of 11") &&
                                  Catch::Contains("trying again in 1s"));
  CHECK(db.Value("SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                 "AND attname = 'b'") == "1");
}

TEST_CASE("pg.exec's DDL whose retries run out fails saying so, and changed nothing",
          "[postgres][pg.exec][locks]") {
  PgTestDb db(BlueServer());
  db.Exec("CREATE TABLE accounts (id int PRIMARY KEY, balance int)");
  PgCase c;
  c.Connect("blue", db);
  PgConnection holder;
  Open(holder, db, "holder");
  REQUIRE(holder.Exec("BEGIN", {}).ok());
  REQUIRE(holder.Query("SELECT count(*) FROM accounts", {}).ok());
  Value args{{"conn", "blue"},
             {"sql", "UPDATE accounts SET balance = 1; ALTER TABLE accounts ADD COLUMN c text"},
             {"rollback_sql", "ALTER TABLE accounts DROP COLUMN c"},
             {"lock_timeout", "100ms"},
             {"lock_retries", 2}};
  Result<Value> r = c.Apply("pg.exec", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("could not take its locks within lock_timeout 100ms in 3 attempts, "
                             "each rolled back, so nothing was changed") &&
                 Catch::Contains("SQLSTATE 55P03"));
  CHECK(db.Value("SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                 "AND attname = 'c'") == "0");
  // Nothing committed: there is nothing for rollback_sql to undo.
  CHECK(c.ctx.LastUndo().is_null());
  (void)holder.Exec("ROLLBACK", {});
}

TEST_CASE("pg.exec plans lock_timeout for SQL that takes table locks, and only there",
          "[pg.exec][locks]") {
  PgCase c;
  auto plan = [&](Value args) { return c.P("pg.exec").Plan(args).text; };
  CHECK(plan({{"sql", "ALTER TABLE t ADD COLUMN x int"}}) ==
        "BEGIN;\nSET LOCAL lock_timeout = '2000ms';\nALTER TABLE t ADD COLUMN x int\nCOMMIT;\n"
        "(on a lock timeout: rolled back and tried again, up to 5 more times)");
  CHECK(plan({{"sql", "create index i on t (x)"}, {"lock_retries", 0}}) ==
        "BEGIN;\nSET LOCAL lock_timeout = '2000ms';\ncreate index i on t (x)\nCOMMIT;");
  // Rows only: no lock timeout unless the runbook asks for one.
  CHECK(plan({{"sql", "UPDATE t SET x = 1"}}) == "BEGIN;\nUPDATE t SET x = 1\nCOMMIT;");
  CHECK_THAT(plan({{"sql", "UPDATE t SET x = 1"}, {"lock_timeout", "1s"}}),
             Catch::Contains("SET LOCAL lock_timeout = '1000ms'"));
  // lock_timeout: 0s waits as long as it takes; SQL outside a transaction
  // (CREATE INDEX CONCURRENTLY) takes no lock the application waits for.
  CHECK(plan({{"sql", "ALTER TABLE t ADD COLUMN x int"}, {"lock_timeout", "0s"}}) ==
        "BEGIN;\nALTER TABLE t ADD COLUMN x int\nCOMMIT;");
  CHECK(plan({{"sql", "CREATE INDEX CONCURRENTLY i ON t (x)"}}) ==
        "CREATE INDEX CONCURRENTLY i ON t (x)");
}

}  // namespace runbook::testing
