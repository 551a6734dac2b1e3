#include "tests/bindings/pg_fidelity_util.h"

#include "engine/core/process.h"

#ifndef RUNBOOK_SOURCE_DIR
#define RUNBOOK_SOURCE_DIR "."
#endif

namespace runbook::testing {

void CreateCorpusRoles(const PgServer& server) {
  server.AdminExec(
      "DO $$ BEGIN "
      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'corpus_reader') THEN "
      "CREATE ROLE corpus_reader NOLOGIN; END IF; "
      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'corpus_writer') THEN "
      "CREATE ROLE corpus_writer NOLOGIN; END IF; END $$");
}

void LoadCorpus(const PgDbRef& db) {
  const PgServer& s = db.server;
  const std::string dir = ToolsDir(s.major);
  ProcessSpec spec;
  spec.argv = {dir.empty() ? "psql" : dir + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
               "-h", s.socket_dir, "-p", std::to_string(s.port), "-U", s.superuser,
               "-d", db.name, "-f",
               std::string(RUNBOOK_SOURCE_DIR) + "/tests/fixtures/fidelity_corpus.sql"};
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
}

Result<Value> CompareDatabases(const PgDbRef& source, const PgDbRef& target,
                               const std::string& bin_dir, bool owners) {
  PgCase pg;
  pg.Connect("source", source.server, source.name);
  pg.Connect("target", target.server, target.name);
  Value args{{"source", "source"}, {"target", "target"}, {"owners", owners},
             {"allow_mismatch", true}};
  if (!bin_dir.empty()) args["bin_dir"] = bin_dir;
  return pg.Apply("pg.compare", args);
}

Value RequireSameDatabase(const PgDbRef& source, const PgDbRef& target, const std::string& bin_dir,
                          bool owners) {
  Result<Value> r = CompareDatabases(source, target, bin_dir, owners);
  INFO(r.status().message());
  REQUIRE(r.ok());
  for (const auto& d : (*r)["differences"]) {
    FAIL_CHECK(d["kind"].get<std::string>() << " " << d["object"].get<std::string>() << ": "
                                            << d["source"].get<std::string>() << " vs "
                                            << d["target"].get<std::string>());
  }
  REQUIRE((*r)["mismatched"] == 0);
  return *r;
}

}  // namespace runbook::testing
