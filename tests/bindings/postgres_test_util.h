// Shared setup of the pg.* primitive tests: a registry with the postgres
// binding, a FakeStepContext, and connections to fixture databases.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "bindings/postgres/register.h"
#include "tests/bindings/fake_step_context.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::testing {

class PgCase {
 public:
  PgCase() { RegisterPostgres(&registry_); }

  FakeStepContext ctx;

  // Adds connection `name` to `db` (as `user`, default the superuser).
  void Connect(const std::string& name, const PgTestDb& db, const std::string& user = "",
               const std::string& password = "") {
    Connect(name, db.server(), db.name(), user, password);
  }
  void Connect(const std::string& name, const PgServer& server, const std::string& dbname,
               const std::string& user = "", const std::string& password = "") {
    ctx.AddConnection(name, "postgres",
                      Value{{"dsn", server.Conninfo(dbname, user)},
                            {"password", password.empty() ? server.password : password}});
  }

  Primitive& P(const std::string& name) {
    Primitive* p = registry_.Find(name);
    REQUIRE(p != nullptr);
    return *p;
  }

  // Checks args against the primitive's schema, then applies it.
  Result<Value> Apply(const std::string& name, const Value& args) {
    Primitive& p = P(name);
    std::vector<ArgError> errors = CheckArgs(p.schema(), args);
    for (const auto& e : errors) FAIL_CHECK(name << ": " << e.message);
    ctx.changed.reset();  // what this call reports, not an earlier one
    Result<Value> r = p.Apply(ctx, args);
    // Every result matches what the primitive declares (docs/primitives.md).
    if (r.ok()) {
      if (Status d = CheckDeclaredResult(p, *r); !d.ok()) FAIL_CHECK(d.message());
    }
    return r;
  }
  // The same in a rehearsal (dry_run), as the executor would call it.
  Result<Value> Rehearse(const std::string& name, const Value& args) {
    ctx.dry_run_ = true;
    Result<Value> r = Apply(name, args);
    ctx.dry_run_ = false;
    return r;
  }
  Status Undo(const std::string& name, const Value& args) {
    return P(name).Undo(ctx, args, ctx.LastUndo());
  }
  // What a resume would decide, from the undo record `state`; a "done"
  // result must match the declared shape as Apply's does.
  CheckOutcome Check(const std::string& name, const Value& args, const Value& state) {
    CheckResult r = P(name).Check(ctx, args, state);
    if (r.outcome == CheckOutcome::kDone) {
      if (Status d = CheckDeclaredResult(P(name), r.result); !d.ok()) FAIL_CHECK(d.message());
    }
    return r.outcome;
  }

  const Registry& registry() const { return registry_; }

 private:
  Registry registry_;
};

// A role without privileges (LOGIN, password) on `server`; dropped by the
// destructor.
class PgTestRole {
 public:
  PgTestRole(const PgServer& server, const std::string& extra = "")
      : server_(server), name_(UniqueName("role")), password_("pw-" + name_) {
    server_.AdminExec("CREATE ROLE " + name_ + " LOGIN PASSWORD '" + password_ + "' " + extra);
  }
  ~PgTestRole() {
    try {
      server_.AdminExec("DROP OWNED BY " + name_);
      server_.AdminExec("DROP ROLE IF EXISTS " + name_);
    } catch (const std::exception&) {
    }
  }
  const std::string& name() const { return name_; }
  const std::string& password() const { return password_; }

 private:
  const PgServer& server_;
  std::string name_, password_;
};

}  // namespace runbook::testing
