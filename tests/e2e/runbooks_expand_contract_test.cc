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
  CHECK(db.Value("SELECT convalidated FROM pg_constraint WHERE conname = "
                 "'rb_accounts_owner_ref_nn'") == "t");

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
    "expand-contract: approved, the contract leaves the new column complete and as strict; "
    "a rollback after it keeps everything",
    "[e2e][runbooks][postgres][seed002][expand-contract]") {
  E2e t;
  PgTestDb db(BlueServer(), "ec");
  db.Exec(kAccounts);
  const auto env = BlueServer().ClientEnv();
  CliResult r = t.Run(Args(db, 700), env);
  INFO(r.All());
  REQUIRE(r.code == 3);
  const std::string id = t.LastRunId();
  WriteThroughBothShapes(db);
  const std::string expected =
      db.Value("SELECT string_agg(id || ':' || owner_id, ',' ORDER BY id) FROM accounts");

  REQUIRE(t.Run({"approve", id, "rollout", "--by", "alice"}, env).code == 0);
  r = t.Run({"resume", id}, env);
  INFO(r.All());
  REQUIRE(r.code == 0);
  CHECK(Shape(db) ==
        "col id bigint NO\ncol note text YES\ncol owner_ref bigint NO\ncon accounts_pkey true");
  CHECK(db.Value("SELECT string_agg(id || ':' || owner_ref, ',' ORDER BY id) FROM accounts") ==
        expected);
  CHECK_THAT(r.All(), Catch::Contains("[drop-column]"));  // the contract's lint: a warning

  // The old column is gone for good: a rollback keeps what is there, twice.
  for (int i = 0; i < 2; ++i) {
    r = t.Run({"rollback", id}, env);
    INFO(r.All());
    CHECK(r.code == 0);
    CHECK_THAT(r.All(), Catch::Contains("kept for good, since 'contract' cannot be undone"));
    CHECK(db.Value("SELECT string_agg(id || ':' || owner_ref, ',' ORDER BY id) FROM accounts") ==
          expected);
  }
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
