// pg.dump and pg.restore run by the real `runbook` binary against the blue
// server: a rehearsal that writes nothing, and a run whose failure rolls
// both back, with the password in none of the output or the state store.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/bindings/postgres_test_util.h"
#include "tests/e2e/e2e_util.h"

namespace runbook::testing {
namespace {
namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string DbCount(const std::string& name) {
  return BlueServer().AdminValue("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'");
}

}  // namespace

TEST_CASE("a runbook dumps, restores and verifies; a later failure rolls both back",
          "[postgres][pg.dump][pg.restore][e2e]") {
  const PgServer& s = BlueServer();
  PgTestDb source(s, "e2esrc");
  source.Exec("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 250);");
  const std::string target = UniqueName("e2edst");
  e2e::E2e e;
  const std::string file = e.P("src.dump");
  auto conn = [&](const std::string& db) {
    return "{postgres: {dsn: \"" + s.Conninfo(db) + "\", password: \"${{ params.pw }}\"}}";
  };
  e.Write("r.yaml",
          "format: 1\nname: dump-restore\n"
          "params:\n  pw: {type: string, secret: true, env: RUNBOOK_TEST_PG_PW}\n"
          "  fail: {type: bool, default: false}\n"
          "connections:\n  blue: " +
              conn("postgres") + "\n  src: " + conn(source.name()) + "\n  dst: " + conn(target) +
              "\n"
              "steps:\n"
              "  - id: dump\n    pg.dump: {conn: blue, database: " +
              source.name() + ", file: " + file +
              "}\n    rollback: auto\n"
              "  - id: restore\n    pg.restore: {conn: blue, database: " +
              target + ", file: " + file +
              ", create: true}\n    rollback: auto\n"
              "  - id: verify\n    when: not run.dry_run\n"
              "    pg.compare_counts: {source: src, target: dst, all: true}\n"
              "  - id: boom\n    when: params.fail\n    fail: on purpose\n");
  const std::map<std::string, std::string> env{{"RUNBOOK_TEST_PG_PW", s.password}};

  e2e::CliResult r = e.Run({"run", "r.yaml", "--dry-run"}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(file));
  CHECK(DbCount(target) == "0");

  r = e.Run({"run", "r.yaml", "-p", "fail=true"}, env);
  INFO(r.All());
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("step 'boom': on purpose"));
  CHECK_FALSE(fs::exists(file));
  CHECK(DbCount(target) == "0");
  const std::string id = e.LastRunId();
  CHECK(e.RunStatus(id)["status"] == "rolled_back");
  CHECK(e.Steps(id)["verify"]["status"] == "succeeded");
  CHECK(r.All().find(s.password) == std::string::npos);
  for (const auto& f : fs::directory_iterator(fs::path(e.state()).parent_path())) {
    INFO(f.path());
    CHECK(Slurp(f.path().string()).find(s.password) == std::string::npos);
  }

  r = e.Run({"run", "r.yaml"}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK(fs::exists(file));
  CHECK(s.AdminValue("SELECT count(*) FROM t", target) == "250");
  r = e.Run({"rollback", e.LastRunId()}, env);
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(file));
  CHECK(DbCount(target) == "0");
}

}  // namespace runbook::testing
