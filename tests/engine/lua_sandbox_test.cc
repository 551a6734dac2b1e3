// The sandbox battery: hostile chunks, each with the precise error it must
// end with, and the proof that the chunks after them still see the original
// libraries and the same time budget (issue 14, item 6).
#include <catch2/catch.hpp>

#include "engine/lua/runtime.h"

using namespace runbook;

namespace {

using Steady = std::chrono::steady_clock;

SteadyTime In(int ms) { return Steady::now() + std::chrono::milliseconds(ms); }

// Records the primitive calls Lua makes.
class Host : public LuaHost {
 public:
  Result<Value> CallPrimitive(const std::string& name, const Value& args) override {
    calls.push_back(name);
    return Value{{"ok", true}};
  }
  void Log(LogLevel, const std::string& message) override { logs.push_back(message); }
  std::vector<std::string> calls, logs;
};

// A registry with a pg.query, so that `pg` exists in Lua.
struct FakeQuery : Primitive {
  std::string name() const override { return "pg.query"; }
  const Schema& schema() const override {
    static Schema s{"", {{"sql", ArgType::kString}}, {}, "sql"};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  PlanEffect Plan(const Value&) const override { return {}; }
  Result<Value> Apply(StepContext&, const Value&) override { return Value(); }
};

struct Sandbox {
  Sandbox() {
    registry.Add(std::make_unique<FakeQuery>());
    lua = std::make_unique<LuaRuntime>(&registry);
  }
  Result<Value> Run(const std::string& code, int budget_ms = 2000) {
    return lua->Run(code, Pos{"rb.yaml", 10, 5}, Value{{"params", {{"n", 1}}}}, In(budget_ms),
                    &host);
  }
  // What every chunk must still see after a hostile one.
  void ExpectOriginals() {
    auto r =
        Run("return string.format('%s-%d', 'a', 1) .. ('x'):rep(2) .. table.concat({1, 2}, ',') .. "
            "type(pg.query) .. tostring(select('#', string.find('abc', 'b'))) .. type(log.info) .. "
            "type(setmetatable) .. math.floor(math.pi)");
    REQUIRE(r.ok());
    CHECK(*r == "a-1xx1,2function2functionfunction3");
    auto q = Run("return pg.query('select 1').ok");
    REQUIRE(q.ok());
    CHECK(*q == true);
  }
  Registry registry;
  std::unique_ptr<LuaRuntime> lua;
  Host host;
};

struct Hostile {
  const char* code;
  const char* error;  // a part of the message
};

}  // namespace

TEST_CASE("pairs on a library or namespace never hands out the real table", "[lua][sandbox]") {
  Sandbox s;
  auto names = s.Run(
      "local n = 0 for k, v in pairs(string) do n = n + 1 end "
      "local f, state = pairs(string) "
      "return {n = n, state_is_proxy = rawequal(state, string), next = next(string) == nil}");
  REQUIRE(names.ok());
  CHECK((*names)["n"].get<int>() > 10);
  CHECK((*names)["state_is_proxy"] == true);
  CHECK((*names)["next"] == true);
  const Hostile attempts[] = {
      {"local _, real = pairs(string) real.format = function() return 'pwned' end", "read-only"},
      {"for k, v in pairs(string) do string[k] = nil end", "read-only"},
      {"local f, t = pairs(pg) t.query = function() return 'pwned' end", "read-only"},
      {"local it, t, k = pairs(table) local _, v = it(t, k) t.insert = v", "read-only"},
      {"local _, real = pairs(log) real.info = nil", "read-only"},
      {"log.info = function() end", "read-only"},
      {"pg.query = function() end", "read-only"},
  };
  for (const auto& a : attempts) {
    INFO(a.code);
    auto r = s.Run(a.code);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(a.error));
    s.ExpectOriginals();
  }
}

TEST_CASE("a battery of hostile chunks: each fails with its error, the next sees the originals",
          "[lua][sandbox]") {
  Sandbox s;
  const Hostile attempts[] = {
      {"string.format = nil", "attempt to write 'format': globals and libraries are read-only"},
      {"math.pi = 3", "attempt to write 'pi'"},
      {"table.insert = print", "attempt to write 'insert'"},
      {"rawset(string, 'rep', nil)", "global 'rawset'"},
      {"getmetatable('').__index.upper = nil", "attempt to index a boolean value"},
      {"setmetatable(string, {})", "cannot change a protected metatable"},
      {"setmetatable(log, {})", "cannot change a protected metatable"},
      {"setmetatable(_ENV, {})", "cannot change a protected metatable"},
      {"getmetatable(_ENV).__index.string = {}", "attempt to index a boolean value"},
      {"_ENV.string = {}", "attempt to write 'string'"},
      {"string = {}", "attempt to write 'string'"},
      {"load('string = {}')()", "attempt to write 'string'"},
      {"load('pg = nil', 'x', 't')()", "attempt to write 'pg'"},
      {"return coroutine.wrap(print)", "global 'coroutine'"},
      {"return debug.sethook()", "global 'debug'"},
      {"return collectgarbage('stop')", "global 'collectgarbage'"},
      {"return string.dump(print)", "field 'dump'"},
      {"return load(string.dump(print))", "field 'dump'"},
      {"local f, e = load('\\27Lua') error(e)", "attempt to load a binary chunk"},
      {"local f, e = load(('-'):rep(2 << 20)) error(e)", "larger than the sandbox's limit"},
      {"setmetatable({}, {__gc = function() end})", "__gc is not allowed in the sandbox"},
      {"setmetatable({}, {__gc = true})", "__gc is not allowed in the sandbox"},
      {"setmetatable({}, {__mode = 'k'})", "__mode is not allowed in the sandbox"},
      {"return string.rep('x', 1 << 30)", "went over its memory cap of 64 MiB"},
      {"return ('x'):rep(1 << 20):rep(1 << 20)", "resulting string too large"},
      {"return table.concat({('x'):rep(1 << 20)}, ('y'):rep(1 << 20), 1, 2)", "at index 2"},
      {"return select('#', table.unpack({}, 1, 1e8))", "too many results to unpack"},
      {"return select('#', string.byte(('x'):rep(1 << 21), 1, -1))", "string slice too long"},
      {"local t = setmetatable({}, {}) getmetatable(t).__index = t return t.x",
       "'__index' chain too long"},
      {"local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x",
       "stack overflow"},
  };
  for (const auto& a : attempts) {
    INFO(a.code);
    auto r = s.Run(a.code);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(a.error));
    s.ExpectOriginals();
  }
  // A metamethod set after setmetatable is no finalizer (Lua marks objects
  // for finalization only in setmetatable), and load() with an env of its
  // own writes only there.
  auto late = s.Run(
      "local mt = {} local t = setmetatable({}, mt) mt.__gc = function() while true do end end "
      "t = nil for i = 1, 2e5 do local x = {i} end "
      "local env = {} load('string = 1', 'x', 't', env)() return env.string");
  REQUIRE(late.ok());
  CHECK(*late == 1);
  s.ExpectOriginals();
}

TEST_CASE("math.randomseed in one chunk does not decide the numbers of the next",
          "[lua][sandbox]") {
  Sandbox s;
  auto second_after_42 =
      s.Run("math.randomseed(42) math.random(1, 1 << 40) return math.random(1, 1 << 40)");
  REQUIRE(second_after_42.ok());
  REQUIRE(s.Run("math.randomseed(42) return math.random(1, 1 << 40)").ok());
  auto next = s.Run("return math.random(1, 1 << 40)");
  REQUIRE(next.ok());
  CHECK(*next != *second_after_42);
}

TEST_CASE("no Lua code outlives its budget: handlers, metamethods, patterns, C loops",
          "[lua][sandbox][budget]") {
  Sandbox s;
  const char* const kLoops[] = {
      // xpcall's handler: Lua runs a real one with hooks off.
      "xpcall(function() while true do end end, function() while true do end end)",
      "xpcall(error, function() while true do end end)",
      "while true do xpcall(function() while true do end end, function(e) return e end) end",
      "while true do pcall(function() while true do end end) end",
      // Metamethods called from C and from Lua.
      "local t = setmetatable({}, {__index = function() while true do end end}) return t.x",
      "local mt = {__eq = function() while true do end end} "
      "return setmetatable({}, mt) == setmetatable({}, mt)",
      "local mt = {__lt = function() while true do end end} "
      "return setmetatable({}, mt) < setmetatable({}, mt)",
      "return #setmetatable({}, {__len = function() while true do end end})",
      "return setmetatable({}, {__concat = function() while true do end end}) .. 'x'",
      "return tostring(setmetatable({}, {__tostring = function() while true do end end}))",
      "print(setmetatable({}, {__tostring = function() while true do end end}))",
      "return ('%s'):format(setmetatable({}, {__tostring = function() while true do end end}))",
      "do local x <close> = setmetatable({}, {__close = function() while true do end end}) end",
      "return ('aaa'):gsub('a', function() while true do end end)",
      "table.sort({3, 2, 1}, function() while true do end end)",
      // Catastrophic patterns: C backtracking the hooks never enter.
      "return ('a'):rep(40):find(('a*'):rep(40) .. 'b')",
      "return ('a'):rep(40):match(('a-'):rep(40) .. 'b')",
      "return ('a'):rep(2e5):find('.-b')",
      "return ('a'):rep(40):gsub(('a*'):rep(40) .. 'b', '')",
      "for m in ('a'):rep(40):gmatch(('a*'):rep(40) .. 'b') do end",
      "return ('x'):rep(4e6):find(('x'):rep(2e6) .. 'y', 1, true)",
      // C loops over a length or range that allocate nothing.
      "table.insert(setmetatable({}, {__len = function() return 1 << 53 end}), 1, 'x')",
      "table.remove(setmetatable({}, {__len = function() return 1 << 53 end}), 1)",
      "table.move({}, 1, 1 << 53, 1)",
      "table.move({}, 1, 1 << 53, 1, setmetatable({}, {__newindex = rawequal}))",
      "table.sort(setmetatable({}, {__len = function() return (1 << 31) - 2 end, "
      "__index = rawlen, __newindex = rawequal}))",
      "local s = ('a'):rep(1 << 22) local t = {} for i = 1, 3000 do t[i] = s end table.sort(t)",
      "return table.concat(setmetatable({}, {__index = function() return '' end}), '', 1, 1 << 53)",
  };
  for (const char* code : kLoops) {
    INFO(code);
    auto start = Steady::now();
    auto r = s.Run(code, 200);
    auto took = Steady::now() - start;
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Status::Code::kTimeout);
    CHECK(r.status().message() ==
          "rb.yaml:10:5: Lua code ran past its time budget (the step's timeout) and was stopped");
    CHECK(took < std::chrono::milliseconds(1500));
    s.ExpectOriginals();
  }
  // Empty pieces are no work at all, however many.
  auto start = Steady::now();
  auto empty = s.Run("return #string.rep('', 1 << 62) + #string.rep('', 1 << 62, '')");
  REQUIRE(empty.ok());
  CHECK(*empty == 0);
  CHECK(Steady::now() - start < std::chrono::milliseconds(200));
}

TEST_CASE(
    "a finalizer cannot outlive the runtime: destroying it after hostile chunks returns at once",
    "[lua][sandbox][budget]") {
  auto start = Steady::now();
  {
    Sandbox s;
    for (const char* code :
         {"setmetatable({}, {__gc = function() while true do end end})",
          "local mt = {} setmetatable({}, mt) mt.__gc = function() while true do end end",
          "local t = {} for i = 1, 100 do t[i] = setmetatable({}, {__gc = function() end}) end"}) {
      s.Run(code);
    }
  }
  CHECK(Steady::now() - start < std::chrono::milliseconds(1000));
}
