// pg_tools.h without a server: conninfo and environment for the client
// programs, their error lines and versions, and table-of-contents parsing.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
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

namespace {

// A stand-in client program: a shell script named `name` in a fresh directory.
std::string FakeTool(const std::string& name, const std::string& script) {
  char dir[] = "/tmp/runbook-tool-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << script;
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

}  // namespace

TEST_CASE(
    "every client program runs one way: --dbname after argv[0], the password in the "
    "environment, errors found at any exit code, notes logged, secrets redacted",
    "[pg.dump][pg.copy]") {
  FakeStepContext ctx;
  PgConnectOptions o;
  o.conn_name = "blue";
  o.dsn = "host=db.example dbname=app";
  o.password = "s3cret!";
  ctx.redactor().Add("s3cret!");
  const std::string psql =
      FakeTool("psql",
               "printf '%s|' \"$@\"; echo \"pw=$PGPASSWORD\"; cat\n"
               "i=0; while [ $i -lt 25 ]; do echo \"NOTICE:  note $i\" >&2; i=$((i+1)); done\n");
  Result<ToolRun> run =
      RunPgTool(ctx.processes(), {psql, "-X", "-f", "-"}, o, SteadyTime::max(), "SELECT 1;\n");
  REQUIRE(run.ok());
  CHECK_THAT(run->out, Catch::StartsWith("--dbname=") && Catch::Contains("host=db.example") &&
                           Catch::Contains("|-X|-f|-|pw=s3cret!\nSELECT 1;"));
  CHECK(run->out.substr(0, run->out.find("pw=")).find("s3cret") == std::string::npos);
  REQUIRE(run->notes.size() == 25);
  CHECK(run->notes[0] == "connection 'blue': psql: NOTICE:  note 0");
  Result<std::string> out = ToolResult(ctx, std::move(run));
  REQUIRE(out.ok());
  REQUIRE(ctx.logs.size() == 21);  // 20 notes, then how many more
  CHECK(ctx.logs[20].second == "... and 5 more lines");
  CHECK(ctx.logs[0].first == LogLevel::kWarn);

  // --version: no connection on argv (it would be an error for the program).
  const std::string pg_dump =
      FakeTool("pg_dump",
               "if [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 14.9'; exit 0; fi\n"
               "echo \"pg_dump: error: password $PGPASSWORD rejected\" >&2\n");
  run = RunPgTool(ctx.processes(), {pg_dump, "--version"}, o, SteadyTime::max());
  REQUIRE(run.ok());
  CHECK(run->out == "pg_dump (PostgreSQL) 14.9\n");
  // Exit 0 after an error line is a failure, and the step's message has no secret.
  out = ToolResult(ctx, RunPgTool(ctx.processes(), {pg_dump, "-s"}, o, SteadyTime::max()));
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().message() ==
        "connection 'blue': pg_dump: exited 0 but reported an error: pg_dump: error: password "
        "*** rejected");
  // The version check reads the same runner, whatever the primitive.
  Result<std::string> v =
      CheckPgDumpVersion(ctx, "connection 'blue': pg.dump", pg_dump, 15, "the server");
  REQUIRE_FALSE(v.ok());
  CHECK_THAT(v.status().message(),
             Catch::StartsWith("connection 'blue': pg.dump: " + pg_dump + ": ") &&
                 Catch::Contains("pg_dump (PostgreSQL) 14.9 is older than the server "
                                 "(PostgreSQL 15)"));
  v = CheckPgDumpVersion(ctx, "here", pg_dump, 14, "the server");
  REQUIRE(v.ok());
  CHECK(*v == "pg_dump (PostgreSQL) 14.9");
  // Majors in release order: a 9.6 server is older than pg_dump 14.
  REQUIRE(CheckPgDumpVersion(ctx, "here", pg_dump, ServerMajor(90624), "the server").ok());
  CHECK(NewerMajor(906, 15) == 15);
  CHECK(NewerMajor(17, 906) == 17);
  CHECK(NewerMajor(906, 905) == 906);

  // A non-zero exit names the status and the error lines with the server's
  // DETAIL and HINT (not the SQL echoed, not the next message); a deadline
  // is a timeout.
  const std::string bad = FakeTool("psql",
                                   "cat >&2 <<'EOF'\n"
                                   "psql:<stdin>:3: ERROR:  could not create unique index \"k\"\n"
                                   "DETAIL:  Key (id)=(42) is duplicated.\n"
                                   "LINE 1: CREATE UNIQUE INDEX k ON t (id);\n"
                                   "                          ^\n"
                                   "psql:<stdin>:9: NOTICE:  unrelated\n"
                                   "HINT:  not part of the error\n"
                                   "EOF\n"
                                   "exit 3\n");
  run = RunToolProcess(ctx.processes(), "here", {bad}, {}, SteadyTime::max());
  REQUIRE_FALSE(run.ok());
  CHECK(run.status().message() ==
        "here: exited with status 3: psql:<stdin>:3: ERROR:  could not create unique index \"k\" "
        "DETAIL:  Key (id)=(42) is duplicated.");
  // Never the SQL a program echoes: an archive's statement can hold a
  // password the redactor does not know.
  CHECK(ToolErrorDetail("pg_restore",
                        "pg_restore: error: could not execute query: ERROR:  role \"bob\" does "
                        "not exist\nCommand was: CREATE USER MAPPING FOR bob SERVER s OPTIONS (\n"
                        "    password 'MappingPw1'\n);\nHINT:  create the role first\n") ==
        "pg_restore: error: could not execute query: ERROR:  role \"bob\" does not exist HINT:  "
        "create the role first");
  // Long messages are cut after redaction, so a secret across the cut is
  // still found whole.
  ctx.redactor().Add("LongSecretValue");
  Status long_error =
      StepToolError(ctx, Status::Failed(std::string(3995, 'x') + "LongSecretValue and more"));
  CHECK(long_error.message() == std::string(3995, 'x') + "*** a ...");
  const std::string slow = FakeTool("pg_restore", "exec sleep 30\n");
  run = RunToolProcess(ctx.processes(), "here", {slow}, {},
                       std::chrono::steady_clock::now() + std::chrono::milliseconds(300));
  REQUIRE_FALSE(run.ok());
  CHECK(run.status().code() == Status::Code::kTimeout);
  for (const std::string& p : {psql, pg_dump, bad, slow}) {
    std::filesystem::remove_all(std::filesystem::path(p).parent_path());
  }
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
