// The sandbox every chunk runs in (redis's model): allow-listed globals,
// read-only proxies of the libraries that cannot be enumerated to the real
// tables, no user code that runs outside the time budget (no __gc
// finalizers, xpcall handlers run after unwinding, when hooks are on), and a
// fresh _ENV per chunk. Nothing a chunk can reach is shared writable state,
// so no chunk can change what another one sees.
#include <vector>

#include "engine/lua/internal.h"

namespace runbook::lua {
namespace {

std::string ArgsToText(lua_State* L, int first) {
  std::string out;
  int n = lua_gettop(L);
  for (int i = first; i <= n; ++i) {
    if (i > first) out += "\t";
    size_t len;
    const char* s = luaL_tolstring(L, i, &len);
    out.append(s, len);
    lua_pop(L, 1);
  }
  return out;
}

int LogAt(lua_State* L, LogLevel level, int first) {
  std::string msg = ArgsToText(L, first);
  if (LuaHost* host = ImplOf(L)->host) host->Log(level, msg);
  return 0;
}
int LogDebug(lua_State* L) { return LogAt(L, LogLevel::kDebug, 1); }
int LogInfo(lua_State* L) { return LogAt(L, LogLevel::kInfo, 1); }
int LogWarn(lua_State* L) { return LogAt(L, LogLevel::kWarn, 1); }
int LogError(lua_State* L) { return LogAt(L, LogLevel::kError, 1); }

// Calls the primitive named by upvalue 1 with one table (or a scalar, for
// primitives with a scalar form) as its arguments.
int CallPrimitive(lua_State* L) {
  LuaRuntime::Impl* impl = ImplOf(L);
  std::string name = lua_tostring(L, lua_upvalueindex(1));
  // log{...}/log("x") reaches here through __call with the table first.
  int first = lua_toboolean(L, lua_upvalueindex(2)) ? 2 : 1;
  Value args;
  try {
    if (lua_type(L, first) == LUA_TTABLE) {
      args = ToValue(L, first, impl->limit);
      if (args.is_array() && args.empty()) args = Value::object();
    } else if (!lua_isnoneornil(L, first)) {
      const Primitive* p = impl->registry ? impl->registry->Find(name) : nullptr;
      if (!p || p->schema().scalar_arg.empty()) {
        throw LuaError(name + " takes a table of arguments: " + name + "{...}");
      }
      args = Value::object();
      args[p->schema().scalar_arg] = ToValue(L, first, impl->limit);
    } else {
      args = Value::object();
    }
  } catch (const LuaError& e) {
    throw LuaError(name + ": an argument " + e.what());
  }
  if (!impl->host) throw LuaError(name + " cannot be called here (only in lua: steps)");
  // Time spent in the primitive is not Lua's: the budget moves with it.
  auto called = std::chrono::steady_clock::now();
  Result<Value> r = impl->host->CallPrimitive(name, args);
  if (impl->deadline != SteadyTime::max())
    impl->deadline += std::chrono::steady_clock::now() - called;
  if (!r.ok()) throw LuaError(r.status().message());
  PushValue(L, *r);
  return 1;
}

int Fail(lua_State* L) {
  std::string msg = ArgsToText(L, 1);
  throw LuaError(msg.empty() ? std::string("failed") : msg);
}

// The largest text load() compiles: the compiler is C code the hooks do not
// see, so its work is bounded by the size of what it is given.
constexpr size_t kMaxLoadBytes = 1 << 20;

// load() that only accepts text and, without an explicit env, runs in the
// sandbox's read-only globals.
int SafeLoad(lua_State* L) {
  size_t len;
  const char* code = luaL_checklstring(L, 1, &len);
  const char* name = luaL_optstring(L, 2, "=(load)");
  int env = lua_isnoneornil(L, 4) ? 0 : 4;
  if (len > kMaxLoadBytes) {
    lua_pushnil(L);
    lua_pushfstring(L, "load: chunk of %I bytes is larger than the sandbox's limit of %I",
                    static_cast<lua_Integer>(len), static_cast<lua_Integer>(kMaxLoadBytes));
    return 2;
  }
  if (luaL_loadbufferx(L, code, len, name, "t") != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (env) {
    lua_pushvalue(L, env);
  } else {
    // A fresh read-only environment over the sandbox, never the shared
    // sandbox table itself (writes to it would outlive the chunk).
    lua_newtable(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.sandbox.envmt");
    lua_setmetatable(L, -2);
  }
  lua_setupvalue(L, -2, 1);
  return 1;
}

// setmetatable() that refuses finalizers: Lua runs __gc with hooks off (no
// time budget), at any allocation of any later chunk and at lua_close.
// Weak tables are refused too: the collector's work on ephemerons is not
// bounded by the time budget either (a chain of 40,000 weak-keyed entries
// took 0.8 s of one hookless collection in Lua 5.4.4, growing quadratically).
int SafeSetmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    for (const char* key : {"__gc", "__mode"}) {
      lua_pushstring(L, key);
      bool has = lua_rawget(L, 2) != LUA_TNIL;
      lua_pop(L, 1);
      if (has) {
        return luaL_error(L, "setmetatable: %s is not allowed in the sandbox (%s)", key,
                          key[2] == 'g' ? "finalizers would run outside the time budget"
                                        : "weak tables are not supported");
      }
    }
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 1);
  return 1;
}

// xpcall(f, handler, ...) whose handler runs after the stack has unwound, as
// ordinary code. Lua calls a real message handler with hooks off when the
// error comes from the budget's hook, so a looping handler would never stop.
// A budget error never reaches the handler: it is not the code's to handle.
int SafeXpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_insert(L, 1);  // handler, f, handler, args...
  lua_remove(L, 3);  // handler, f, args...
  int status = lua_pcall(L, n - 2, LUA_MULTRET, 0);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_replace(L, 1);  // true, results...
    return lua_gettop(L);
  }
  if (ImplOf(L)->timed_out) return lua_error(L);
  lua_pushvalue(L, 1);
  lua_insert(L, -2);  // handler, error
  if (lua_pcall(L, 1, 1, 0) != LUA_OK && ImplOf(L)->timed_out) return lua_error(L);
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

int ReadOnlyError(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  return luaL_error(L, "attempt to write '%s': globals and libraries are read-only (use local)",
                    key ? key : "?");
}

// The iterator of a read-only proxy: the real table is its upvalue, never
// handed to Lua code.
int ProxyNext(lua_State* L) {
  lua_settop(L, 2);
  return lua_next(L, lua_upvalueindex(1)) ? 2 : (lua_pushnil(L), 1);
}

// __pairs of a read-only proxy: returns ProxyNext, the proxy, nil.
int ProxyPairs(lua_State* L) {
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__index");
  lua_pushcclosure(L, ProxyNext, 1);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

// Replaces the table on top of the stack with a read-only proxy of it. Its
// values must be immutable (functions, strings, numbers). `call`: a __call.
void MakeReadOnlyProxy(lua_State* L, lua_CFunction call = nullptr) {
  lua_newtable(L);  // proxy
  lua_newtable(L);  // its metatable
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ReadOnlyError);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, ProxyPairs);
  lua_setfield(L, -2, "__pairs");
  if (call) {
    lua_pushcfunction(L, call);
    lua_setfield(L, -2, "__call");
  }
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_remove(L, -2);
}

// A metatable for environments: reads fall through to `index_at` (a table
// on the stack), writes raise.
void PushEnvMetatable(lua_State* L, int index_at) {
  index_at = lua_absindex(L, index_at);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, index_at);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ReadOnlyError);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
}

void SetFunction(lua_State* L, const char* name, lua_CFunction f) {
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
}

// log{...} / log("x"): the log primitive.
int LogCall(lua_State* L) {
  lua_pushliteral(L, "log");
  lua_pushboolean(L, 1);
  lua_pushcclosure(L, Trampoline<CallPrimitive>, 2);
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

// Adds one primitive to the sandbox table on top of the stack: "pg.query"
// goes into the (proxied later) table `pg`; "exec" is a global function.
void AddPrimitive(lua_State* L, const std::string& name) {
  size_t dot = name.find('.');
  std::string ns = dot == std::string::npos ? "" : name.substr(0, dot);
  std::string fn = dot == std::string::npos ? name : name.substr(dot + 1);
  if (name == "lua" || name == "log" || name == "fail") return;  // provided below
  lua_pushstring(L, name.c_str());
  lua_pushboolean(L, 0);
  lua_pushcclosure(L, Trampoline<CallPrimitive>, 2);
  if (ns.empty()) {
    lua_setfield(L, -2, fn.c_str());
    return;
  }
  if (lua_getfield(L, -2, ns.c_str()) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, ns.c_str());
  }
  lua_insert(L, -2);
  lua_setfield(L, -2, fn.c_str());
  lua_pop(L, 1);
}

// Every table-valued global of the sandbox on top of the stack becomes a
// read-only proxy (the primitives' namespaces; the libraries already are).
void ProxyNamespaces(lua_State* L) {
  std::vector<std::string> tables;
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING) {
      tables.push_back(lua_tostring(L, -2));
    }
    lua_pop(L, 1);
  }
  for (const auto& t : tables) {
    lua_getfield(L, -1, t.c_str());
    if (lua_getmetatable(L, -1)) {  // already a proxy
      lua_pop(L, 2);
      continue;
    }
    MakeReadOnlyProxy(L);
    lua_setfield(L, -2, t.c_str());
  }
}

}  // namespace

void InstallLibraries(lua_State* L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
  lua_pop(L, 5);
  // Hide the string metatable (so `getmetatable("").__index.rep = ...` fails).
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  // No bytecode ever: nothing may produce it either.
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  // Changed in the real tables: string methods ("x"):find(...) use them too.
  InstallBoundedLibraries(L);
  InstallBoundedPatterns(L);
}

void BuildSandbox(lua_State* L, const Registry* registry) {
  lua_newtable(L);
  static const char* const kSafe[] = {"assert",   "error",  "ipairs",   "next",         "pairs",
                                      "pcall",    "select", "tonumber", "tostring",     "type",
                                      "rawequal", "rawlen", "rawget",   "getmetatable", "_VERSION"};
  for (const char* name : kSafe) {
    lua_getglobal(L, name);
    lua_setfield(L, -2, name);
  }
  lua_getglobal(L, "setmetatable");
  lua_pushcclosure(L, SafeSetmetatable, 1);
  lua_setfield(L, -2, "setmetatable");
  SetFunction(L, "xpcall", SafeXpcall);
  for (const char* lib : {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME}) {
    lua_getglobal(L, lib);
    MakeReadOnlyProxy(L);
    lua_setfield(L, -2, lib);
  }
  SetFunction(L, "load", SafeLoad);
  SetFunction(L, "print", Trampoline<LogInfo>);
  SetFunction(L, "fail", Trampoline<Fail>);
  if (registry) {
    for (const auto& name : registry->Names()) AddPrimitive(L, name);
  }
  // log.info(...) etc.; log{message=...} / log("x") calls the log primitive.
  lua_newtable(L);
  SetFunction(L, "debug", Trampoline<LogDebug>);
  SetFunction(L, "info", Trampoline<LogInfo>);
  SetFunction(L, "warn", Trampoline<LogWarn>);
  SetFunction(L, "error", Trampoline<LogError>);
  MakeReadOnlyProxy(L, LogCall);
  lua_setfield(L, -2, "log");
  ProxyNamespaces(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "runbook.sandbox");
  // The metatable of environments made by load() without an env.
  PushEnvMetatable(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "runbook.sandbox.envmt");
  lua_pop(L, 1);
}

void PushChunkEnv(lua_State* L, const Value& env) {
  PushValue(L, env.is_object() ? env : Value::object());  // U
  lua_getfield(L, LUA_REGISTRYINDEX, "runbook.sandbox");
  PushEnvMetatable(L, -1);
  lua_remove(L, -2);
  lua_setmetatable(L, -2);
  lua_newtable(L);  // E
  PushEnvMetatable(L, -2);
  lua_setmetatable(L, -2);
  lua_remove(L, -2);
}

}  // namespace runbook::lua
