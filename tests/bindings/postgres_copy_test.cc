// pg.copy between real blue and green servers (two PostgreSQL 15 clusters).
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "bindings/postgres/pg_client.h"
#include "bindings/postgres/pg_copy.h"
#include "bindings/postgres/pg_tools.h"
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

// Customers and their orders (an index, a foreign key, a serial and an
// identity sequence), plus a table with a quoted name in another schema.
void Shop(const PgTestDb& db, int orders) {
  db.Exec(
      "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL UNIQUE); "
      "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
      "customer_id int NOT NULL REFERENCES customers (id), amount numeric(10, 2), "
      "note text, at timestamptz, raw bytea); "
      "CREATE INDEX orders_customer_idx ON orders (customer_id); "
      "CREATE SCHEMA audit; CREATE TABLE audit.\"Events\" (id int, what text); "
      "INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 1000) g; "
      "INSERT INTO orders (customer_id, amount, note, at, raw) SELECT 1 + g % 1000, g / 7.0, "
      "CASE WHEN g % 10 = 0 THEN NULL ELSE E'tab\\there, line\\nbreak ' || g END, "
      "'2026-01-01 00:00:00+00'::timestamptz + g * interval '1 second', "
      "decode(md5(g::text), 'hex') FROM generate_series(1, " +
      std::to_string(orders) +
      ") g; "
      "INSERT INTO audit.\"Events\" VALUES (1, 'created'), (2, 'updated'); "
      "SELECT setval('customers_id_seq', 5000)");
}

// Every user object of a database, one per line: what undo must restore.
std::string Objects(const PgTestDb& db) {
  return db.Value(
      "SELECT string_agg(k, ',' ORDER BY k) FROM ("
      "SELECT 'rel ' || c.oid::regclass::text || ' ' || c.relkind::text AS k FROM pg_class c "
      "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN "
      "('pg_catalog', 'information_schema', 'pg_toast') "
      "UNION ALL SELECT 'schema ' || nspname FROM pg_namespace "
      "UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t JOIN pg_namespace n "
      "ON n.oid = t.typnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
      "UNION ALL SELECT 'constraint ' || conname FROM pg_constraint "
      "UNION ALL SELECT 'proc ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
      "ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) o");
}

Value ShopArgs() {
  return Value{{"source", "blue"},
               {"target", "green"},
               {"tables", {"customers", "orders", "audit.\"Events\""}}};
}

}  // namespace

TEST_CASE("pg.copy clones tables with their data, indexes, constraints and sequences",
          "[postgres][pg.copy]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Shop(blue, 100000);
  // Vacuumed now, so that autovacuum does not add the map forks (and change
  // pg_table_size, the progress total below) while the test runs.
  blue.Exec("VACUUM customers, orders, audit.\"Events\"");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args = ShopArgs();
  args["jobs"] = 2;
  CHECK(c.Check("pg.copy", args, nullptr) == CheckOutcome::kNotDone);

  Result<Value> r = c.Apply("pg.copy", args);
  REQUIRE(r.ok());
  CHECK((*r)["rows"] == 101002);
  REQUIRE((*r)["tables"].size() == 3);
  CHECK((*r)["tables"][1]["table"] == "orders");
  CHECK((*r)["tables"][1]["rows"] == 100000);
  CHECK((*r)["tables"][1]["bytes"].get<int64_t>() > 5000000);
  CHECK((*r)["tables"][1]["format"] == "binary");  // both servers run PostgreSQL 15
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("copied orders: 100000 rows"));
  // Progress counts every table: the last report (after the last table) is
  // all of it, in the tables' sizes on the source, with the time it took.
  REQUIRE_FALSE(c.ctx.progress.empty());
  const ProgressInfo last = c.ctx.progress.back();
  CHECK(last.total_bytes ==
        std::stoll(blue.Value("SELECT sum(pg_table_size(t::regclass)) FROM unnest(ARRAY["
                              "'customers', 'orders', 'audit.\"Events\"']) t")));
  CHECK(last.done_bytes == last.total_bytes);
  CHECK(last.done_rows == 101002);
  CHECK(last.seconds > 0);

  // Same rows and same content, table by table.
  Result<Value> same = c.Apply("pg.compare_counts", {{"source", "blue"},
                                                     {"target", "green"},
                                                     {"tables", ShopArgs()["tables"]},
                                                     {"mode", "checksum"}});
  REQUIRE(same.ok());
  CHECK((*same)["mismatched"] == 0);
  CHECK(green.Value("SELECT count(*) FROM orders WHERE note IS NULL") == "10000");

  // Post-data: indexes and constraints exist on the target, and are enforced.
  CHECK(green.Value("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
                    "WHERE schemaname = 'public'") ==
        "customers_name_key,customers_pkey,orders_customer_idx,orders_pkey");
  CHECK(green.Value("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                    "AND conrelid = 'orders'::regclass") == "1");
  // Sequences carry on from where the source is.
  CHECK(green.Value("SELECT last_value FROM customers_id_seq") == "5000");
  CHECK(green.Value("SELECT last_value FROM orders_id_seq") ==
        blue.Value("SELECT last_value FROM orders_id_seq"));
  CHECK(green.Value("SELECT count(*) FROM pg_stats WHERE tablename = 'orders'") != "0");  // ANALYZE
  // COPY FREEZE: every page of the copy is all-visible and all-frozen, so no
  // later read or VACUUM has to write it again.
  green.Exec("CREATE EXTENSION IF NOT EXISTS pg_visibility");
  CHECK(green.Value("SELECT format('%s/%s/%s', all_visible, all_frozen, "
                    "pg_relation_size('orders') / current_setting('block_size')::int) "
                    "FROM pg_visibility_map_summary('orders')") ==
        green.Value("SELECT format('%1$s/%1$s/%1$s', "
                    "pg_relation_size('orders') / current_setting('block_size')::int)"));

  // Resume's check: done while the copies match, not done once they differ.
  CHECK(c.Check("pg.copy", args, c.ctx.LastUndo()) == CheckOutcome::kDone);
  // An attempt killed after the rows, before the indexes: its record has no
  // "created" yet, and equal counts do not make it done.
  Value unfinished = c.ctx.LastUndo();
  unfinished.erase("created");
  CHECK(c.Check("pg.copy", args, unfinished) == CheckOutcome::kNotDone);
  green.Exec("DELETE FROM orders WHERE id = 7");
  CHECK(c.Check("pg.copy", args, c.ctx.LastUndo()) == CheckOutcome::kNotDone);

  // The copy is a working database: the foreign key holds, ids continue.
  CHECK_THROWS(green.Exec("INSERT INTO orders (customer_id) VALUES (99999)"));
  CHECK(green.Value("INSERT INTO customers (name) VALUES ('new') RETURNING id") == "5001");
}

TEST_CASE("pg.copy with all: true clones the whole database, and undo restores the target",
          "[postgres][pg.copy]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Shop(blue, 2000);
  blue.Exec(
      "CREATE TYPE mood AS ENUM ('sad', 'happy'); "
      "CREATE TABLE audit.moods (id int PRIMARY KEY, m mood, history mood[]); "
      "INSERT INTO audit.moods VALUES (1, 'happy', '{sad,happy}'), (2, 'sad', NULL); "
      "CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100; "
      "CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2'");
  green.Exec(
      "CREATE SCHEMA mine; CREATE TABLE mine.keep (id int); INSERT INTO mine.keep VALUES (1)");
  const std::string green_before = Objects(green);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args{{"source", "blue"}, {"target", "green"}, {"all", true}};
  Result<Value> r = c.Apply("pg.copy", args);
  REQUIRE(r.ok());
  CHECK((*r)["tables"].size() == 4);
  CHECK((*r)["rows"] == 1000 + 2000 + 2 + 2);
  // An array of enums names the enum's OID in binary form, which differs on the target.
  CHECK((*r)["tables"][1] == Value{{"table", "audit.moods"},
                                   {"rows", 2},
                                   {"bytes", (*r)["tables"][1]["bytes"]},
                                   {"seconds", (*r)["tables"][1]["seconds"]},
                                   {"parts", 1},
                                   {"format", "text"}});
  CHECK((*r)["tables"][2]["format"] == "binary");
  CHECK(green.Value("SELECT history::text FROM audit.moods WHERE id = 1") == "{sad,happy}");
  CHECK(green.Value("SELECT count(*) FROM big_orders") ==
        blue.Value("SELECT count(*) FROM big_orders"));
  CHECK(green.Value("SELECT twice(21)") == "42");
  CHECK(green.Value("SELECT m FROM audit.moods WHERE id = 1") == "happy");
  Result<Value> same =
      c.Apply("pg.compare_counts", {{"source", "blue"},
                                    {"target", "green"},
                                    {"tables", {"customers", "orders", "audit.moods"}},
                                    {"mode", "checksum"}});
  REQUIRE(same.ok());
  CHECK(green.Value("SELECT count(*) FROM mine.keep") == "1");
  CHECK(Objects(green) != green_before);

  // Undo drops what the copy created, and only that; twice is harmless.
  REQUIRE(c.Undo("pg.copy", args).ok());
  CHECK(Objects(green) == green_before);
  CHECK(green.Value("SELECT count(*) FROM mine.keep") == "1");
  REQUIRE(c.Undo("pg.copy", args).ok());
  CHECK(Objects(green) == green_before);
}

TEST_CASE("pg.copy refuses a target that already has rows, or the source itself",
          "[postgres][pg.copy]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Shop(blue, 500);
  green.Exec(
      "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount numeric(10, 2), "
      "note text, at timestamptz, raw bytea); INSERT INTO orders (id) VALUES (1)");
  const std::string green_before = Objects(green);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  c.Connect("blue_again", blue);

  Result<Value> r = c.Apply("pg.copy", ShopArgs());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "connection 'green': the target already has rows in orders (replace: true overwrites "
        "them); nothing was done");
  CHECK(Objects(green) == green_before);
  CHECK(green.Value("SELECT count(*) FROM orders") == "1");
  CHECK(c.ctx.undo_records.empty());

  r = c.Apply("pg.copy", {{"source", "blue"}, {"target", "blue_again"}, {"all", true}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("are the same database"));
  r = c.Apply("pg.copy", {{"source", "blue"}, {"target", "blue"}, {"all", true}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kInvalid);
  r = c.Apply("pg.copy", {{"source", "blue"}, {"target", "green"}, {"tables", {"nope"}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "connection 'blue': no such table: nope");
  CHECK(Objects(green) == green_before);
  {
    // A client program missing from PATH is found before anything is done
    // (pg_restore builds the indexes only after every row is copied).
    char tmpl[] = "/tmp/pg_copy_path_XXXXXX";
    const std::string bin = mkdtemp(tmpl);
    for (const char* tool : {"pg_dump", "psql", "vacuumdb"}) {
      std::filesystem::create_symlink(std::string("/usr/lib/postgresql/15/bin/") + tool,
                                      bin + "/" + tool);
    }
    const std::string old_path = std::getenv("PATH");
    setenv("PATH", bin.c_str(), 1);
    Result<Value> missing = c.Apply("pg.copy", ShopArgs());
    setenv("PATH", old_path.c_str(), 1);
    std::filesystem::remove_all(bin);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.status().message() ==
          "pg_restore is not on PATH: pg.copy needs PostgreSQL's client programs (pg_dump, "
          "pg_restore, psql, vacuumdb); nothing was done");
    CHECK(Objects(green) == green_before);
  }

  // replace: true overwrites the existing table's rows (its definition stays).
  Value args = ShopArgs();
  args["replace"] = true;
  Result<Value> replaced = c.Apply("pg.copy", args);
  REQUIRE(replaced.ok());
  CHECK((*replaced)["tables"][1]["format"] == "text");  // the target's own definition
  CHECK(green.Value("SELECT count(*) FROM orders") == "500");
  CHECK(green.Value("SELECT count(*) FROM customers") == "1000");
  CHECK(c.ctx.LastUndo()["replaced"] == Value::parse(R"(["orders"])"));
}

TEST_CASE("pg.copy keeps streaming into a target that sends a notice for every row",
          "[postgres][pg.copy]") {
  // The target's notices must be read while rows are sent: a target whose
  // socket to us is full stops reading our rows, and the copy would wait
  // for its deadline.
  PgTestDb blue(BlueServer()), green(GreenServer());
  blue.Exec(
      "CREATE TABLE chatty (id int, note text); "
      "INSERT INTO chatty SELECT g, repeat('x', 100) FROM generate_series(1, 60000) g");
  green.Exec(
      "CREATE TABLE chatty (id int, note text); "
      "CREATE FUNCTION say() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN RAISE NOTICE 'row % arrived, and this notice is long enough to fill buffers', "
      "NEW.id; RETURN NEW; END$$; "
      "CREATE TRIGGER say BEFORE INSERT ON chatty FOR EACH ROW EXECUTE FUNCTION say()");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  auto start = std::chrono::steady_clock::now();
  Result<Value> r = c.Apply("pg.copy", {{"source", "blue"}, {"target", "green"},
                                        {"tables", {"chatty"}}, {"jobs", 1}});
  INFO((r.ok() ? std::string() : r.status().message()));
  REQUIRE(r.ok());
  CHECK(green.Value("SELECT count(*) FROM chatty") == "60000");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
}

TEST_CASE("a rehearsal of pg.copy probes both servers and writes nothing", "[postgres][pg.copy]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Shop(blue, 3000);
  blue.Exec("ANALYZE");
  const std::string green_before = Objects(green);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  CHECK(c.P("pg.copy").rehearsal(ShopArgs()) == Rehearsal::kProbe);
  Result<Value> r = c.Rehearse("pg.copy", ShopArgs());
  REQUIRE(r.ok());
  CHECK((*r)["estimated"] == true);
  CHECK((*r)["tables"][1]["rows"] == 3000);  // reltuples after ANALYZE
  CHECK((*r)["tables"][1]["bytes"].get<int64_t>() > 0);
  CHECK(Objects(green) == green_before);
  CHECK(c.ctx.undo_records.empty());
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("would copy orders: about 3000 rows"));
  blue.Exec("CREATE TABLE fresh (id int); INSERT INTO fresh VALUES (1)");  // never analyzed
  r = c.Rehearse("pg.copy", {{"source", "blue"}, {"target", "green"}, {"tables", {"fresh"}}});
  REQUIRE(r.ok());
  CHECK((*r)["tables"][0]["rows"].is_null());
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("would copy fresh: rows not estimated"));

  // A precondition that would fail for real fails the rehearsal too.
  green.Exec("CREATE TABLE customers (id int, name text); INSERT INTO customers VALUES (1, 'x')");
  r = c.Rehearse("pg.copy", ShopArgs());
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("already has rows in customers"));
}

TEST_CASE("pg.copy fails cleanly when the source backend dies mid-copy, and a retry redoes it",
          "[postgres][pg.copy]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  blue.Exec(
      "CREATE TABLE big (id int PRIMARY KEY, payload text); "
      "INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args{{"source", "blue"}, {"target", "green"}, {"tables", {"big"}}, {"jobs", 1}};

  // Terminates the backend that streams `big` once it has sent some rows.
  PgConnection probe;
  REQUIRE(probe.Connect(PgConnectOptions{"probe", blue.Conninfo(), blue.server().password}).ok());
  std::atomic<bool> done{false};
  std::atomic<int64_t> killed_at{0};
  std::thread killer([&] {
    while (!done && killed_at == 0) {
      Result<Value> rows = probe.Query(
          "SELECT p.pid, p.tuples_processed FROM pg_stat_progress_copy p "
          "JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'runbook/%' "
          "AND p.command = 'COPY TO' AND p.tuples_processed > 1000");
      if (rows.ok() && !rows->empty()) {
        int64_t pid = (*rows)[0]["pid"].get<int64_t>();
        killed_at = (*rows)[0]["tuples_processed"].get<int64_t>();
        (void)probe.Query("SELECT pg_terminate_backend($1::int)", {std::to_string(pid)});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  Result<Value> r = c.Apply("pg.copy", args);
  done = true;
  killer.join();
  REQUIRE(killed_at > 0);  // the kill really happened mid-stream
  CHECK(killed_at < 400000);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("copying table big: connection 'blue'") &&
                                       Catch::Contains("terminat"));
  CHECK(r.status().message().find('\n') == std::string::npos);
  CHECK_THAT(r.status().message(), !Catch::Contains(blue.server().password));
  // The table was created by pre-data but holds none of the streamed rows.
  CHECK(green.Value("SELECT count(*) FROM big") == "0");
  CHECK(c.Check("pg.copy", args, c.ctx.LastUndo()) == CheckOutcome::kNotDone);

  // A retry (the earlier attempt's record in hand) starts clean and finishes.
  const Value failed_record = c.ctx.LastUndo();
  CHECK_FALSE(failed_record.contains("created"));  // it never got that far
  c.ctx.previous_undo = failed_record;
  Result<Value> again = c.Apply("pg.copy", args);
  REQUIRE(again.ok());
  CHECK(green.Value("SELECT count(*) FROM big") == "400000");
  CHECK(green.Value("SELECT count(*) FROM pg_indexes WHERE tablename = 'big'") == "1");
  CHECK(c.ctx.LastUndo()["before"] == failed_record["before"]);  // the first attempt's
  // Undo from a record without "created" works out what appeared since "before".
  REQUIRE(c.P("pg.copy").Undo(c.ctx, args, failed_record).ok());
  CHECK(green.Value("SELECT to_regclass('big') IS NULL") == "t");
}

TEST_CASE("pg.copy with schema_only copies tables, indexes and constraints without rows",
          "[postgres][pg.copy]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Shop(blue, 100);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args = ShopArgs();
  args["schema_only"] = true;
  Result<Value> r = c.Apply("pg.copy", args);
  REQUIRE(r.ok());
  CHECK((*r)["rows"] == 0);
  CHECK(green.Value("SELECT count(*) FROM orders") == "0");
  CHECK(green.Value("SELECT count(*) FROM audit.\"Events\"") == "0");
  CHECK(green.Value("SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_customer_idx'") ==
        "1");
  CHECK(green.Value("SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == "1");
}

TEST_CASE("pg.copy hands its programs the whole connection as --dbname, the password only in "
          "the environment",
          "[postgres][pg.copy]") {
  PgConnectOptions o;
  o.conn_name = "blue";
  o.dsn = "postgresql://sre:s3cr%40t@db.internal:5433/app?sslmode=require";
  o.keywords["port"] = "6543";  // keywords win over the dsn, as for libpq
  o.application_name = "runbook/r1/clone";
  PgToolTarget to = *PgToolConnect(o);
  CHECK(to.conninfo ==
        "application_name=runbook/r1/clone connect_timeout=10 dbname=app host=db.internal "
        "port=6543 sslmode=require user=sre");
  CHECK(to.env == std::map<std::string, std::string>{{"PGPASSWORD", "s3cr@t"}});
  o.password = "other";
  CHECK(PgToolConnect(o)->env["PGPASSWORD"] == "other");
  o.dsn = "dbname='it\\'s' host=h";
  CHECK_THAT(PgToolConnect(o)->conninfo, Catch::Contains("dbname='it\\'s'"));
  CHECK(to.conn_name == "blue");
  CHECK(to.database == "app");
  CHECK_THAT(PgToolConnect(o, "other db")->conninfo, Catch::Contains("dbname='other db'"));
  o.connect_timeout = std::chrono::seconds(0);  // libpq: wait forever; a program: 2 seconds
  CHECK_THAT(PgToolConnect(o)->conninfo, Catch::Contains("connect_timeout=2"));
  o.keywords["options"] = "-c search_path=x";  // '=' and spaces are quoted
  CHECK_THAT(PgToolConnect(o)->conninfo, Catch::Contains("options='-c search_path=x'"));
  // A client key's passphrase could only go on argv: refused, and named
  // without its value.
  o.dsn = "host=h sslpassword=KeyPass123 sslkey=/k";
  Result<PgToolTarget> refused = PgToolConnect(o);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(),
             Catch::Contains("sslpassword") && !Catch::Contains("KeyPass123"));

  PgCase c;
  PlanEffect plan = c.P("pg.copy").Plan(ShopArgs());
  CHECK_THAT(plan.text, Catch::StartsWith("pg_dump --schema-only --section=pre-data -t customers "
                                          "-t orders -t audit.\"Events\" on blue | psql "
                                          "--no-password -X -q -v ON_ERROR_STOP=1 "
                                          "--single-transaction -f - on green\n"));
  CHECK_THAT(plan.text,
             Catch::Contains("BEGIN; TRUNCATE ONLY t; COPY t FROM STDIN (FREEZE); COMMIT on green"));
  // Indexes and constraints of different tables are built at once, ANALYZE too.
  CHECK_THAT(plan.text, Catch::Contains("pg_restore --jobs=2 of it on green\n"));
  CHECK_THAT(plan.text, Catch::EndsWith("vacuumdb --analyze-only --jobs=2 of the copied tables"));
  Value one = ShopArgs();
  one["jobs"] = 1;
  CHECK_THAT(c.P("pg.copy").Plan(one).text,
             Catch::Contains("pg_restore --single-transaction of it on green\n"));
  CHECK_THAT(c.P("pg.copy").Plan(one).text, Catch::EndsWith("; ANALYZE the copied tables"));
  CHECK_THAT(plan.undo, Catch::Contains("drop the tables"));
}

TEST_CASE("pg.copy's programs go where the engine connected, whatever PGSERVICE says",
          "[postgres][pg.copy]") {
  PgTestDb blue(BlueServer()), green(GreenServer()), elsewhere(GreenServer());
  Shop(blue, 100);
  // A service in the operator's environment naming another database: libpq
  // lets it override PG* variables (but not an explicit conninfo).
  const std::string file = "/tmp/" + UniqueName("pg_service") + ".conf";
  std::FILE* f = std::fopen(file.c_str(), "w");
  REQUIRE(f);
  std::fprintf(f, "[evil]\ndbname=%s\n", elsewhere.name().c_str());
  std::fclose(f);
  setenv("PGSERVICEFILE", file.c_str(), 1);
  setenv("PGSERVICE", "evil", 1);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Result<Value> r = c.Apply("pg.copy", ShopArgs());
  unsetenv("PGSERVICE");
  unsetenv("PGSERVICEFILE");
  std::remove(file.c_str());
  INFO(r.status().message());
  REQUIRE(r.ok());
  CHECK(green.Value("SELECT count(*) FROM orders") == "100");
  CHECK(green.Value("SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_customer_idx'") ==
        "1");
  CHECK(elsewhere.Value("SELECT count(*) FROM pg_class WHERE relname = 'orders'") == "0");
}

}  // namespace runbook::testing
