// pg.assert_schema and pg.schema_diff against real servers (seeds 002, 003).
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

constexpr const char* kSchema =
    "CREATE EXTENSION IF NOT EXISTS pgcrypto; "
    "CREATE TABLE streams (stream_id varchar PRIMARY KEY, status varchar NOT NULL, "
    "created_at timestamp DEFAULT now()); "
    "CREATE TABLE viewers (id bigserial PRIMARY KEY, stream_id varchar REFERENCES streams, "
    "name text, CONSTRAINT name_len CHECK (length(name) < 100)); "
    "CREATE INDEX viewers_name ON viewers (name); "
    "CREATE SEQUENCE tickets INCREMENT 5";

}  // namespace

TEST_CASE("pg.assert_schema lists every missing table and column (seed 003)",
          "[postgres][pg.assert_schema]") {
  PgTestDb db(BlueServer());
  db.Exec(kSchema);
  PgCase c;
  c.Connect("blue", db);
  Value ok{{"conn", "blue"},
           {"tables", {{"streams", {"stream_id", "status", "created_at"}}, {"viewers", Value::array()}}}};
  Result<Value> r = c.Apply("pg.assert_schema", ok);
  REQUIRE(r.ok());
  CHECK((*r)["columns"] == 3);
  CHECK(c.P("pg.assert_schema").rehearsal(ok) == Rehearsal::kProbe);

  Value want{{"conn", "blue"},
             {"tables", {{"streams", {"stream_id", "live_started_at", "offline_at"}},
                         {"public.ghosts", {"id"}}}}};
  r = c.Apply("pg.assert_schema", want);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "connection 'blue': schema check failed: missing column streams.live_started_at, "
        "column streams.offline_at, table public.ghosts");
  r = c.Rehearse("pg.assert_schema", want);  // the same answer in a rehearsal
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("streams.live_started_at"));

  // Fixed by a migration step, the gate opens.
  REQUIRE(c.Apply("pg.exec", {{"conn", "blue"},
                              {"sql", "ALTER TABLE streams ADD COLUMN live_started_at timestamp, "
                                      "ADD COLUMN offline_at timestamp; CREATE TABLE ghosts (id int)"}})
              .ok());
  REQUIRE(c.Apply("pg.assert_schema", want).ok());
}

TEST_CASE("pg.schema_diff finds no difference between identical schemas",
          "[postgres][pg.schema_diff]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  blue.Exec(kSchema);
  green.Exec(kSchema);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Result<Value> r = c.Apply("pg.schema_diff", {{"source", "blue"}, {"target", "green"}});
  REQUIRE(r.ok());
  CHECK((*r)["count"] == 0);
  CHECK(c.P("pg.schema_diff").rehearsal(Value::object()) == Rehearsal::kProbe);
}

TEST_CASE("pg.schema_diff reports tables, columns, types, indexes, constraints, sequences and "
          "extensions that differ",
          "[postgres][pg.schema_diff]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  blue.Exec(kSchema);
  green.Exec(kSchema);
  green.Exec("ALTER TABLE streams ALTER COLUMN status TYPE text; "
             "ALTER TABLE streams ADD COLUMN live_started_at timestamp; "
             "DROP INDEX viewers_name; ALTER TABLE viewers DROP CONSTRAINT name_len; "
             "ALTER SEQUENCE tickets INCREMENT 1; DROP EXTENSION pgcrypto; "
             "CREATE TABLE extra (id int, note text)");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args{{"source", "blue"}, {"target", "green"}};
  Result<Value> r = c.Apply("pg.schema_diff", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::StartsWith("7 schema difference(s) between 'blue' and "
                                                     "'green': extension pgcrypto missing on "
                                                     "target, table public.extra only on target"));
  args["fail_on_diff"] = false;
  r = c.Apply("pg.schema_diff", args);
  REQUIRE(r.ok());
  std::vector<std::string> seen;
  for (const auto& d : (*r)["differences"]) {
    seen.push_back(d["kind"].get<std::string>() + " " + d["object"].get<std::string>());
  }
  CHECK(seen == std::vector<std::string>{"extension pgcrypto", "table public.extra",
                                         "column public.streams.live_started_at",
                                         "column public.streams.status",
                                         "index public.viewers_name",
                                         "constraint public.viewers.name_len",
                                         "sequence public.tickets"});
  const Value& status = (*r)["differences"][3];
  CHECK(status["source"] == "character varying NOT NULL");
  CHECK(status["target"] == "text NOT NULL");
  REQUIRE_FALSE(c.ctx.tables.empty());
  CHECK(c.ctx.tables.back().columns ==
        std::vector<std::string>{"Kind", "Object", "Source", "Target"});
}

TEST_CASE("pg.schema_diff names a connection it cannot use", "[postgres][pg.schema_diff]") {
  PgTestDb blue(BlueServer());
  PgCase c;
  c.Connect("blue", blue);
  c.ctx.AddConnection("green", "postgres",
                      Value{{"dsn", "host=127.0.0.1 port=1 dbname=x user=postgres"}});
  Result<Value> r = c.Apply("pg.schema_diff", {{"source", "blue"}, {"target", "green"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'green'"));
}

}  // namespace runbook::testing
