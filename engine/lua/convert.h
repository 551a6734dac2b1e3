// Conversions between Lua values and Values, and the UNKNOWN sentinel.
// Internal to engine/lua.
#pragma once

#include <stdexcept>
#include <string>

#include "engine/core/value.h"

struct lua_State;

namespace runbook::lua {

// Thrown by C functions bound into Lua; the trampoline turns it into a Lua
// error once the throwing frame is gone.
struct LuaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// How deep a value may nest, either way (the Lua stack and the C++ stack
// grow with it).
constexpr int kMaxNesting = 64;

// Creates the UNKNOWN userdata and its metatable in the registry. Call once
// per state.
void InstallUnknown(lua_State* L);
// The error object raised when code touches UNKNOWN (a light userdata).
void* UnknownErrorTag();
void PushUnknown(lua_State* L);
bool IsUnknownAt(lua_State* L, int idx);

// What a Value costs in Lua: an estimate of the bytes it takes once pushed,
// and how many levels of tables it nests (0 for a scalar). Stops descending
// below kMaxNesting levels.
struct ValueShape {
  size_t bytes = 0;
  int depth = 0;
};
ValueShape MeasureValue(const Value& v);

// Pushes v; UNKNOWN values become the UNKNOWN userdata; null becomes nil.
// Throws LuaError if v nests more than kMaxNesting levels; raises Lua's memory
// error past the cap. Protected mode only (it may raise).
void PushValue(lua_State* L, const Value& v);
// Converts the value at idx. A table whose keys are exactly 1..n (or an
// empty table) becomes a list; other tables become objects with string
// keys. Throws LuaError (the message completes "the value ...") for
// functions, cycles, more than kMaxNesting levels of tables and values whose
// estimated size passes `max_bytes` (a table shared by several places counts
// each time). Protected mode only (it may raise).
Value ToValue(lua_State* L, int idx, size_t max_bytes);

}  // namespace runbook::lua
