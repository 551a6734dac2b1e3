// pg.lint's rules without a server: every documented rule caught by its own
// documented example, positions, ignores, and what the live facts change.
#include "bindings/postgres/pg_lint.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace runbook::testing {
namespace {

std::vector<LintFinding> Lint(const std::string& sql, const LintOptions& o = {},
                              const LintFacts& facts = {}) {
  return LintMigration(ParseMigration({{"m.sql", sql}}, o.default_schema), facts, o);
}

std::set<std::string> Rules(const std::vector<LintFinding>& findings) {
  std::set<std::string> out;
  for (const auto& f : findings) out.insert(f.rule);
  return out;
}

const LintFinding* Find(const std::vector<LintFinding>& findings, const std::string& rule) {
  for (const auto& f : findings) {
    if (f.rule == rule) return &f;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("pg.lint: every rule catches its own documented example", "[lint]") {
  LintOptions o;
  o.uses["public.streams"] = {};  // the application reads every column of streams
  for (const auto& rule : LintRules()) {
    INFO(rule.id << ": " << rule.example);
    std::set<std::string> got = Rules(Lint(rule.example, o));
    CHECK(got.count(rule.id) == 1);
    const LintFinding* f = Find(Lint(rule.example, o), rule.id);
    if (f) CHECK(f->severity == rule.severity);
  }
}

TEST_CASE("pg.lint: docs/lint.md documents exactly the rules there are", "[lint][docs]") {
  std::ifstream in(std::string(RUNBOOK_SOURCE_DIR) + "/docs/lint.md");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  std::set<std::string> documented;
  std::regex heading(R"(\n### `([a-z-]+)`)");
  for (std::sregex_iterator it(doc.begin(), doc.end(), heading), end; it != end; ++it) {
    documented.insert((*it)[1].str());
  }
  std::set<std::string> rules;
  for (const auto& r : LintRules()) {
    rules.insert(r.id);
    INFO(r.id);
    CHECK(doc.find(r.example) != std::string::npos);  // the example is shown as the code has it
  }
  CHECK(documented == rules);
}

TEST_CASE("pg.lint: safe migrations and tables the migration creates pass", "[lint]") {
  CHECK(
      Lint("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a text);\n"
           "CREATE INDEX t_a ON t (a);\n"
           "ALTER TABLE t ADD COLUMN b int NOT NULL, ADD COLUMN c uuid DEFAULT gen_random_uuid();\n"
           "ALTER TABLE t ALTER COLUMN a TYPE varchar(10);\n"
           "ALTER TABLE orders ADD COLUMN note text DEFAULT 'none';\n"
           "ALTER TABLE orders ADD COLUMN placed_at timestamptz DEFAULT now();\n"
           "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES t NOT VALID;\n"
           "ALTER TABLE orders VALIDATE CONSTRAINT fk;\n"
           "ALTER TABLE orders ADD CONSTRAINT u UNIQUE USING INDEX orders_ref;\n"
           "ANALYZE orders;")
          .empty());
  LintOptions no_tx;
  no_tx.transaction = false;
  for (const char* alone :
       {"CREATE INDEX CONCURRENTLY i ON orders (a);", "DROP INDEX CONCURRENTLY j",
        "REINDEX INDEX CONCURRENTLY k", "VACUUM (FULL false) orders",
        "ALTER TABLE events DETACH PARTITION p CONCURRENTLY"}) {
    INFO(alone);
    CHECK(Lint(alone, no_tx).empty());
  }
  // Sent as one script, PostgreSQL runs them in one implicit transaction.
  std::vector<LintFinding> f =
      Lint("CREATE INDEX CONCURRENTLY i ON orders (a); CREATE INDEX CONCURRENTLY j ON orders (b)",
           no_tx);
  REQUIRE(f.size() == 2);
  CHECK(f[0].rule == "not-in-transaction");
  CHECK(f[0].message ==
        "CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and PostgreSQL runs a "
        "script of several statements sent at once as one: give it a step of its own");
  // Savepoints, an index on ONLY a partitioned parent and REFRESH CONCURRENTLY are fine.
  CHECK(Lint("SAVEPOINT a; RELEASE SAVEPOINT a; ROLLBACK TO SAVEPOINT a; "
             "CREATE INDEX e_ts ON ONLY events (ts); REFRESH MATERIALIZED VIEW CONCURRENTLY m")
            .empty());
}

TEST_CASE("pg.lint: positions are the statement's first token, per file, past comments", "[lint]") {
  ParsedMigration m = ParseMigration(
      {{"001.sql",
        "-- first\nCREATE TABLE a (id int);\n\n  /* x /* nested */ */ CREATE INDEX i "
        "ON orders (id);"},
       {"002.sql", "SELECT 1;\nALTER TABLE orders ADD COLUMN;\nVACUUM FULL orders;"}},
      "public");
  std::vector<LintFinding> f = LintMigration(m, {}, {});
  REQUIRE(f.size() == 4);
  CHECK(f[0].rule == "create-index-blocking");
  CHECK(f[0].file == "001.sql");
  CHECK(f[0].line == 4);
  CHECK(f[0].col == 24);
  CHECK(f[0].table == "public.orders");
  CHECK(f[0].statement == "CREATE INDEX i ON orders (id)");
  CHECK(f[0].message ==
        "CREATE INDEX without CONCURRENTLY blocks writes for the whole build on public.orders "
        "(its size is unknown (no connection))");
  // A statement that does not parse is reported where the parser stopped,
  // and the statements after it are still linted.
  CHECK(f[1].rule == "syntax");
  CHECK(f[1].file == "002.sql");
  CHECK(f[1].line == 2);
  CHECK(f[1].col == 30);
  CHECK(f[1].message == "syntax error at or near \";\"");
  CHECK(f[2].rule == "not-in-transaction");
  CHECK(f[3].rule == "vacuum-full");
  CHECK(f[3].line == 3);
}

TEST_CASE("pg.lint: an ignore needs a known rule and a reason", "[lint]") {
  std::vector<LintFinding> f = Lint(
      "-- runbook:ignore create-index-blocking  the table is empty until release 42\n"
      "CREATE INDEX i ON orders (a);\n"
      "-- runbook:ignore create-index-blocking\n"
      "CREATE INDEX j ON orders (b);\n"
      "CREATE INDEX k ON orders (c); -- runbook:ignore create-index-blokcing typo\n"
      "VACUUM FULL orders");
  REQUIRE(f.size() == 7);
  CHECK(f[0].rule == "create-index-blocking");
  CHECK(f[0].ignored);
  CHECK(f[0].reason == "the table is empty until release 42");
  CHECK(f[1].rule == "create-index-blocking");
  CHECK_FALSE(f[1].ignored);
  CHECK(f[2].rule == "ignore-without-reason");
  CHECK(f[2].message == "this runbook:ignore comment gives no reason");
  CHECK(f[3].rule == "create-index-blocking");  // k: its trailing comment is k's, misspelt
  CHECK_FALSE(f[3].ignored);
  const LintFinding& typo = f[4];
  CHECK(f[5].rule == "not-in-transaction");
  CHECK(f[6].rule == "vacuum-full");
  CHECK_FALSE(f[6].ignored);
  CHECK(typo.rule == "ignore-without-reason");
  CHECK(typo.message ==
        "this runbook:ignore comment names an unknown rule 'create-index-blokcing' (did you mean "
        "'create-index-blocking'?)");

  LintOptions o;
  o.ignores.push_back({"vacuum-full", "public.orders", "maintenance window"});
  o.ignores.push_back({"not-in-transaction", "", "runs alone"});
  std::vector<LintFinding> g = Lint("VACUUM FULL orders; VACUUM FULL customers", o);
  REQUIRE(g.size() == 4);
  CHECK(g[0].ignored);        // not-in-transaction
  CHECK(g[1].ignored);        // vacuum-full orders
  CHECK(g[2].ignored);        // not-in-transaction
  CHECK_FALSE(g[3].ignored);  // vacuum-full of another table
  CHECK(g[3].table == "public.customers");
}

TEST_CASE("pg.lint: the live facts decide sizes, types, checks and volatility", "[lint]") {
  LintFacts facts;
  facts.connected = true;
  LintTableFacts big;
  big.exists = true;
  big.bytes = 5LL << 30;
  big.heap_bytes = 4LL << 30;
  big.column_types = {{"code", "character varying(20)"}, {"amount", "integer"}, {"note", "text"}};
  big.not_null_checked = {"code"};
  facts.tables["public.orders"] = big;
  LintTableFacts tiny;
  tiny.exists = true;
  tiny.bytes = 16384;
  facts.tables["public.flags"] = tiny;
  LintTableFacts empty;
  empty.exists = true;
  facts.tables["public.fresh"] = empty;
  facts.volatile_functions = {{"make_token", true}, {"now", false}};
  facts.constrained_domains = {"posint"};

  auto one = [&](const std::string& sql) { return Lint(sql, {}, facts); };
  // Widening needs no rewrite; anything else is a rewrite of a 5 GB table.
  CHECK(one("ALTER TABLE orders ALTER COLUMN code TYPE varchar(40)").empty());
  CHECK(one("ALTER TABLE orders ALTER COLUMN code TYPE text").empty());
  CHECK(Rules(one("ALTER TABLE orders ALTER COLUMN code TYPE varchar(10)")) ==
        std::set<std::string>{"alter-column-type"});
  std::vector<LintFinding> f = one("ALTER TABLE orders ALTER COLUMN amount TYPE bigint");
  REQUIRE(f.size() == 1);
  CHECK(f[0].severity == "error");
  CHECK(f[0].message ==
        "ALTER COLUMN amount TYPE rewrites the table and its indexes under an ACCESS EXCLUSIVE "
        "lock on public.orders (it is 5.0 GB)");
  // A validated CHECK (code IS NOT NULL) makes SET NOT NULL instant.
  CHECK(one("ALTER TABLE orders ALTER COLUMN code SET NOT NULL").empty());
  CHECK(Rules(one("ALTER TABLE orders ALTER COLUMN note SET NOT NULL")) ==
        std::set<std::string>{"set-not-null"});
  // Volatility as the server knows it, user functions included.
  CHECK(Rules(one("ALTER TABLE orders ADD COLUMN t text DEFAULT make_token()")) ==
        std::set<std::string>{"add-column-rewrite"});
  CHECK(one("ALTER TABLE orders ADD COLUMN t timestamptz DEFAULT now()").empty());
  // A domain with a CHECK is checked on every row: the table is rewritten.
  CHECK(Rules(one("ALTER TABLE orders ADD COLUMN q public.posint")) ==
        std::set<std::string>{"add-column-rewrite"});
  CHECK(one("ALTER TABLE orders ADD COLUMN q int").empty());
  // A small table: the same hazard is a warning.
  f = one("CREATE INDEX ON flags (a)");
  REQUIRE(f.size() == 1);
  CHECK(f[0].severity == "warning");
  CHECK(f[0].message ==
        "CREATE INDEX without CONCURRENTLY blocks writes for the whole build on public.flags "
        "(it is 16.0 kB, small enough that the lock is short)");
  // NOT NULL without a default: fine on an empty table, fails on one with rows.
  CHECK(one("ALTER TABLE fresh ADD COLUMN region text NOT NULL").empty());
  f = one("ALTER TABLE orders ADD COLUMN region text NOT NULL");
  REQUIRE(f.size() == 1);
  CHECK(f[0].message ==
        "ADD COLUMN region NOT NULL without a DEFAULT fails on public.orders, which has rows");
}

TEST_CASE("pg.lint: what breaks the running application", "[lint]") {
  LintOptions o;
  o.uses["public.streams"] = {"stream_id", "live_started_at"};
  o.uses["app.viewers"] = {};
  std::vector<LintFinding> f = Lint(
      "ALTER TABLE streams DROP COLUMN live_started_at, DROP COLUMN legacy;\n"
      "ALTER TABLE streams RENAME COLUMN stream_id TO id;\n"
      "ALTER TABLE app.viewers RENAME TO audience;\n"
      "DROP TABLE IF EXISTS app.viewers, old_stuff;\n"
      "ALTER TABLE app.viewers DROP COLUMN anything",
      o);
  REQUIRE(f.size() == 7);
  CHECK(f[0].rule == "drop-column-in-use");
  CHECK(f[0].message ==
        "DROP COLUMN public.streams.live_started_at destroys its data: the running application "
        "reads public.streams.live_started_at");
  CHECK(f[1].rule == "drop-column");
  CHECK(f[1].severity == "warning");
  CHECK(f[2].rule == "rename-column-in-use");
  CHECK(f[3].rule == "rename-table-in-use");
  CHECK(f[4].rule == "drop-table-in-use");
  CHECK(f[5].rule == "drop-table");
  CHECK(f[5].table == "public.old_stuff");
  CHECK(f[6].rule == "drop-column-in-use");  // a table listed without columns: all of them

  // Through the schema: every table of it the application reads.
  f = Lint(
      "DROP SCHEMA app CASCADE; ALTER SCHEMA app RENAME TO app_old; "
      "ALTER TABLE streams SET SCHEMA archive; DROP SCHEMA scratch; "
      "ALTER TABLE \"Mixed\".\"Case\" SET SCHEMA public",
      o);
  REQUIRE(f.size() == 5);
  CHECK(f[0].rule == "drop-table-in-use");
  CHECK(f[0].table == "app.viewers");
  CHECK(f[0].message ==
        "DROP SCHEMA app destroys every table in it (CASCADE): the running application reads "
        "app.viewers");
  CHECK(f[1].rule == "rename-table-in-use");
  CHECK(f[2].rule == "rename-table-in-use");
  CHECK(f[2].message ==
        "SET SCHEMA moves public.streams to schema archive: the running application reads "
        "public.streams");
  CHECK(f[3].rule == "drop-table");
  CHECK(f[4].rule == "rename-table");
  CHECK(f[4].table == "Mixed.Case");
}

TEST_CASE("pg.lint: ignore comments belong to their own statement, never to a string", "[lint]") {
  std::vector<LintFinding> f = Lint(
      "CREATE INDEX a ON audit (x); -- runbook:ignore create-index-blocking audit is empty\n"
      "CREATE INDEX b ON orders (y);\n"
      "ALTER TABLE orders ADD COLUMN note text DEFAULT '-- runbook:ignore add-column-rewrite x', "
      "ADD COLUMN t uuid DEFAULT gen_random_uuid();\n"
      "TRUNCATE sessions; -- runbook:ignore truncate, sessions are disposable\n"
      "-- runbook:ignores the next one is not an ignore\n"
      "TRUNCATE carts");
  REQUIRE(f.size() == 5);
  CHECK(f[0].table == "public.audit");
  CHECK(f[0].ignored);
  CHECK(f[0].reason == "audit is empty");
  CHECK(f[1].table == "public.orders");
  CHECK_FALSE(f[1].ignored);
  CHECK(f[2].rule == "add-column-rewrite");
  CHECK_FALSE(f[2].ignored);
  CHECK(f[3].rule == "truncate");
  CHECK(f[3].ignored);
  CHECK(f[3].reason == "sessions are disposable");
  CHECK(f[4].rule == "truncate");
  CHECK_FALSE(f[4].ignored);
}

TEST_CASE(
    "pg.lint: what cannot be parsed is an error at its place, says no secret, and hides "
    "nothing it need not",
    "[lint]") {
  // A statement the grammar rejects: the others are still linted.
  std::vector<LintFinding> f = Lint("SELECT 1;\nSELEC 2;\nDROP TABLE streams;");
  REQUIRE(f.size() == 2);
  CHECK(f[0].rule == "syntax");
  CHECK(f[0].line == 2);
  CHECK(f[0].col == 1);
  CHECK(f[1].rule == "drop-table");
  // A parser message never quotes a word of the input: it may be a password.
  f = Lint("CREATE ROLE app LOGIN PASSWORD hunter2 oops;");
  REQUIRE(f.size() == 1);
  CHECK(f[0].message == "syntax error");
  CHECK(f[0].statement.empty());
  // An unterminated quote: what is before it is linted; the rest is one
  // error, which no comment can ignore.
  f = Lint(
      "DROP TABLE streams;\n-- runbook:ignore syntax newer grammar\nSELECT $$oops;\n"
      "CREATE ROLE app LOGIN PASSWORD 'hunter2';\nCREATE INDEX i ON orders (a);");
  REQUIRE(f.size() == 2);
  CHECK(f[0].rule == "drop-table");
  CHECK(f[1].rule == "syntax");
  CHECK_FALSE(f[1].ignored);
  CHECK(f[1].message.find("hunter2") == std::string::npos);
  CHECK_THAT(f[1].message, Catch::EndsWith("the statement at 3:1 and the rest of the file are "
                                           "not linted"));
  // Not UTF-8: nothing is linted, and it says so (not "0 statements, all fine").
  f = Lint("COMMENT ON TABLE x IS 'caf\xE9';\nDROP TABLE streams;");
  REQUIRE(f.size() == 1);
  CHECK(f[0].rule == "syntax");
  CHECK(f[0].message == "not valid UTF-8 (byte 0xE9): the file is not linted; save it as UTF-8");
  CHECK(f[0].line == 1);
  CHECK(f[0].col == 27);
  // A NUL byte: what is before it is linted, the rest would not even run.
  f = Lint(std::string("DROP TABLE a;\0DROP TABLE streams;", 33));
  REQUIRE(f.size() == 2);
  CHECK(f[0].rule == "syntax");
  CHECK(f[0].col == 14);
  CHECK(f[1].rule == "drop-table");
  CHECK(f[1].table == "public.a");
  // A DO block's text is not kept: it may hold a password.
  f = Lint("DO $$ BEGIN EXECUTE $q$CREATE ROLE app PASSWORD 'hunter2'$q$; END $$;");
  REQUIRE(f.size() == 1);
  CHECK(f[0].rule == "do-block");
  CHECK(f[0].statement.empty());
}

TEST_CASE("pg.lint: the class around each rule", "[lint]") {
  auto rules = [](const std::string& sql, const LintOptions& o = {}) {
    return Rules(Lint(sql, o));
  };
  // Inline constraints of a new column are checked against every row.
  CHECK(rules("ALTER TABLE orders ADD COLUMN c int REFERENCES customers (id)") ==
        std::set<std::string>{"constraint-without-not-valid"});
  CHECK(rules("ALTER TABLE orders ADD COLUMN q int CHECK (q > 0)") ==
        std::set<std::string>{"constraint-without-not-valid"});
  // IF NOT EXISTS may find the table there: it is not "created here".
  CHECK(rules("CREATE TABLE IF NOT EXISTS orders (id int); CREATE INDEX o_x ON orders (x)") ==
        std::set<std::string>{"create-index-blocking"});
  // VACUUM (FULL false) is a plain VACUUM.
  CHECK(rules("VACUUM (FULL false) orders") == std::set<std::string>{"not-in-transaction"});
  CHECK(rules("VACUUM (FULL) orders") ==
        std::set<std::string>{"not-in-transaction", "vacuum-full"});
  CHECK(rules("CLUSTER") == std::set<std::string>{"not-in-transaction", "cluster"});
  // Partitions.
  CHECK(rules("ALTER TABLE events ATTACH PARTITION p FOR VALUES IN (1)") ==
        std::set<std::string>{"attach-partition"});
  CHECK(Lint("ALTER TABLE events ATTACH PARTITION p FOR VALUES IN (1)")[0].table == "public.p");
  CHECK(rules("ALTER TABLE events DETACH PARTITION p") ==
        std::set<std::string>{"detach-partition-blocking"});
  CHECK(rules("ALTER TABLE events DETACH PARTITION p CONCURRENTLY") ==
        std::set<std::string>{"not-in-transaction"});
  CHECK(rules("CALL migrate()") == std::set<std::string>{"do-block"});
  // Domains and types: a new constraint checks every column of the type; a
  // CASCADE drops them.
  CHECK(rules("ALTER DOMAIN posint ADD CONSTRAINT c CHECK (VALUE > 0)") ==
        std::set<std::string>{"constraint-without-not-valid"});
  CHECK(rules("ALTER DOMAIN posint ADD CONSTRAINT c CHECK (VALUE > 0) NOT VALID").empty());
  CHECK(rules("DROP TYPE status CASCADE") == std::set<std::string>{"drop-column"});
  CHECK(rules("DROP EXTENSION citext CASCADE") == std::set<std::string>{"drop-column"});
  CHECK(rules("DROP TYPE status").empty());
  CHECK(rules("CREATE SUBSCRIPTION s CONNECTION 'password=x' PUBLICATION p") ==
        std::set<std::string>{"not-in-transaction"});
  // SET search_path: unqualified names resolve where the script says.
  LintOptions o;
  o.uses["app.accounts"] = {"email"};
  CHECK(rules("SET search_path TO \"$user\", app, public; ALTER TABLE accounts DROP COLUMN email",
              o) == std::set<std::string>{"drop-column-in-use"});
  CHECK(rules("SET search_path TO app; RESET search_path; ALTER TABLE accounts DROP COLUMN email",
              o) == std::set<std::string>{"drop-column"});
}

TEST_CASE("pg.lint: type changes that keep the table, and those that do not", "[lint]") {
  LintFacts facts;
  facts.connected = true;
  LintTableFacts t;
  t.exists = true;
  t.bytes = 1LL << 30;
  t.column_types = {{"tags", "character varying(20)[]"},
                    {"amount", "numeric(10,2)"},
                    {"free", "numeric"},
                    {"name", "character varying(20)"},
                    {"body", "text"}};
  facts.tables["public.orders"] = t;
  auto changes = [&](const std::string& column, const std::string& type) {
    return !Lint("ALTER TABLE orders ALTER COLUMN " + column + " TYPE " + type, {}, facts).empty();
  };
  CHECK_FALSE(changes("amount", "numeric(12,2)"));
  CHECK_FALSE(changes("amount", "numeric"));
  CHECK(changes("amount", "numeric(12,3)"));
  CHECK(changes("amount", "numeric(8,2)"));
  CHECK(changes("free", "numeric(12,2)"));
  CHECK_FALSE(changes("body", "varchar"));
  CHECK(changes("body", "varchar(10)"));
  CHECK_FALSE(changes("name", "text"));
  CHECK(changes("name", "text COLLATE \"C\""));
  CHECK(changes("name", "text USING upper(name)"));
  CHECK(changes("tags", "text"));
  CHECK(changes("tags", "varchar(50)"));
  CHECK(changes("name", "bigint"));
}

}  // namespace runbook::testing
