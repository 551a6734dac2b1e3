#include <catch2/catch.hpp>

#include "engine/lua/runtime.h"
#include "engine/lua/template.h"

using namespace runbook;

namespace {

SteadyTime In(int ms) { return std::chrono::steady_clock::now() + std::chrono::milliseconds(ms); }

Result<Value> Run(LuaRuntime& lua, const std::string& code, int budget_ms = 2000) {
  Value env{{"params", {{"x", 41}, {"name", "blue"}}},
            {"steps", {{"skipped", {{"status", "unknown"}, {"result", MakeUnknown("skip")}}}}}};
  return lua.Run(code, Pos{"rb.yaml", 10, 5}, env, In(budget_ms), nullptr);
}

// A host that records the primitive calls Lua makes.
class RecordingHost : public LuaHost {
 public:
  Result<Value> CallPrimitive(const std::string& name, const Value& args) override {
    calls.push_back(name + " " + args.dump());
    return Value{{"ok", true}};
  }
  void Log(LogLevel, const std::string& message) override { logs.push_back(message); }
  std::vector<std::string> calls, logs;
};

}  // namespace

TEST_CASE("Lua returns typed values and reads params", "[lua]") {
  LuaRuntime lua;
  auto r = Run(lua, "return {n = params.x + 1, list = {1, 2, 'three'}, name = params.name}");
  REQUIRE(r.ok());
  CHECK((*r)["n"] == 42);
  CHECK((*r)["list"] == Value({1, 2, "three"}));
  CHECK((*r)["name"] == "blue");
}

TEST_CASE("each sandbox escape attempt fails with an error and the runtime survives", "[lua][sandbox]") {
  LuaRuntime lua;
  const char* attempts[] = {
      "return io.open('/etc/passwd')",
      "return os.execute('touch /tmp/escaped')",
      "return require('os')",
      "return dofile('/etc/passwd')",
      "return loadfile('/etc/passwd')",
      "return debug.getinfo(1)",
      "return package.loaded",
      "return load('\\27Lua\\84\\0')()",
      "return load(string.dump(function() end))",
      "x = 1",
      "_G.x = 1",
      "string.rep = nil",
      "getmetatable('').__index = {}",
      "getmetatable('').__index.upper = nil",
      "rawset(string, 'rep', nil)",
      "setmetatable(string, {})",
      "collectgarbage('stop')",
  };
  for (const char* code : attempts) {
    INFO(code);
    auto r = Run(lua, code);
    CHECK_FALSE(r.ok());
  }
  // Still healthy, and the libraries are intact.
  auto r = Run(lua, "return string.rep('ab', 2) .. string.upper('x')");
  REQUIRE(r.ok());
  CHECK(*r == "ababX");
}

TEST_CASE("load of text works but never sees writable globals", "[lua][sandbox]") {
  LuaRuntime lua;
  auto r = Run(lua, "local f = load('y = 2') return f()");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("read-only"));
  auto ok = Run(lua, "return load('return 1 + 2')()");
  REQUIRE(ok.ok());
  CHECK(*ok == 3);
}

TEST_CASE("an infinite loop is stopped by the time budget, even inside pcall", "[lua][sandbox]") {
  LuaRuntime lua;
  auto start = std::chrono::steady_clock::now();
  auto r = Run(lua, "while true do end", 200);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(), Catch::Contains("rb.yaml:10:5"));
  auto r2 = Run(lua, "while true do pcall(function() while true do end end) end", 200);
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.status().code() == Status::Code::kTimeout);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < std::chrono::seconds(3));
  CHECK(Run(lua, "return 1").ok());
}

TEST_CASE("a memory bomb is stopped by the cap and the runtime survives", "[lua][sandbox]") {
  LuaRuntime lua(nullptr, LuaLimits{16u << 20});
  auto r = Run(lua, "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(100) .. i end");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("memory cap"));
  auto r2 = Run(lua, "return string.rep('x', 1 << 30)");
  REQUIRE_FALSE(r2.ok());
  auto ok = Run(lua, "return #string.rep('x', 1000)");
  REQUIRE(ok.ok());
  CHECK(*ok == 1000);
}

TEST_CASE("Lua errors point at the runbook file and line", "[lua]") {
  LuaRuntime lua;
  auto r = lua.Run("local a = 1\nlocal b = nil\nreturn b.c", Pos{"runbooks/up.yaml", 20, 7},
                   Value::object(), In(1000), nullptr);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::StartsWith("runbooks/up.yaml:22:"));
  auto syntax = lua.Run("return (", Pos{"runbooks/up.yaml", 3, 1}, Value::object(), In(1000),
                        nullptr);
  REQUIRE_FALSE(syntax.ok());
  CHECK_THAT(syntax.status().message(), Catch::StartsWith("runbooks/up.yaml:3:"));
}

TEST_CASE("touching an UNKNOWN rehearsal result makes the value UNKNOWN, not an error", "[lua][unknown]") {
  LuaRuntime lua;
  for (const char* code : {"return steps.skipped.result.rows", "return #steps.skipped.result",
                           "return steps.skipped.result + 1", "return steps.skipped.result .. 'x'",
                           "return {a = steps.skipped.result}"}) {
    INFO(code);
    auto r = Run(lua, code);
    REQUIRE(r.ok());
    CHECK(ContainsUnknown(*r));
  }
  auto status = Run(lua, "return steps.skipped.status");
  REQUIRE(status.ok());
  CHECK(*status == "unknown");
}

TEST_CASE("primitives are callable from Lua with the same arguments", "[lua]") {
  Registry registry;
  struct Fake : Primitive {
    std::string name() const override { return "pg.query"; }
    const Schema& schema() const override {
      static Schema s{"", {{"conn", ArgType::kString}, {"sql", ArgType::kString}}, {}, "sql"};
      return s;
    }
    Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
    PlanEffect Plan(const Value&) const override { return {}; }
    Result<Value> Apply(StepContext&, const Value&) override { return Value(); }
  };
  registry.Add(std::make_unique<Fake>());
  LuaRuntime lua(&registry);
  RecordingHost host;
  auto r = lua.Run("local r = pg.query{conn = 'blue', sql = 'select 1'}\n"
                   "log.info('got', r.ok)\n"
                   "pg.query('select 2')\n"
                   "return r.ok",
                   Pos{"x.yaml", 1, 1}, Value::object(), In(1000), &host);
  REQUIRE(r.ok());
  CHECK(*r == true);
  REQUIRE(host.calls.size() == 2);
  // Lua tables have no key order: compare values, not text.
  CHECK(host.calls[0].substr(0, 9) == "pg.query ");
  CHECK(nlohmann::json::parse(host.calls[0].substr(9)) ==
        nlohmann::json::parse(R"({"conn":"blue","sql":"select 1"})"));
  CHECK(host.calls[1] == R"(pg.query {"sql":"select 2"})");
  CHECK(host.logs == std::vector<std::string>{"got\ttrue"});
  // The namespace table is read-only.
  CHECK_FALSE(lua.Run("pg.query = nil", Pos{"x.yaml", 1, 1}, Value::object(), In(1000), &host).ok());
}

TEST_CASE("templates keep the type of a single expression and interpolate otherwise", "[lua][template]") {
  LuaRuntime lua;
  Value env{{"params", {{"tables", {"a", "b"}}, {"n", 3}}}};
  Value args{{"tables", "${{ params.tables }}"},
             {"label", "n=${{ params.n }} first=${{ params.tables[1] }}"},
             {"nested", {{"count", "${{ params.n * 2 }}"}}},
             {"plain", "no template"}};
  auto r = ExpandTemplates(lua, args, Pos{"t.yaml", 1, 1}, env, In(1000));
  REQUIRE(r.ok());
  CHECK((*r)["tables"] == Value({"a", "b"}));
  CHECK((*r)["label"] == "n=3 first=a");
  CHECK((*r)["nested"]["count"] == 6);
  CHECK((*r)["plain"] == "no template");
}

TEST_CASE("a nil inside a longer text is an error, never an empty string", "[lua][template]") {
  LuaRuntime lua;
  Value env{{"params", {{"db", "app"}}}};
  // Outside a foreach, item is nil: "dbname=" would connect to the default database.
  auto r = ExpandTemplates(lua, Value("host=h dbname=${{ item }}"), Pos{"t.yaml", 4, 9}, env,
                           In(1000));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("t.yaml:4:9: '${{ item }}' is nil inside 'host=h dbname=${{ item }}'"));
  // Said explicitly, empty is fine; a whole-string nil stays nil (an argument left out).
  r = ExpandTemplates(lua, Value("x=${{ item or '' }}"), Pos{"t.yaml", 1, 1}, env, In(1000));
  REQUIRE(r.ok());
  CHECK(*r == "x=");
  r = ExpandTemplates(lua, Value("${{ item }}"), Pos{"t.yaml", 1, 1}, env, In(1000));
  REQUIRE(r.ok());
  CHECK(r->is_null());
}

TEST_CASE("template expressions are scanned in linear time and constant stack", "[lua][template]") {
  auto start = std::chrono::steady_clock::now();
  std::string name(1 << 20, 'a');  // std::regex overflowed the stack on these
  CHECK(ReferencedSteps("steps." + name + ".result") == std::set<std::string>{name});
  CHECK(ReferencedSteps("steps[ '" + name + "' ]") == std::set<std::string>{name});
  CHECK(ReferencedParams("params . " + name + " .. params[\"x\"]") ==
        std::set<std::string>{name, "x"});
  CHECK(RewriteDashedIds("steps." + name + "-b.result", {name + "-b"}) ==
        "steps[\"" + name + "-b\"].result");
  CHECK(DottedStepNames("steps.a-b + steps.c + steps.-x + mysteps.d") ==
        std::vector<std::string>{"a-b", "c"});
  CHECK(DottedStepNames("steps.a-steps.b") == std::vector<std::string>{"a-steps"});
  CHECK(ReadsStepsDynamically("pairs(steps)"));
  CHECK(ReadsStepsDynamically("steps[k].result"));
  CHECK(ReadsStepsDynamically(std::string(1 << 20, ' ') + "steps"));
  CHECK_FALSE(ReadsStepsDynamically("steps.a + steps ['b'] + steps . c + mysteps + steps_x"));
  CHECK(ReadsGlobal("item.name", "item"));
  CHECK(ReadsGlobal("x == item", "item"));
  CHECK(ReadsGlobal("f(a, item)", "item"));
  CHECK(ReadsGlobal("{n = item}", "item"));
  CHECK_FALSE(ReadsGlobal("t.item + t:item() + {item = 1}", "item"));
  CHECK_FALSE(ReadsGlobal("'item' .. \"item\" .. [==[item]==] -- item\n--[[ item ]] 1", "item"));
  CHECK_FALSE(ReadsGlobal("items + my_item + item_x", "item"));
  CHECK_FALSE(ReadsGlobal("local a, item = 1, 2 return item", "item"));
  CHECK_FALSE(ReadsGlobal("for _, item in ipairs(t) do end return item", "item"));
  CHECK_FALSE(ReadsGlobal("local f = function(a, item) return item end", "item"));
  CHECK_FALSE(ReadsGlobal("function m.f:g(item) return item end", "item"));
  CHECK(ReadsGlobal(std::string(1 << 20, ' ') + "item", "item"));
  CHECK(BlankLuaProse("a -- b\nc --[[ d\ne ]] f '--' [[--]]") ==
        "a     \nc       \n     f '  '       ");
  CHECK(BlankLuaProse("fail('run steps.x first') return steps['x'] .. \"a\\\"b\"") ==
        "fail('                 ') return steps['x'] .. \"    \"");
  CHECK(ForeachBase("each[12]") == "each");
  CHECK(ForeachBase("a[x[1]") == "a[x");
  CHECK(ForeachBase("each[x]") == "each[x]");
  CHECK(ForeachBase("each[]") == "each[]");
  CHECK(ForeachBase(name + "]") == name + "]");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}
