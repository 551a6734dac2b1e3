// The toolkit every binding builds its primitives with (engine/core/primitive_kit.h)
// and the typed undo kind of PlanEffect, across every registered primitive.
#include "engine/core/primitive_kit.h"

#include <catch2/catch.hpp>
#include <chrono>

#include "bindings/register.h"
#include "engine/report/primitives_doc.h"

using namespace runbook;
using std::chrono::milliseconds;

TEST_CASE("argument accessors: absent means the fallback, a bad value never throws", "[kit]") {
  const Value args = {{"name", "orders"}, {"n", 7},        {"digits", "42"}, {"flag", true},
                      {"list", {"a", 1}}, {"one", "solo"}, {"nul", nullptr}, {"t", "30s"},
                      {"secs", 1.5},      {"bad", "soon"}, {"neg", -2}};
  CHECK(StrArg(args, "name") == "orders");
  CHECK(StrArg(args, "n") == "7");
  CHECK(StrArg(args, "nul", "dflt") == "dflt");
  CHECK(StrArg(Value("not a map"), "name", "dflt") == "dflt");
  CHECK(BoolArg(args, "flag", false));
  CHECK(BoolArg(args, "name", true));  // not a bool: the fallback
  CHECK(IntArg(args, "n") == 7);
  CHECK(IntArg(args, "digits") == 42);
  CHECK_FALSE(IntArg(args, "name").has_value());
  CHECK_FALSE(IntArg(args, "absent").has_value());
  CHECK(StrListArg(args, "list") == std::vector<std::string>{"a", "1"});
  CHECK(StrListArg(args, "one") == std::vector<std::string>{"solo"});
  CHECK(StrListArg(args, "absent").empty());
}

TEST_CASE("durations: one failure behaviour for every binding", "[kit]") {
  const Value args = {{"t", "30s"}, {"secs", 1.5}, {"bad", "soon"}, {"neg", -2}, {"nul", nullptr}};
  Result<milliseconds> t = DurationArg(args, "t", milliseconds(5));
  REQUIRE(t.ok());
  CHECK(*t == milliseconds(30000));
  CHECK(*DurationArg(args, "secs", milliseconds(5)) == milliseconds(1500));
  CHECK(*DurationArg(args, "absent", milliseconds(5)) == milliseconds(5));
  CHECK(*DurationArg(args, "nul", milliseconds(5)) == milliseconds(5));
  for (const char* key : {"bad", "neg"}) {
    INFO(key);
    Result<milliseconds> b = DurationArg(args, key, milliseconds(5));
    REQUIRE_FALSE(b.ok());
    CHECK(b.status().code() == Status::Code::kInvalid);
    CHECK(b.status().message().find(std::string(key) + " must be a duration such as 30s") == 0);
    CHECK(DurationArgOr(args, key, milliseconds(9)) == milliseconds(9));
  }
  Result<std::optional<milliseconds>> none = OptionalDurationArg(args, "absent");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  CHECK_FALSE(OptionalDurationArg(args, "bad").ok());
}

TEST_CASE("Arg and ConnArg build the specs the validator checks", "[kit]") {
  ArgSpec a = Arg("mode", ArgType::kString, true, "how", {"fast", "safe"});
  CHECK(a.name == "mode");
  CHECK(a.required);
  CHECK(a.choices.size() == 2);
  ArgSpec c = ConnArg("target", "postgres", "where");
  CHECK(c.type == ArgType::kConnection);
  CHECK(c.conn_type == "postgres");
  CHECK(c.required);
  Schema s{"", {a, c}, {}, ""};
  CHECK(CheckArgs(s, {{"mode", "fast"}, {"target", "green"}}).empty());
  CHECK(CheckArgs(s, {{"mode", "slow"}, {"target", "green"}}).size() == 1);
}

TEST_CASE("the undo kind is typed: rollback and plan read the kind, not the text", "[kit]") {
  PlanEffect none = ChangesNothing("SELECT 1", "read-only");
  CHECK(none.nothing_to_undo());
  CHECK(none.reversible());
  CHECK(none.undo == "nothing to undo (read-only)");
  PlanEffect gone = Irreversible("DROP DATABASE x", "the data is gone");
  CHECK_FALSE(gone.reversible());
  CHECK_FALSE(gone.nothing_to_undo());
  // An undo whose text merely starts like "nothing to undo" is still an undo.
  PlanEffect undo{"UPDATE t", UndoKind::kUndoes, "nothing to undo? no: restore t"};
  CHECK_FALSE(undo.nothing_to_undo());
}

TEST_CASE("every primitive's plan states its undo kind consistently", "[kit]") {
  Registry registry;
  RegisterAll(&registry);
  int nothing = 0, undoes = 0, irreversible = 0;
  for (const std::string& n : registry.Names()) {
    INFO(n);
    const Primitive& p = *registry.Find(n);
    const Value args = PlaceholderArgs(p.schema());
    PlanEffect eff;
    try {
      eff = p.Plan(args);
    } catch (const std::exception&) {
      continue;  // a plan that needs concrete values (the docs say so too)
    }
    CHECK_FALSE(eff.undo.empty());
    // The text is for people; it must agree with the kind the engine reads.
    const bool says_nothing = eff.undo.rfind("nothing to undo", 0) == 0;
    CHECK(says_nothing == eff.nothing_to_undo());
    nothing += eff.undo_kind == UndoKind::kNothingToUndo;
    undoes += eff.undo_kind == UndoKind::kUndoes;
    irreversible += eff.undo_kind == UndoKind::kIrreversible;
  }
  // Each kind is used (a sweep that set one kind everywhere would fail here).
  CHECK(nothing >= 10);
  CHECK(undoes >= 10);
  CHECK(irreversible >= 3);
}
