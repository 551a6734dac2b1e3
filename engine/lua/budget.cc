// The sandbox's memory cap and time budget.
//
// Time: a count hook sees Lua code and a call hook sees every function call,
// C functions that C code calls through metamethods included. What neither
// sees is a C loop that calls nothing: those of the standard library that a
// chunk can make long without allocating (table.insert/remove/move over a
// faked length or range, string.rep of empty pieces, sort's default
// comparison of long strings, the pattern matcher in pattern.cc) are replaced
// by versions that check the budget as they go. Everything else in the
// allow-listed libraries does work proportional to memory it allocates, which
// the cap bounds.
#include <chrono>

#include "engine/core/interrupt.h"
#include "engine/lua/internal.h"

namespace runbook::lua {
namespace {

// Lua instructions between two looks at the clock.
constexpr int kHookInstructions = 1000;
constexpr int kHookMask = LUA_MASKCOUNT | LUA_MASKCALL;

// Calls between two looks at the clock: reading it on every call would
// double the cost of a call.
constexpr unsigned kHookCalls = 32;

void Hook(lua_State* L, lua_Debug* ar) {
  if (ar->event == LUA_HOOKCALL && !ImplOf(L)->timed_out && ++ImplOf(L)->calls % kHookCalls) {
    return;
  }
  CheckBudget(L);
}

// --- table functions with a budget (after Lua 5.4's ltablib.c, MIT licence).

enum TabOps { kTabRead = 1, kTabWrite = 2, kTabLen = 4 };

bool HasField(lua_State* L, const char* key) {
  lua_pushstring(L, key);
  bool has = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 1);
  return has;
}

// A table, or something with the metamethods `ops` needs (as ltablib).
void CheckTab(lua_State* L, int arg, int ops) {
  if (lua_type(L, arg) == LUA_TTABLE) return;
  if (lua_getmetatable(L, arg)) {
    bool ok = (!(ops & kTabRead) || HasField(L, "__index")) &&
              (!(ops & kTabWrite) || HasField(L, "__newindex")) &&
              (!(ops & kTabLen) || HasField(L, "__len"));
    lua_pop(L, 1);
    if (ok) return;
  }
  luaL_checktype(L, arg, LUA_TTABLE);  // raises
}

lua_Integer TabLen(lua_State* L, int arg, int ops) {
  CheckTab(L, arg, ops | kTabLen);
  return luaL_len(L, arg);
}

int Insert(lua_State* L) {
  lua_Integer e = luaL_intop(+, TabLen(L, 1, kTabRead | kTabWrite), 1);  // first empty
  lua_Integer pos;
  switch (lua_gettop(L)) {
    case 2:
      pos = e;
      break;
    case 3: {
      pos = luaL_checkinteger(L, 2);
      luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
      BudgetMeter meter(L);
      for (lua_Integer i = e; i > pos; i--) {
        meter.Add(1);
        lua_geti(L, 1, i - 1);
        lua_seti(L, 1, i);
      }
      break;
    }
    default:
      return luaL_error(L, "wrong number of arguments to 'insert'");
  }
  lua_seti(L, 1, pos);
  return 0;
}

int Remove(lua_State* L) {
  lua_Integer size = TabLen(L, 1, kTabRead | kTabWrite);
  lua_Integer pos = luaL_optinteger(L, 2, size);
  if (pos != size) {
    // Argument #1, as Lua 5.4's own says.
    luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, "position out of bounds");
  }
  lua_geti(L, 1, pos);
  BudgetMeter meter(L);
  for (; pos < size; pos++) {
    meter.Add(1);
    lua_geti(L, 1, pos + 1);
    lua_seti(L, 1, pos);
  }
  lua_pushnil(L);
  lua_seti(L, 1, pos);
  return 1;
}

int Move(lua_State* L) {
  lua_Integer f = luaL_checkinteger(L, 2);
  lua_Integer e = luaL_checkinteger(L, 3);
  lua_Integer t = luaL_checkinteger(L, 4);
  int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
  CheckTab(L, 1, kTabRead);
  CheckTab(L, tt, kTabWrite);
  if (e >= f) {
    luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
    lua_Integer n = e - f + 1;
    luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
    BudgetMeter meter(L);
    if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
      for (lua_Integer i = 0; i < n; i++) {
        meter.Add(1);
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    } else {
      for (lua_Integer i = n - 1; i >= 0; i--) {
        meter.Add(1);
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    }
  }
  lua_pushvalue(L, tt);
  return 1;
}

int Less(lua_State* L) {
  lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
  return 1;
}

// table.sort compares in C when given no function: a comparator that is a
// function makes each comparison a call the call hook sees.
int Sort(lua_State* L) {
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushcfunction(L, Less);
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

// string.rep of empty pieces would loop n times making nothing (n may be
// 2^62); anything else allocates what it loops over, so the cap bounds it.
int Rep(lua_State* L) {
  size_t len, sep_len;
  luaL_checklstring(L, 1, &len);
  luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &sep_len);
  if (len + sep_len == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

// Replaces lib[name] with `f`, which gets the original as upvalue 1.
void Wrap(lua_State* L, const char* lib, const char* name, lua_CFunction f) {
  lua_getglobal(L, lib);
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

void Replace(lua_State* L, const char* lib, const char* name, lua_CFunction f) {
  lua_getglobal(L, lib);
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

}  // namespace

void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* impl = static_cast<LuaRuntime::Impl*>(ud);
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    impl->used -= old;
    return nullptr;
  }
  // Refusing makes Lua raise "not enough memory", which the chunk cannot
  // allocate its way out of.
  if (nsize > old && impl->used - old + nsize > impl->limit) return nullptr;
  void* p = realloc(ptr, nsize);
  if (p) impl->used = impl->used - old + nsize;
  return p;
}

void ArmBudget(lua_State* L) { lua_sethook(L, Hook, kHookMask, kHookInstructions); }

void CheckBudget(lua_State* L) {
  LuaRuntime::Impl* impl = ImplOf(L);
  if (!impl->timed_out) {
    if (std::chrono::steady_clock::now() < impl->deadline && !ActingStopped()) return;
    impl->timed_out = true;
  }
  // From now on every instruction and call raises again, so a pcall that
  // catches this gets nowhere.
  lua_sethook(L, Hook, kHookMask, 1);
  if (ActingStopped()) luaL_error(L, "Lua code stopped: %s", WhyActingStopped().c_str());
  luaL_error(L, "Lua code ran past its time budget (the step's timeout) and was stopped");
}

void InstallBoundedLibraries(lua_State* L) {
  Replace(L, LUA_TABLIBNAME, "insert", Insert);
  Replace(L, LUA_TABLIBNAME, "remove", Remove);
  Replace(L, LUA_TABLIBNAME, "move", Move);
  Wrap(L, LUA_TABLIBNAME, "sort", Sort);
  Wrap(L, LUA_STRLIBNAME, "rep", Rep);
}

}  // namespace runbook::lua
