#include "engine/lua/convert.h"

#include <cmath>
#include <lua.hpp>
#include <unordered_set>
#include <vector>

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

// Rough sizes of Lua's objects (64-bit): a TValue slot, a string header, a
// table header and one hash node. An estimate is enough: it bounds the work
// of a conversion and says whether a value can fit under the memory cap.
constexpr size_t kSlotBytes = 16, kStringBytes = 24, kTableBytes = 56, kNodeBytes = 32;

size_t StringBytes(size_t len) { return kStringBytes + len + 1; }

// depth: how many tables enclose v.
void Measure(const Value& v, int depth, ValueShape* shape) {
  shape->bytes += kSlotBytes;
  if (v.is_structured()) shape->depth = std::max(shape->depth, depth + 1);
  if (depth >= kMaxNesting) return;
  if (v.is_string()) {
    shape->bytes += StringBytes(v.get_ref<const std::string&>().size());
  } else if (v.is_array()) {
    shape->bytes += kTableBytes;
    for (const auto& item : v) Measure(item, depth + 1, shape);
  } else if (v.is_object()) {
    shape->bytes += kTableBytes;
    for (auto it = v.begin(); it != v.end(); ++it) {
      shape->bytes += kNodeBytes + StringBytes(it.key().size());
      Measure(it.value(), depth + 1, shape);
    }
  }
}

[[noreturn]] void TooDeep() {
  throw LuaError("value nested more than " + std::to_string(kMaxNesting) + " levels deep");
}

// depth: how many tables enclose v.
void PushValueDepth(lua_State* L, const Value& v, int depth) {
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
    if (depth >= kMaxNesting) TooDeep();
    lua_createtable(L, static_cast<int>(std::min<size_t>(v.size(), 1 << 24)), 0);
    lua_Integer i = 1;
    for (const auto& item : v) {
      PushValueDepth(L, item, depth + 1);
      lua_rawseti(L, -2, i++);
    }
  } else {
    if (depth >= kMaxNesting) TooDeep();
    lua_createtable(L, 0, static_cast<int>(std::min<size_t>(v.size(), 1 << 24)));
    for (auto it = v.begin(); it != v.end(); ++it) {
      lua_pushlstring(L, it.key().data(), it.key().size());
      PushValueDepth(L, it.value(), depth + 1);
      lua_rawset(L, -3);
    }
  }
}

// One conversion from Lua: the tables on the path from the root (to find
// cycles), the path's keys (for messages) and the bytes produced so far.
class ToValueWalk {
 public:
  ToValueWalk(lua_State* L, size_t max_bytes) : L_(L), max_bytes_(max_bytes) {}

  Value Convert(int idx) {
    switch (lua_type(L_, idx)) {
      case LUA_TNIL:
      case LUA_TNONE:
        return nullptr;
      case LUA_TBOOLEAN:
        return static_cast<bool>(lua_toboolean(L_, idx));
      case LUA_TNUMBER:
        if (lua_isinteger(L_, idx)) return static_cast<int64_t>(lua_tointeger(L_, idx));
        if (!std::isfinite(lua_tonumber(L_, idx))) Fail("is a number that is not finite");
        return lua_tonumber(L_, idx);
      case LUA_TSTRING: {
        size_t len;
        const char* s = lua_tolstring(L_, idx, &len);
        Count(StringBytes(len));
        return std::string(s, len);
      }
      case LUA_TTABLE:
        return Table(idx);
      case LUA_TUSERDATA:
        if (IsUnknownAt(L_, idx)) return MakeUnknown("depends on an UNKNOWN rehearsal result");
        [[fallthrough]];
      default:
        Fail(std::string("is a ") + luaL_typename(L_, idx) + ", which cannot be a value");
    }
  }

 private:
  [[noreturn]] void Fail(const std::string& what) {
    std::string at = path_.empty() ? "" : " (at " + Path() + ")";
    throw LuaError(what + at);
  }

  std::string Path() const {
    std::string out;
    for (const auto& p : path_) out += p;
    return out.empty() ? out : (out[0] == '.' ? out.substr(1) : out);
  }

  void Count(size_t bytes) {
    bytes_ += bytes;
    if (bytes_ > max_bytes_) {
      Fail("is larger than " + std::to_string(max_bytes_ >> 20) +
           " MiB (the memory cap) once converted; a table that appears in several places "
           "counts each time");
    }
  }

  Value Table(int idx) {
    idx = lua_absindex(L_, idx);
    if (static_cast<int>(path_.size()) >= kMaxNesting) {
      Fail("is nested more than " + std::to_string(kMaxNesting) + " levels deep");
    }
    const void* self = lua_topointer(L_, idx);
    for (const void* t : ancestors_) {
      if (t == self) Fail("is cyclic: a table contains itself");
    }
    luaL_checkstack(L_, 4, "value too deep");
    ancestors_.push_back(self);
    Count(kTableBytes);
    Value out = IsList(idx) ? List(idx) : Object(idx);
    ancestors_.pop_back();
    return out;
  }

  // A list if the keys are exactly 1..n.
  bool IsList(int idx) {
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L_, idx));
    lua_Integer count = 0;
    lua_pushnil(L_);
    while (lua_next(L_, idx) != 0) {
      ++count;
      bool is_int = lua_isinteger(L_, -2);
      lua_pop(L_, 1);
      if (!is_int) {
        lua_pop(L_, 1);
        return false;
      }
    }
    return count == n;
  }

  Value List(int idx) {
    Value out = Value::array();
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L_, idx));
    for (lua_Integer i = 1; i <= n; ++i) {
      Count(kSlotBytes);
      path_.push_back("[" + std::to_string(i) + "]");
      lua_rawgeti(L_, idx, i);
      out.push_back(Convert(-1));
      lua_pop(L_, 1);
      path_.pop_back();
    }
    return out;
  }

  Value Object(int idx) {
    Value out = Value::object();
    auto& members = out.get_ref<Value::object_t&>();
    // ordered_json's operator[] searches linearly: append, and find
    // duplicates (1 and "1") with a set instead.
    std::unordered_set<std::string> seen;
    lua_pushnil(L_);
    while (lua_next(L_, idx) != 0) {
      std::string key;
      if (lua_type(L_, -2) == LUA_TSTRING) {
        size_t len;
        const char* s = lua_tolstring(L_, -2, &len);
        key.assign(s, len);
      } else if (lua_isinteger(L_, -2)) {
        key = std::to_string(lua_tointeger(L_, -2));
      } else {
        Fail(std::string("has a key that is a ") + luaL_typename(L_, -2) +
             " (keys must be strings or integers)");
      }
      if (!seen.insert(key).second) Fail("has the key '" + key + "' both as a number and a string");
      Count(kNodeBytes + StringBytes(key.size()));
      path_.push_back("." + key);
      members.emplace_back(key, Convert(-1));
      path_.pop_back();
      lua_pop(L_, 1);
    }
    return out;
  }

  lua_State* L_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::vector<const void*> ancestors_;
  std::vector<std::string> path_;
};

}  // namespace

void* UnknownErrorTag() { return &unknown_error_tag; }

void InstallUnknown(lua_State* L) {
  luaL_newmetatable(L, kUnknownMeta);
  static const char* const kRaising[] = {
      "__index", "__newindex", "__call", "__add",  "__sub", "__mul",  "__div", "__mod",
      "__pow",   "__unm",      "__idiv", "__band", "__bor", "__bxor", "__shl", "__shr",
      "__bnot",  "__concat",   "__len",  "__eq",   "__lt",  "__le"};
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

ValueShape MeasureValue(const Value& v) {
  ValueShape shape;
  Measure(v, 0, &shape);
  return shape;
}

void PushValue(lua_State* L, const Value& v) { PushValueDepth(L, v, 0); }

Value ToValue(lua_State* L, int idx, size_t max_bytes) {
  return ToValueWalk(L, max_bytes).Convert(idx);
}

}  // namespace runbook::lua
