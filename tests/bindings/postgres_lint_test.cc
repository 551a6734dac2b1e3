// pg.lint against a real server: sizes, column types, validated checks and
// user functions' volatility come from the live catalog (seed 002).
#include <filesystem>
#include <fstream>

#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/runbook-lint-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  return tmpl;
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE(
    "pg.lint reads the live tables: a big table's hazards block, a small one's warn, "
    "the application's columns are protected",
    "[postgres][pg.lint]") {
  PgTestDb db(BlueServer());
  db.Exec(
      "CREATE TABLE orders (id bigint PRIMARY KEY, code varchar(20), amount int, note text, "
      "CONSTRAINT code_nn CHECK (code IS NOT NULL)); "
      "INSERT INTO orders SELECT g, 'c' || g, g, repeat('x', 200) FROM generate_series(1, 20000) "
      "g; "
      "CREATE TABLE flags (name text); INSERT INTO flags VALUES ('a'); "
      "CREATE TABLE fresh (id int); "
      "CREATE TABLE streams (stream_id text, live_started_at timestamptz); "
      // plpgsql: a volatile SQL function whose body is a constant is inlined,
      // and then its default does not rewrite (PostgreSQL plans the default).
      "CREATE FUNCTION make_token() RETURNS text VOLATILE LANGUAGE plpgsql "
      "AS $$ BEGIN RETURN 'x'; END $$; "
      "CREATE FUNCTION stable_token() RETURNS text STABLE LANGUAGE sql AS $$ SELECT 'x' $$; "
      "CREATE DOMAIN posint AS int CHECK (VALUE > 0); CREATE DOMAIN label AS text");
  std::string dir = TempDir();
  Write(dir + "/001_safe.sql",
        "-- widening and instant changes\n"
        "ALTER TABLE orders ALTER COLUMN code TYPE varchar(40);\n"
        "ALTER TABLE orders ALTER COLUMN code SET NOT NULL;\n"
        "ALTER TABLE orders ADD COLUMN t2 text DEFAULT stable_token();\n"
        "ALTER TABLE orders ADD COLUMN tag label;\n"
        "ALTER TABLE fresh ADD COLUMN region text NOT NULL;\n");
  Write(dir + "/002_risky.sql",
        "ALTER TABLE orders ADD COLUMN t1 text DEFAULT make_token();\n"
        "ALTER TABLE orders ALTER COLUMN note SET NOT NULL;\n"
        "CREATE INDEX flags_name ON flags (name);\n"
        "ALTER TABLE streams DROP COLUMN live_started_at;\n"
        "ALTER TABLE orders ADD COLUMN qty posint;\n");
  Write(dir + "/README", "not SQL, not read");

  PgCase c;
  c.Connect("app", db);
  Value args{{"conn", "app"},
             {"files", dir},
             {"small_table", "64kB"},
             {"uses", {{"streams", {"stream_id", "live_started_at"}}}}};
  Result<Value> r = c.Apply("pg.lint", args);
  REQUIRE_FALSE(r.ok());
  const std::string risky = dir + "/002_risky.sql";
  const std::string size = R"(\(it is [0-9.]+ MB\))";
  CHECK_THAT(r.status().message(),
             Catch::Matches(
                 "pg\\.lint: 4 finding\\(s\\) block this migration: " + risky +
                 ":1:1 \\[add-column-rewrite\\] ADD COLUMN t1 rewrites the table under an ACCESS "
                 "EXCLUSIVE lock: DEFAULT make_token\\(\\) is volatile: each row gets its own "
                 "value on public\\.orders " +
                 size + "; " + risky +
                 ":2:1 \\[set-not-null\\] SET NOT NULL of note scans every row under an ACCESS "
                 "EXCLUSIVE lock \\(no validated CHECK \\(note IS NOT NULL\\) proves it\\) on "
                 "public\\.orders " +
                 size + "; " + risky +
                 ":4:1 \\[drop-column-in-use\\] DROP COLUMN public\\.streams\\.live_started_at "
                 "destroys its data: the running application reads "
                 "public\\.streams\\.live_started_at; " +
                 risky +
                 ":5:1 \\[add-column-rewrite\\] ADD COLUMN qty rewrites the table under an ACCESS "
                 "EXCLUSIVE lock: its type, the domain posint, has a CHECK constraint on "
                 "public\\.orders " +
                 size + " \\(an intended one: .*"));
  // The same in a rehearsal: a probe, read-only.
  CHECK(c.P("pg.lint").rehearsal(args) == Rehearsal::kProbe);
  Result<Value> rehearsed = c.Rehearse("pg.lint", args);
  REQUIRE_FALSE(rehearsed.ok());
  CHECK(rehearsed.status().message() == r.status().message());

  args["fail_on"] = "never";
  r = c.Apply("pg.lint", args);
  REQUIRE(r.ok());
  CHECK((*r)["statements"] == 10);
  CHECK((*r)["errors"] == 4);
  CHECK((*r)["warnings"] == 1);
  const Value& warning = (*r)["findings"][2];
  CHECK(warning["rule"] == "create-index-blocking");
  CHECK(warning["severity"] == "warning");
  CHECK(warning["line"] == 3);
  CHECK(warning["table"] == "public.flags");

  // The claims hold on the server: what pg.lint let pass does not rewrite
  // orders (same relfilenode), what it flagged as a rewrite does.
  auto filenode = [&] { return db.Value("SELECT pg_relation_filenode('orders')"); };
  const std::string before = filenode();
  REQUIRE(c.Apply("pg.exec", {{"conn", "app"}, {"sql", R"(
      ALTER TABLE orders ALTER COLUMN code TYPE varchar(40);
      ALTER TABLE orders ALTER COLUMN code SET NOT NULL;
      ALTER TABLE orders ADD COLUMN t2 text DEFAULT stable_token();
      ALTER TABLE orders ADD COLUMN tag label;
      ALTER TABLE fresh ADD COLUMN region text NOT NULL)"}})
              .ok());
  CHECK(filenode() == before);
  REQUIRE(
      c.Apply("pg.exec", {{"conn", "app"},
                          {"sql", "ALTER TABLE orders ADD COLUMN t1 text DEFAULT make_token()"}})
          .ok());
  CHECK(filenode() != before);
  const std::string after_t1 = filenode();
  REQUIRE(c.Apply("pg.exec", {{"conn", "app"}, {"sql", "ALTER TABLE orders ADD COLUMN qty posint"}})
              .ok());
  CHECK(filenode() != after_t1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("pg.lint: bad input is a clear error that reads nothing", "[postgres][pg.lint]") {
  PgCase c;
  PgTestDb db(BlueServer());
  c.Connect("app", db);
  Result<Value> r = c.Apply("pg.lint", {{"files", "/nonexistent/V1.sql"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "pg.lint: cannot read /nonexistent/V1.sql: No such file or directory");
  r = c.Apply("pg.lint", {{"sql", "VACUUM FULL t"},
                          {"ignore", {{{"rule", "vacum-full"}, {"reason", "window"}}}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "pg.lint: ignore: no rule named 'vacum-full' (the rules: docs/lint.md)");
  r = c.Apply("pg.lint", {{"sql", "VACUUM FULL t"}, {"ignore", {{{"rule", "vacuum-full"}}}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "pg.lint: ignore of 'vacuum-full' needs a reason");
  // Without a connection: sizes unknown, hazards are errors.
  r = c.Apply("pg.lint", {{"sql", "CREATE INDEX i ON t (a)"}, {"fail_on", "never"}});
  REQUIRE(r.ok());
  CHECK((*r)["findings"][0]["message"] ==
        "CREATE INDEX without CONCURRENTLY blocks writes for the whole build on public.t (its "
        "size is unknown (no connection))");
}

}  // namespace runbook::testing
