// The whole fidelity corpus through pg.copy and pg.replicate, on one major
// and across real majors (13 -> 17, 15 -> 17: servers in Debian roots with
// their own glibc), each clone checked by the full comparison (pg.compare).
#include "tests/bindings/pg_fidelity_util.h"

namespace runbook::testing {
namespace {

struct Pair {
  int from, to;
};

// The client programs for a copy between the two: the newer major's.
std::string Tools(const Pair& p) { return ToolsDir(std::max(p.from, p.to)); }

Value CopyArgs(const std::string& bin_dir) {
  Value args{{"source", "source"}, {"target", "target"}, {"all", true}, {"keep_owners", true}};
  if (!bin_dir.empty()) args["bin_dir"] = bin_dir;
  return args;
}

}  // namespace

TEST_CASE("pg.copy carries the whole fidelity corpus, checked by the full comparison",
          "[postgres][pg.copy][fidelity]") {
  Pair pair = GENERATE(Pair{15, 15}, Pair{13, 17}, Pair{15, 17});
  INFO("PostgreSQL " << pair.from << " -> " << pair.to);
  const PgServer& from = pair.from == 15 ? BlueServer() : VersionServer(pair.from);
  const PgServer& to = pair.to == 15 ? GreenServer() : VersionServer(pair.to);
  CreateCorpusRoles(from);
  CreateCorpusRoles(to);
  PgTestDb source(from, "corpus"), target(to, "clone");
  LoadCorpus(source);
  PgCase pg;
  pg.Connect("source", source);
  pg.Connect("target", target);

  Result<Value> r = pg.Apply("pg.copy", CopyArgs(Tools(pair)));
  INFO(r.status().message());
  REQUIRE(r.ok());
  CHECK((*r)["large_objects"] == 3);
  CHECK((*r)["materialized_views"] == 2);  // mv_genre_report stays unpopulated, as on the source
  Value cmp = RequireSameDatabase(source, target, Tools(pair));
  CHECK(cmp["large_objects"] == 3);
  CHECK(cmp["rows"].get<int64_t>() > 200000);
  // Inheritance: each table's own rows, once.
  CHECK(target.Value("SELECT count(*) FROM ONLY shop.media") == "3");
  CHECK(target.Value("SELECT count(*) FROM shop.media") == "7");
  CHECK(target.Value("SELECT relispopulated::text FROM pg_class WHERE oid = "
                     "'shop.mv_genre_report'::regclass") == "false");

  // The undo takes the target back to empty: every object the copy made.
  REQUIRE(pg.Undo("pg.copy", CopyArgs(Tools(pair))).ok());
  CHECK(target.Value("SELECT count(*) FROM pg_largeobject_metadata") == "0");
  CHECK(target.Value("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                     "c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', "
                     "'pg_toast')") == "0");
}

TEST_CASE("pg.copy refuses up front, with nothing done, what it would carry less of",
          "[postgres][pg.copy][fidelity]") {
  CreateCorpusRoles(BlueServer());
  PgTestDb source(BlueServer(), "corpus"), target(GreenServer(), "clone");
  LoadCorpus(source);
  PgCase pg;
  pg.Connect("source", source);
  pg.Connect("target", target);
  const std::string before = target.Value("SELECT count(*) FROM pg_class");

  SECTION("owners and grants, unless keep_owners says what to do with them") {
    for (bool rehearse : {true, false}) {
      Value args{{"source", "source"}, {"target", "target"}, {"all", true}};
      Result<Value> r = rehearse ? pg.Rehearse("pg.copy", args) : pg.Apply("pg.copy", args);
      REQUIRE_FALSE(r.ok());
      INFO(r.status().message());
      CHECK(r.status().message().find("would drop owners and grants") != std::string::npos);
      CHECK(r.status().message().find("schema shop with grants") != std::string::npos);
      CHECK(r.status().message().find("large object 424243 owned by corpus_writer") !=
            std::string::npos);
    }
    CHECK(target.Value("SELECT count(*) FROM pg_class") == before);
    // Said: copied without them, and the comparison without owners passes.
    Result<Value> r = pg.Apply("pg.copy", Value{{"source", "source"}, {"target", "target"},
                                                {"all", true}, {"keep_owners", false}});
    INFO(r.status().message());
    REQUIRE(r.ok());
    RequireSameDatabase(source, target, "", /*owners=*/false);
    CHECK_FALSE(CompareDatabases(source, target, "", true)->at("match").get<bool>());
  }
  SECTION("row-level security hiding rows from the source's user") {
    PgTestRole role(BlueServer());
    source.Exec("GRANT USAGE ON SCHEMA shop, \"Audit Log\", données TO " + role.name() +
                "; GRANT SELECT ON ALL TABLES IN SCHEMA shop, \"Audit Log\", données TO " +
                role.name());
    PgCase as_role;
    as_role.Connect("source", source, role.name(), role.password());
    as_role.Connect("target", target);
    Result<Value> r = as_role.Apply("pg.copy", Value{{"source", "source"}, {"target", "target"},
                                                     {"tables", {"shop.customer_notes"}},
                                                     {"keep_owners", false}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("row-level security would hide rows of "
                                    "shop.customer_notes") != std::string::npos);
  }
  SECTION("roles the target lacks, with keep_owners") {
    target.server().AdminExec("DROP ROLE IF EXISTS corpus_reader");
    Result<Value> r = pg.Apply("pg.copy", CopyArgs(""));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("keep_owners needs the roles corpus_reader") !=
          std::string::npos);
    CreateCorpusRoles(target.server());
  }
  if (target.Value("SELECT count(*) FROM pg_largeobject_metadata") == "0") {
    CHECK(target.Value("SELECT count(*) FROM pg_class") == before);  // nothing done
  }
}

TEST_CASE("pg.replicate carries the fidelity corpus with pg.sync_sequences and "
          "pg.sync_unreplicated at the cutover, checked by the full comparison",
          "[postgres][pg.replicate][fidelity]") {
  Pair pair = GENERATE(Pair{13, 17}, Pair{15, 17});
  INFO("PostgreSQL " << pair.from << " -> " << pair.to);
  const PgServer& from = VersionServer(pair.from);
  const PgServer& to = VersionServer(pair.to);
  CreateCorpusRoles(from);
  CreateCorpusRoles(to);
  PgTestDb source(from, "corpus"), target(to, "replica");
  LoadCorpus(source);
  // Logical replication needs a replica identity for UPDATE and DELETE:
  // pg.replicate refuses the table that has none, naming it.
  PgCase pg;
  pg.ctx.run_id_ = "fidelity" + std::to_string(pair.from);  // the replication's names
  pg.Connect("source", source);
  pg.Connect("target", target);
  const std::string tools = Tools(pair);
  Value args{{"source", "source"}, {"target", "target"}, {"all", true}, {"bin_dir", tools},
             {"source_dsn", "host=127.0.0.1 port=" + std::to_string(from.port)},
             {"keep_owners", true}};
  Result<Value> refused = pg.Apply("pg.replicate", args);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("shop.click_log has no primary key or replica identity") !=
        std::string::npos);
  source.Exec("ALTER TABLE shop.click_log REPLICA IDENTITY FULL");

  // Whatever happens below, the subscription and slot go (a database with
  // either cannot be dropped).
  struct TakeDown {
    PgCase& pg;
    const Value& args;
    bool done = false;
    ~TakeDown() {
      if (!done && !pg.ctx.undo_records.empty()) {
        pg.P("pg.replicate").Undo(pg.ctx, args, pg.ctx.undo_records.front());
      }
    }
  } take_down{pg, args};
  Result<Value> r = pg.Apply("pg.replicate", args);
  INFO(r.status().message());
  REQUIRE(r.ok());
  const Value replicate_undo = pg.ctx.LastUndo();
  // Writes while it replicates, caught up before the cutover.
  source.Exec("INSERT INTO shop.customers (name, email) VALUES ('late', 'late@example.com'); "
              "UPDATE shop.play_events SET track_id = track_id WHERE id <= 10; "
              "SELECT nextval('shop.ticket_seq'); SELECT lo_from_bytea(424299, 'late')");
  Result<Value> caught = pg.Apply("pg.wait_caught_up",
                                  Value{{"source", "source"}, {"target", "target"},
                                        {"subscription", (*r)["subscription"]}, {"timeout", "2m"}});
  INFO(caught.status().message());
  REQUIRE(caught.ok());
  REQUIRE(pg.Apply("pg.sync_sequences", Value{{"source", "source"}, {"target", "target"},
                                               {"all", true}}).ok());
  Result<Value> rest = pg.Apply("pg.sync_unreplicated",
                                Value{{"source", "source"}, {"target", "target"},
                                      {"keep_owners", true}});
  INFO(rest.status().message());
  REQUIRE(rest.ok());
  CHECK((*rest)["large_objects"] == 4);
  CHECK((*rest)["unlogged_tables"] == 1);
  CHECK((*rest)["materialized_views"] == 2);
  // The subscription disabled (as the cutover does), then the comparison.
  target.Exec("ALTER SUBSCRIPTION " + (*r)["subscription"].get<std::string>() + " DISABLE");
  RequireSameDatabase(source, target, tools);

  Status undone = pg.P("pg.replicate").Undo(pg.ctx, args, replicate_undo);
  INFO(undone.message());
  REQUIRE(undone.ok());
  take_down.done = true;
  CHECK(target.Value("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                     "c.relnamespace WHERE n.nspname = 'shop'") == "0");
}

}  // namespace runbook::testing
