// pg.dump and pg.restore against the real PostgreSQL 15 servers: round trips
// in every format, failures that leave nothing behind, undo, rehearsal and
// secrets.
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "bindings/postgres/pg_tools.h"
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {
namespace fs = std::filesystem;

struct DumpDir {
  std::string path;
  DumpDir() {
    char tmpl[] = "/tmp/runbook-dump-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~DumpDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Three tables in two schemas (with a foreign key, a sequence and a view).
void Seed(const PgTestDb& db) {
  db.Exec(
      "CREATE TABLE a (id int PRIMARY KEY, v text);"
      "INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 1000) g;"
      "CREATE TABLE b (id serial PRIMARY KEY, a_id int REFERENCES a (id));"
      "INSERT INTO b (a_id) SELECT g FROM generate_series(1, 500) g;"
      "CREATE SCHEMA other; CREATE TABLE other.c (x int);"
      "INSERT INTO other.c VALUES (1), (2), (3);"
      "CREATE VIEW v AS SELECT id FROM a WHERE id < 10;");
}

std::string DbExists(const std::string& name) {
  return BlueServer().AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'");
}

std::string Count(const std::string& db, const std::string& table) {
  return BlueServer().AdminValue("SELECT count(*) FROM " + table, db);
}

void WriteFile(const std::string& path, const std::string& text, bool executable = false) {
  std::ofstream(path) << text;
  if (executable) chmod(path.c_str(), 0755);
}

}  // namespace

TEST_CASE("pg.dump and pg.restore round-trip a database in every format",
          "[postgres][pg.dump][pg.restore]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  Seed(source);
  DumpDir dir;
  struct Variant {
    std::string format, file;
    Value extra;
  };
  std::vector<Variant> variants = {{"custom", "db.dump", Value::object()},
                                   {"directory", "db.dir", Value{{"jobs", 2}}},
                                   {"plain", "db.sql", Value::object()}};
  for (const auto& v : variants) {
    INFO("format " << v.format);
    PgCase c;
    c.Connect("blue", BlueServer(), "postgres");
    const std::string file = dir / v.file;
    Value dump{{"conn", "blue"}, {"database", source.name()}, {"file", file}, {"format", v.format}};
    for (const auto& [k, x] : v.extra.items()) dump[k] = x;
    Result<Value> d = c.Apply("pg.dump", dump);
    REQUIRE(d.ok());
    CHECK((*d)["format"] == v.format);
    CHECK((*d)["tables"] == 3);
    CHECK((*d)["database"] == source.name());
    CHECK((*d)["server_version"].get<int>() >= 150000);
    CHECK((*d)["size"].get<int64_t>() > 0);
    CHECK((*d)["sha256"] == DigestPath(file)->sha256);
    CHECK(fs::exists(file));
    CHECK_FALSE(fs::exists(file + ".partial"));
    CHECK(fs::is_directory(file) == (v.format == "directory"));
    CHECK(c.Check("pg.dump", dump, c.ctx.LastUndo()) == CheckOutcome::kDone);
    // The password went through the environment: never on the logged argv.
    CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("pg_dump --format="));
    CHECK(c.ctx.AllLogs().find(BlueServer().password) == std::string::npos);

    const std::string target = UniqueName("restored");
    Value restore{{"conn", "blue"}, {"database", target}, {"file", file}, {"create", true}};
    for (const auto& [k, x] : v.extra.items()) restore[k] = x;
    Result<Value> r = c.Apply("pg.restore", restore);
    REQUIRE(r.ok());
    CHECK((*r)["tables"] == 3);
    CHECK((*r)["database"] == target);
    CHECK((*r)["sha256"] == (*d)["sha256"]);
    for (const char* t : {"a", "b", "other.c"}) {
      INFO("table " << t);
      CHECK(Count(target, t) == Count(source.name(), t));
    }
    CHECK(Count(target, "a") == "1000");
    CHECK(Count(target, "v") == "9");

    // Undo of the restore drops the database it created; undo of the dump
    // removes the file.
    REQUIRE(c.Undo("pg.restore", restore).ok());
    CHECK(DbExists(target) == "0");
    REQUIRE(c.Undo("pg.restore", restore).ok());  // twice is fine
    CHECK(c.Check("pg.restore", restore, c.ctx.LastUndo()) == CheckOutcome::kNotDone);
    REQUIRE(c.P("pg.dump").Undo(c.ctx, dump, c.ctx.undo_records[1]).ok());
    CHECK_FALSE(fs::exists(file));
    CHECK(c.Check("pg.dump", dump, c.ctx.undo_records[1]) == CheckOutcome::kNotDone);
  }
}

TEST_CASE("an archive named like an option stays a file name for pg_dump and pg_restore",
          "[postgres][pg.dump][pg.restore][argv]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  Seed(source);
  DumpDir dir;
  const fs::path before = fs::current_path();
  fs::current_path(dir.path);  // a relative name: the only kind that can start with '-'
  PgCase c;
  c.Connect("blue", BlueServer(), "postgres");
  const std::string target = UniqueName("restored");
  Result<Value> d = c.Apply("pg.dump", Value{{"conn", "blue"}, {"database", source.name()},
                                             {"file", "--list.dump"}, {"format", "custom"}});
  Result<Value> r = d.ok() ? c.Apply("pg.restore", Value{{"conn", "blue"}, {"database", target},
                                                         {"file", "--list.dump"},
                                                         {"create", true}})
                           : Result<Value>(d.status());
  fs::current_path(before);
  INFO(r.status().message());
  REQUIRE(r.ok());
  CHECK(fs::exists(dir / "--list.dump"));
  CHECK(Count(target, "a") == "1000");
  BlueServer().AdminExec("DROP DATABASE " + target);
}

TEST_CASE("pg.dump refuses to overwrite, and its undo removes only the file it made",
          "[postgres][pg.dump]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  Seed(source);
  DumpDir dir;
  PgCase c;
  c.Connect("blue", source);
  const std::string file = dir / "x.dump";
  Value args{{"conn", "blue"}, {"file", file}};
  CHECK_THAT(c.P("pg.dump").Plan(args).text, Catch::StartsWith("pg_dump --format=c --file=" + file +
                                                               ".partial --no-password "
                                                               "'--dbname=<connection blue>'"));
  Result<Value> d = c.Apply("pg.dump", args);
  REQUIRE(d.ok());
  CHECK((*d)["database"] == source.name());  // the connection's own database
  const std::string sha = (*d)["sha256"];

  PgCase again;
  again.Connect("blue", source);
  Result<Value> r = again.Apply("pg.dump", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("already exists"));
  CHECK(DigestPath(file)->sha256 == sha);
  CHECK(again.ctx.undo_records.empty());

  REQUIRE(c.Undo("pg.dump", args).ok());
  CHECK_FALSE(fs::exists(file));
  REQUIRE(c.Undo("pg.dump", args).ok());  // twice is fine

  // A file that was there before is replaced only with overwrite: true, and
  // its undo leaves the file alone.
  const std::string precious = dir / "precious.dump";
  WriteFile(precious, "older backup");
  Value overwrite{{"conn", "blue"}, {"file", precious}, {"overwrite", true}};
  REQUIRE(again.Apply("pg.dump", overwrite).ok());
  REQUIRE(again.Undo("pg.dump", overwrite).ok());
  CHECK(fs::exists(precious));

  // A file changed since the dump wrote it is not removed by undo.
  const std::string changed = dir / "changed.dump";
  PgCase third;
  third.Connect("blue", source);
  REQUIRE(third.Apply("pg.dump", {{"conn", "blue"}, {"file", changed}}).ok());
  WriteFile(changed, "replaced by someone");
  Status s = third.Undo("pg.dump", {{"conn", "blue"}, {"file", changed}});
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("changed since this step wrote it"));
  CHECK(fs::exists(changed));
  CHECK(third.Check("pg.dump", {{"conn", "blue"}, {"file", changed}}, third.ctx.LastUndo()) ==
        CheckOutcome::kCannotTell);
}

TEST_CASE("pg.dump of a missing database or table fails clearly and leaves no file",
          "[postgres][pg.dump]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  Seed(source);
  DumpDir dir;
  PgCase c;
  c.Connect("blue", BlueServer(), "postgres");
  const std::string file = dir / "missing.dump";
  Result<Value> r =
      c.Apply("pg.dump", {{"conn", "blue"}, {"database", "no_such_db"}, {"file", file}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'blue'") &&
                                       Catch::Contains("\"no_such_db\" does not exist"));
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(fs::exists(file + ".partial"));

  // pg_dump itself fails (exit 1, "pg_dump: error: no matching tables").
  r = c.Apply("pg.dump", {{"conn", "blue"},
                          {"database", source.name()},
                          {"file", file},
                          {"tables", {"no_such_table"}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'blue': pg.dump") &&
                                       Catch::Contains("no matching tables were found"));
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(fs::exists(file + ".partial"));
  // Its undo (the record was written before acting) has nothing to remove.
  REQUIRE(c.Undo("pg.dump", {{"conn", "blue"}, {"file", file}}).ok());
}

TEST_CASE("pg.dump fails on an error line even when pg_dump exits 0, and refuses an old pg_dump",
          "[postgres][pg.dump]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  DumpDir dir;
  const std::string bin = dir / "bin";
  fs::create_directory(bin);
  // A pg_dump that writes its file, reports an error and exits 0.
  WriteFile(bin + "/pg_dump",
            "#!/bin/sh\n"
            "[ \"$1\" = --version ] && { echo 'pg_dump (PostgreSQL) 15.99'; exit 0; }\n"
            "for a; do case $a in --file=*) echo partial > \"${a#--file=}\";; esac; done\n"
            "echo 'pg_dump: error: query failed: simulated' >&2\nexit 0\n",
            true);
  PgCase c;
  c.Connect("blue", source);
  const std::string file = dir / "x.dump";
  Value args{{"conn", "blue"}, {"file", file}, {"bin_dir", bin}};
  Result<Value> r = c.Apply("pg.dump", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("exited 0 but reported an error") && Catch::Contains("simulated"));
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(fs::exists(file + ".partial"));

  // One that hangs is stopped at the step's deadline, and leaves nothing.
  WriteFile(bin + "/pg_dump",
            "#!/bin/sh\n"
            "[ \"$1\" = --version ] && { echo 'pg_dump (PostgreSQL) 15.99'; exit 0; }\n"
            "for a; do case $a in --file=*) echo partial > \"${a#--file=}\";; esac; done\n"
            "exec sleep 30\n",
            true);
  c.ctx.deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(3000);
  auto start = std::chrono::steady_clock::now();
  r = c.Apply("pg.dump", args);
  c.ctx.deadline_ = SteadyTime::max();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(), Catch::Contains("stopped at the step's deadline"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  CHECK_FALSE(fs::exists(file + ".partial"));

  WriteFile(bin + "/pg_dump", "#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.9'\n", true);
  c.ctx.undo_records.clear();
  r = c.Rehearse("pg.dump", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("14.9 is older than the server (PostgreSQL 15)"));
  r = c.Apply("pg.dump", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("is older than the server"));
  CHECK(c.ctx.undo_records.empty());  // refused before acting
}

TEST_CASE("pg.dump and pg.restore retried after a crash redo their work over their own leftovers",
          "[postgres][pg.dump][pg.restore]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  Seed(source);
  DumpDir dir;
  const std::string file = dir / "retry.dump";
  const std::string target = UniqueName("retried");
  Value dump{{"conn", "blue"}, {"database", source.name()}, {"file", file}};
  Value restore{{"conn", "blue"}, {"database", target}, {"file", file}, {"create", true}};
  PgCase first;
  first.Connect("blue", BlueServer(), "postgres");
  REQUIRE(first.Apply("pg.dump", dump).ok());
  REQUIRE(first.Apply("pg.restore", restore).ok());

  // The engine died after both acted; the retries see the earlier records.
  PgCase retry;
  retry.Connect("blue", BlueServer(), "postgres");
  retry.ctx.previous_undo = first.ctx.undo_records[1];
  REQUIRE(retry.Apply("pg.dump", dump).ok());  // its own file: no "already exists"
  CHECK(retry.ctx.LastUndo()["created"] == true);
  BlueServer().AdminExec("DELETE FROM b", target);  // a half-done restore, say
  retry.ctx.previous_undo = first.ctx.LastUndo();
  Result<Value> r = retry.Apply("pg.restore", restore);
  REQUIRE(r.ok());
  CHECK(Count(target, "b") == "500");
  REQUIRE(retry.Undo("pg.restore", restore).ok());
  CHECK(DbExists(target) == "0");
}

TEST_CASE("pg.restore of a corrupt archive fails before anything is created",
          "[postgres][pg.restore]") {
  DumpDir dir;
  PgCase c;
  c.Connect("blue", BlueServer(), "postgres");
  const std::string target = UniqueName("never");
  WriteFile(dir / "bad.dump", std::string("PGDMP") + std::string(200, '\x07'));
  WriteFile(dir / "cut.sql", "--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (id int);\n");
  for (const char* name : {"bad.dump", "cut.sql", "missing.dump"}) {
    INFO(name);
    Value args{{"conn", "blue"}, {"database", target}, {"file", dir / name}, {"create", true}};
    Result<Value> r = c.Rehearse("pg.restore", args);
    REQUIRE_FALSE(r.ok());
    r = c.Apply("pg.restore", args);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("connection 'blue': pg.restore"));
    CHECK(DbExists(target) == "0");
    CHECK(c.ctx.undo_records.empty());
  }
  Result<Value> r = c.Apply(
      "pg.restore",
      {{"conn", "blue"}, {"database", target}, {"file", dir / "bad.dump"}, {"create", true}});
  CHECK_THAT(r.status().message(), Catch::Contains("not usable (pg_restore --list)"));
}

TEST_CASE("pg.restore into an existing database undoes only the objects it created",
          "[postgres][pg.restore]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  Seed(source);
  PgTestDb target(BlueServer(), "dumpdst");
  target.Exec("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (42);");
  DumpDir dir;
  PgCase c;
  c.Connect("blue", BlueServer(), "postgres");
  const std::string file = dir / "db.dump";
  REQUIRE(c.Apply("pg.dump", {{"conn", "blue"}, {"database", source.name()}, {"file", file}}).ok());
  Value args{{"conn", "blue"}, {"database", target.name()}, {"file", file}};
  Result<Value> r = c.Apply("pg.restore", args);
  REQUIRE(r.ok());
  CHECK(target.Value("SELECT count(*) FROM b") == "500");
  const Value undo = c.ctx.LastUndo();
  CHECK(undo["created_database"] == false);
  CHECK(undo["drop"].size() >= 5);  // a, b, b_id_seq, v, other, other.c

  REQUIRE(c.Undo("pg.restore", args).ok());
  CHECK(target.Value("SELECT count(*) FROM pg_class WHERE relname IN ('a', 'b', 'c', 'v', "
                     "'b_id_seq')") == "0");
  CHECK(target.Value("SELECT count(*) FROM pg_namespace WHERE nspname = 'other'") == "0");
  CHECK(target.Value("SELECT id FROM keep_me") == "42");

  // Restoring over objects that exist fails (--exit-on-error, one transaction)
  // and its undo leaves the existing ones alone.
  target.Exec("CREATE TABLE a (id int)");
  r = c.Apply("pg.restore", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("already exists"));
  REQUIRE(c.Undo("pg.restore", args).ok());
  CHECK(target.Value("SELECT count(*) FROM pg_class WHERE relname = 'a'") == "1");
  CHECK(DbExists(target.name()) == "1");

  // The same through psql for a plain dump: ON_ERROR_STOP, one transaction.
  const std::string sql = dir / "db.sql";
  REQUIRE(
      c.Apply("pg.dump",
              {{"conn", "blue"}, {"database", source.name()}, {"file", sql}, {"format", "plain"}})
          .ok());
  Value plain{{"conn", "blue"}, {"database", target.name()}, {"file", sql}};
  r = c.Apply("pg.restore", plain);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'blue': pg.restore: exited with "
                                                   "status 3") &&
                                       Catch::Contains("already exists"));
  CHECK(target.Value("SELECT count(*) FROM pg_class WHERE relname = 'b'") == "0");
}

TEST_CASE("pg.dump and pg.restore rehearsals write nothing", "[postgres][pg.dump][pg.restore]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  Seed(source);
  DumpDir dir;
  PgCase c;
  c.Connect("blue", BlueServer(), "postgres");
  const std::string file = dir / "r.dump";
  Value dump{{"conn", "blue"}, {"database", source.name()}, {"file", file}};
  CHECK(c.P("pg.dump").rehearsal(dump) == Rehearsal::kProbe);
  Result<Value> r = c.Rehearse("pg.dump", dump);
  REQUIRE(r.ok());
  CHECK(fs::is_empty(dir.path));
  CHECK(c.ctx.undo_records.empty());
  // A later restore of the archive this rehearsal would have written checks
  // its target, and cannot know the archive's tables.
  const std::string later = UniqueName("later");
  r = c.Rehearse("pg.restore",
                 {{"conn", "blue"}, {"database", later}, {"file", file}, {"create", true}});
  REQUIRE(r.ok());
  CHECK(IsUnknown((*r)["tables"]));
  r = c.Rehearse(
      "pg.restore",
      {{"conn", "blue"}, {"database", later}, {"file", dir / "other.dump"}, {"create", true}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("does not exist"));
  CHECK(DbExists(later) == "0");
  r = c.Rehearse(
      "pg.dump",
      {{"conn", "blue"}, {"database", source.name()}, {"file", "/nonexistent-dir/r.dump"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("cannot write to directory /nonexistent-dir"));
  r = c.Rehearse("pg.dump", {{"conn", "blue"}, {"database", "no_such_db"}, {"file", file}});
  REQUIRE_FALSE(r.ok());

  REQUIRE(c.Apply("pg.dump", dump).ok());
  c.ctx.undo_records.clear();
  PlanEffect plan =
      c.P("pg.restore")
          .Plan(
              {{"conn", "blue"}, {"database", "d"}, {"file", file}, {"jobs", 2}, {"create", true}});
  CHECK(plan.text == "pg_restore --list -- " + file +
                         "\nCREATE DATABASE \"d\" TEMPLATE template0\n"
                         "pg_restore --exit-on-error --no-password --jobs=2 "
                         "'--dbname=<connection blue, database d>' -- " +
                         file);
  CHECK_THAT(c.P("pg.restore").Plan({{"conn", "blue"}, {"database", "d"}, {"file", "x.sql"}}).text,
             Catch::StartsWith("check that x.sql ends") &&
                 Catch::Contains("psql -X -v ON_ERROR_STOP=1 --no-password --single-transaction"));
  const std::string target = UniqueName("rehearsed");
  Value restore{{"conn", "blue"}, {"database", target}, {"file", file}, {"create", true}};
  r = c.Rehearse("pg.restore", restore);
  REQUIRE(r.ok());
  CHECK((*r)["tables"] == 3);
  CHECK(DbExists(target) == "0");
  CHECK(c.ctx.undo_records.empty());
  // Without create the target must exist: unless an earlier rehearsed step
  // (here the call above) would create it, which a real run would have done.
  restore["create"] = false;
  r = c.Rehearse("pg.restore", restore);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kNotYet);
  CHECK_THAT(r.status().message(), Catch::Contains("does not exist yet: step 'step-test' would "
                                                   "create it"));
  restore["database"] = UniqueName("nowhere");
  r = c.Rehearse("pg.restore", restore);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() != Status::Code::kNotYet);
  CHECK_THAT(r.status().message(), Catch::Contains("does not exist; set create: true"));
  CHECK(DbExists(target) == "0");
}

TEST_CASE("pg.dump and pg.restore errors with a wrong password never show it",
          "[postgres][pg.dump][pg.restore]") {
  PgTestDb source(BlueServer(), "dumpsrc");
  DumpDir dir;
  const std::string secret = "wrong-pw-f00ba7";
  PgCase c;
  c.Connect("blue", source, "", secret);
  const std::string file = dir / "x.dump";
  for (bool dry : {true, false}) {
    Value dump{{"conn", "blue"}, {"file", file}};
    Result<Value> r = dry ? c.Rehearse("pg.dump", dump) : c.Apply("pg.dump", dump);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("connection 'blue'") &&
                                         Catch::Contains("password authentication failed"));
    CHECK(r.status().message().find(secret) == std::string::npos);
  }
  CHECK_FALSE(fs::exists(file));

  PgCase ok;
  ok.Connect("blue", source);
  REQUIRE(ok.Apply("pg.dump", {{"conn", "blue"}, {"file", file}}).ok());
  Value restore{{"conn", "blue"}, {"database", UniqueName("x")}, {"file", file}, {"create", true}};
  Result<Value> r = c.Apply("pg.restore", restore);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'blue'"));
  CHECK(r.status().message().find(secret) == std::string::npos);
  CHECK(c.ctx.AllLogs().find(secret) == std::string::npos);
  CHECK(c.P("pg.restore").Plan(restore).text.find(secret) == std::string::npos);
}

}  // namespace runbook::testing
