// string.find, string.match, string.gmatch and string.gsub over the
// budgeted matcher of pattern_match.h (bodies after Lua 5.4's lstrlib.c, MIT
// licence), installed in the real string table so that string methods
// ("x"):find(...) use them too.
#include <cctype>
#include <cstring>

#include "engine/lua/pattern_match.h"

namespace runbook::lua {
namespace {

using pattern::kCapPosition;
using pattern::MatchState;

constexpr char kEsc = '%';

unsigned char U(char c) { return static_cast<unsigned char>(c); }

size_t PosRelat(lua_Integer pos, size_t len) {
  if (pos > 0) return static_cast<size_t>(pos);
  if (pos == 0) return 1;
  if (pos < -static_cast<lua_Integer>(len)) return 1;
  return len + static_cast<size_t>(pos) + 1;
}

int FindAux(lua_State* L, bool find) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = PosRelat(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  MatchState ms{.meter = BudgetMeter(L)};
  if (find && (lua_toboolean(L, 4) || pattern::NoSpecials(p, lp))) {
    if (const char* s2 = pattern::MemFind(&ms.meter, s + init, ls - init, p, lp)) {
      lua_pushinteger(L, (s2 - s) + 1);
      lua_pushinteger(L, (s2 - s) + lp);
      return 2;
    }
  } else {
    const char* s1 = s + init;
    bool anchor = (*p == '^');
    if (anchor) {
      p++;
      lp--;
    }
    pattern::PrepState(&ms, L, s, ls, p, lp);
    do {
      ms.level = 0;
      if (const char* res = pattern::Match(&ms, s1, p)) {
        if (find) {
          lua_pushinteger(L, (s1 - s) + 1);
          lua_pushinteger(L, res - s);
          return pattern::PushCaptures(&ms, nullptr, nullptr) + 2;
        }
        return pattern::PushCaptures(&ms, s1, res);
      }
    } while (s1++ < ms.src_end && !anchor);
  }
  luaL_pushfail(L);
  return 1;
}

int Find(lua_State* L) { return FindAux(L, true); }
int MatchFn(lua_State* L) { return FindAux(L, false); }

struct GMatchState {
  const char* src;
  const char* p;
  const char* lastmatch;
  MatchState ms;
};

int GMatchAux(lua_State* L) {
  auto* gm = static_cast<GMatchState*>(lua_touserdata(L, lua_upvalueindex(3)));
  gm->ms.L = L;
  gm->ms.meter.SetState(L);
  for (const char* src = gm->src; src <= gm->ms.src_end; src++) {
    gm->ms.level = 0;
    const char* e = pattern::Match(&gm->ms, src, gm->p);
    if (e && e != gm->lastmatch) {
      gm->src = gm->lastmatch = e;
      return pattern::PushCaptures(&gm->ms, src, e);
    }
  }
  return 0;
}

int GMatch(lua_State* L) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = PosRelat(luaL_optinteger(L, 3, 1), ls) - 1;
  lua_settop(L, 2);  // the strings stay alive as upvalues of the iterator
  auto* gm = static_cast<GMatchState*>(lua_newuserdatauv(L, sizeof(GMatchState), 0));
  new (gm) GMatchState{nullptr, nullptr, nullptr, MatchState{.meter = BudgetMeter(L)}};
  if (init > ls) init = ls + 1;  // avoid overflows in 's + init'
  pattern::PrepState(&gm->ms, L, s, ls, p, lp);
  gm->src = s + init;
  gm->p = p;
  gm->lastmatch = nullptr;
  lua_pushcclosure(L, GMatchAux, 3);
  return 1;
}

void AddS(MatchState* ms, luaL_Buffer* b, const char* s, const char* e) {
  size_t l;
  lua_State* L = ms->L;
  const char* news = lua_tolstring(L, 3, &l);
  const char* p;
  while ((p = static_cast<const char*>(memchr(news, kEsc, l))) != nullptr) {
    luaL_addlstring(b, news, p - news);
    p++;  // skip ESC
    if (*p == kEsc) {
      luaL_addchar(b, *p);
    } else if (*p == '0') {
      luaL_addlstring(b, s, e - s);
    } else if (isdigit(U(*p))) {
      const char* cap;
      ptrdiff_t resl = pattern::GetOneCapture(ms, *p - '1', s, e, &cap);
      if (resl == kCapPosition)
        luaL_addvalue(b);
      else
        luaL_addlstring(b, cap, resl);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", kEsc);
    }
    l -= p + 1 - news;
    news = p + 1;
  }
  luaL_addlstring(b, news, l);
}

// Adds the replacement to b; true if the subject changed.
bool AddValue(MatchState* ms, luaL_Buffer* b, const char* s, const char* e, int tr) {
  lua_State* L = ms->L;
  switch (tr) {
    case LUA_TFUNCTION: {
      lua_pushvalue(L, 3);
      int n = pattern::PushCaptures(ms, s, e);
      lua_call(L, n, 1);
      break;
    }
    case LUA_TTABLE:
      pattern::PushOneCapture(ms, 0, s, e);
      lua_gettable(L, 3);
      break;
    default:  // LUA_TNUMBER or LUA_TSTRING
      AddS(ms, b, s, e);
      return true;
  }
  if (!lua_toboolean(L, -1)) {  // nil or false: keep the original text
    lua_pop(L, 1);
    luaL_addlstring(b, s, e - s);
    return false;
  }
  if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  }
  luaL_addvalue(b);
  return true;
}

int GSub(lua_State* L) {
  size_t srcl, lp;
  const char* src = luaL_checklstring(L, 1, &srcl);
  const char* p = luaL_checklstring(L, 2, &lp);
  const char* lastmatch = nullptr;
  int tr = lua_type(L, 3);
  lua_Integer max_s = luaL_optinteger(L, 4, srcl + 1);
  bool anchor = (*p == '^');
  lua_Integer n = 0;
  bool changed = false;
  luaL_argexpected(
      L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
      "string/function/table");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (anchor) {
    p++;
    lp--;
  }
  MatchState ms{.meter = BudgetMeter(L)};
  pattern::PrepState(&ms, L, src, srcl, p, lp);
  while (n < max_s) {
    ms.level = 0;
    const char* e = pattern::Match(&ms, src, p);
    if (e && e != lastmatch) {
      n++;
      changed = AddValue(&ms, &b, src, e, tr) || changed;
      src = lastmatch = e;
    } else if (src < ms.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, ms.src_end - src);
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

}  // namespace

void InstallBoundedPatterns(lua_State* L) {
  lua_getglobal(L, LUA_STRLIBNAME);
  const luaL_Reg fns[] = {
      {"find", Find}, {"match", MatchFn}, {"gmatch", GMatch}, {"gsub", GSub}, {nullptr, nullptr}};
  luaL_setfuncs(L, fns, 0);
  lua_pop(L, 1);
}

}  // namespace runbook::lua
