// LuaRuntime: the sandboxed Lua 5.4 the engine evaluates templates, `when`,
// `assert`, `lua:` steps and `.lua` runbooks in (SPEC section 3).
//
// Sandbox by construction (redis's model): only base, table, string, math and
// utf8 are opened; chunks load as text only; each chunk gets a fresh _ENV
// whose globals are read-only; library tables are read-only proxies; the
// string metatable is hidden; a counting allocator caps memory; a count hook
// enforces the deadline and, once it has fired, fires on every instruction so
// pcall cannot swallow it.
//
// Not thread-safe: one runtime per thread.
#pragma once

#include <memory>
#include <string>

#include "engine/core/clock.h"
#include "engine/core/registry.h"
#include "engine/core/status.h"
#include "engine/core/value.h"

struct lua_State;

namespace runbook {

// What Lua code can reach in the engine.
class LuaHost {
 public:
  virtual ~LuaHost() = default;
  // pg.query{...} and friends; args as the runbook would write them.
  virtual Result<Value> CallPrimitive(const std::string& name, const Value& args) = 0;
  virtual void Log(LogLevel level, const std::string& message) = 0;
};

struct LuaLimits {
  size_t memory_bytes = 64u << 20;
};

class LuaRuntime {
 public:
  // `registry` (may be null) decides which primitive tables exist in Lua
  // (pg.query -> a table `pg` with a function `query`).
  explicit LuaRuntime(const Registry* registry = nullptr, LuaLimits limits = {});
  ~LuaRuntime();
  LuaRuntime(const LuaRuntime&) = delete;
  LuaRuntime& operator=(const LuaRuntime&) = delete;

  // Runs `code` as a chunk; `origin` is where its first line sits in the
  // runbook, so errors read "file:line: message". `env` (an object) becomes
  // read-only globals (params, steps, item, run, result). Returns the chunk's
  // first return value; if the code touched an UNKNOWN value (a rehearsal
  // result), returns MakeUnknown(...) instead of failing.
  Result<Value> Run(const std::string& code, const Pos& origin, const Value& env,
                    SteadyTime deadline, LuaHost* host);
  // Evaluates one expression ("steps.a.result.n > 0").
  Result<Value> Eval(const std::string& expr, const Pos& origin, const Value& env,
                     SteadyTime deadline, LuaHost* host);

  size_t memory_in_use() const;

  struct Impl;  // opaque; public only so the .cc's C callbacks can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// Expands every template in v: a string that is exactly one ${{ expr }}
// becomes the expression's value (typed); other strings with templates
// become strings. Returns MakeUnknown(...) at any place that read UNKNOWN.
Result<Value> ExpandTemplates(LuaRuntime& lua, const Value& v, const Pos& origin,
                              const Value& env, SteadyTime deadline);

}  // namespace runbook
