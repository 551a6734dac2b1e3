// docs/primitives.md is generated from the registry (`runbook docs`) and
// must be current: a primitive or argument added without regenerating it
// fails here.
#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <lua.hpp>
#include <sstream>

#include "bindings/register.h"
#include "engine/report/lua_stubs.h"
#include "engine/report/primitives_doc.h"

using namespace runbook;

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("the primitives reference names every primitive, argument and connection type",
          "[docs]") {
  Registry registry;
  RegisterAll(&registry);
  const std::string md = PrimitivesMarkdown(registry);
  REQUIRE(registry.Names().size() > 30);
  for (const std::string& n : registry.Names()) {
    INFO(n);
    const size_t at = md.find("## `" + n + "`\n");
    REQUIRE(at != std::string::npos);
    const size_t end = md.find("\n## ", at + 1);
    const std::string section = md.substr(at, end == std::string::npos ? end : end - at);
    for (const ArgSpec& a : registry.Find(n)->schema().args) {
      CHECK(section.find("| `" + a.name + "` | ") != std::string::npos);
    }
    // Every primitive says what it returns, each field (nested ones by path).
    const auto& result = registry.Find(n)->schema().result;
    REQUIRE(result.has_value());
    CHECK(section.find("\nResult: ") != std::string::npos);
    std::function<void(const FieldSpec&, const std::string&)> rows = [&](const FieldSpec& f,
                                                                         const std::string& at) {
      const std::string prefix = f.type == FieldType::kList ? at + "[]" : at;
      for (const FieldSpec& sub : f.fields) {
        const std::string path = prefix.empty() ? sub.name : prefix + "." + sub.name;
        CHECK(section.find("| `" + path + "` | ") != std::string::npos);
        rows(sub, path);
      }
    };
    rows(*result, "");
    CHECK(section.find("- Rehearsal (`run --dry-run`): ") != std::string::npos);
    CHECK(section.find("- Resume after a crash mid-step: ") != std::string::npos);
  }
  for (const std::string& n : registry.ConnectionTypeNames()) {
    CHECK(md.find("### `" + n + "`\n") != std::string::npos);
  }
  // What a plan cannot show without values says so; here every plan can.
  CHECK(md.find("depend on the arguments") == std::string::npos);
}

TEST_CASE("docs/primitives.md is what runbook docs prints", "[docs]") {
  Registry registry;
  RegisterAll(&registry);
  const std::string checked_in = Slurp(std::string(RUNBOOK_SOURCE_DIR) + "/docs/primitives.md");
  INFO("regenerate it: ./build/runbook docs > docs/primitives.md");
  CHECK(checked_in == PrimitivesMarkdown(registry));
}

TEST_CASE("docs/lua/runbook.lua is what runbook stubs prints, valid Lua naming every primitive",
          "[docs]") {
  Registry registry;
  RegisterAll(&registry);
  const std::string stubs = LuaStubs(registry);
  INFO("regenerate it: ./build/runbook stubs > docs/lua/runbook.lua");
  CHECK(Slurp(std::string(RUNBOOK_SOURCE_DIR) + "/docs/lua/runbook.lua") == stubs);
  lua_State* L = luaL_newstate();
  int loaded = luaL_loadbuffer(L, stubs.data(), stubs.size(), "runbook.lua");
  INFO((loaded == LUA_OK ? "" : lua_tostring(L, -1)));
  CHECK(loaded == LUA_OK);
  lua_close(L);
  for (const std::string& name : registry.Names()) {
    INFO(name);
    CHECK(stubs.find("---@class runbook.args." + name + "\n") != std::string::npos);
    if (name != "lua" && name != "log" && name != "fail") {
      CHECK(stubs.find("function " + name + "(args) end\n") != std::string::npos);
    }
  }
  CHECK(stubs.find("---@field conn string a connection name (postgres): the database\n") !=
        std::string::npos);
}
