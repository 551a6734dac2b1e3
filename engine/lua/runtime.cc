#include "engine/lua/runtime.h"

#include <lua.hpp>

#include <cstring>

#include "engine/lua/convert.h"
#include "engine/lua/template.h"

namespace runbook {

using lua::LuaError;

struct LuaRuntime::Impl {
  lua_State* L = nullptr;
  const Registry* registry = nullptr;
  size_t used = 0;
  size_t limit = 0;
  // Per call (Run/Eval):
  LuaHost* host = nullptr;
  SteadyTime deadline = SteadyTime::max();
  bool timed_out = false;
  std::string origin_file;
};

namespace {

LuaRuntime::Impl* ImplOf(lua_State* L) {
  return *static_cast<LuaRuntime::Impl**>(lua_getextraspace(L));
}

// A counting allocator: refuses to grow past the cap (Lua then raises "not
// enough memory", which the chunk cannot allocate its way out of).
void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* impl = static_cast<LuaRuntime::Impl*>(ud);
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    impl->used -= old;
    return nullptr;
  }
  if (nsize > old && impl->used - old + nsize > impl->limit) return nullptr;
  void* p = realloc(ptr, nsize);
  if (p) impl->used = impl->used - old + nsize;
  return p;
}

// The deadline hook. Once the deadline has passed it re-arms itself to fire
// on every instruction, so a pcall inside the chunk cannot swallow it.
void Hook(lua_State* L, lua_Debug*) {
  LuaRuntime::Impl* impl = ImplOf(L);
  if (!impl->timed_out && std::chrono::steady_clock::now() < impl->deadline) return;
  if (!impl->timed_out) {
    impl->timed_out = true;
    lua_sethook(L, Hook, LUA_MASKCOUNT, 1);
  }
  luaL_error(L, "Lua code ran past its time budget (the step's timeout) and was stopped");
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

std::string ArgsToText(lua_State* L, int first) {
  std::string out;
  int n = lua_gettop(L);
  for (int i = first; i <= n; ++i) {
    if (i > first) out += "\t";
    out += luaL_tolstring(L, i, nullptr);
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
  if (lua_type(L, first) == LUA_TTABLE) {
    args = lua::ToValue(L, first);
    if (args.is_array() && args.empty()) args = Value::object();
  } else if (!lua_isnoneornil(L, first)) {
    const Primitive* p = impl->registry ? impl->registry->Find(name) : nullptr;
    if (!p || p->schema().scalar_arg.empty()) {
      throw LuaError(name + " takes a table of arguments: " + name + "{...}");
    }
    args = Value::object();
    args[p->schema().scalar_arg] = lua::ToValue(L, first);
  } else {
    args = Value::object();
  }
  if (!impl->host) throw LuaError(name + " cannot be called here (only in lua: steps)");
  // Time spent in the primitive is not Lua's: the budget moves with it.
  auto called = std::chrono::steady_clock::now();
  Result<Value> r = impl->host->CallPrimitive(name, args);
  if (impl->deadline != SteadyTime::max()) impl->deadline += std::chrono::steady_clock::now() - called;
  if (!r.ok()) throw LuaError(r.status().message());
  lua::PushValue(L, *r);
  return 1;
}

int Fail(lua_State* L) {
  std::string msg = ArgsToText(L, 1);
  throw LuaError(msg.empty() ? std::string("failed") : msg);
}

// load() that only accepts text and, without an explicit env, runs in the
// sandbox's read-only globals.
int SafeLoad(lua_State* L) {
  size_t len;
  const char* code = luaL_checklstring(L, 1, &len);
  const char* name = luaL_optstring(L, 2, "=(load)");
  int env = lua_isnoneornil(L, 4) ? 0 : 4;
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

int ReadOnlyError(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  return luaL_error(L, "attempt to write '%s': globals and libraries are read-only (use local)",
                    key ? key : "?");
}

int ProxyPairs(lua_State* L) {
  // __pairs of a read-only proxy: iterate the real table.
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, [](lua_State* L2) -> int {
    lua_settop(L2, 2);
    return lua_next(L2, 1) ? 2 : (lua_pushnil(L2), 1);
  });
  lua_insert(L, -2);
  lua_pushnil(L);
  return 3;
}

// Replaces the table on top of the stack with a read-only proxy of it.
void MakeReadOnlyProxy(lua_State* L) {
  lua_newtable(L);                 // real proxy
  lua_newtable(L);                 // real proxy mt
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ReadOnlyError);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, ProxyPairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_remove(L, -2);
}

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

// The table every chunk reads its globals from (through its own _ENV).
void BuildSandbox(lua_State* L, const Registry* registry) {
  lua_newtable(L);
  static const char* const kSafe[] = {"assert", "error", "ipairs", "next", "pairs", "pcall",
                                      "select", "tonumber", "tostring", "type", "xpcall",
                                      "rawequal", "rawlen", "rawget", "setmetatable",
                                      "getmetatable", "_VERSION"};
  for (const char* name : kSafe) {
    lua_getglobal(L, name);
    lua_setfield(L, -2, name);
  }
  for (const char* lib : {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME}) {
    lua_getglobal(L, lib);
    MakeReadOnlyProxy(L);
    lua_setfield(L, -2, lib);
  }
  SetFunction(L, "load", SafeLoad);
  SetFunction(L, "print", LogInfo);
  SetFunction(L, "fail", Trampoline<Fail>);
  if (registry) {
    for (const auto& name : registry->Names()) AddPrimitive(L, name);
  }
  // log.info(...) etc.; log{message=...} / log("x") calls the log primitive.
  lua_newtable(L);
  SetFunction(L, "debug", LogDebug);
  SetFunction(L, "info", LogInfo);
  SetFunction(L, "warn", LogWarn);
  SetFunction(L, "error", LogError);
  lua_newtable(L);
  lua_pushliteral(L, "log");
  lua_pushboolean(L, 1);
  lua_pushcclosure(L, Trampoline<CallPrimitive>, 2);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "log");
  // Namespace tables become read-only proxies.
  lua_pushnil(L);
  std::vector<std::string> tables;
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING) {
      tables.push_back(lua_tostring(L, -2));
    }
    lua_pop(L, 1);
  }
  for (const auto& t : tables) {
    if (t == "log") continue;  // keeps its __call; made read-only below
    lua_getfield(L, -1, t.c_str());
    if (lua_getmetatable(L, -1)) {  // already a proxy
      lua_pop(L, 2);
      continue;
    }
    MakeReadOnlyProxy(L);
    lua_setfield(L, -2, t.c_str());
  }
  // log: read-only by a __newindex on its metatable.
  lua_getfield(L, -1, "log");
  lua_getmetatable(L, -1);
  lua_pushcfunction(L, ReadOnlyError);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "runbook.sandbox");
  // The metatable of environments made by load() without an env.
  PushEnvMetatable(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "runbook.sandbox.envmt");
  lua_pop(L, 1);
}

std::string NumberText(const Value& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  std::string s = v.dump();
  return s;
}

}  // namespace

LuaRuntime::LuaRuntime(const Registry* registry, LuaLimits limits) : impl_(new Impl) {
  impl_->registry = registry;
  impl_->limit = limits.memory_bytes;
  impl_->L = lua_newstate(Alloc, impl_.get());
  if (!impl_->L) throw std::runtime_error("cannot create a Lua state");
  *static_cast<Impl**>(lua_getextraspace(impl_->L)) = impl_.get();
  lua_State* L = impl_->L;
  InstallLibraries(L);
  lua::InstallUnknown(L);
  BuildSandbox(L, registry);
}

LuaRuntime::~LuaRuntime() {
  if (impl_->L) lua_close(impl_->L);
}

size_t LuaRuntime::memory_in_use() const { return impl_->used; }

namespace {

// Pushes a fresh _ENV for one chunk: empty, read-only, reading through to
// the caller's env values and then to the sandbox.
void PushChunkEnv(lua_State* L, const Value& env) {
  lua::PushValue(L, env.is_object() ? env : Value::object());  // U
  lua_getfield(L, LUA_REGISTRYINDEX, "runbook.sandbox");
  PushEnvMetatable(L, -1);
  lua_remove(L, -2);
  lua_setmetatable(L, -2);
  lua_newtable(L);  // E
  PushEnvMetatable(L, -2);
  lua_setmetatable(L, -2);
  lua_remove(L, -2);
}

}  // namespace

Result<Value> LuaRuntime::Run(const std::string& code, const Pos& origin, const Value& env,
                              SteadyTime deadline, LuaHost* host) {
  lua_State* L = impl_->L;
  int top = lua_gettop(L);
  // Run may be re-entered (a primitive called from Lua expands a template):
  // the outer call's host, deadline and hook come back afterwards.
  LuaHost* outer_host = impl_->host;
  SteadyTime outer_deadline = impl_->deadline;
  bool outer_timed_out = impl_->timed_out;
  lua_Hook outer_hook = lua_gethook(L);
  int outer_count = lua_gethookcount(L);
  impl_->host = host;
  impl_->deadline = deadline;
  impl_->timed_out = false;
  std::string chunk(origin.line > 1 ? origin.line - 1 : 0, '\n');
  chunk += code;
  std::string name = "=" + (origin.file.empty() ? std::string("lua") : origin.file);
  Result<Value> out = Status::Ok();
  if (luaL_loadbufferx(L, chunk.data(), chunk.size(), name.c_str(), "t") != LUA_OK) {
    out = Status::Invalid(lua_tostring(L, -1));
  } else {
    PushChunkEnv(L, env);
    lua_setupvalue(L, -2, 1);
    lua_sethook(L, Hook, LUA_MASKCOUNT, 1000);
    int rc = lua_pcall(L, 0, 1, 0);
    lua_sethook(L, outer_hook, outer_hook ? LUA_MASKCOUNT : 0, outer_count);
    if (rc != LUA_OK) {
      if (lua_touserdata(L, -1) == lua::UnknownErrorTag()) {
        out = MakeUnknown("depends on an UNKNOWN rehearsal result");
      } else if (impl_->timed_out) {
        out = Status::Timeout(origin.ToString() +
                              ": Lua code ran past its time budget (the step's timeout) and was "
                              "stopped");
      } else if (rc == LUA_ERRMEM) {
        out = Status::Failed(origin.ToString() + ": Lua code went over its memory cap of " +
                             std::to_string(impl_->limit >> 20) + " MiB and was stopped");
      } else if (lua_isstring(L, -1)) {
        out = Status::Failed(lua_tostring(L, -1));
      } else {
        out = Status::Failed(name.substr(1) + ": Lua error (error object is a " +
                             luaL_typename(L, -1) + ")");
      }
    } else {
      try {
        out = lua::ToValue(L, -1);
      } catch (const LuaError& e) {
        out = Status::Failed(name.substr(1) + ": the result " + e.what());
      }
    }
  }
  lua_settop(L, top);
  impl_->host = outer_host;
  impl_->deadline = outer_deadline;
  impl_->timed_out = outer_timed_out;
  if (!outer_host && impl_->used > impl_->limit / 2) lua_gc(L, LUA_GCCOLLECT);
  return out;
}

Result<Value> LuaRuntime::Eval(const std::string& expr, const Pos& origin, const Value& env,
                               SteadyTime deadline, LuaHost* host) {
  return Run("return " + expr, origin, env, deadline, host);
}

Result<Value> ExpandTemplates(LuaRuntime& lua, const Value& v, const Pos& origin,
                              const Value& env, SteadyTime deadline) {
  if (v.is_array()) {
    Value out = Value::array();
    for (const auto& item : v) {
      Result<Value> r = ExpandTemplates(lua, item, origin, env, deadline);
      if (!r.ok()) return r;
      out.push_back(std::move(*r));
    }
    return out;
  }
  if (v.is_object()) {
    if (IsUnknown(v)) return v;
    Value out = Value::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      Result<Value> r = ExpandTemplates(lua, it.value(), origin, env, deadline);
      if (!r.ok()) return r;
      out[it.key()] = std::move(*r);
    }
    return out;
  }
  if (!v.is_string() || !HasTemplate(v.get<std::string>())) return v;
  Result<std::vector<TemplatePart>> parts = SplitTemplate(v.get<std::string>());
  if (!parts.ok()) return parts.status().Prefixed(origin.ToString());
  if (parts->size() == 1 && (*parts)[0].is_expr) {
    return lua.Eval((*parts)[0].text, origin, env, deadline, nullptr);
  }
  std::string text;
  for (const auto& part : *parts) {
    if (!part.is_expr) {
      text += part.text;
      continue;
    }
    Result<Value> r = lua.Eval(part.text, origin, env, deadline, nullptr);
    if (!r.ok()) return r;
    if (ContainsUnknown(*r)) return MakeUnknown("depends on an UNKNOWN rehearsal result");
    if (r->is_string()) text += r->get<std::string>();
    else if (r->is_number()) text += NumberText(*r);
    else if (r->is_null()) text += "";
    else text += r->dump();
  }
  return Value(text);
}

}  // namespace runbook

