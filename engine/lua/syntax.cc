// validate's syntax check: compile a chunk, run nothing.
#include <cstdlib>
#include <memory>

#include "engine/lua/internal.h"
#include "engine/lua/runtime.h"

namespace runbook {

namespace {

struct StateCloser {
  void operator()(lua_State* L) const { lua_close(L); }
};

}  // namespace

Status CheckLuaSyntax(const std::string& code, int* line) {
  // One bare state per thread: loading a chunk needs no library, and a
  // chunk that is only compiled can neither loop nor allocate without bound
  // beyond its own text.
  thread_local std::unique_ptr<lua_State, StateCloser> state(luaL_newstate());
  lua_State* L = state.get();
  if (!L) return Status::Failed("cannot create a Lua state");
  *line = 0;
  const int rc = luaL_loadbufferx(L, code.data(), code.size(), "=chunk", "t");
  if (rc == LUA_OK) {
    lua_settop(L, 0);
    return Status::Ok();
  }
  std::string msg = lua_isstring(L, -1) ? lua_tostring(L, -1) : "syntax error";
  lua_settop(L, 0);
  // "chunk:3: unexpected symbol near '}'"
  if (msg.rfind("chunk:", 0) == 0) {
    char* end = nullptr;
    const long n = strtol(msg.c_str() + 6, &end, 10);
    if (end && *end == ':') {
      *line = static_cast<int>(n);
      msg = std::string(end + 1);
      if (!msg.empty() && msg[0] == ' ') msg.erase(0, 1);
    }
  }
  return Status::Failed(msg);
}

}  // namespace runbook
