// pg_tools.h without a server: conninfo and environment for the client
// programs, their error lines and versions, and table-of-contents parsing.
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "bindings/postgres/pg_tools.h"
#include "tests/bindings/fake_step_context.h"

namespace runbook::testing {

TEST_CASE("the client programs get the password in their environment, never on argv",
          "[pg.dump][pg.restore]") {
  FakeStepContext ctx;
  ctx.AddConnection(
      "blue", "postgres",
      Value{{"dsn", "postgresql://sre:s3cret%21@db.example:5433/app?sslmode=require"}});
  Result<PgToolTarget> t = ToolTarget(ctx, "blue", "other db");
  REQUIRE(t.ok());
  CHECK(t->conninfo.find("s3cret") == std::string::npos);
  CHECK(t->conninfo.find("password") == std::string::npos);
  CHECK_THAT(t->conninfo, Catch::Contains("dbname='other db'") &&
                              Catch::Contains("host=db.example") &&
                              Catch::Contains("port=5433") && Catch::Contains("user=sre") &&
                              Catch::Contains("sslmode=require") &&
                              Catch::Contains("application_name=runbook/run-test/step-test"));
  CHECK(t->env.at("PGPASSWORD") == "s3cret!");
  CHECK(t->database == "other db");
  CHECK(ctx.redactor().Redact("x s3cret! y") == "x *** y");

  // The map form's password wins; keywords after the dsn win too.
  ctx.AddConnection(
      "green", "postgres",
      Value{{"dsn", "host=a dbname=d password=old"}, {"password", "n'ew"}, {"host", "b"}});
  t = ToolTarget(ctx, "green", "");
  REQUIRE(t.ok());
  CHECK(t->env.at("PGPASSWORD") == "n'ew");
  CHECK_THAT(t->conninfo, Catch::Contains("host=b") && Catch::Contains("dbname=d"));
  CHECK(t->conninfo.find("old") == std::string::npos);
  CHECK(ConninfoQuote("it's a\\b") == "'it\\'s a\\\\b'");
  CHECK(ConninfoQuote("") == "''");
  CHECK(ConninfoQuote("plain") == "plain");

  // No password configured: nothing set, so libpq's own (~/.pgpass) applies.
  ctx.AddConnection("plain", "postgres", Value{{"dsn", "host=a"}});
  t = ToolTarget(ctx, "plain", "");
  REQUIRE(t.ok());
  CHECK(t->env.empty());
}

TEST_CASE("client program errors are found in stderr whatever the exit code",
          "[pg.dump][pg.restore]") {
  CHECK(ToolErrorLines("pg_dump", "pg_dump: warning: x\npg_dump: error: query failed: boom\n") ==
        std::vector<std::string>{"pg_dump: error: query failed: boom"});
  CHECK(ToolErrorLines("psql", "psql:/x.sql:12: ERROR:  relation \"a\" already exists\n").size() ==
        1);
  CHECK(
      ToolErrorLines("pg_restore", "pg_restore: warning: errors ignored on restore: 3\n").size() ==
      1);
  CHECK(ToolErrorLines("pg_dump",
                       "pg_dump: warning: there are circular foreign-key "
                       "constraints\n")
            .empty());
  CHECK(ToolMajor("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n") == 15);
  CHECK(ToolMajor("pg_dump (PostgreSQL) 9.6.24") == 906);
  CHECK(ToolMajor("nonsense") == 0);
  CHECK(ServerMajor(150004) == 15);
  CHECK(ServerMajor(90624) == 906);
  CHECK(ServerMajor(170000) > ToolMajor("pg_dump (PostgreSQL) 16.1"));
  CHECK(MajorName(906) == "9.6");
  CHECK(FormatToolArgv({"pg_dump", "--file=/a b", "--dbname=host='x'"}) ==
        "pg_dump '--file=/a b' '--dbname=host='\\''x'\\'''");
}

TEST_CASE("archive tables of contents are read from pg_restore --list and plain dumps",
          "[pg.dump][pg.restore]") {
  const std::string list =
      ";\n; Archive created at 2026-11-21\n;     dbname: x\n;\n"
      "5; 2615 16390 SCHEMA - other postgres\n"
      "215; 1259 16385 TABLE public a postgres\n"
      "216; 1259 16391 SEQUENCE public b_id_seq postgres\n"
      "3320; 0 0 SEQUENCE OWNED BY public b_id_seq postgres\n"
      "217; 1259 16400 VIEW public v postgres\n"
      "218; 1259 16401 TABLE public my table postgres\n"
      "3318; 0 16385 TABLE DATA public a postgres\n"
      "3319; 0 16401 TABLE DATA public my table postgres\n"
      "3321; 0 0 SEQUENCE SET public b_id_seq postgres\n"
      "3100; 2606 16410 CONSTRAINT public a a_pkey postgres\n";
  std::vector<TocEntry> toc = ParseTocList(list);
  REQUIRE(toc.size() == 7);
  CHECK(toc[0].type == "SCHEMA");
  CHECK(toc[0].name == "other");
  CHECK(toc[4].name == "my table");
  CHECK(CountType(toc, "TABLE DATA") == 2);
  CHECK(CountType(toc, "TABLE") == 2);

  const std::string path = "/tmp/runbook-plain-toc-test.sql";
  std::ofstream(path) << "--\n-- PostgreSQL database dump\n--\n"
                         "-- Name: a; Type: TABLE; Schema: public; Owner: postgres\n"
                         "-- Name: a a_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n"
                         "-- Data for Name: a; Type: TABLE DATA; Schema: public; Owner: postgres\n"
                         "--\n-- PostgreSQL database dump complete\n--\n";
  Result<std::vector<TocEntry>> plain = ReadPlainToc(path);
  REQUIRE(plain.ok());
  REQUIRE(plain->size() == 2);
  CHECK((*plain)[0].schema == "public");
  CHECK(CountType(*plain, "TABLE DATA") == 1);
  std::ofstream(path) << "-- Name: a; Type: TABLE; Schema: public; Owner: postgres\n";
  CHECK_FALSE(ReadPlainToc(path).ok());  // cut short: no trailer
  std::remove(path.c_str());
}

}  // namespace runbook::testing
