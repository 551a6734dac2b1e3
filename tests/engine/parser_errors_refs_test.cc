// Malformed runbooks, part 2: action arguments, connections, params,
// templates and includes. Each case checks the exact message and
// file:line:col.
#include <catch2/catch.hpp>

#include "engine/parser/parser.h"
#include "tests/engine/parser_test_util.h"

namespace runbook {
namespace {

using testing::Dump;
using testing::HasDiag;
using testing::kOneStep;
using testing::ParseErrors;
using testing::S;
using testing::TempDir;
using testing::TestRegistry;

// ---- action arguments -------------------------------------------------------------

TEST_CASE("argument types come from the schema", "[parser][errors][args]") {
  EXPECT_DIAG(S("  - id: a\n    kube.scale: {conn: cluster, deployment: x, replicas: three}\n"),
              "t.yaml:12:48: step 'a': kube.scale: argument 'replicas': expected int, got string");
  EXPECT_DIAG(S("  - id: a\n    exec: {argv: echo}\n"),
              "t.yaml:12:12: step 'a': exec: argument 'argv': expected list, got string");
  EXPECT_DIAG(S("  - id: a\n    fail: true\n"),
              "t.yaml:12:11: step 'a': fail: argument 'message': expected string, got bool");
}

TEST_CASE("one_of groups and choices are enforced", "[parser][errors][args]") {
  EXPECT_DIAG(S("  - id: a\n    kube.scale: {conn: cluster, deployment: x, statefulset: y, replicas: 1}\n"),
              "t.yaml:12:5: step 'a': kube.scale: takes only one of 'deployment', 'statefulset'");
  EXPECT_DIAG(S("  - id: a\n    pg.compare_counts: {source: blue, target: green, mode: counts}\n"),
              "t.yaml:12:54: step 'a': pg.compare_counts: argument 'mode': 'counts' is not one of "
              "count | checksum (did you mean 'count'?)");
}

TEST_CASE("a scalar given to an action without a scalar form is refused", "[parser][errors][args]") {
  EXPECT_DIAG(S("  - id: a\n    kube.scale: web\n"),
              "t.yaml:12:5: step 'a': kube.scale: expected a map of arguments, got string");
  EXPECT_DIAG(S("  - id: a\n    sleep: 5 minutes\n"),
              "t.yaml:12:12: step 'a': sleep: argument 'duration': expected duration such as "
              "500ms, 30s, 10m or 2h, got '5 minutes'");
}

// ---- connections in steps --------------------------------------------------------

TEST_CASE("a step naming an unknown connection gets a suggestion", "[parser][errors][conn]") {
  EXPECT_DIAG(S("  - id: a\n    kube.scale: {conn: clster, deployment: x, replicas: 1}\n"),
              "t.yaml:12:24: step 'a': kube.scale: argument 'conn': unknown connection 'clster' "
              "(did you mean 'cluster'?)");
}

TEST_CASE("a step naming a connection of the wrong type is refused", "[parser][errors][conn]") {
  EXPECT_DIAG(S("  - id: a\n    pg.compare_counts: {source: blue, target: cluster}\n"),
              "t.yaml:12:47: step 'a': pg.compare_counts: argument 'target': connection 'cluster' "
              "is kube, expected postgres");
}

// ---- connections ---------------------------------------------------------------------

std::string Conn(const std::string& conns) {
  return "format: 1\nname: t\nconnections:\n" + conns + kOneStep;
}

TEST_CASE("an unknown connection type gets a suggestion", "[parser][errors][conn]") {
  EXPECT_DIAG(Conn("  db: {postgress: \"host=x\"}\n"),
              "t.yaml:4:8: connection 'db': unknown connection type 'postgress' (one of kube, "
              "postgres, ssh) (did you mean 'postgres'?)");
}

TEST_CASE("connection arguments are checked against the type's schema", "[parser][errors][conn]") {
  EXPECT_DIAG(Conn("  db: {postgres: {dsn: x, prot: 5432}}\n"),
              "t.yaml:4:27: connection 'db': postgres: unknown argument 'prot' (did you mean "
              "'port'?)");
  EXPECT_DIAG(Conn("  k: {kube: prod}\n"),
              "t.yaml:4:7: connection 'k': kube: expected a map of arguments, got string");
  EXPECT_DIAG(Conn("  s: {ssh: {user: me}}\n"),
              "t.yaml:4:7: connection 's': ssh: missing required argument 'host'");
  EXPECT_DIAG(Conn("  db: {postgres: {port: five}}\n"),
              "t.yaml:4:19: connection 'db': postgres: argument 'port': expected int, got string");
}

TEST_CASE("a connection's via must name an ssh connection", "[parser][errors][conn]") {
  EXPECT_DIAG(Conn("  a: {postgres: x}\n  db: {postgres: {via: a}}\n"),
              "t.yaml:5:24: connection 'db': argument 'via': connection 'a' is postgres, expected "
              "ssh");
  EXPECT_DIAG(Conn("  jump: {ssh: {host: h}}\n  db: {postgres: {via: jmp}}\n"),
              "t.yaml:5:24: connection 'db': argument 'via': unknown connection 'jmp' (did you "
              "mean 'jump'?)");
}

TEST_CASE("a connection must be a map with one type", "[parser][errors][conn]") {
  EXPECT_DIAG(Conn("  db: \"host=x\"\n"),
              "t.yaml:4:7: connection 'db': expected a map {TYPE: config} with TYPE one of kube, "
              "postgres, ssh, got a string");
  EXPECT_DIAG(Conn("  db: {postgres: x, kube: {}}\n"),
              "t.yaml:4:21: connection 'db': has two types, 'postgres' and 'kube'");
}

// ---- params -----------------------------------------------------------------------

std::string Par(const std::string& params) {
  return "format: 1\nname: t\nparams:\n" + params + kOneStep;
}

TEST_CASE("a param type must be known", "[parser][errors][params]") {
  EXPECT_DIAG(Par("  n: {type: integer}\n"),
              "t.yaml:4:13: param 'n': unknown type 'integer' (use string, int, number, bool, list, "
              "map) (did you mean 'int'?)");
}

TEST_CASE("a param default must match its type", "[parser][errors][params]") {
  EXPECT_DIAG(Par("  n: {type: int, default: abc}\n"),
              "t.yaml:4:27: param 'n': default does not match type int: expected int, got 'abc'");
  EXPECT_DIAG(Par("  l: {type: list, default: a}\n"),
              "t.yaml:4:28: param 'l': default does not match type list: expected list such as "
              "[a, b], got 'a'");
  EXPECT_DIAG(Par("  b: {type: bool, default: \"true\"}\n"),
              "t.yaml:4:28: param 'b': default does not match type bool: expected bool, got 'true'");
}

TEST_CASE("a required param cannot have a default", "[parser][errors][params]") {
  EXPECT_DIAG(Par("  n: {type: int, default: 1, required: true}\n"),
              "t.yaml:4:30: param 'n': required params take no default: drop one of them");
}

TEST_CASE("param names, keys and shapes are checked", "[parser][errors][params]") {
  EXPECT_DIAG(Par("  1x: {type: int}\n"),
              "t.yaml:4:3: bad param name '1x': use letters, digits and '_', not starting with a "
              "digit");
  EXPECT_DIAG(Par("  n: {tpye: int}\n"),
              "t.yaml:4:7: param 'n': unknown key 'tpye' (did you mean 'type'?)");
  EXPECT_DIAG(Par("  n: 5\n"),
              "t.yaml:4:6: param 'n' must be a map such as {type: string, default: x}, got an int");
  EXPECT_DIAG(Par("  n: {env: 9X}\n"), "t.yaml:4:12: param 'n': bad environment variable name '9X'");
  EXPECT_DIAG(Par("  n: {secret: maybe}\n"),
              "t.yaml:4:15: param 'n': 'secret' must be true or false, got 'maybe'");
}

// ---- templates ----------------------------------------------------------------------

TEST_CASE("a template naming an unknown param gets a suggestion", "[parser][errors][templates]") {
  EXPECT_DIAG(S("  - id: a\n    log: \"n=${{ params.replica }}\"\n"),
              "t.yaml:12:13: step 'a': unknown param 'replica' in template (did you mean "
              "'replicas'?)");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    assert: result == params.tabels\n"),
              "t.yaml:13:13: step 'a': unknown param 'tabels' in 'assert' (did you mean 'tables'?)");
}

TEST_CASE("Lua syntax errors are found by validate, at their line, before any run",
          "[parser][errors][templates][lua]") {
  EXPECT_DIAG(S("  - id: a\n    log: \"n=${{ 1 + }}\"\n"),
              "t.yaml:12:13: step 'a': Lua syntax error in template: unexpected symbol near "
              "<eof>");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    when: params.replicas ==\n"),
              "t.yaml:13:11: step 'a': Lua syntax error in 'when': unexpected symbol near "
              "<eof>");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    assert: result.n = 1\n"),
              "t.yaml:13:13: step 'a': Lua syntax error in 'assert': <eof> expected near '='");
  // YAML reads " #" as a comment: the expression that is left is reported.
  EXPECT_DIAG(S("  - id: a\n    log: x\n    when: params.replicas > 0 and #params.tables > 0\n"),
              "t.yaml:13:11: step 'a': Lua syntax error in 'when': unexpected symbol near "
              "<eof>");
  // In a lua: block, at the code's own line.
  EXPECT_DIAG(S("  - id: a\n    lua: |\n      local n = 1\n      if n then\n        return n\n"),
              "t.yaml:16:7: step 'a': Lua syntax error: 'end' expected (to close 'if' at line 2) "
              "near <eof>");
  EXPECT_DIAG(S("  - id: a\n    lua: |\n      local x = = 2\n"),
              "t.yaml:13:7: step 'a': Lua syntax error: unexpected symbol near '='");
  // Valid code, dashed ids and templates inside lua: code are not refused.
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml",
                         S("  - id: scale-down\n    log: x\n  - id: b\n"
                           "    when: \"steps.scale-down.result ~= nil and #params.tables > 0\"\n"
                           "    lua: |\n      local t = {}\n      for i = 1, 3 do t[i] = i end\n"
                           "      return {n = #t, r = ${{ params.replicas }}}\n"),
                         TestRegistry(), &diags);
  CHECK(Dump(diags) == "");
  CHECK(rb != nullptr);
}

TEST_CASE("a template naming an unknown step gets a suggestion", "[parser][errors][templates]") {
  EXPECT_DIAG(S("  - id: first\n    log: x\n  - id: b\n    log: \"${{ steps.nope.result }}\"\n"),
              "t.yaml:14:11: step 'b': unknown step 'nope' in template");
  EXPECT_DIAG(S("  - id: scale-down\n    log: x\n  - id: b\n    when: steps.scale-dwn.result\n"
                "    log: x\n"),
              "t.yaml:14:11: step 'b': unknown step 'scale-dwn' in 'when' (did you mean "
              "'scale-down'?)");
}

TEST_CASE("a template may not read a later step or its own", "[parser][errors][templates]") {
  EXPECT_DIAG(S("  - id: a\n    log: \"${{ steps.b.result }}\"\n  - id: b\n    log: x\n"),
              "t.yaml:12:11: step 'a': step 'b' runs later: template can only read earlier steps");
  EXPECT_DIAG(S("  - id: a\n    when: steps.a.status == 'ok'\n    log: x\n"),
              "t.yaml:12:11: step 'a': step 'a' cannot read its own result in 'when' (only assert "
              "and rollback can)");
}

TEST_CASE("'item' outside a foreach is nil: validate says so, wherever it is read",
          "[parser][errors][templates][item]") {
  EXPECT_DIAG(S("  - id: a\n    log: \"n=${{ item.name }}\"\n"),
              "t.yaml:12:13: step 'a': 'item' is nil in template: only a step with foreach has "
              "an item");
  EXPECT_DIAG(S("  - id: a\n    log: x\n    when: item ~= nil\n"),
              "t.yaml:13:11: step 'a': 'item' is nil in 'when': only a step with foreach has an "
              "item");
  // The foreach's own list is made before any item exists.
  EXPECT_DIAG(S("  - id: a\n    foreach: \"${{ item }}\"\n    log: x\n"),
              "t.yaml:12:15: step 'a': 'item' is nil in template: only a step with foreach has "
              "an item");
  // In a lua: block, at the line that reads it.
  EXPECT_DIAG(S("  - id: a\n    lua: |\n      local n = 1\n      return item.name\n"),
              "t.yaml:14:7: step 'a': 'item' is nil in Lua code: only a step with foreach has an "
              "item");
  // A connection is resolved once, for no item.
  EXPECT_DIAG(Conn("  db: {postgres: {dsn: \"host=${{ item }}\"}}\n"),
              "t.yaml:4:30: 'item' is nil in template: only a step with foreach has an item (a "
              "connection is resolved once, for no item)");
  // Not an error: a foreach step reads it everywhere but in its list; a
  // field, a key, a local or a string named item is not the global.
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook(
      "t.yaml",
      S("  - id: a\n    foreach: [x, y]\n    when: item ~= 'z'\n    log: \"${{ item }}\"\n"
        "    assert: result ~= item\n    rollback: {log: \"${{ item }}\"}\n"
        "  - id: b\n    lua: |\n      local t = {item = 1}  -- item\n      local s = 'item'\n"
        "      for _, item in ipairs({1}) do t.x = item end\n      return t.item\n"
        "  - id: c\n    log: \"${{ params.replicas .. ('item') }}\"\n"),
      TestRegistry(), &diags);
  CHECK(Dump(diags) == "");
  CHECK(rb != nullptr);
}

TEST_CASE("a lua: block may read only declared params and earlier steps, at their line",
          "[parser][errors][templates][lua]") {
  EXPECT_DIAG(S("  - id: a\n    lua: |\n      local n = 1\n      return steps.b.result\n"
                "  - id: b\n    log: x\n"),
              "t.yaml:14:7: step 'a': step 'b' runs later: Lua code can only read earlier steps");
  EXPECT_DIAG(S("  - id: a\n    lua: |\n      -- params.nope in a comment is prose\n"
                "      return params.replica\n"),
              "t.yaml:14:7: step 'a': unknown param 'replica' in Lua code (did you mean "
              "'replicas'?)");
}

TEST_CASE(
    "a connection template inside a longer string that is exactly an optional param "
    "without a default is refused; a whole-string one leaves the field unset",
    "[parser][errors][templates][conn]") {
  const std::string params =
      "format: 1\nname: t\nparams:\n  host: {type: string, required: false}\n"
      "  port: {type: int, default: 5432}\nconnections:\n";
  EXPECT_DIAG(params + "  db: {postgres: {dsn: \"host=${{ params.host }}\"}}\n" + kOneStep,
              "t.yaml:7:30: '${{ params.host }}' is nil inside 'host=${{ params.host }}' when "
              "param 'host' is not given (it is optional and has no default): give it a default, "
              "make it required, or write '${{ params.host or '' }}'");
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml",
                         params +
                             "  db: {postgres: {host: \"${{ params.host }}\","
                             " dsn: \"port=${{ params.port }} x=${{ params.host or 'h' }}\"}}\n" +
                             kOneStep,
                         TestRegistry(), &diags);
  CHECK(Dump(diags) == "");
  CHECK(rb != nullptr);
}

TEST_CASE(
    "prose in a lua: block (strings, comments) and fields named params or steps are not "
    "read as references",
    "[parser][errors][templates][lua]") {
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook(
      "t.yaml",
      S("  - id: a\n    lua: |\n      local cfg = {params = {x = 1}}\n"
        "      if cfg.params.x ~= 1 then fail(\"run steps.later first, params.y\") end\n"
        "      return {n = \"item\"}\n  - id: later\n    log: x\n"),
      TestRegistry(), &diags);
  CHECK(Dump(diags) == "");
  CHECK(rb != nullptr);
}

TEST_CASE("a connection that reads a step's result is not opened before that step has run",
          "[parser][errors][templates][conn]") {
  auto runbook = [](const std::string& steps) {
    return "format: 1\nname: t\nconnections:\n"
           "  blue: {postgres: {dsn: \"host=${{ steps.fwd.result.host }}\"}}\n"
           "  green: {postgres: \"host=b\"}\nsteps:\n" +
           steps;
  };
  const std::string check = "  - id: check\n    pg.compare_counts: {source: blue, target: green}\n";
  const std::string fwd = "  - id: fwd\n    log: x\n";
  EXPECT_DIAG(runbook(check + fwd),
              "t.yaml:4:3: connection 'blue' reads steps.fwd, but step 'check' opens it before "
              "'fwd' has run: the result would be nil. Use the connection only after 'fwd'");
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml", runbook(fwd + check), TestRegistry(), &diags);
  CHECK(Dump(diags) == "");
  CHECK(rb != nullptr);
}

TEST_CASE("an unterminated template is reported", "[parser][errors][templates]") {
  EXPECT_DIAG(S("  - id: a\n    log: \"x ${{ params.replicas\"\n"),
              "t.yaml:12:10: step 'a': bad template: unterminated '${{' at offset 2");
  EXPECT_DIAG(S("  - id: a\n    exec:\n      argv: [echo, \"${{ }}\"]\n"),
              "t.yaml:13:20: step 'a': bad template: empty '${{ }}' at offset 0");
}

TEST_CASE("templates in a block scalar point at their line", "[parser][errors][templates]") {
  EXPECT_DIAG(S("  - id: a\n    log: |\n      first line\n      then ${{ params.nope }}\n"),
              "t.yaml:14:12: step 'a': unknown param 'nope' in template");
}

TEST_CASE("connection templates may read params only if declared", "[parser][errors][templates]") {
  EXPECT_DIAG(Conn("  db: {postgres: {dsn: x, password: \"${{ params.pw }}\"}}\n"),
              "t.yaml:4:38: unknown param 'pw' in template");
}

// ---- include --------------------------------------------------------------------------

std::vector<Diagnostic> LoadErrors(const std::string& path) {
  std::vector<Diagnostic> diags;
  auto rb = LoadRunbook(path, TestRegistry(), &diags);
  CHECK_FALSE(rb);
  return diags;
}

std::string IncludeStep(const std::string& args) {
  return "format: 1\nname: p\nsteps:\n  - id: inc\n    include: " + args + "\n";
}

TEST_CASE("an include of a missing file is reported at the include", "[parser][errors][include]") {
  TempDir dir;
  std::string p = dir.Write("p.yaml", IncludeStep("{runbook: nope.yaml}"));
  auto diags = LoadErrors(p);
  INFO(Dump(diags));
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].pos.line == 5);
  CHECK(diags[0].pos.col == 24);
  CHECK_THAT(diags[0].ToString(),
             Catch::StartsWith(p + ":5:24: step 'inc': include: runbook 'nope.yaml' not found"));
}

TEST_CASE("an include path must be a plain path", "[parser][errors][include]") {
  EXPECT_DIAG(IncludeStep("{runbook: 5}"),
              "t.yaml:5:24: step 'inc': include: 'runbook' must be a path");
  EXPECT_DIAG(IncludeStep("{runbook: \"${{ 'x' }}.yaml\"}"),
              "t.yaml:5:24: step 'inc': include: 'runbook' must be a plain path (includes are "
              "loaded before the run)");
}

TEST_CASE("an include cycle is reported with the chain", "[parser][errors][include]") {
  TempDir dir;
  std::string a = dir.Write("a.yaml", IncludeStep("{runbook: b.yaml}"));
  std::string b = dir.Write("b.yaml", IncludeStep("{runbook: a.yaml}"));
  auto diags = LoadErrors(a);
  INFO(Dump(diags));
  CHECK(HasDiag(diags, b + ":5:5: step 'inc': include cycle: a.yaml -> b.yaml -> a.yaml"));
  std::string self = dir.Write("self.yaml", IncludeStep("{runbook: self.yaml}"));
  diags = LoadErrors(self);
  CHECK(HasDiag(diags, self + ":5:5: step 'inc': include cycle: self.yaml -> self.yaml"));
}

TEST_CASE("include params must exist in the child and cover its required ones",
          "[parser][errors][include]") {
  TempDir dir;
  dir.Write("child.yaml",
            "format: 1\nname: c\nparams:\n  count: {type: int}\n  opt: {type: int, default: 1}\n"
            "steps:\n  - {id: x, log: y}\n");
  std::string p = dir.Write("p.yaml", IncludeStep("{runbook: child.yaml, params: {cuont: 1}}"));
  auto diags = LoadErrors(p);
  INFO(Dump(diags));
  CHECK(HasDiag(diags, p + ":5:45: step 'inc': include: 'child.yaml' has no param 'cuont' "
                           "(did you mean 'count'?)"));
  CHECK(HasDiag(diags, p + ":5:5: step 'inc': include: 'child.yaml' needs param 'count'"));
  std::string q = dir.Write("q.yaml", IncludeStep("{runbook: child.yaml, params: {count: x}}"));
  diags = LoadErrors(q);
  CHECK(HasDiag(diags, q + ":5:52: step 'inc': include: param 'count': expected int, got 'x'"));
}

TEST_CASE("errors inside an included runbook name the included file", "[parser][errors][include]") {
  TempDir dir;
  std::string c = dir.Write("child.yaml", "format: 1\nname: c\nsteps:\n  - {id: x, lgo: y}\n");
  std::string p = dir.Write("p.yaml", IncludeStep("{runbook: child.yaml}"));
  auto diags = LoadErrors(p);
  INFO(Dump(diags));
  CHECK(HasDiag(diags, c + ":4:13: step 'x': unknown action 'lgo' (did you mean 'log'?)"));
}

TEST_CASE("a rollback_boundary inside an included runbook is an error at the include, not "
          "silently ignored",
          "[parser][errors][include]") {
  TempDir dir;
  dir.Write("child.yaml",
            "format: 1\nname: c\nsteps:\n  - {id: sync, log: s}\n"
            "  - {id: switch, log: w, rollback_boundary: switched}\n  - {id: switched, log: d}\n");
  std::string p = dir.Write("p.yaml", IncludeStep("{runbook: child.yaml}"));
  auto diags = LoadErrors(p);
  INFO(Dump(diags));
  REQUIRE(diags.size() == 1);
  CHECK_THAT(diags[0].ToString(),
             Catch::StartsWith(p + ":5:24: step 'inc': include: runbook 'child.yaml' has a "
                                   "rollback_boundary (step 'switch'), which only a top-level "
                                   "runbook may have"));
}

TEST_CASE("all problems are reported, not just the first", "[parser][errors]") {
  auto diags = ParseErrors(S("  - id: a\n    retrys: 1\n    log: x\n  - id: a\n    sleep: 5 minutes\n"
                             "  - id: c\n    timeout: soon\n"));
  INFO(Dump(diags));
  CHECK(diags.size() == 5);
}

}  // namespace
}  // namespace runbook
