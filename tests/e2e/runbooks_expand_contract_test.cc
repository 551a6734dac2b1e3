// runbooks/expand-contract.yaml end to end against a real PostgreSQL 15:
// writes through either shape while both are live, a rollback before the
// contract that loses none of them, the contract, and kills at random
// instants during the expand (seed 002, issue 20).
#include <catch2/catch.hpp>
#include <random>
#include <regex>
#include <string>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::PgTestDb;

// accounts.owner_id (int, NOT NULL, read by the running application) becomes
// owner_ref (bigint).
const char* kAccounts =
    "CREATE TABLE accounts (id bigserial PRIMARY KEY, owner_id int NOT NULL, note text);"
    "INSERT INTO accounts (owner_id, note) SELECT g * 3, 'n' || g FROM generate_series(1, 3000) g;";
const char* kSum = "SELECT sum(owner_id) FROM accounts";  // 3 * 3000 * 3001 / 2

std::vector<std::string> Args(const PgTestDb& db, int batch_size) {
  return {"run", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/expand-contract.yaml",
          "-p",  "conn=" + db.Conninfo(),
          "-p",  "table=accounts",
          "-p",  "column=owner_id",
          "-p",  "new_column=owner_ref",
          "-p",  "new_type=bigint",
          "-p",  "batch_size=" + std::to_string(batch_size)};
}

// Columns, constraints, triggers and functions of the public schema.
std::string Shape(const PgTestDb& db) {
  return db.Value(
      "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
      " SELECT 'col ' || column_name || ' ' || data_type || ' ' || is_nullable AS x"
      "   FROM information_schema.columns WHERE table_name = 'accounts'"
      " UNION ALL SELECT 'con ' || conname || ' ' || convalidated FROM pg_constraint"
      "   WHERE conrelid = 'accounts'::regclass"
      " UNION ALL SELECT 'trg ' || tgname FROM pg_trigger"
      "   WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal"
      " UNION ALL SELECT 'fn ' || proname FROM pg_proc"
      "   WHERE pronamespace = 'public'::regnamespace) s");
}

// Every row has both shapes equal.
std::string OutOfSync(const PgTestDb& db) {
  return db.Value("SELECT count(*) FROM accounts WHERE owner_ref IS DISTINCT FROM owner_id");
}

// The old and the new application, one write each way.
void WriteThroughBothShapes(const PgTestDb& db) {
  db.Exec(
      "INSERT INTO accounts (owner_id, note) VALUES (7001, 'old app');"
      "INSERT INTO accounts (owner_ref, note) VALUES (9001, 'new app');"
      "UPDATE accounts SET owner_id = 42 WHERE id = 5;"
      "UPDATE accounts SET owner_ref = 77 WHERE id = 6;");
}

}  // namespace

TEST_CASE(
    "expand-contract: both shapes live and in sync; a rollback before the contract is "
    "instant and loses no write made through either",
    "[e2e][runbooks][postgres][seed002][expand-contract]") {
  E2e t;
  PgTestDb db(BlueServer(), "ec");
  db.Exec(kAccounts);
  const std::string before = Shape(db);
  const auto env = BlueServer().ClientEnv();

  // The rehearsal probes and changes nothing.
  std::vector<std::string> dry = Args(db, 500);
  dry.push_back("--dry-run");
  CliResult r = t.Run(dry, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Shape(db) == before);

  r = t.Run(Args(db, 500), env);
  INFO(r.All());
  REQUIRE(r.code == 3);  // paused for the rollout's approval
  const std::string id = t.LastRunId();
  auto steps = t.Steps(id);
  CHECK(steps["lint-expand"]["status"] == "succeeded");
  CHECK(steps["verify"]["status"] == "succeeded");
  CHECK(steps["rollout"]["status"] == "waiting");
  CHECK(OutOfSync(db) == "0");
  CHECK(db.Value("SELECT string_agg(convalidated::text, ',') FROM pg_constraint WHERE "
                 "contype = 'c' AND conrelid = 'accounts'::regclass") == "true");

  WriteThroughBothShapes(db);
  CHECK(OutOfSync(db) == "0");
  CHECK(db.Value("SELECT owner_id FROM accounts WHERE note = 'new app'") == "9001");
  CHECK(db.Value("SELECT owner_ref FROM accounts WHERE note = 'old app'") == "7001");

  r = t.Run({"rollback", id}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Shape(db) == before);
  // Every write is in the old column, those made through the new one too.
  CHECK(db.Value("SELECT count(*) FROM accounts") == "3002");
  CHECK(db.Value("SELECT owner_id FROM accounts WHERE note = 'new app'") == "9001");
  CHECK(db.Value("SELECT owner_id FROM accounts WHERE id = 6") == "77");
  CHECK(db.Value("SELECT owner_id FROM accounts WHERE id = 5") == "42");
  CHECK(db.Value(kSum) == std::to_string(3LL * 3000 * 3001 / 2 - 15 + 42 - 18 + 77 + 7001 + 9001));
}

TEST_CASE(
    "expand-contract: approved, the contract leaves the new column complete, as strict "
    "and with the old default; a failed contract stops without undoing the expand; a "
    "rollback after the contract keeps everything",
    "[e2e][runbooks][postgres][seed002][expand-contract]") {
  E2e t;
  PgTestDb db(BlueServer(), "ec");
  db.Exec(kAccounts);
  // The application's own trigger on the old column fires before the sync.
  db.Exec(
      "ALTER TABLE accounts ALTER COLUMN owner_id SET DEFAULT 7;"
      "CREATE FUNCTION clamp() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN NEW.owner_id := abs(NEW.owner_id); RETURN NEW; END $$;"
      "CREATE TRIGGER a_clamp BEFORE INSERT OR UPDATE ON accounts FOR EACH ROW "
      "EXECUTE FUNCTION clamp();"
      "CREATE VIEW owners AS SELECT id, owner_id FROM accounts;");
  const auto env = BlueServer().ClientEnv();
  CliResult r = t.Run(Args(db, 700), env);
  INFO(r.All());
  REQUIRE(r.code == 3);
  CHECK_THAT(r.All(), Catch::Contains("other triggers on public.accounts: a_clamp"));
  const std::string id = t.LastRunId();
  WriteThroughBothShapes(db);
  db.Exec("UPDATE accounts SET owner_id = -11 WHERE id = 7");
  CHECK(db.Value("SELECT owner_id || '/' || owner_ref FROM accounts WHERE id = 7") == "11/11");
  CHECK(OutOfSync(db) == "0");
  const std::string expected =
      db.Value("SELECT string_agg(id || ':' || owner_id, ',' ORDER BY id) FROM accounts");

  // The view on the old column makes the contract fail: the run stops and
  // keeps the expand (the new application may already use the new column).
  REQUIRE(t.Run({"approve", id, "rollout", "--by", "alice"}, env).code == 0);
  r = t.Run({"resume", id}, env);
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("other objects depend on it"));
  CHECK_THAT(r.All(), Catch::Contains("[drop-column]"));  // the contract's lint: a warning
  CHECK(OutOfSync(db) == "0");
  // What names the old column is changed first, as the header says.
  db.Exec("DROP VIEW owners; DROP TRIGGER a_clamp ON accounts; DROP FUNCTION clamp()");
  r = t.Run({"resume", id}, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(Shape(db) ==
        "col id bigint NO\ncol note text YES\ncol owner_ref bigint NO\ncon accounts_pkey true");
  CHECK(db.Value("SELECT string_agg(id || ':' || owner_ref, ',' ORDER BY id) FROM accounts") ==
        expected);
  // The old column's default lives on in the new one.
  db.Exec("INSERT INTO accounts (note) VALUES ('after')");
  CHECK(db.Value("SELECT owner_ref FROM accounts WHERE note = 'after'") == "7");

  // The old column is gone for good: a rollback keeps what is there, twice.
  for (int i = 0; i < 2; ++i) {
    r = t.Run({"rollback", id}, env);
    INFO(r.All());
    CHECK(r.code == 0);
    CHECK_THAT(r.All(), Catch::Contains("kept for good, since 'contract' cannot be undone"));
    CHECK(db.Value("SELECT string_agg(id || ':' || owner_ref, ',' ORDER BY id) FROM accounts "
                   "WHERE note IS DISTINCT FROM 'after'") == expected);
  }
}

TEST_CASE(
    "expand-contract: a conversion that would change a value is refused before anything "
    "changes, and a write one shape cannot hold fails instead of being cut",
    "[e2e][runbooks][postgres][seed002][expand-contract]") {
  E2e t;
  PgTestDb db(BlueServer(), "ec");
  db.Exec(
      "CREATE TABLE people (id int PRIMARY KEY, name varchar(8) NOT NULL);"
      "INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 300) g;"
      "INSERT INTO people VALUES (1000, 'abcdefgh');");
  const auto env = BlueServer().ClientEnv();
  auto names = [&] {
    return db.Value("SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM people");
  };
  const std::string before = names();
  auto args = [&](const std::string& new_type) {
    return std::vector<std::string>{
        "run", std::string(RUNBOOK_SOURCE_DIR) + "/runbooks/expand-contract.yaml",
        "-p",  "conn=" + db.Conninfo(),
        "-p",  "table=people",
        "-p",  "column=name",
        "-p",  "new_column=short_name",
        "-p",  "new_type=" + new_type};
  };
  // varchar(5) would cut 'abcdefgh': refused, in the rehearsal and for real.
  for (bool dry : {true, false}) {
    std::vector<std::string> a = args("varchar(5)");
    if (dry) a.push_back("--dry-run");
    CliResult r = t.Run(a, env);
    INFO(r.All());
    CHECK(r.code == 1);
    CHECK_THAT(r.All(), Catch::Contains("1 row(s) would not survive the conversion") &&
                            Catch::Contains("id = 1000"));
    CHECK(db.Value("SELECT count(*) FROM information_schema.columns WHERE table_name = "
                   "'people'") == "2");
  }
  // Widening is fine; a write through the new column that the old one
  // cannot hold fails, and nothing is cut on its way.
  CliResult r = t.Run(args("text"), env);
  INFO(r.All());
  REQUIRE(r.code == 3);
  const std::string id = t.LastRunId();
  CHECK_THROWS_WITH(
      db.Exec("INSERT INTO people (id, short_name) VALUES (2000, 'a very long name')"),
      Catch::Contains("cannot be held exactly by both name and short_name"));
  CHECK_THROWS(db.Exec("UPDATE people SET short_name = 'much too long' WHERE id = 1"));
  db.Exec("UPDATE people SET short_name = 'p1' WHERE id = 1");  // fits: kept both ways
  r = t.Run({"rollback", id}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(names() == before);
}

TEST_CASE(
    "expand-contract: a column the running application reads cannot be expanded over, and "
    "bad params change nothing",
    "[e2e][runbooks][postgres][expand-contract]") {
  E2e t;
  PgTestDb db(BlueServer(), "ec");
  db.Exec(kAccounts);
  const std::string before = Shape(db);
  const auto env = BlueServer().ClientEnv();
  std::vector<std::string> args = Args(db, 500);
  args[9] = "new_column=note";  // exists already
  CliResult r = t.Run(args, env);
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("column note already exists in public.accounts"));
  args[9] = "new_column=owner_ref";
  args[7] = "column=owner";
  r = t.Run(args, env);
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("no column owner in public.accounts"));
  args[7] = "column=owner_id";
  args[11] = "new_type=no_such_type";
  r = t.Run(args, env);
  CHECK(r.code == 1);
  CHECK_THAT(r.All(), Catch::Contains("no_such_type"));
  CHECK(Shape(db) == before);
}

TEST_CASE(
    "expand-contract: SIGKILL at random instants during the expand, then resume: paused "
    "at the approval with every row in sync, and the rollback still loses nothing",
    "[e2e][runbooks][postgres][expand-contract][crash]") {
  E2e t;
  PgTestDb db(BlueServer(), "ec");
  db.Exec(kAccounts);
  const std::string before = Shape(db);
  const auto env = BlueServer().ClientEnv();
  std::mt19937_64 rng(CrashSeed("expand-contract crash"));
  // Small batches: the backfill is most of the run, as on a real table.
  std::vector<std::string> args = Args(db, 10);
  std::string id;
  int kills = 0;
  std::string log;
  for (int round = 0;; ++round) {
    INFO(log);
    REQUIRE(round < 30);
    std::vector<std::string> cmd = id.empty() ? args : std::vector<std::string>{"resume", id};
    Background bg(t.Spec(cmd, env));
    int at_ms = std::uniform_int_distribution<int>(30, 400)(rng);
    bool killed = false;
    if (kills < 6) {
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(at_ms);
      while (std::chrono::steady_clock::now() < until && bg.Running()) {
        bg.Drain(std::chrono::milliseconds(10));
      }
      if (bg.Running()) {
        bg.KillHard();
        killed = true;
        ++kills;
      }
    }
    if (!killed) REQUIRE(bg.WaitExit(std::chrono::seconds(120)));
    log += "round " + std::to_string(round) + ": " + cmd[0] +
           (killed ? " killed at " + std::to_string(at_ms) + " ms" : " ended") + "\n" + bg.out() +
           bg.err();
    if (id.empty()) id = t.LastRunId();
    if (id.empty() || killed) continue;
    Value st = t.RunStatus(id);
    std::string status = st["status"].get<std::string>();
    if (status == "paused") break;
    // The only acceptable stop: a step the engine died in asks a human.
    REQUIRE(status == "stopped");
    std::smatch m;
    std::string error = st["error"].get<std::string>();
    REQUIRE(std::regex_search(error, m, std::regex("--retry-step (\\S+)")));
    FAIL("a step asked a human after a kill: " << error);
  }
  INFO(log);
  CHECK(kills >= 1);
  CHECK(OutOfSync(db) == "0");
  CHECK(db.Value("SELECT count(*) FROM accounts WHERE owner_ref IS NULL") == "0");
  WriteThroughBothShapes(db);
  CliResult r = t.Run({"rollback", id}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(Shape(db) == before);
  CHECK(db.Value("SELECT owner_id FROM accounts WHERE note = 'new app'") == "9001");
}

}  // namespace runbook::e2e
