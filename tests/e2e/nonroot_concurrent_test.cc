// The engine as users run it: not as root, and two copies at once. pg.copy
// keeps its post-data archive in a private directory of each attempt (it
// once wrote /post-data.dump: every copy failed as a non-root user, and two
// at once restored each other's indexes).
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::GreenServer;
using testing::PgTestDb;

constexpr int kNobody = 65534;

void ChownTree(const std::string& dir, int uid) {
  REQUIRE(chown(dir.c_str(), uid, uid) == 0);
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    REQUIRE(lchown(e.path().c_str(), uid, uid) == 0);
  }
}

}  // namespace

TEST_CASE("two pg.copy at once, as a user who is not root, each with its own indexes",
          "[e2e][postgres][pg.copy][nonroot]") {
  E2e t;
  PgTestDb src(BlueServer()), a(GreenServer()), b(GreenServer());
  src.Exec("CREATE TABLE orders (id int PRIMARY KEY, note text); "
           "CREATE INDEX orders_note_idx ON orders (note); "
           "INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 20000) g");
  t.Write("two.yaml", "format: 1\nname: two-copies\n"
                      "params:\n"
                      "  bpw: {type: string, secret: true, env: BLUE_PW}\n"
                      "  gpw: {type: string, secret: true, env: GREEN_PW}\n"
                      "connections:\n"
                      "  src: {postgres: {dsn: \"" + src.Conninfo() + "\", password: \"${{ params.bpw }}\"}}\n"
                      "  t1: {postgres: {dsn: \"" + a.Conninfo() + "\", password: \"${{ params.gpw }}\"}}\n"
                      "  t2: {postgres: {dsn: \"" + b.Conninfo() + "\", password: \"${{ params.gpw }}\"}}\n"
                      "steps:\n"
                      "  - id: copy\n"
                      "    foreach: [t1, t2]\n"
                      "    concurrency: 2\n"
                      "    pg.copy: {source: src, target: \"${{ item }}\", tables: [orders], "
                      "keep_owners: false}\n");
  ChownTree(t.dir(), kNobody);
  ProcessSpec spec = t.Spec({"run", "two.yaml"}, {{"BLUE_PW", BlueServer().password},
                                                  {"GREEN_PW", GreenServer().password},
                                                  {"HOME", t.dir()}});
  spec.argv.insert(spec.argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534",
                                       "--clear-groups", "--"});
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  INFO(r->out << r->err);
  CHECK(r->exit_code == 0);
  for (const PgTestDb* db : {&a, &b}) {
    CHECK(db->Value("SELECT count(*) FROM orders") == "20000");
    CHECK(db->Value("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'") == "2");
  }
  CHECK_FALSE(std::filesystem::exists("/post-data.dump"));
}

}  // namespace runbook::e2e
