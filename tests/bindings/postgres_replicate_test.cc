// pg.replicate, pg.wait_caught_up and pg.sync_sequences against real
// PostgreSQL 15 servers. The source is a database of the green cluster
// (wal_level = logical) and the target another database of the same
// cluster; blue (wal_level = replica) plays a source that cannot publish.
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

void Shop(const PgTestDb& db) {
  db.Exec("CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL); "
          "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
          "customer_id int NOT NULL REFERENCES customers (id), amount numeric(10, 2)); "
          "INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 200) g; "
          "INSERT INTO orders (customer_id, amount) SELECT 1 + g % 200, g / 7.0 "
          "FROM generate_series(1, 3000) g");
}

// Replication objects of the green cluster that carry `name`, or that belong
// to database `db` (slots): "" when there are none.
std::string Leftovers(const PgTestDb& src, const std::string& name) {
  return src.Value(
      "SELECT string_agg(k, ',') FROM ("
      "SELECT 'subscription ' || subname AS k FROM pg_subscription WHERE subname = '" + name + "' "
      "UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname = '" + name + "' "
      "UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots "
      "WHERE slot_name = '" + name + "' OR database = current_database()) o");
}

Value CompareArgs() {
  return Value{{"source", "src"}, {"target", "dst"}, {"tables", {"customers", "orders"}},
               {"mode", "checksum"}};
}

}  // namespace

TEST_CASE("pg.replicate streams tables and later changes into the target, and undo removes it all",
          "[postgres][pg.replicate]") {
  PgTestDb src(GreenServer(), "src"), dst(GreenServer(), "dst");
  Shop(src);
  PgCase c;
  c.Connect("src", src);
  c.Connect("dst", dst);
  const std::string name = UniqueName("repl");
  Value args{{"source", "src"}, {"target", "dst"}, {"tables", {"customers", "orders"}},
             {"name", name}};

  Result<Value> r = c.Apply("pg.replicate", args);
  REQUIRE(r.ok());
  const Value undo = c.ctx.LastUndo();
  CHECK((*r)["publication"] == name);
  CHECK((*r)["subscription"] == name);
  CHECK((*r)["slot"] == name);
  CHECK((*r)["tables"] == Value({"customers", "orders"}));
  CHECK(c.Check("pg.replicate", args, undo) == CheckOutcome::kDone);
  CHECK(dst.Value("SELECT subenabled FROM pg_subscription WHERE subname = '" + name + "'") == "t");

  Value wait{{"source", "src"}, {"target", "dst"}, {"subscription", name}, {"timeout", "60s"}};
  Result<Value> w = c.Apply("pg.wait_caught_up", wait);
  REQUIRE(w.ok());
  CHECK((*w)["tables_ready"] == 2);
  CHECK(dst.Value("SELECT count(*) FROM orders") == "3000");
  Result<Value> same = c.Apply("pg.compare_counts", CompareArgs());
  REQUIRE(same.ok());
  CHECK((*same)["mismatched"] == 0);

  // Changes after the initial copy arrive too.
  src.Exec("INSERT INTO customers (name) VALUES ('late'); "
           "INSERT INTO orders (customer_id, amount) SELECT 5, g FROM generate_series(1, 50) g; "
           "UPDATE orders SET amount = amount + 1 WHERE id % 3 = 0; "
           "DELETE FROM orders WHERE id % 10 = 0");
  w = c.Apply("pg.wait_caught_up", wait);
  REQUIRE(w.ok());
  CHECK(dst.Value("SELECT count(*) FROM orders") == src.Value("SELECT count(*) FROM orders"));
  CHECK(dst.Value("SELECT count(*) FROM orders") == "2745");
  same = c.Apply("pg.compare_counts", CompareArgs());
  REQUIRE(same.ok());
  CHECK((*same)["mismatched"] == 0);

  // Sequences are not replicated: the target's still start at 1.
  CHECK(dst.Value("SELECT is_called FROM customers_id_seq") == "f");
  Value seq_args{{"source", "src"}, {"target", "dst"}, {"tables", {"customers", "orders"}}};
  Result<Value> probe = c.Rehearse("pg.sync_sequences", seq_args);
  REQUIRE(probe.ok());
  CHECK((*probe)["set"].size() == 2);
  CHECK(dst.Value("SELECT is_called FROM customers_id_seq") == "f");  // the rehearsal wrote nothing
  Result<Value> synced = c.Apply("pg.sync_sequences", seq_args);
  REQUIRE(synced.ok());
  CHECK((*synced)["set"].size() == 2);
  CHECK_FALSE(synced->contains("changed"));
  CHECK(dst.Value("SELECT last_value FROM orders_id_seq") == "3050");
  // nextval on the target continues the source's (without touching the table).
  CHECK(dst.Value("SELECT nextval('customers_id_seq')") == "202");
  REQUIRE(c.Undo("pg.sync_sequences", seq_args).ok());
  CHECK(dst.Value("SELECT last_value FROM orders_id_seq") == "1");
  CHECK(dst.Value("SELECT is_called FROM orders_id_seq") == "f");

  // The source's password is in no result, log, or undo record of ours.
  const std::string password = GreenServer().password;
  REQUIRE(!password.empty());
  std::string everything = r->dump() + w->dump() + synced->dump() + c.ctx.AllLogs();
  for (const auto& u : c.ctx.undo_records) everything += u.dump();
  CHECK(everything.find(password) == std::string::npos);
  CHECK(c.P("pg.replicate").Plan(args).text.find(password) == std::string::npos);

  // Before a rollback drops the tables: they hold only what the source
  // holds (the source's writes since arrive first) ...
  src.Exec("INSERT INTO customers (name) VALUES ('just before the rollback')");
  Status guard = c.P("pg.replicate").CheckUndo(c.ctx, args, undo);
  INFO(guard.message());
  CHECK(guard.ok());
  // ... unless someone wrote to the target (an application switched to it).
  dst.Exec("INSERT INTO customers (id, name) VALUES (100000, 'written on the target')");
  guard = c.P("pg.replicate").CheckUndo(c.ctx, args, undo);
  CHECK_FALSE(guard.ok());
  CHECK_THAT(guard.message(), Catch::Contains("public.customers (203 rows on 'dst', 202 on 'src')"));
  CHECK_THAT(guard.message(), !Catch::Contains("public.orders"));
  dst.Exec("DELETE FROM customers WHERE name = 'written on the target'");

  REQUIRE(c.P("pg.replicate").Undo(c.ctx, args, undo).ok());
  CHECK(Leftovers(src, name) == "");
  CHECK(dst.Value("SELECT count(*) FROM pg_class WHERE relname IN ('customers', 'orders')") == "0");
  CHECK(c.Check("pg.replicate", args, undo) == CheckOutcome::kNotDone);
  REQUIRE(c.P("pg.replicate").Undo(c.ctx, args, undo).ok());  // twice is harmless
}

TEST_CASE("pg.replicate of all tables into existing tables keeps them on undo",
          "[postgres][pg.replicate]") {
  PgTestDb src(GreenServer(), "src"), dst(GreenServer(), "dst");
  Shop(src);
  dst.Exec("CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL)");
  PgCase c;
  c.Connect("src", src);
  c.Connect("dst", dst);
  Value args{{"source", "src"}, {"target", "dst"}, {"all", true}};  // default name
  Result<Value> r = c.Apply("pg.replicate", args);
  REQUIRE(r.ok());
  const std::string name = (*r)["subscription"].get<std::string>();
  CHECK(name == "runbook_run_test_step_test");
  const Value undo = c.ctx.LastUndo();
  Result<Value> w = c.Apply("pg.wait_caught_up", {{"source", "src"}, {"target", "dst"},
                                                  {"subscription", name}, {"timeout", "60s"}});
  REQUIRE(w.ok());
  CHECK(dst.Value("SELECT count(*) FROM customers") == "200");
  CHECK(dst.Value("SELECT count(*) FROM orders") == "3000");
  REQUIRE(c.P("pg.replicate").Undo(c.ctx, args, undo).ok());
  CHECK(Leftovers(src, name) == "");
  CHECK(dst.Value("SELECT to_regclass('orders') IS NULL") == "t");      // created: dropped
  CHECK(dst.Value("SELECT to_regclass('customers') IS NULL") == "f");   // existed: kept
}

// Objects a whole-schema dump brings that a second CREATE refuses.
const char* kOddObjects =
    "CREATE TYPE mood AS ENUM ('sad', 'ok'); "
    "CREATE FUNCTION mood_rank(mood) RETURNS int LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT CASE $1 WHEN 'sad' THEN 0 ELSE 1 END $$; "
    "CREATE CAST (mood AS int) WITH FUNCTION mood_rank(mood); "
    "CREATE AGGREGATE total(numeric) (SFUNC = numeric_add, STYPE = numeric); "
    "CREATE AGGREGATE nrows(*) (SFUNC = int8inc, STYPE = int8, INITCOND = '0'); "
    "CREATE AGGREGATE pct(float8 ORDER BY float8) (SFUNC = ordered_set_transition, "
    "STYPE = internal, FINALFUNC = percentile_disc_final, FINALFUNC_EXTRA); "
    "CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq); "
    "CREATE OPERATOR CLASS int4_plain FOR TYPE int4 USING btree AS OPERATOR 1 <, "
    "OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 btint4cmp(int4, int4); "
    "CREATE COLLATION bytewise (locale = 'C'); "
    "CREATE TEXT SEARCH DICTIONARY plain_dict (TEMPLATE = simple); "
    "CREATE TEXT SEARCH CONFIGURATION plain (COPY = simple); "
    "CREATE FOREIGN DATA WRAPPER nothing_fdw; "
    "CREATE SERVER nowhere FOREIGN DATA WRAPPER nothing_fdw; "
    "CREATE PUBLICATION app_changes FOR TABLE customers; "
    "CREATE FUNCTION ddl_noop() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$; "
    "CREATE EVENT TRIGGER ddl_watch ON ddl_command_end EXECUTE FUNCTION ddl_noop()";

// Which of kOddObjects `db` holds, by name ("" when none).
std::string OddObjects(const PgTestDb& db) {
  return db.Value(
      "SELECT string_agg(k, ',' ORDER BY k) FROM ("
      "SELECT 'cast' AS k FROM pg_cast WHERE castsource = to_regtype('mood') "
      "UNION ALL SELECT proname FROM pg_proc WHERE proname IN ('total', 'nrows', 'pct', "
      "'mood_rank', 'ddl_noop') UNION ALL SELECT oprname FROM pg_operator WHERE oprname = '===' "
      "UNION ALL SELECT opcname FROM pg_opclass WHERE opcname = 'int4_plain' "
      "UNION ALL SELECT collname FROM pg_collation WHERE collname = 'bytewise' "
      "UNION ALL SELECT dictname FROM pg_ts_dict WHERE dictname = 'plain_dict' "
      "UNION ALL SELECT cfgname FROM pg_ts_config WHERE cfgname = 'plain' "
      "UNION ALL SELECT fdwname FROM pg_foreign_data_wrapper WHERE fdwname = 'nothing_fdw' "
      "UNION ALL SELECT srvname FROM pg_foreign_server WHERE srvname = 'nowhere' "
      "UNION ALL SELECT pubname FROM pg_publication "
      "UNION ALL SELECT evtname FROM pg_event_trigger) o");
}

TEST_CASE(
    "pg.replicate of a whole database: the retry after a failed attempt and the undo "
    "remove every object the schema brought",
    "[postgres][pg.replicate]") {
  PgTestDb src(GreenServer(), "src"), dst(GreenServer(), "dst");
  Shop(src);
  src.Exec(kOddObjects);
  const std::string all_odd = OddObjects(src);
  REQUIRE(all_odd ==
          "===,app_changes,bytewise,cast,ddl_noop,ddl_watch,int4_plain,mood_rank,nothing_fdw,"
          "nowhere,nrows,pct,plain,plain_dict,total");
  // The target's own objects of the same kinds stay, whatever happens.
  dst.Exec(
      "CREATE AGGREGATE keep_total(numeric) (SFUNC = numeric_add, STYPE = numeric); "
      "CREATE PUBLICATION keep_pub; CREATE COLLATION keep_coll (locale = 'C')");
  const std::string kept =
      "SELECT (SELECT count(*) FROM pg_proc WHERE proname = 'keep_total') + (SELECT count(*) "
      "FROM pg_publication WHERE pubname = 'keep_pub') + (SELECT count(*) FROM pg_collation "
      "WHERE collname = 'keep_coll')";
  const std::string with_kept =
      "===,app_changes,bytewise,cast,ddl_noop,ddl_watch,int4_plain,keep_pub,mood_rank,"
      "nothing_fdw,nowhere,nrows,pct,plain,plain_dict,total";
  PgCase c;
  c.Connect("src", src);
  c.Connect("dst", dst);
  const std::string name = UniqueName("repl");
  Value args{{"source", "src"}, {"target", "dst"}, {"all", true}, {"name", name}};
  // The first attempt fails once the schema is on the target: the target
  // server cannot reach the source there.
  Value unreachable = args;
  unreachable["source_dsn"] = "host=/nonexistent/runbook port=1";
  Result<Value> failed = c.Apply("pg.replicate", unreachable);
  REQUIRE_FALSE(failed.ok());
  CHECK_THAT(failed.status().message(), Catch::Contains("creating the subscription"));
  // The source's own publication came with its schema; the step's did not stay.
  CHECK(OddObjects(dst) == with_kept);
  CHECK(dst.Value("SELECT count(*) FROM pg_publication WHERE pubname = '" + name + "'") == "0");

  c.ctx.previous_undo = c.ctx.LastUndo();  // the retry
  Result<Value> r = c.Apply("pg.replicate", args);
  INFO((r.ok() ? std::string() : r.status().message()));
  REQUIRE(r.ok());
  CHECK(OddObjects(dst) == with_kept);
  CHECK(dst.Value(kept) == "3");
  Result<Value> w =
      c.Apply("pg.wait_caught_up",
              {{"source", "src"}, {"target", "dst"}, {"subscription", name}, {"timeout", "60s"}});
  REQUIRE(w.ok());
  CHECK(dst.Value("SELECT count(*) FROM orders") == "3000");

  // An undo record of an older binary (its inventory listed fewer kinds)
  // does not take the target's own objects of the other kinds for the
  // step's.
  Value old_record = c.ctx.LastUndo();
  REQUIRE(old_record.contains("schema_objects"));
  old_record.erase("schema_objects");
  old_record.erase("inventory");
  Value old_before = Value::array();
  for (const Value& o : old_record["before"]) {
    const std::string kind = o["kind"].get<std::string>();
    if (kind == "schema" || kind == "extension" || kind == "table" || kind == "routine" ||
        kind == "type" || kind == "sequence" || kind == "view") {
      old_before.push_back(o);
    }
  }
  old_record["before"] = old_before;
  Status undone = c.P("pg.replicate").Undo(c.ctx, args, old_record);
  INFO(undone.message());
  REQUIRE(undone.ok());
  CHECK(Leftovers(src, name) == "");
  CHECK(dst.Value(kept) == "3");
  CHECK(dst.Value("SELECT to_regclass('orders') IS NULL") == "t");

  // The undo of this binary's record: everything the schema brought goes.
  REQUIRE(c.P("pg.replicate").Undo(c.ctx, args, c.ctx.LastUndo()).ok());
  CHECK(OddObjects(dst) == "keep_pub");
  CHECK(dst.Value(kept) == "3");
  CHECK(OddObjects(src) == all_odd);  // the source keeps its own
}

TEST_CASE("pg.replicate's rehearsal checks the servers and writes nothing",
          "[postgres][pg.replicate]") {
  PgTestDb src(GreenServer(), "src"), dst(GreenServer(), "dst");
  Shop(src);
  PgCase c;
  c.Connect("src", src);
  c.Connect("dst", dst);
  const std::string name = UniqueName("repl");
  Value args{{"source", "src"}, {"target", "dst"}, {"tables", {"customers", "orders"}},
             {"name", name}};
  Result<Value> r = c.Rehearse("pg.replicate", args);
  REQUIRE(r.ok());
  CHECK((*r)["subscription"] == name);
  CHECK(c.ctx.undo_records.empty());
  CHECK(Leftovers(src, name) == "");
  CHECK(dst.Value("SELECT count(*) FROM pg_class WHERE relname IN ('customers', 'orders')") == "0");
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("would replicate 2 tables"));
}

TEST_CASE("pg.replicate refuses a source without wal_level=logical or a table without a key, "
          "before creating anything",
          "[postgres][pg.replicate]") {
  PgTestDb dst(GreenServer(), "dst");
  PgCase c;
  c.Connect("dst", dst);
  const std::string password = GreenServer().password;

  SECTION("wal_level") {
    PgTestDb blue(BlueServer(), "src");
    Shop(blue);
    c.Connect("src", blue);
    Result<Value> r = c.Apply("pg.replicate", {{"source", "src"}, {"target", "dst"},
                                              {"tables", {"customers"}}, {"name", "nope"}});
    REQUIRE(!r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("wal_level is replica") &&
                                         Catch::Contains("nothing was done"));
    CHECK(blue.Value("SELECT count(*) FROM pg_publication") == "0");
    CHECK(r.status().message().find(BlueServer().password) == std::string::npos);
  }
  SECTION("a table without a primary key") {
    PgTestDb src(GreenServer(), "src");
    Shop(src);
    src.Exec("CREATE TABLE notes (body text)");
    c.Connect("src", src);
    const std::string name = UniqueName("repl");
    Result<Value> r = c.Apply("pg.replicate", {{"source", "src"}, {"target", "dst"},
                                              {"tables", {"customers", "notes"}}, {"name", name}});
    REQUIRE(!r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("notes has no primary key"));
    CHECK(r.status().message().find(password) == std::string::npos);
    CHECK(c.ctx.undo_records.empty());
    CHECK(Leftovers(src, name) == "");
    CHECK(dst.Value("SELECT count(*) FROM pg_class WHERE relname = 'customers'") == "0");
    // REPLICA IDENTITY FULL is enough.
    src.Exec("ALTER TABLE notes REPLICA IDENTITY FULL");
    CHECK(c.Rehearse("pg.replicate", {{"source", "src"}, {"target", "dst"},
                                      {"tables", {"customers", "notes"}}, {"name", name}})
              .ok());
  }
}

}  // namespace runbook::testing
