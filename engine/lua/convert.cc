#include "engine/lua/convert.h"

#include <lua.hpp>

#include <cmath>

namespace runbook::lua {
namespace {

const char kUnknownMeta[] = "runbook.unknown";
char unknown_error_tag;

int RaiseUnknown(lua_State* L) {
  lua_pushlightuserdata(L, &unknown_error_tag);
  return lua_error(L);
}

int UnknownToString(lua_State* L) {
  lua_pushliteral(L, "UNKNOWN");
  return 1;
}

Value ToValueDepth(lua_State* L, int idx, int depth);

Value TableToValue(lua_State* L, int idx, int depth) {
  idx = lua_absindex(L, idx);
  // A list if the keys are exactly 1..n.
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, idx));
  lua_Integer count = 0;
  bool all_int = true;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    ++count;
    if (!lua_isinteger(L, -2)) all_int = false;
    lua_pop(L, 1);
  }
  if (all_int && count == n) {
    Value out = Value::array();
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, idx, i);
      out.push_back(ToValueDepth(L, -1, depth + 1));
      lua_pop(L, 1);
    }
    return out;
  }
  Value out = Value::object();
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    std::string key;
    if (lua_type(L, -2) == LUA_TSTRING) {
      key = lua_tostring(L, -2);
    } else if (lua_isinteger(L, -2)) {
      key = std::to_string(lua_tointeger(L, -2));
    } else {
      lua_pop(L, 2);
      throw LuaError("table keys must be strings or integers");
    }
    out[key] = ToValueDepth(L, -1, depth + 1);
    lua_pop(L, 1);
  }
  return out;
}

Value ToValueDepth(lua_State* L, int idx, int depth) {
  if (depth > 64) throw LuaError("value nested too deeply (a cycle?)");
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return nullptr;
    case LUA_TBOOLEAN:
      return static_cast<bool>(lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return static_cast<int64_t>(lua_tointeger(L, idx));
      {
        double d = lua_tonumber(L, idx);
        if (!std::isfinite(d)) throw LuaError("number is not finite");
        return d;
      }
    case LUA_TSTRING: {
      size_t len;
      const char* s = lua_tolstring(L, idx, &len);
      return std::string(s, len);
    }
    case LUA_TTABLE:
      return TableToValue(L, idx, depth);
    case LUA_TUSERDATA:
      if (IsUnknownAt(L, idx)) return MakeUnknown("depends on an UNKNOWN rehearsal result");
      [[fallthrough]];
    default:
      throw LuaError(std::string("cannot use a ") + luaL_typename(L, idx) + " as a value");
  }
}

}  // namespace

void* UnknownErrorTag() { return &unknown_error_tag; }

void InstallUnknown(lua_State* L) {
  luaL_newmetatable(L, kUnknownMeta);
  static const char* const kRaising[] = {
      "__index", "__newindex", "__call", "__add", "__sub", "__mul", "__div", "__mod",
      "__pow", "__unm", "__idiv", "__band", "__bor", "__bxor", "__shl", "__shr",
      "__bnot", "__concat", "__len", "__eq", "__lt", "__le"};
  for (const char* name : kRaising) {
    lua_pushcfunction(L, RaiseUnknown);
    lua_setfield(L, -2, name);
  }
  lua_pushcfunction(L, UnknownToString);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  // One shared instance.
  lua_newuserdatauv(L, 1, 0);
  luaL_setmetatable(L, kUnknownMeta);
  lua_setfield(L, LUA_REGISTRYINDEX, "runbook.unknown.value");
}

void PushUnknown(lua_State* L) { lua_getfield(L, LUA_REGISTRYINDEX, "runbook.unknown.value"); }

bool IsUnknownAt(lua_State* L, int idx) {
  return lua_type(L, idx) == LUA_TUSERDATA && luaL_testudata(L, idx, kUnknownMeta) != nullptr;
}

void PushValue(lua_State* L, const Value& v) {
  luaL_checkstack(L, 4, "value too deep");
  if (IsUnknown(v)) {
    PushUnknown(L);
  } else if (v.is_null()) {
    lua_pushnil(L);
  } else if (v.is_boolean()) {
    lua_pushboolean(L, v.get<bool>());
  } else if (v.is_number_integer()) {
    lua_pushinteger(L, v.get<int64_t>());
  } else if (v.is_number()) {
    lua_pushnumber(L, v.get<double>());
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    lua_pushlstring(L, s.data(), s.size());
  } else if (v.is_array()) {
    lua_createtable(L, static_cast<int>(v.size()), 0);
    lua_Integer i = 1;
    for (const auto& item : v) {
      PushValue(L, item);
      lua_rawseti(L, -2, i++);
    }
  } else {
    lua_createtable(L, 0, static_cast<int>(v.size()));
    for (auto it = v.begin(); it != v.end(); ++it) {
      PushValue(L, it.value());
      lua_setfield(L, -2, it.key().c_str());
    }
  }
}

Value ToValue(lua_State* L, int idx) { return ToValueDepth(L, idx, 0); }

}  // namespace runbook::lua
