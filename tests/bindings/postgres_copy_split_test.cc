// pg.copy's large tables split into ranges of their pages (issue 19): which
// tables are split and why not, rows exactly once from the one snapshot
// while the source is written to, a range killed mid-stream, and tables that
// must be read through a column list (generated columns, a partitioned
// parent named as a whole).
#include <atomic>
#include <chrono>
#include <thread>

#include "bindings/postgres/pg_client.h"
#include "bindings/postgres/pg_copy_catalog.h"
#include "tests/bindings/postgres_test_util.h"

namespace runbook::testing {
namespace {

CopyTable Table(const std::string& key, int64_t bytes, int64_t pages) {
  CopyTable t;
  t.key = key;
  t.name = TableName{"public", key};
  t.bytes = bytes;
  t.pages = pages;
  return t;
}

// A table of ~20 MB with a generated column, plus a child that inherits it
// (its rows are its own: COPY of the parent must not carry them).
void Big(const PgTestDb& db) {
  db.Exec(
      "CREATE TABLE big (id int PRIMARY KEY, payload text, twice int GENERATED ALWAYS AS "
      "(id * 2) STORED); "
      "INSERT INTO big (id, payload) SELECT g, repeat(md5(g::text), 4) FROM "
      "generate_series(1, 120000) g; "
      "CREATE TABLE big_child (extra int) INHERITS (big); "
      "INSERT INTO big_child (id, payload, extra) VALUES (-1, 'child', 1); "
      "CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small VALUES (1), (2)");
  db.Exec("VACUUM ANALYZE big, big_child, small");
}

Value SplitArgs() {
  return Value{{"source", "blue"},
               {"target", "green"},
               {"tables", {"big", "big_child", "small"}},
               {"jobs", 2},
               {"split_tables_larger_than", "4MB"}};
}

}  // namespace

TEST_CASE("SplitLargeTables splits only what it can, in a multiple of jobs, and says why not",
          "[pg.copy][split]") {
  std::vector<CopyTable> tables = {Table("huge", 640 << 20, 81920), Table("small", 1 << 20, 128),
                                   Table("replaced", 640 << 20, 81920),
                                   Table("parent", 640 << 20, 0), Table("thin", 640 << 20, 3)};
  tables[2].on_target = true;
  tables[3].partitioned = true;
  std::vector<std::string> why = SplitLargeTables(&tables, int64_t{256} << 20, 2, 150004);
  CHECK(tables[0].parts == 4);  // 640 MiB in two rounds of 2 x 256 MiB
  CHECK(tables[1].parts == 1);  // below the threshold: one transaction with FREEZE
  CHECK(tables[2].parts == 1);
  CHECK(tables[3].parts == 1);
  CHECK(tables[4].parts == 1);
  REQUIRE(why.size() == 3);
  CHECK_THAT(why[0], Catch::StartsWith("replaced: it exists on the target"));
  CHECK_THAT(why[1], Catch::StartsWith("parent: a partitioned table"));
  CHECK_THAT(why[2], Catch::StartsWith("thin: too few pages"));

  // One job: nothing to gain. PostgreSQL 13: no TID range scan. 0: never.
  why = SplitLargeTables(&tables, int64_t{256} << 20, 1, 150004);
  CHECK(tables[0].parts == 1);
  CHECK_THAT(why[0], Catch::Contains("jobs: 1"));
  why = SplitLargeTables(&tables, int64_t{256} << 20, 4, 130011);
  CHECK(tables[0].parts == 1);
  CHECK_THAT(why[0], Catch::Contains("PostgreSQL 13, which has no TID range scans"));
  why = SplitLargeTables(&tables, 0, 4, 150004);
  CHECK(tables[0].parts == 1);
  CHECK(why.empty());
  // Never more ranges than pages or 256; a multiple of jobs otherwise.
  why = SplitLargeTables(&tables, 1, 3, 150004);
  CHECK(tables[0].parts == 256);
  CHECK(tables[1].parts == 128);
  why = SplitLargeTables(&tables, int64_t{100} << 20, 3, 170000);
  CHECK(tables[0].parts == 9);  // ceil(640 / 300) = 3 rounds of 3
}

TEST_CASE("pg.copy copies a large table in ranges from one snapshot while the source is written",
          "[postgres][pg.copy][split]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Big(blue);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  const int64_t pages =
      std::stoll(blue.Value("SELECT pg_relation_size('big') / current_setting('block_size')::int"));
  REQUIRE(pages > 1000);

  // The rehearsal says which tables would be split, and why the others not.
  Result<Value> r = c.Rehearse("pg.copy", SplitArgs());
  REQUIRE(r.ok());
  const int parts = (*r)["tables"][0]["parts"].get<int>();
  CHECK(parts >= 4);
  CHECK(parts % 2 == 0);
  CHECK((*r)["tables"][1]["parts"] == 1);
  CHECK((*r)["tables"][2]["parts"] == 1);
  CHECK_THAT(c.ctx.AllLogs(),
             Catch::Contains("would copy big (") &&
                 Catch::Contains("in " + std::to_string(parts) + " ranges of its " +
                                 std::to_string(pages) + " pages, 2 at a time"));
  CHECK(green.Value("SELECT to_regclass('big') IS NULL") == "t");

  // A writer moves rows from the first pages to the last ones for as long as
  // the copy runs (an UPDATE writes the new version where there is room):
  // read from one snapshot, every row lands exactly once (the primary key
  // built after the data would refuse a duplicate), none is missed.
  PgConnection writer;
  REQUIRE(writer.Connect(PgConnectOptions{"writer", blue.Conninfo(), blue.server().password}).ok());
  std::atomic<bool> done{false};
  std::atomic<int> updates{0};
  std::thread churn([&] {
    for (int k = 0; !done; k = (k + 1) % 100) {
      if (writer
              .Exec("UPDATE big SET payload = payload || 'x' WHERE id % 100 = " +
                        std::to_string(k) + " AND id < 20000",
                    {})
              .ok()) {
        ++updates;
      }
    }
  });
  c.ctx.logs.clear();
  r = c.Apply("pg.copy", SplitArgs());
  done = true;
  churn.join();
  REQUIRE(r.ok());
  CHECK(updates > 0);
  CHECK((*r)["tables"][0]["parts"] == parts);
  CHECK((*r)["tables"][0]["rows"] == 120000);  // not big_child's row
  CHECK((*r)["tables"][1]["rows"] == 1);       // big_child, copied as a table of its own
  CHECK(green.Value("SELECT count(*) FROM ONLY big") == "120000");
  CHECK(green.Value("SELECT count(DISTINCT id) FROM ONLY big") == "120000");
  CHECK(green.Value("SELECT count(*) FROM big WHERE twice <> id * 2") == "0");
  CHECK(green.Value("SELECT count(*) FROM big_child") == "1");
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("copied big (pages 0-") &&
                                  Catch::Contains("range " + std::to_string(parts) + " of " +
                                                  std::to_string(parts) + ")") &&
                                  Catch::Contains("copied big: 120000 rows"));
  // The undo guard counts every range's rows as the run's own.
  CHECK(c.ctx.LastUndo()["left"]["public.big"] == 120000);
  // What the source held when the copy began is not what it holds now, but
  // every row is there once and the rows not touched since are identical.
  CHECK(green.Value("SELECT count(*) FROM big WHERE id >= 20000") ==
        blue.Value("SELECT count(*) FROM ONLY big WHERE id >= 20000"));
  CHECK(
      green.Value("SELECT md5(string_agg(payload, ',' ORDER BY id)) FROM big WHERE id >= 20000") ==
      blue.Value("SELECT md5(string_agg(payload, ',' ORDER BY id)) FROM ONLY big "
                 "WHERE id >= 20000"));
  CHECK(c.Check("pg.copy", SplitArgs(), c.ctx.LastUndo()) == CheckOutcome::kDone);
}

TEST_CASE("pg.copy: a range killed mid-stream fails the step, and the retry redoes the table once",
          "[postgres][pg.copy][split]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  Big(blue);
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Value args = SplitArgs();
  args["split_tables_larger_than"] = "1MB";  // many small ranges: some commit before the kill

  // Once a first range has committed on green, the source backend of a
  // range still streaming is terminated.
  PgConnection probe, committed;
  REQUIRE(probe.Connect(PgConnectOptions{"probe", blue.Conninfo(), blue.server().password}).ok());
  REQUIRE(
      committed.Connect(PgConnectOptions{"committed", green.Conninfo(), green.server().password})
          .ok());
  std::atomic<bool> done{false};
  std::atomic<int> killed{0};
  // A copy can end before the kill lands (a fast machine): then the copy
  // is dropped and made again, up to 5 times.
  Result<Value> r = Status::Internal("not run");
  for (int attempt = 0; attempt < 5 && killed == 0; ++attempt) {
    if (attempt > 0) green.Exec("DROP TABLE IF EXISTS big_child, big, small CASCADE");
    done = false;
    std::thread killer([&] {
      while (!done && killed == 0) {
        Result<Value> n = committed.Query("SELECT count(*) AS n FROM ONLY big");
        if (n.ok() && (*n)[0]["n"].get<int64_t>() > 0) {
          Result<Value> rows = probe.Query(
              "SELECT p.pid FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid) "
              "WHERE a.application_name LIKE 'runbook/%' AND p.command = 'COPY TO'");
          if (rows.ok() && !rows->empty()) {
            (void)probe.Query("SELECT pg_terminate_backend($1::int)",
                              {std::to_string((*rows)[0]["pid"].get<int64_t>())});
            killed = 1;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    r = c.Apply("pg.copy", args);
    done = true;
    killer.join();
  }
  REQUIRE(killed == 1);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("copying table big (pages ") && Catch::Contains("terminat"));
  CHECK_THAT(r.status().message(), !Catch::Contains(blue.server().password));
  CHECK(r.status().message().find('\n') == std::string::npos);  // libpq's lines joined
  // The ranges that committed stay (the step failed; its retry or undo drops
  // the table), and the step is not done.
  const int64_t left = std::stoll(green.Value("SELECT count(*) FROM ONLY big"));
  CHECK(left > 0);
  CHECK(left < 120000);
  CHECK(c.Check("pg.copy", args, c.ctx.LastUndo()) == CheckOutcome::kNotDone);

  // The retry drops the half-filled table the earlier attempt created and
  // redoes it from a new snapshot: every row once.
  c.ctx.previous_undo = c.ctx.LastUndo();
  Result<Value> again = c.Apply("pg.copy", args);
  REQUIRE(again.ok());
  CHECK(green.Value("SELECT count(*) FROM ONLY big") == "120000");
  CHECK(green.Value("SELECT count(*) FROM pg_indexes WHERE tablename = 'big'") == "1");
}

TEST_CASE(
    "pg.copy of a partitioned table named as a whole creates its partitions and carries rows "
    "with generated columns",
    "[postgres][pg.copy][split]") {
  PgTestDb blue(BlueServer()), green(GreenServer());
  blue.Exec(
      "CREATE TABLE m (at date NOT NULL, v int, v2 int GENERATED ALWAYS AS (v * 2) STORED) "
      "PARTITION BY RANGE (at); "
      "CREATE TABLE m_2026 PARTITION OF m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); "
      "CREATE TABLE m_rest PARTITION OF m DEFAULT; "
      "INSERT INTO m (at, v) SELECT date '2025-06-01' + g, g FROM generate_series(1, 1000) g");
  PgCase c;
  c.Connect("blue", blue);
  c.Connect("green", green);
  Result<Value> r =
      c.Apply("pg.copy", {{"source", "blue"}, {"target", "green"}, {"tables", {"m"}}});
  INFO(r.status().message());
  REQUIRE(r.ok());
  CHECK(green.Value("SELECT count(*) FROM m") == "1000");
  CHECK(green.Value("SELECT count(*) FROM m WHERE v2 = v * 2") == "1000");
  CHECK(green.Value("SELECT count(*) FROM m_2026") == blue.Value("SELECT count(*) FROM m_2026"));
  CHECK(green.Value("SELECT count(*) FROM m_rest") == blue.Value("SELECT count(*) FROM m_rest"));
}

}  // namespace runbook::testing
