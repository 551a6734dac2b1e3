// The parser on valid input: the model it builds, positions, includes, the
// JSON Schema and the YAML node conversion.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/parser/node.h"
#include "engine/parser/parser.h"
#include "tests/engine/parser_test_util.h"

namespace runbook {
namespace {

using testing::Dump;
using testing::TempDir;
using testing::TestRegistry;

const char* kFull = R"(format: 1
name: chronicle-pg-upgrade
description: Blue-green upgrade
params:
  namespace: {type: string, default: dsm}
  tables:    {type: list, default: [chronicle_notes, sprint_retrospectives]}
  replicas:  {type: int, default: 1}
  db_password: {type: string, secret: true, env: CHRONICLE_DB_PASSWORD}
  ratio: {type: number, default: 0.5, description: how much}
  dry: {type: bool, required: false}
  opts: {type: map, default: {a: 1}}
connections:
  blue:    {postgres: "host=chronicle-db port=5432"}
  green:   {postgres: {dsn: "postgresql://u@h/db", password: "${{ params.db_password }}"}}
  cluster: {kube: {context: prod, namespace: "${{ params.namespace }}"}}
  bastion: {ssh: {host: bastion.example.com, user: sre, known_hosts: ~/.ssh/known_hosts}}
  inner:   {postgres: {via: bastion, host: db.internal, port: 5432, dbname: app}}
lock: chronicle-db
window: {timezone: Asia/Singapore, days: [sat, sun], start: "02:00", end: "04:00"}
on_failure: stop
steps:
  - id: scale-down
    description: Stop writes
    kube.scale: {conn: cluster, deployment: chronicle-service, replicas: 0}
    rollback: auto
    timeout: 2m
  - id: verify
    pg.compare_counts: {source: blue, target: green, tables: "${{ params.tables }}"}
    assert: result.mismatched == 0 and steps.verify.status ~= nil
    when: steps.scale-down.result.previous > 0
    retries: 3
    retry_delay: 500ms
    idempotent: true
    continue_on_error: true
    approve: "check ${{ params.namespace }}"
  - id: each
    foreach: [1, 2, 3]
    concurrency: 2
    log: "item ${{ item }} after ${{ steps['scale-down'].status }}"
    rollback:
      exec: {argv: [echo, "${{ steps.each.result }}"]}
  - id: code
    foreach: "${{ params.tables }}"
    lua: |
      local n = 1
      return n
    rollback: none
)";

TEST_CASE("a full runbook with every key parses into the model", "[parser]") {
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("full.yaml", kFull, TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  CHECK(diags.empty());
  CHECK(rb->format == 1);
  CHECK(rb->name == "chronicle-pg-upgrade");
  CHECK(rb->description == "Blue-green upgrade");
  CHECK(rb->lock == "chronicle-db");
  CHECK(rb->on_failure == OnFailure::kStop);
  CHECK(rb->path == "full.yaml");
  CHECK(rb->source == kFull);

  REQUIRE(rb->params.size() == 7);
  CHECK(rb->params[0].name == "namespace");
  CHECK(rb->params[0].type == ParamType::kString);
  CHECK(*rb->params[0].default_value == "dsm");
  CHECK_FALSE(rb->params[0].required);
  CHECK(rb->params[1].type == ParamType::kList);
  CHECK(rb->params[1].default_value->dump() == R"(["chronicle_notes","sprint_retrospectives"])");
  CHECK(*rb->params[2].default_value == 1);
  const ParamSpec* pw = rb->FindParam("db_password");
  REQUIRE(pw);
  CHECK(pw->secret);
  CHECK(pw->env == "CHRONICLE_DB_PASSWORD");
  CHECK(pw->required);  // no default
  CHECK(pw->pos.line == 8);
  CHECK(rb->FindParam("ratio")->type == ParamType::kNumber);
  CHECK(rb->FindParam("ratio")->description == "how much");
  CHECK_FALSE(rb->FindParam("dry")->required);
  CHECK(rb->FindParam("opts")->default_value->dump() == R"({"a":1})");

  REQUIRE(rb->connections.size() == 5);
  CHECK(rb->connections[0].type == "postgres");
  CHECK(rb->connections[0].config.dump() == R"({"dsn":"host=chronicle-db port=5432"})");
  CHECK(rb->connections[0].positions.at("/dsn").line == 13);
  CHECK(rb->FindConnection("green")->config["password"] == "${{ params.db_password }}");
  CHECK(rb->FindConnection("bastion")->config["known_hosts"] == "~/.ssh/known_hosts");
  CHECK(rb->FindConnection("inner")->config["port"] == 5432);
  CHECK(rb->FindConnection("cluster")->type == "kube");

  REQUIRE(rb->window);
  CHECK(rb->window->timezone == "Asia/Singapore");
  CHECK(rb->window->days == std::vector<int>{0, 6});
  CHECK(rb->window->start_minute == 120);
  CHECK(rb->window->end_minute == 240);

  REQUIRE(rb->steps.size() == 4);
  const StepSpec& s0 = rb->steps[0];
  CHECK(s0.id == "scale-down");
  CHECK(s0.description == "Stop writes");
  CHECK(s0.action.name == "kube.scale");
  CHECK(s0.action.args.dump() ==
        R"({"conn":"cluster","deployment":"chronicle-service","replicas":0})");
  CHECK(s0.action.pos.line == 24);
  CHECK(s0.action.pos.col == 5);
  CHECK(s0.action.positions.at("/replicas").line == 24);
  CHECK(s0.rollback == RollbackMode::kAuto);
  CHECK(s0.timeout == std::chrono::minutes(2));
  CHECK(s0.pos.line == 22);

  const StepSpec& s1 = rb->steps[1];
  CHECK(*s1.assert_expr == "result.mismatched == 0 and steps.verify.status ~= nil");
  CHECK(s1.assert_pos.line == 29);
  CHECK(*s1.when == R"(steps["scale-down"].result.previous > 0)");  // Lua-ready
  CHECK(s1.when_pos.line == 30);
  CHECK(s1.retries == 3);
  CHECK(s1.retry_delay == std::chrono::milliseconds(500));
  CHECK(s1.idempotent == true);
  CHECK(s1.continue_on_error);
  CHECK(*s1.approve == "check ${{ params.namespace }}");
  CHECK_FALSE(s1.timeout);

  const StepSpec& s2 = rb->steps[2];
  CHECK(s2.foreach->dump() == "[1,2,3]");
  CHECK(s2.concurrency == 2);
  CHECK(s2.action.args.dump() == R"({"message":"item ${{ item }} after ${{ steps['scale-down'].status }}"})");
  CHECK(s2.rollback == RollbackMode::kAction);
  REQUIRE(s2.rollback_action);
  CHECK(s2.rollback_action->name == "exec");
  CHECK(s2.rollback_action->args["argv"][1] == "${{ steps.each.result }}");

  const StepSpec& s3 = rb->steps[3];
  CHECK(*s3.foreach == "${{ params.tables }}");
  CHECK(s3.action.args["code"] == "local n = 1\nreturn n\n");
  CHECK(s3.rollback == RollbackMode::kNone);
}

TEST_CASE("a lua block's position is the line its code starts on", "[parser]") {
  // yaml-cpp marks a block scalar at its `|`; the code starts a line later.
  const char* text = "format: 1\nname: t\nsteps:\n  - id: a\n    lua: |\n      return 1\n"
                     "  - id: b\n    lua: return 2\n  - id: c\n    lua:\n      code: |+\n"
                     "        x = 1\n";
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml", text, TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  const Pos& a = rb->steps[0].action.positions.at("/code");
  CHECK(a.line == 6);
  CHECK(a.col == 7);
  const Pos& b = rb->steps[1].action.positions.at("/code");
  CHECK(b.line == 8);  // inline: the same line
  CHECK(b.col == 10);
  CHECK(rb->steps[2].action.positions.at("/code").line == 12);
  CHECK(rb->steps[0].action.pos.line == 5);  // the action key itself
}

TEST_CASE("defaults: lock is the name, on_failure rollback, no window", "[parser]") {
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml", "format: 1\nname: x1\nsteps:\n  - {id: a, sleep: 30s}\n",
                         TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  CHECK(rb->lock == "x1");
  CHECK(rb->on_failure == OnFailure::kRollback);
  CHECK_FALSE(rb->window);
  CHECK(rb->steps[0].action.args.dump() == R"({"duration":"30s"})");
  CHECK(rb->steps[0].retry_delay == std::chrono::seconds(1));
  CHECK(rb->steps[0].concurrency == 1);
}

TEST_CASE("approve is the action of a step without another one, else a gate", "[parser]") {
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml",
                         "format: 1\nname: t\nsteps:\n  - {id: gate, approve: \"Proceed?\"}\n"
                         "  - {id: act, log: x, approve: \"Scale down?\"}\n",
                         TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  CHECK(rb->steps[0].action.name == "approve");
  CHECK(rb->steps[0].action.args.dump() == R"({"message":"Proceed?"})");
  CHECK_FALSE(rb->steps[0].approve);
  CHECK(rb->steps[1].action.name == "log");
  CHECK(*rb->steps[1].approve == "Scale down?");
}

TEST_CASE("a step may read a dashed id and indexed ids of earlier steps", "[parser]") {
  std::string text = std::string(testing::kHeader) +
                     "  - id: scale-down\n    log: x\n"
                     "  - id: b\n    log: \"${{ steps.scale-down.result }} ${{ steps['scale-down'].status }}\"\n"
                     "    when: steps.scale-down.result.n - 1 > steps.scale-down.result.m\n";
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml", text, TestRegistry(), &diags);
  INFO(Dump(diags));
  CHECK(rb);
}

TEST_CASE("dashed ids in templates and expressions are made Lua-ready", "[parser]") {
  std::string text = std::string(testing::kHeader) +
                     "  - id: scale-down\n    log: x\n"
                     "  - id: b\n    log: \"steps.scale-down: ${{steps.scale-down.result}} ${{ params.replicas }}\"\n"
                     "    assert: steps.scale-down.status == 'ok'\n"
                     "    foreach: \"${{ steps.scale-down.result.items }}\"\n";
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml", text, TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  const StepSpec& b = rb->steps[1];
  CHECK(b.action.args["message"] ==
        R"(steps.scale-down: ${{ steps["scale-down"].result }} ${{ params.replicas }})");
  CHECK(*b.assert_expr == R"(steps["scale-down"].status == 'ok')");
  CHECK(*b.foreach == R"(${{ steps["scale-down"].result.items }})");
}

TEST_CASE("an optional param without a default defaults to null", "[parser]") {
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("t.yaml",
                         "format: 1\nname: t\nparams:\n  o: {type: int, required: false}\n"
                         "  r: {type: int, required: true}\n  n: {default: 3}\n"
                         "steps:\n  - {id: a, log: x}\n",
                         TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  CHECK_FALSE(rb->params[0].required);
  CHECK(rb->params[0].default_value->is_null());
  CHECK(rb->params[1].required);
  CHECK_FALSE(rb->params[1].default_value);
  CHECK(rb->params[2].type == ParamType::kInt);  // inferred from the default
}

TEST_CASE("plain scalars are typed, quoted ones stay strings", "[parser][node]") {
  std::vector<Diagnostic> diags;
  auto tree = LoadYamlTree("t.yaml",
                           "a: 1\nb: '1'\nc: true\nd: \"true\"\ne: 1.5\nf: ~\ng: null\nh: 0x1f\n"
                           "i: 02:00\nj: -3\nk: 1e3\nl: !!str 7\nm:\n",
                           &diags);
  REQUIRE(tree);
  Value v = ToValue(*tree);
  CHECK(v.dump() == R"({"a":1,"b":"1","c":true,"d":"true","e":1.5,"f":null,"g":null,"h":31,)"
                    R"("i":"02:00","j":-3,"k":1000.0,"l":"7","m":null})");
}

TEST_CASE("YAML merge keys add the keys a map does not have", "[parser][node]") {
  std::vector<Diagnostic> diags;
  auto tree = LoadYamlTree("t.yaml",
                           "base: &b {retries: 3, timeout: 1m}\n"
                           "more: &m {retries: 9, when: x}\n"
                           "step: {<<: [*b, *m], timeout: 2m, id: a}\n",
                           &diags);
  INFO(Dump(diags));
  REQUIRE(tree);
  CHECK(ToValue(*tree->Find("step")).dump() ==
        R"({"timeout":"2m","id":"a","retries":3,"when":"x"})");
  diags.clear();
  CHECK_FALSE(LoadYamlTree("t.yaml", "a: {<<: 5}\n", &diags));
  CHECK(diags.at(0).ToString() == "t.yaml:1:9: '<<' merges a map or a list of maps, got an int");
}

TEST_CASE("ToValue records a JSON pointer position for every part", "[parser][node]") {
  std::vector<Diagnostic> diags;
  auto tree = LoadYamlTree("t.yaml", "x:\n  - a\n  - {b/c: 2}\n", &diags);
  REQUIRE(tree);
  PosMap pos;
  ToValue(*tree, &pos);
  CHECK(pos.at("").line == 1);
  CHECK(pos.at("/x/0").line == 2);
  CHECK(pos.at("/x/0").col == 5);
  CHECK(pos.at("/x/1/b~1c").line == 3);
  CHECK(pos.at("/x/1/b~1c").col == 11);
}

TEST_CASE("Diagnostic::ToString reads file:line:col: step: message (did you mean)", "[parser]") {
  Diagnostic d{Pos{"a.yaml", 3, 7}, "s1", "unknown key 'x'", "y"};
  CHECK(d.ToString() == "a.yaml:3:7: step 's1': unknown key 'x' (did you mean 'y'?)");
  Diagnostic e{Pos{"<command line>"}, "", "unknown param 'p'", ""};
  CHECK(e.ToString() == "<command line>: unknown param 'p'");
}

TEST_CASE("the JSON Schema names every action and connection type", "[parser][schema]") {
  Value s = RunbookJsonSchema(TestRegistry());
  CHECK(s["$schema"] == "https://json-schema.org/draft/2020-12/schema");
  Value reparsed = Value::parse(s.dump());  // valid JSON
  CHECK(reparsed == s);
  const Value& step = s["$defs"]["step"];
  CHECK(step["additionalProperties"] == false);
  for (const auto& name : TestRegistry().Names()) {
    CHECK(step["properties"][name]["$ref"] == "#/$defs/action." + name);
    CHECK(s["$defs"].contains("action." + name));
  }
  CHECK(step["oneOf"].size() == TestRegistry().Names().size());
  CHECK(step["properties"].contains("retry_delay"));
  const Value& scale = s["$defs"]["action.kube.scale"];
  CHECK(scale["required"] == Value({"conn", "replicas"}));
  CHECK(scale["additionalProperties"] == false);
  CHECK(scale["allOf"][0]["oneOf"].size() == 2);
  const Value& sleep = s["$defs"]["action.sleep"];
  REQUIRE(sleep["anyOf"].size() == 2);  // the map or the scalar form
  const Value& cmp = s["$defs"]["action.pg.compare_counts"];
  CHECK(cmp["properties"]["mode"]["anyOf"][0]["enum"] == Value({"count", "checksum"}));
  CHECK(s["$defs"]["connection"]["properties"].contains("ssh"));
  CHECK(s["$defs"]["connection.ssh"]["required"] == Value({"host"}));
  CHECK(s["additionalProperties"] == false);
  CHECK(s["required"] == Value({"format", "name", "steps"}));
}

TEST_CASE("an include loads the child runbook relative to the including file", "[parser][include]") {
  TempDir dir;
  dir.Write("sub/child.yaml",
            "format: 1\nname: child\nparams:\n  n: {type: int}\n  m: {type: int, default: 2}\n"
            "steps:\n  - {id: x, log: \"${{ params.n }}\"}\n");
  std::string parent = dir.Write(
      "parent.yaml", "format: 1\nname: parent\nsteps:\n"
                     "  - id: inc\n    include: {runbook: sub/child.yaml, params: {n: 1}}\n"
                     "  - id: again\n    include: {runbook: ./sub/../sub/child.yaml, params: {n: 2}}\n"
                     "  - {id: after, log: \"${{ steps['inc.x'].status }}\"}\n");
  std::vector<Diagnostic> diags;
  auto rb = LoadRunbook(parent, TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  REQUIRE(rb->includes.size() == 1);
  const Runbook* child = rb->FindInclude("sub/child.yaml");
  REQUIRE(child);
  CHECK(child->name == "child");
  CHECK(child == rb->includes.begin()->second.get());  // parsed once
  CHECK(rb->FindInclude("nope.yaml") == nullptr);
  CHECK(rb->FindInclude("child.yaml") == nullptr);  // a suffix of the path is not the path
}

TEST_CASE("LoadRunbook reports a file it cannot read", "[parser]") {
  std::vector<Diagnostic> diags;
  auto rb = LoadRunbook("/nonexistent/x.yaml", TestRegistry(), &diags);
  CHECK_FALSE(rb);
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].ToString() == "/nonexistent/x.yaml: cannot read runbook: No such file or directory");
}

TEST_CASE("a .lua runbook goes to the Lua loader", "[parser]") {
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("r.lua", "return {}", TestRegistry(), &diags);
  CHECK_FALSE(rb);
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].pos.file == "r.lua");
}

TEST_CASE("a .lua runbook's errors point at the line that has the problem", "[parser]") {
  const std::string text =
      "-- a comment, and a local before the table\n"
      "local greeting = \"hello\"\n"
      "return {\n"
      "  format = 1,\n"
      "  name = \"t\",\n"
      "  steps = {\n"
      "    { id = \"one\", log = greeting },\n"
      "    {\n"
      "      id = \"two\",\n"
      "      sleep = { duration = \"1s\", durashun = 2 },\n"
      "    },\n"
      "    { id = \"three\", [\"no.such\"] = {} },\n"
      "  },\n"
      "}\n";
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("r.lua", text, TestRegistry(), &diags);
  CHECK_FALSE(rb);
  REQUIRE(diags.size() == 2);
  for (const auto& d : diags) INFO(d.pos.ToString() << ": " << d.message);
  CHECK(diags[0].pos.file == "r.lua");
  CHECK(diags[0].pos.line == 10);
  CHECK(diags[0].pos.col == 34);  // durashun
  CHECK(diags[1].pos.line == 12);
  CHECK(diags[1].pos.col == 21);  // ["no.such"]
}

}  // namespace
}  // namespace runbook
