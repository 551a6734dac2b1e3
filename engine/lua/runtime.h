// LuaRuntime: the sandboxed Lua 5.4 the engine evaluates templates, `when`,
// `assert`, `lua:` steps and `.lua` runbooks in.
//
// Sandbox by construction (redis's model; engine/lua/sandbox.cc): only base,
// table, string, math and utf8 are opened; chunks load as text only; each
// chunk gets a fresh _ENV whose globals are read-only; library tables are
// read-only proxies that cannot be enumerated to the real tables; the string
// metatable is hidden. No chunk can change what a later one sees.
//
// Budgets (engine/lua/budget.cc, pattern.cc): a counting allocator caps
// memory; count and call hooks enforce the deadline and, once it has fired,
// fire on every instruction so pcall cannot swallow it; the library's C
// loops the hooks cannot see (patterns, table.insert/remove/move/sort,
// string.rep) check the deadline themselves; no user code runs with hooks
// off (no __gc, xpcall handlers run after unwinding). Every call into Lua
// that can raise is protected, so no input aborts the engine: it becomes an
// error naming the code's origin.
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

// Compiles `code` as a Lua 5.4 text chunk and runs nothing: what `validate`
// uses to report a syntax error before any run. On error, *line is the
// chunk's line (1-based) and the message is Lua's, without the chunk name.
Status CheckLuaSyntax(const std::string& code, int* line);

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

  // Whether a step's result can be read by later Lua (templates, when,
  // assert, lua steps): at most 64 levels of lists and maps and, once in
  // Lua, at most half the memory cap, leaving the code that reads it room to
  // work. Fails saying which, so the producing step fails instead of every
  // later one.
  Status CheckFits(const Value& result) const;

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
