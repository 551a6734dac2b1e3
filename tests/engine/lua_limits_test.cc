// Crashes that must be errors (issue 14, item 7): conversions between Lua
// and Values with cycles, deep nesting, shared tables and values larger than
// the memory cap; and the budgeted pattern functions, checked against Lua's
// own string library on the same inputs.
#include <catch2/catch.hpp>
#include <lua.hpp>

#include "engine/lua/runtime.h"

using namespace runbook;

namespace {

using Steady = std::chrono::steady_clock;

SteadyTime In(int ms) { return Steady::now() + std::chrono::milliseconds(ms); }

Result<Value> Run(LuaRuntime& lua, const std::string& code, const Value& env = Value::object()) {
  return lua.Run(code, Pos{"rb.yaml", 10, 5}, env, In(5000), nullptr);
}

// Records nothing; answers every primitive.
class Host : public LuaHost {
 public:
  Result<Value> CallPrimitive(const std::string&, const Value&) override { return Value(1); }
  void Log(LogLevel, const std::string&) override {}
};

struct AnyPrimitive : Primitive {
  std::string name() const override { return "pg.query"; }
  const Schema& schema() const override {
    static Schema s{"", {{"sql", ArgType::kString}}, {}, "sql"};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  PlanEffect Plan(const Value&) const override { return {}; }
  Result<Value> Apply(StepContext&, const Value&) override { return Value(); }
};

// `code` returning one value, as text ("type:value|..."), evaluated the
// same way in the sandbox and in a plain Lua state with the real string
// library.
const char kShow[] =
    "local function show(...) local out = {} for i = 1, select('#', ...) do "
    "local v = select(i, ...) out[#out + 1] = type(v) .. ':' .. tostring(v) end "
    "return table.concat(out, '|') end return show(";

std::string InPlainLua(const std::string& expr) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  std::string code = kShow + expr + ")";
  bool ok = luaL_dostring(L, code.c_str()) == LUA_OK;
  size_t len;
  const char* text = lua_tolstring(L, -1, &len);
  std::string out = (ok ? "" : "error: ") + std::string(text, len);
  lua_close(L);
  return out;
}

}  // namespace

TEST_CASE("the budgeted pattern functions answer exactly as Lua's own", "[lua][pattern]") {
  LuaRuntime lua;
  const char* const kExprs[] = {
      "string.find('hello world', 'o w')",
      "string.find('hello world', 'o', 6)",
      "string.find('hello', 'l+')",
      "string.find('hello', '(l)(l)')",
      "string.find('hello', '()ll()')",
      "string.find('a.b', '.', 1, true)",
      "string.find('a+b', '+', 1, true)",
      "string.find('a+b', 'b', -1, true)",
      "string.find('abc', '')",
      "string.find('abc', '', 10)",
      "string.find('abc', 'c', -1)",
      "string.find('abc', '^b')",
      "('abc'):find('b', 1, true)",
      "string.match('key = value', '(%w+)%s*=%s*(%w+)')",
      "string.match('  trim  ', '^%s*(.-)%s*$')",
      "string.match('THE (quick) fox', '%((%a+)%)')",
      "string.match('f(a(b)c)d', '%b()')",
      "string.match('THE quick', '%f[%a]%a+', 4)",
      "string.match('2024-01-02', '(%d+)-(%d+)-(%d+)')",
      "string.match('abab', '(ab)%1')",
      "string.match('x_1 y', '[%a_][%w_]*')",
      "string.match('a]b', '[]]')",
      "string.match('a-b', '[a%-]+')",
      "string.match('hello', '^h?ello$')",
      "string.match('', 'x*')",
      "string.match('aaa', 'a-$')",
      "string.match('a\\0b', '%z')",
      "string.match('Hello', '[^%l]')",
      "string.match('x9', '[%D]')",
      "string.match('a.b', '%.')",
      "string.match('a$b', 'a$b')",
      "string.match('ab', '()')",
      "string.gsub('hello world', 'o', '0')",
      "string.gsub('hello world', '(o)', '[%1]')",
      "string.gsub('hello', '', '-')",
      "string.gsub('abc', '%w', '%0%0')",
      "string.gsub('abc', '%w', '%%')",
      "string.gsub('abc', '()', '%1')",
      "string.gsub('abc', '%w', {a = 1, b = false})",
      "pcall(string.gsub, 'abc', '%w', {a = 1, b = true})",
      "string.gsub('abc', '%w', function(c) if c == 'b' then return nil end return c:upper() end)",
      "string.gsub('hello world', '%w+', '<%0>', 1)",
      "string.gsub('abc', '^a', 'x')",
      "string.gsub('a,b,,c', ',', ';')",
      "string.gsub('abc', 'x*', '-')",
      "(function() local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do "
      "t[#t + 1] = k .. v end return table.concat(t, ' ') end)()",
      "(function() local t = {} for w in ('one two  three'):gmatch('%a+') do t[#t + 1] = w end "
      "return table.concat(t, ',') end)()",
      "(function() local n = 0 for w in string.gmatch('abc', '') do n = n + 1 end return n end)()",
      "(function() local t = {} for p in string.gmatch('hello', '()l') do t[#t + 1] = p end "
      "return table.concat(t, ',') end)()",
      "(function() local t = {} for w in string.gmatch('one two three', '%a+', 5) do "
      "t[#t + 1] = w end return table.concat(t, ',') end)()",
      "(function() local t = {} for w in string.gmatch('abc', '.', 10) do t[#t + 1] = w end "
      "return #t end)()",
      "pcall(string.find, 'a', '%')",
      "pcall(string.find, 'a', '[a')",
      "pcall(string.match, 'a', '(a')",
      "pcall(string.match, 'a', 'a)')",
      "pcall(string.match, 'a', '%1')",
      "pcall(string.gsub, 'a', 'a', '%2')",
      "pcall(string.gsub, 'a', 'a', '%x')",
      "pcall(string.find, 'a', '%f')",
      "pcall(string.find, 'a', '%b')",
      "pcall(string.match, ('a'):rep(40), ('(a)'):rep(33))",
      "pcall(string.match, ('a'):rep(300), ('a?'):rep(250) .. 'b')",
      "pcall(string.gsub, 'abc', '%w', {a = {}})",
      "pcall(string.gsub, 'abc', '%w', true)",
      "pcall(string.find)",
      "pcall(string.gmatch, 'a')",
      "string.rep('ab', 3, ', ')",
      "string.rep('', 5, '-')",
      "string.rep('x', 0)",
      "(function() local t = {5, 1, 4} table.sort(t) return table.concat(t, ',') end)()",
      "(function() local t = {1, 2, 3} table.insert(t, 2, 9) table.insert(t, 7) "
      "return table.concat(t, ',') end)()",
      "(function() local t = {1, 2, 3} local r = table.remove(t, 1) return r, #t, t[1] end)()",
      "(function() local t = {1, 2, 3} return table.remove(t), table.remove({}) end)()",
      "(function() local t = table.move({1, 2, 3}, 1, 3, 2) return table.concat(t, ',') end)()",
      "(function() local t = table.move({1, 2, 3}, 2, 3, 1) return table.concat(t, ',') end)()",
      "pcall(table.insert, {1}, 5, 2)",
      "pcall(table.insert, {1}, 1, 2, 3)",
      "pcall(table.remove, {1}, 5)",
      "pcall(table.sort, {3, 'a'})",
  };
  for (const char* expr : kExprs) {
    INFO(expr);
    auto r = Run(lua, kShow + std::string(expr) + ")");
    REQUIRE(r.ok());
    CHECK(r->get<std::string>() == InPlainLua(expr));
  }
}

TEST_CASE("a result that is cyclic, too deep or too big is an error naming where",
          "[lua][convert]") {
  LuaRuntime lua;
  struct Bad {
    const char* code;
    const char* error;
  };
  const Bad bad[] = {
      {"local t = {} t.self = t return t",
       "rb.yaml:10:5: the result is cyclic: a table contains itself (at self)"},
      {"local t = {a = {b = {}}} t.a.b[1] = t.a return t",
       "rb.yaml:10:5: the result is cyclic: a table contains itself (at a.b[1])"},
      {"local t = {} local c = t for i = 1, 64 do c.x = {} c = c.x end return t",
       "rb.yaml:10:5: the result is nested more than 64 levels deep (at x.x.x.x"},
      {"local t = {} local c = t for i = 1, 1e5 do c[1] = {} c = c[1] end return t",
       "rb.yaml:10:5: the result is nested more than 64 levels deep (at [1][1][1]"},
      {"local t = {} for i = 1, 60 do t = {t, t} end return t",
       "rb.yaml:10:5: the result is larger than 64 MiB (the memory cap) once converted; a table "
       "that "
       "appears in several places counts each time"},
      {"return {[1] = 'a', ['1'] = 'b'}", "has the key '1' both as a number and a string"},
      {"return {[1.5] = 1}", "has a key that is a number (keys must be strings or integers)"},
      {"return {f = print}",
       "rb.yaml:10:5: the result is a function, which cannot be a value (at f)"},
      {"return {n = 0/0}", "is a number that is not finite (at n)"},
  };
  for (const auto& b : bad) {
    INFO(b.code);
    auto start = Steady::now();
    auto r = Run(lua, b.code);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(b.error));
    CHECK(Steady::now() - start < std::chrono::seconds(2));
  }
  // 22 levels crashed the engine before; 64 are allowed, lists or maps.
  for (const char* code :
       {"local t = {} local c = t for i = 1, 63 do c.x = {} c = c.x end return t",
        "local t = {} local c = t for i = 1, 22 do c[1] = {} c = c[1] end return t",
        "local t = {} local c = t for i = 1, 40 do c[1] = {a = {}} c = c[1] end "
        "return t"}) {
    INFO(code);
    CHECK(Run(lua, code).ok());
  }
  // Many keys convert in linear time.
  auto start = Steady::now();
  auto wide = Run(lua, "local t = {} for i = 1, 2e5 do t['k' .. i] = i end return t");
  REQUIRE(wide.ok());
  CHECK(wide->size() == 200000);
  CHECK(Steady::now() - start < std::chrono::seconds(3));
}

TEST_CASE("a primitive's arguments that cannot be values are an error, not a crash",
          "[lua][convert]") {
  Registry registry;
  registry.Add(std::make_unique<AnyPrimitive>());
  LuaRuntime lua(&registry);
  Host host;
  auto r = lua.Run("local t = {} t.t = t return pg.query{sql = 'x', extra = t}",
                   Pos{"rb.yaml", 3, 1}, Value::object(), In(2000), &host);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(
      r.status().message(),
      Catch::Contains("pg.query: an argument is cyclic: a table contains itself (at extra.t)"));
  auto deep = lua.Run(
      "local t = {} local c = t for i = 1, 100 do c[1] = {} c = c[1] end "
      "return pg.query{sql = 'x', extra = t}",
      Pos{"rb.yaml", 3, 1}, Value::object(), In(2000), &host);
  REQUIRE_FALSE(deep.ok());
  CHECK_THAT(deep.status().message(), Catch::Contains("nested more than 64 levels deep"));
}

TEST_CASE("values larger than the memory cap are an error naming the code, never an abort",
          "[lua][memory]") {
  LuaRuntime lua(nullptr, LuaLimits{8u << 20});
  Value env{{"steps", {{"big", {{"result", std::string(16u << 20, 'x')}}}}}};
  for (int i = 0; i < 2; ++i) {  // the same again: nothing is left broken
    auto r = Run(lua, "return 1", env);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(),
               Catch::StartsWith("rb.yaml:10:5: the values this code reads (params, step results, "
                                 "item) do not fit in Lua (memory cap 8 MiB)"));
    auto t = ExpandTemplates(lua, Value("${{ #steps.big.result }}"), Pos{"rb.yaml", 10, 5}, env,
                             In(1000));
    CHECK_FALSE(t.ok());
    auto ok = Run(lua, "return 1");
    REQUIRE(ok.ok());
    CHECK(*ok == 1);
  }
  Value deep = 1;
  for (int i = 0; i < 100; ++i) deep = Value::array({deep});
  auto r = Run(lua, "return 1", Value{{"params", {{"deep", deep}}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("value nested more than 64 levels deep"));
  // A state too small for the sandbox itself is an exception, not abort().
  CHECK_THROWS_WITH(LuaRuntime(nullptr, LuaLimits{16u << 10}),
                    Catch::Contains("cannot create the Lua sandbox: not enough memory"));
}

TEST_CASE("CheckFits refuses results later Lua could not read", "[lua][memory]") {
  LuaRuntime lua;  // 64 MiB
  CHECK(lua.CheckFits(Value{{"rows", {1, 2, 3}}, {"text", std::string(1 << 20, 'x')}}).ok());
  Status big = lua.CheckFits(Value{{"stdout", std::string(40u << 20, 'x')}});
  REQUIRE_FALSE(big.ok());
  CHECK(big.message() ==
        "the result would take about 41 MiB in Lua, more than half of its memory cap (64 MiB), "
        "so later templates and Lua steps could not read it; return less");
  Value deep = 1;
  for (int i = 0; i < 65; ++i) deep = Value::array({deep});
  Status too_deep = lua.CheckFits(deep);
  REQUIRE_FALSE(too_deep.ok());
  CHECK_THAT(too_deep.message(), Catch::StartsWith("the result nests more than 64 levels"));
  Value ok_deep = 1;
  for (int i = 0; i < 64; ++i) ok_deep = Value::array({ok_deep});
  CHECK(lua.CheckFits(ok_deep).ok());
}
