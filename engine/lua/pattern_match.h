// Lua 5.4's pattern matcher (lstrlib.c, MIT licence: Copyright (C) 1994-2022
// Lua.org, PUC-Rio) with the same semantics and errors, plus a meter: every
// step of a match and every byte a plain search compares counts, and past
// the deadline the budget's error is raised from inside the match. Lua's own
// matcher backtracks in C, where no hook runs: `("a"):rep(30):find(("a*"):
// rep(30) .. "b")` takes ages, and `.-` over a long subject is quadratic.
// Internal to engine/lua (pattern.cc binds it as string.find and friends).
#pragma once

#include <cstddef>

#include "engine/lua/internal.h"

namespace runbook::lua::pattern {

constexpr int kMaxCaptures = 32;  // LUA_MAXCAPTURES
constexpr ptrdiff_t kCapPosition = -2;

// One match (lstrlib's MatchState).
struct MatchState {
  const char* src_init;
  const char* src_end;
  const char* p_end;
  lua_State* L;
  int matchdepth;
  unsigned char level;
  struct {
    const char* init;
    ptrdiff_t len;
  } capture[kMaxCaptures];
  BudgetMeter meter;
};

// Sets ms up for subject s[0, ls) and pattern p[0, lp).
void PrepState(MatchState* ms, lua_State* L, const char* s, size_t ls, const char* p, size_t lp);
// Matches p at s: the end of the match, or null. Resets no captures: set
// ms->level = 0 before each attempt.
const char* Match(MatchState* ms, const char* s, const char* p);
// Plain search of s2 in s1; every byte compared counts on `meter`.
const char* MemFind(BudgetMeter* meter, const char* s1, size_t l1, const char* s2, size_t l2);
// Capture i of the match s..e (the whole match when there are none): its
// length and start, or kCapPosition with the position pushed.
size_t GetOneCapture(MatchState* ms, int i, const char* s, const char* e, const char** cap);
void PushOneCapture(MatchState* ms, int i, const char* s, const char* e);
// Pushes every capture (or the whole match); returns how many.
int PushCaptures(MatchState* ms, const char* s, const char* e);
// True if p has no pattern specials (a plain search will do).
bool NoSpecials(const char* p, size_t l);

}  // namespace runbook::lua::pattern
