// The postgres binding's pure helpers: SQL classification, names, values,
// and the registration (no server needed).
#include <catch2/catch.hpp>

#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_value.h"
#include "bindings/postgres/register.h"

namespace runbook {

TEST_CASE("statements that cannot run in a transaction block are recognised", "[postgres][sql]") {
  CHECK(NonTransactionalReason("vacuum analyze t") ==
        "VACUUM cannot run inside a transaction block");
  CHECK_FALSE(NonTransactionalReason("/* x */ -- y\n  create database x").empty());
  CHECK_FALSE(NonTransactionalReason("create unique index concurrently i on t (a)").empty());
  CHECK_FALSE(NonTransactionalReason("reindex (verbose) table concurrently t").empty());
  CHECK_FALSE(NonTransactionalReason("REINDEX DATABASE app").empty());
  CHECK_FALSE(NonTransactionalReason("select 1; alter system set x = 1").empty());
  CHECK(NonTransactionalReason("CREATE INDEX i ON t (a)").empty());
  CHECK(NonTransactionalReason("REINDEX TABLE t").empty());
  CHECK(NonTransactionalReason("ALTER DATABASE x REFRESH COLLATION VERSION").empty());
  // Words inside literals, quoted identifiers and dollar quotes do not count.
  CHECK(NonTransactionalReason("INSERT INTO log VALUES ('vacuum; create database x')").empty());
  CHECK(NonTransactionalReason("SELECT $$; VACUUM$$, 'it''s; vacuum'").empty());
  CHECK(NonTransactionalReason("SELECT E'\\'; vacuum'").empty());
}

TEST_CASE("statements whose effect survives a rollback are recognised", "[postgres][sql]") {
  CHECK(EscapesRollbackReason("select setval('s', 10)") ==
        "setval() takes effect even when the transaction rolls back");
  CHECK_FALSE(EscapesRollbackReason("SELECT pg_catalog.nextval('s')").empty());
  CHECK_FALSE(EscapesRollbackReason("insert into t values (1); commit").empty());
  CHECK_FALSE(EscapesRollbackReason("BEGIN; update t set a = 1").empty());
  CHECK_FALSE(EscapesRollbackReason("COPY t TO '/tmp/x'").empty());
  CHECK_FALSE(EscapesRollbackReason("copy t from program 'curl x'").empty());
  CHECK_FALSE(EscapesRollbackReason("DO $$ BEGIN PERFORM pg_terminate_backend(1); END $$").empty());
  CHECK(EscapesRollbackReason("DO $$ BEGIN UPDATE t SET a = 1; END $$").empty());
  CHECK(EscapesRollbackReason("SAVEPOINT a; ROLLBACK TO SAVEPOINT a").empty());
  CHECK(EscapesRollbackReason("CREATE FUNCTION f() RETURNS int AS $f$ SELECT 1 $f$ LANGUAGE sql")
            .empty());
  CHECK(EscapesRollbackReason("SELECT 'setval(' AS text").empty());
  CHECK(EscapesRollbackReason("UPDATE t SET a = $1").empty());
}

TEST_CASE("table names parse as psql does", "[postgres][sql]") {
  auto parse = [](const std::string& s) {
    Result<TableName> t = ParseTableName(s, "public");
    return t.ok() ? t->schema + "|" + t->name : "error: " + t.status().message();
  };
  CHECK(parse("Chronicle_Notes") == "public|chronicle_notes");
  CHECK(parse("audit.events") == "audit|events");
  CHECK(parse("\"Audit\".\"My.Table\"") == "Audit|My.Table");
  CHECK(parse("\"a\"\"b\"") == "public|a\"b");
  CHECK_THAT(parse("a.b.c"), Catch::StartsWith("error"));
  CHECK_THAT(parse(""), Catch::StartsWith("error"));
  CHECK_THAT(parse("\"open"), Catch::StartsWith("error"));
  CHECK(TableName{"public", "Events"}.Display() == "public.\"Events\"");
  CHECK(QuoteIdentPlain("we\"ird") == "\"we\"\"ird\"");
  CHECK(FoldIdent("Live_Started_At") == "live_started_at");
  CHECK(FoldIdent("\"CamelCase\"") == "CamelCase");
}

TEST_CASE("values convert to and from PostgreSQL's text form", "[postgres][sql]") {
  CHECK(PgFieldToValue(1700, "42", false) == 42);
  CHECK(PgFieldToValue(1700, "0.1", false) == 0.1);
  CHECK(PgFieldToValue(1700, "3.14159265358979323846", false) == "3.14159265358979323846");
  CHECK(PgFieldToValue(1700, "NaN", false) == "NaN");
  CHECK(PgFieldToValue(20, "-9223372036854775808", false).get<int64_t>() == INT64_MIN);
  CHECK(PgFieldToValue(701, "Infinity", false) == "Infinity");
  CHECK(PgFieldToValue(16, "f", false) == false);
  CHECK(PgFieldToValue(25, "", true).is_null());
  CHECK(PgFieldToValue(3802, "not json", false) == "not json");
  CHECK(ValueToPgParam(Value(true)) == "true");
  CHECK(ValueToPgParam(Value(1.5)) == "1.5");
  CHECK(ValueToPgParam(Value()) == std::nullopt);
  CHECK(ValueToPgParam(Value::parse(R"({"a":[1]})")) == R"({"a":[1]})");
  CHECK(PgTextArray({"a", "b\"c", "d\\e"}) == R"({"a","b\"c","d\\e"})");
}

TEST_CASE("the postgres binding registers its connection type and primitives",
          "[postgres][sql]") {
  Registry r;
  RegisterPostgres(&r);
  REQUIRE(r.FindConnectionType("postgres") != nullptr);
  const ConnectionType& t = *r.FindConnectionType("postgres");
  CHECK(t.schema().scalar_arg == "dsn");
  CHECK(t.Describe({{"dsn", "postgresql://u:pw123@h:5/d"}}) == "host=h port=5 dbname=d user=u");
  Redactor red;
  t.CollectSecrets({{"dsn", "host=h password=hunter22"}, {"password", "s3cret"}}, red);
  CHECK(red.Redact(std::string("hunter22 and s3cret")) == "*** and ***");
  for (const char* name : {"pg.query", "pg.exec", "pg.counts", "pg.compare_counts",
                           "pg.wait_ready", "pg.create_database", "pg.drop_database",
                           "pg.terminate_connections", "pg.collation_status",
                           "pg.refresh_collation", "pg.assert_schema", "pg.schema_diff"}) {
    INFO(name);
    Primitive* p = r.Find(name);
    REQUIRE(p != nullptr);
    CHECK_FALSE(p->schema().help.empty());
    // Every primitive declares how it rehearses.
    CHECK(p->rehearsal({{"sql", "select 1"}}) != Rehearsal::kUndeclared);
  }
  CHECK_FALSE(r.Find("pg.drop_database")->Plan({{"name", "x"}}).reversible());
  CHECK_FALSE(r.Find("pg.refresh_collation")->Plan(Value::object()).reversible());
}

}  // namespace runbook
