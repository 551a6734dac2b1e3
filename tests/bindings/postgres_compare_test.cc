// pg.compare: two identical databases compare equal, and every kind of
// difference a clone can have is caught, each planted alone in an exact copy.
#include "bindings/postgres/pg_compare.h"
#include "tests/bindings/pg_fidelity_util.h"

namespace runbook::testing {
namespace {

// Small, with one of each thing the comparison reads: an inheritance
// parent and child, partitions, a populated materialized view, a large
// object with an owner and a grant, sequences, a function, a grant.
const char* kSmall =
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cmp_reader_%1') THEN "
    "CREATE ROLE cmp_reader_%1 NOLOGIN; CREATE ROLE cmp_owner_%1 NOLOGIN; END IF; END $$;"
    "CREATE TABLE t (id int PRIMARY KEY, v text); "
    "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;"
    "CREATE TABLE parent (id int, v text); CREATE TABLE child (extra int) INHERITS (parent);"
    "INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (2, 'c', 7);"
    "CREATE TABLE p (k int, v text) PARTITION BY RANGE (k);"
    "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);"
    "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20);"
    "INSERT INTO p VALUES (1, 'a'), (15, 'b');"
    "CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM t;"
    "CREATE SEQUENCE s; SELECT nextval('s');"
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"
    "COMMENT ON TABLE t IS 'the table';"
    "GRANT SELECT ON t TO cmp_reader_%1;"
    "SELECT lo_from_bytea(4242, 'large object'); SELECT lo_from_bytea(4243, '\\x00ff00'::bytea);"
    "ALTER LARGE OBJECT 4243 OWNER TO cmp_owner_%1;"
    "GRANT SELECT ON LARGE OBJECT 4242 TO cmp_reader_%1;";

std::string WithSuffix(std::string sql, const std::string& suffix) {
  for (size_t at; (at = sql.find("%1")) != std::string::npos;) sql.replace(at, 2, suffix);
  return sql;
}

struct Planted {
  const char* what;
  const char* sql;   // run on the copy; %1: the roles' suffix
  const char* kind;  // the difference expected
  const char* object;
};

}  // namespace

TEST_CASE("pg.compare finds no difference between a database and its exact copy, and each "
          "planted difference alone",
          "[postgres][pg.compare]") {
  const PgServer& server = BlueServer();
  const std::string suffix = std::to_string(getpid());
  PgTestDb source(server, "cmp");  // the roles stay until the test cluster goes
  source.Exec(WithSuffix(kSmall, suffix));

  {
    PgTestDb copy(server, "cmp", source.name());
    Value r = RequireSameDatabase(source, copy, "");
    CHECK(r["large_objects"] == 2);
    CHECK(r["sequences"] == 1);
    CHECK(r["relations_read"] == 6);  // t, parent, child, p1, p2, mv
    CHECK(r["rows"] == 100 + 1 + 1 + 2 + 1);
  }

  const Planted planted[] = {
      {"a changed value", "UPDATE t SET v = 'changed' WHERE id = 7", "rows", "public.t"},
      {"two values swapped (same count)",
       "UPDATE t SET v = CASE id WHEN 1 THEN 'v2' ELSE 'v1' END WHERE id IN (1, 2)", "rows",
       "public.t"},
      {"a row duplicated and another deleted (same count)",
       "DELETE FROM t WHERE id = 3; ALTER TABLE t DROP CONSTRAINT t_pkey; "
       "INSERT INTO t VALUES (4, 'v4')",
       "rows", "public.t"},
      {"a row of the inheritance child", "INSERT INTO child VALUES (3, 'c', 8)", "rows",
       "public.child"},
      {"a row of the parent only", "INSERT INTO parent VALUES (3, 'p')", "rows",
       "public.parent"},
      {"a row moved between partitions", "UPDATE p SET k = 12 WHERE k = 1", "rows", "public.p1"},
      {"a materialized view left unpopulated", "REFRESH MATERIALIZED VIEW mv WITH NO DATA",
       "materialized view", "public.mv"},
      {"a materialized view refreshed at another moment",
       "DELETE FROM t WHERE id = 100; REFRESH MATERIALIZED VIEW mv; "
       "INSERT INTO t VALUES (100, 'v100')",
       "rows", "public.mv"},
      {"a missing large object", "SELECT lo_unlink(4243)", "large object", "4243"},
      {"a large object's content", "SELECT lo_put(4242, 0, 'L')", "large object", "4242"},
      {"a large object's owner", "ALTER LARGE OBJECT 4243 OWNER TO cmp_reader_%1",
       "large object", "4243"},
      {"a large object's grant", "REVOKE SELECT ON LARGE OBJECT 4242 FROM cmp_reader_%1",
       "large object", "4242"},
      {"a sequence's value", "SELECT setval('s', 42)", "sequence", "public.s"},
      {"a sequence called", "SELECT setval('s', 1, false)", "sequence", "public.s"},
      {"an extra index", "CREATE INDEX t_v ON t (v)", "schema", "INDEX public.t_v"},
      {"a function's body", "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS "
                            "'SELECT 2'",
       "schema", "FUNCTION public.f()"},
      {"a grant", "REVOKE SELECT ON t FROM cmp_reader_%1", "schema", "ACL public.TABLE t"},
      {"a comment", "COMMENT ON TABLE t IS 'another'", "schema", "COMMENT public.TABLE t"},
      {"a column default", "ALTER TABLE t ALTER COLUMN v SET DEFAULT 'x'", "schema",
       "TABLE public.t"},
      {"a missing table", "DROP TABLE parent CASCADE", "relation", "public.parent"},
  };
  for (const Planted& p : planted) {
    SECTION(p.what) {
      PgTestDb copy(server, "cmp", source.name());
      copy.Exec(WithSuffix(p.sql, suffix));
      Result<Value> r = CompareDatabases(source, copy, "");
      INFO(r.status().message());
      REQUIRE(r.ok());
      INFO((*r)["differences"].dump(2));
      bool found = false;
      for (const auto& d : (*r)["differences"]) {
        found = found || (d["kind"] == p.kind &&
                          d["object"].get<std::string>().find(p.object) != std::string::npos);
      }
      CHECK(found);
      CHECK((*r)["match"] == false);
    }
  }
}

TEST_CASE("pg.compare notes a materialized view that is stale on the source when the copy holds "
          "its query's rows, and still catches a copy's stale one",
          "[postgres][pg.compare]") {
  PgTestDb source(BlueServer(), "cmp");
  source.Exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10); "
              "CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM t; "
              "INSERT INTO t VALUES (11)");  // mv says 10, its query 11
  PgTestDb copy(BlueServer(), "cmp", source.name());
  copy.Exec("REFRESH MATERIALIZED VIEW mv");  // what a logical copy does
  Result<Value> r = CompareDatabases(source, copy, "");
  REQUIRE(r.ok());
  INFO(r->dump(2));
  CHECK((*r)["mismatched"] == 0);
  REQUIRE((*r)["notes"].size() == 1);
  CHECK_THAT((*r)["notes"][0].get<std::string>(),
             Catch::Contains("materialized view public.mv is stale on the source"));
  // The other way round (the copy is the stale one) is a difference.
  source.Exec("REFRESH MATERIALIZED VIEW mv");
  copy.Exec("INSERT INTO t VALUES (11) ON CONFLICT DO NOTHING; DELETE FROM t WHERE id = 11; "
            "REFRESH MATERIALIZED VIEW mv; INSERT INTO t VALUES (11)");
  r = CompareDatabases(source, copy, "");
  REQUIRE(r.ok());
  CHECK((*r)["mismatched"] == 1);
}

TEST_CASE("pg.compare fails naming the differences unless allow_mismatch, and can leave owners "
          "out",
          "[postgres][pg.compare]") {
  PgTestDb a(BlueServer(), "cmp"), b(BlueServer(), "cmp");
  a.Exec("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)");
  b.Exec("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
  PgCase pg;
  pg.Connect("a", a);
  pg.Connect("b", b);
  Result<Value> r = pg.Apply("pg.compare", Value{{"source", "a"}, {"target", "b"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("1 difference(s) between 'a' and 'b': rows public.t: 2 rows") !=
        std::string::npos);

  // Owned by different roles: a difference with owners, none without.
  PgTestRole role(BlueServer());
  b.Exec("INSERT INTO t VALUES (2); ALTER TABLE t OWNER TO " + role.name());
  r = pg.Apply("pg.compare", Value{{"source", "a"}, {"target", "b"}, {"allow_mismatch", true}});
  REQUIRE(r.ok());
  CHECK((*r)["mismatched"] == 1);
  r = pg.Apply("pg.compare", Value{{"source", "a"}, {"target", "b"}, {"owners", false}});
  REQUIRE(r.ok());
  CHECK((*r)["match"] == true);
}

TEST_CASE("pg.compare refuses a pg_dump older than the newer server", "[postgres][pg.compare]") {
  PgTestDb a(BlueServer(), "cmp"), b(BlueServer(), "cmp");
  PgCase pg;
  pg.Connect("a", a);
  pg.Connect("b", b);
  // PostgreSQL 13's pg_dump (the Debian 11 root's) against two 15 servers.
  Result<Value> r = pg.Apply("pg.compare", Value{{"source", "a"}, {"target", "b"},
                                   {"bin_dir", RootsDir() + "/bullseye/hostbin"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("is older than the newer server of the two (PostgreSQL 15)") &&
                 Catch::Contains("pg_dump (PostgreSQL) 13."));
}

TEST_CASE("a schema dump parses into entries keyed by type, schema and name, without noise",
          "[postgres][pg.compare]") {
  const std::string dump =
      "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n"
      "-- Dumped from database version 13.16\n-- Dumped by pg_dump version 17.12\n\n"
      "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n"
      "--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\n"
      "CREATE TABLE public.t (\n    id integer\n);\n\n\n"
      "--\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: app\n--\n\n"
      "CREATE FUNCTION public.f() RETURNS integer\n    LANGUAGE sql\n    AS $$\n-- a comment\n"
      "SELECT 1\n$$;\n\n"
      "--\n-- Name: a; b; Type: SCHEMA; Schema: -; Owner: app\n--\n\nCREATE SCHEMA \"a; b\";\n\n"
      "--\n-- Name: USER MAPPING postgres SERVER s; Type: USER MAPPING; Schema: -; Owner: app\n"
      "--\n\nCREATE USER MAPPING FOR postgres SERVER s OPTIONS (\n    password 'it''s secret',\n"
      "    \"user\" 'u'\n);\n\n"
      "\\unrestrict abc123\n--\n-- PostgreSQL database dump complete\n--\n";
  auto entries = ParseSchemaDump(dump);
  REQUIRE(entries.size() == 4);
  const std::string mapping = entries.find("USER MAPPING USER MAPPING postgres SERVER s")->second;
  CHECK(mapping.find("secret") == std::string::npos);
  CHECK(mapping.find("password '***'") != std::string::npos);
  CHECK(entries.find("TABLE public.t")->second == "CREATE TABLE public.t (\n    id integer\n);");
  CHECK(entries.find("FUNCTION public.f()")->second.find("-- a comment\nSELECT 1") !=
        std::string::npos);
  CHECK(entries.count("SCHEMA a; b") == 1);
  CHECK(FirstDifferentLine("a\nb\nc", "a\nB\nc") == "line 2: 'b' vs 'B'");
  CHECK(FirstDifferentLine("a\nb", "a\nb") == "");
  CHECK(FirstDifferentLine("a", "a\nb") == "line 2: '(end)' vs 'b'");
}

}  // namespace runbook::testing
