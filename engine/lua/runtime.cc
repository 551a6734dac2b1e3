#include "engine/lua/runtime.h"

#include <cstring>

#include "engine/core/interrupt.h"
#include "engine/lua/internal.h"
#include "engine/lua/template.h"

namespace runbook {

namespace {

// Builds the sandbox (in protected mode: a tiny cap must fail, not abort).
int Setup(lua_State* L) {
  auto* registry = static_cast<const Registry*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  lua::InstallLibraries(L);
  // Each chunk starts with a freshly seeded generator: math.randomseed in
  // one chunk must not decide the numbers of the next.
  lua_getglobal(L, LUA_MATHLIBNAME);
  lua_getfield(L, -1, "randomseed");
  lua_setfield(L, LUA_REGISTRYINDEX, "runbook.randomseed");
  lua_pop(L, 1);
  lua::InstallUnknown(L);
  lua::BuildSandbox(L, registry);
  return 0;
}

// One chunk's life, run inside lua_pcall so that no Lua error (out of memory
// while pushing the env, a too deep result) can reach Lua's panic, which
// aborts the process. `stage` says where an error came from.
struct Chunk {
  enum Stage { kLoad, kEnv, kRun, kConvert };
  const std::string& code;
  const std::string& name;
  const Value& env;
  size_t max_bytes;
  Stage stage = kLoad;
  Value result;
};

int RunChunk(lua_State* L) {
  auto* c = static_cast<Chunk*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  if (luaL_loadbufferx(L, c->code.data(), c->code.size(), c->name.c_str(), "t") != LUA_OK) {
    return lua_error(L);
  }
  c->stage = Chunk::kEnv;
  lua::PushChunkEnv(L, c->env);
  lua_setupvalue(L, -2, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "runbook.randomseed");
  lua_call(L, 0, 0);
  c->stage = Chunk::kRun;
  lua::ArmBudget(L);
  lua_call(L, 0, 1);
  lua_sethook(L, nullptr, 0, 0);
  c->stage = Chunk::kConvert;
  c->result = lua::ToValue(L, -1, c->max_bytes);
  return 0;
}

// The error object on top of the stack as text, without allocating in Lua
// (the chunk may have left the heap at its cap).
std::string ErrorText(lua_State* L) {
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t len;
      const char* s = lua_tolstring(L, -1, &len);
      return std::string(s, len);
    }
    case LUA_TNUMBER:
      return lua_isinteger(L, -1) ? std::to_string(lua_tointeger(L, -1))
                                  : std::to_string(lua_tonumber(L, -1));
    default:
      return "";
  }
}

std::string NumberText(const Value& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return v.dump();
}

std::string MiB(size_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

LuaRuntime::LuaRuntime(const Registry* registry, LuaLimits limits) : impl_(new Impl) {
  impl_->registry = registry;
  impl_->limit = limits.memory_bytes;
  impl_->L = lua_newstate(lua::Alloc, impl_.get());
  if (!impl_->L) throw std::runtime_error("cannot create a Lua state");
  *static_cast<Impl**>(lua_getextraspace(impl_->L)) = impl_.get();
  lua_State* L = impl_->L;
  lua_pushcfunction(L, Setup);
  lua_pushlightuserdata(L, const_cast<Registry*>(registry));
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    std::string why = ErrorText(L);
    lua_close(L);
    throw std::runtime_error("cannot create the Lua sandbox: " + why);
  }
}

// lua_close runs no code of a chunk's: the sandbox refuses __gc, and every
// chunk's to-be-closed variables were closed when it returned or failed.
LuaRuntime::~LuaRuntime() {
  if (impl_->L) lua_close(impl_->L);
}

size_t LuaRuntime::memory_in_use() const { return impl_->used; }

Status LuaRuntime::CheckFits(const Value& result) const {
  lua::ValueShape shape = lua::MeasureValue(result);
  if (shape.depth > lua::kMaxNesting) {
    return Status::Failed("the result nests more than " + std::to_string(lua::kMaxNesting) +
                          " levels of lists and maps, more than Lua (templates, when, assert, "
                          "lua steps) can read");
  }
  if (shape.bytes > impl_->limit / 2) {
    return Status::Failed("the result would take about " + MiB(shape.bytes) +
                          " in Lua, more than half of its memory cap (" + MiB(impl_->limit) +
                          "), so later templates and Lua steps could not read it; return less");
  }
  return Status::Ok();
}

namespace {

Result<Value> ChunkFailure(LuaRuntime::Impl* impl, int rc, const Chunk& c, const Pos& origin) {
  lua_State* L = impl->L;
  std::string file = c.name.substr(1);
  std::string text = ErrorText(L);
  switch (c.stage) {
    case Chunk::kLoad:
      return Status::Invalid(text.empty() ? file + ": cannot load the Lua code" : text);
    case Chunk::kEnv:
      return Status::Failed(origin.ToString() +
                            ": the values this code reads (params, step results, item) do not "
                            "fit in Lua (memory cap " +
                            MiB(impl->limit) + "): " + text);
    case Chunk::kConvert:
      if (rc == LUA_ERRMEM) text = "does not fit in Lua's memory cap";
      return Status::Failed(origin.ToString() + ": the result " + text);
    case Chunk::kRun:
      break;
  }
  if (lua_touserdata(L, -1) == lua::UnknownErrorTag()) {
    return MakeUnknown("depends on an UNKNOWN rehearsal result");
  }
  if (impl->timed_out && ActingStopped()) {
    return Status::Failed(origin.ToString() + ": Lua code stopped: " + WhyActingStopped());
  }
  if (impl->timed_out) {
    return Status::Timeout(origin.ToString() +
                           ": Lua code ran past its time budget (the step's timeout) and was "
                           "stopped");
  }
  if (rc == LUA_ERRMEM) {
    return Status::Failed(origin.ToString() + ": Lua code went over its memory cap of " +
                          MiB(impl->limit) + " and was stopped");
  }
  if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
    return Status::Failed(text);
  }
  return Status::Failed(file + ": Lua error (error object is a " + luaL_typename(L, -1) + ")");
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
  int outer_mask = lua_gethookmask(L);
  int outer_count = lua_gethookcount(L);
  impl_->host = host;
  impl_->deadline = deadline;
  impl_->timed_out = false;
  std::string text(origin.line > 1 ? origin.line - 1 : 0, '\n');
  text += code;
  std::string name = "=" + (origin.file.empty() ? std::string("lua") : origin.file);
  Chunk chunk{text, name, env, impl_->limit};
  lua_pushcfunction(L, lua::Trampoline<RunChunk>);
  lua_pushlightuserdata(L, &chunk);
  int rc = lua_pcall(L, 1, 0, 0);
  lua_sethook(L, outer_hook, outer_mask, outer_count);
  Result<Value> out = rc == LUA_OK ? Result<Value>(std::move(chunk.result))
                                   : ChunkFailure(impl_.get(), rc, chunk, origin);
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

namespace {

std::string Trimmed(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

Result<Value> ExpandTemplates(LuaRuntime& lua, const Value& v, const Pos& origin, const Value& env,
                              SteadyTime deadline) {
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
    if (r->is_string())
      text += r->get<std::string>();
    else if (r->is_number())
      text += NumberText(*r);
    else if (r->is_null())
      // Inside a longer text, nil has no good spelling: "dbname=" would
      // connect somewhere else (the default database), "nil" nowhere. A
      // runbook that means empty says so: ${{ x or '' }}.
      return Status::Invalid(origin.ToString() + ": '${{ " + Trimmed(part.text) + " }}' is nil inside '" +
                             v.get<std::string>().substr(0, 200) +
                             "' (write ${{ ... or '' }} if empty is meant)");
    else
      text += r->dump();
  }
  return Value(text);
}

}  // namespace runbook
