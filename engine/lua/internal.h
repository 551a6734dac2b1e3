// Internals shared by the files of engine/lua: the runtime's state, the
// trampoline every C function is bound through, the time budget and the
// sandbox builders. Not part of the engine's interface.
#pragma once

#include <lua.hpp>
#include <string>

#include "engine/lua/convert.h"
#include "engine/lua/runtime.h"

namespace runbook {

struct LuaRuntime::Impl {
  lua_State* L = nullptr;
  const Registry* registry = nullptr;
  size_t used = 0;
  size_t limit = 0;
  // Per call (Run/Eval):
  LuaHost* host = nullptr;
  SteadyTime deadline = SteadyTime::max();
  bool timed_out = false;
  unsigned calls = 0;  // seen by the call hook (budget.cc)
};

namespace lua {

// The runtime owning L (kept in L's extra space).
inline LuaRuntime::Impl* ImplOf(lua_State* L) {
  return *static_cast<LuaRuntime::Impl**>(lua_getextraspace(L));
}

// Every C function Lua calls goes through here: our exceptions become Lua
// errors after the callee's frame (and its destructors) are gone. Lua's own
// errors are not std::exception and pass through untouched.
template <int (*F)(lua_State*)>
int Trampoline(lua_State* L) {
  std::string error;
  try {
    return F(L);
  } catch (const std::exception& e) {
    error = e.what();
  }
  luaL_where(L, 1);  // "file:line: " of the Lua code that called us
  lua_pushlstring(L, error.data(), error.size());
  lua_concat(L, 2);
  return lua_error(L);
}

// --- budget.cc: memory cap and time budget.

// The counting allocator (ud: the Impl): refuses to grow past the cap.
void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize);
// Arms the deadline hooks for a chunk: a count hook for Lua code and a call
// hook for every function call (C functions that C code calls through
// metamethods included). Once the deadline has passed the hook fires on
// every instruction, so pcall cannot swallow the error.
void ArmBudget(lua_State* L);
// Raises the time-budget error if the chunk's deadline has passed. Called by
// the hooks and by the loops of our C functions, which the hooks never see.
void CheckBudget(lua_State* L);
// Counts work done by a C loop and checks the budget every `kStride` units.
class BudgetMeter {
 public:
  explicit BudgetMeter(lua_State* L) : L_(L) {}
  void Add(size_t units) {
    done_ += units;
    if (done_ >= kStride) {
      done_ = 0;
      CheckBudget(L_);
    }
  }
  void SetState(lua_State* L) { L_ = L; }

 private:
  static constexpr size_t kStride = 1 << 14;
  lua_State* L_;
  size_t done_ = 0;
};
// Replaces, in the real library tables, the functions whose C loops the
// hooks cannot interrupt (table.insert/remove/move/sort, string.rep) with
// versions that check the budget, and math.randomseed (shared state).
void InstallBoundedLibraries(lua_State* L);

// --- pattern.cc: string.find/match/gmatch/gsub with a budget.
void InstallBoundedPatterns(lua_State* L);

// --- sandbox.cc
// Opens the allow-listed libraries, hides the string metatable, drops
// string.dump.
void InstallLibraries(lua_State* L);
// Builds the table every chunk reads its globals from (through its own
// _ENV) and keeps it in the registry.
void BuildSandbox(lua_State* L, const Registry* registry);
// Pushes a fresh _ENV for one chunk: empty, read-only, reading through to
// the caller's env values and then to the sandbox.
void PushChunkEnv(lua_State* L, const Value& env);

}  // namespace lua
}  // namespace runbook
