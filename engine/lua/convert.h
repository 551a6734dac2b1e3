// Conversions between Lua values and Values, and the UNKNOWN sentinel.
// Internal to engine/lua.
#pragma once

#include <string>

#include "engine/core/value.h"

struct lua_State;

namespace runbook::lua {

// Thrown by C functions bound into Lua; the trampoline turns it into a Lua
// error once the throwing frame is gone.
struct LuaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Creates the UNKNOWN userdata and its metatable in the registry. Call once
// per state.
void InstallUnknown(lua_State* L);
// The error object raised when code touches UNKNOWN (a light userdata).
void* UnknownErrorTag();
void PushUnknown(lua_State* L);
bool IsUnknownAt(lua_State* L, int idx);

// Pushes v; UNKNOWN values become the UNKNOWN userdata; null becomes nil.
void PushValue(lua_State* L, const Value& v);
// Converts the value at idx. A table whose keys are exactly 1..n (or an
// empty table) becomes a list; other tables become objects with string
// keys. Throws LuaError for functions, coroutines and cycles.
Value ToValue(lua_State* L, int idx);

}  // namespace runbook::lua
