// See pattern_match.h. The structure follows lstrlib.c so the two can be
// compared; the differences are the meter and C++ spelling.
#include "engine/lua/pattern_match.h"

#include <cctype>
#include <cstring>

namespace runbook::lua::pattern {
namespace {

constexpr int kMaxMatchDepth = 200;  // MAXCCALLS of lstrlib: C stack per match
constexpr ptrdiff_t kCapUnfinished = -1;
constexpr char kEsc = '%';
constexpr const char* kSpecials = "^$*+?.([%-";

unsigned char U(char c) { return static_cast<unsigned char>(c); }

int CheckCapture(MatchState* ms, int l) {
  l -= '1';
  if (l < 0 || l >= ms->level || ms->capture[l].len == kCapUnfinished) {
    return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
  }
  return l;
}

int CaptureToClose(MatchState* ms) {
  for (int level = ms->level - 1; level >= 0; level--) {
    if (ms->capture[level].len == kCapUnfinished) return level;
  }
  return luaL_error(ms->L, "invalid pattern capture");
}

const char* ClassEnd(MatchState* ms, const char* p) {
  switch (*p++) {
    case kEsc:
      if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
      return p + 1;
    case '[':
      if (*p == '^') p++;
      do {  // look for a ']'
        if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
        if (*(p++) == kEsc && p < ms->p_end) p++;  // skip escapes (e.g. '%]')
      } while (*p != ']');
      return p + 1;
    default:
      return p;
  }
}

bool MatchClass(int c, int cl) {
  int res;
  switch (tolower(cl)) {
    case 'a':
      res = isalpha(c);
      break;
    case 'c':
      res = iscntrl(c);
      break;
    case 'd':
      res = isdigit(c);
      break;
    case 'g':
      res = isgraph(c);
      break;
    case 'l':
      res = islower(c);
      break;
    case 'p':
      res = ispunct(c);
      break;
    case 's':
      res = isspace(c);
      break;
    case 'u':
      res = isupper(c);
      break;
    case 'w':
      res = isalnum(c);
      break;
    case 'x':
      res = isxdigit(c);
      break;
    case 'z':
      res = (c == 0);
      break;  // deprecated option
    default:
      return cl == c;
  }
  return islower(cl) ? res != 0 : res == 0;
}

bool MatchBracketClass(int c, const char* p, const char* ec) {
  bool sig = true;
  if (*(p + 1) == '^') {
    sig = false;
    p++;
  }
  while (++p < ec) {
    if (*p == kEsc) {
      p++;
      if (MatchClass(c, U(*p))) return sig;
    } else if (*(p + 1) == '-' && p + 2 < ec) {
      p += 2;
      if (U(*(p - 2)) <= c && c <= U(*p)) return sig;
    } else if (U(*p) == c) {
      return sig;
    }
  }
  return !sig;
}

bool SingleMatch(MatchState* ms, const char* s, const char* p, const char* ep) {
  if (s >= ms->src_end) return false;
  int c = U(*s);
  switch (*p) {
    case '.':
      return true;
    case kEsc:
      return MatchClass(c, U(*(p + 1)));
    case '[':
      return MatchBracketClass(c, p, ep - 1);
    default:
      return U(*p) == c;
  }
}

const char* MatchBalance(MatchState* ms, const char* s, const char* p) {
  if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
  if (*s != *p) return nullptr;
  int b = *p, e = *(p + 1), cont = 1;
  while (++s < ms->src_end) {
    ms->meter.Add(1);
    if (*s == e) {
      if (--cont == 0) return s + 1;
    } else if (*s == b) {
      cont++;
    }
  }
  return nullptr;
}

const char* MaxExpand(MatchState* ms, const char* s, const char* p, const char* ep) {
  ptrdiff_t i = 0;
  while (SingleMatch(ms, s + i, p, ep)) {
    ms->meter.Add(1);
    i++;
  }
  for (; i >= 0; i--) {  // try the longest first
    if (const char* res = Match(ms, s + i, ep + 1)) return res;
  }
  return nullptr;
}

const char* MinExpand(MatchState* ms, const char* s, const char* p, const char* ep) {
  for (;;) {
    if (const char* res = Match(ms, s, ep + 1)) return res;
    if (!SingleMatch(ms, s, p, ep)) return nullptr;
    s++;
  }
}

const char* StartCapture(MatchState* ms, const char* s, const char* p, ptrdiff_t what) {
  int level = ms->level;
  if (level >= kMaxCaptures) luaL_error(ms->L, "too many captures");
  ms->capture[level].init = s;
  ms->capture[level].len = what;
  ms->level = static_cast<unsigned char>(level + 1);
  const char* res = Match(ms, s, p);
  if (!res) ms->level--;
  return res;
}

const char* EndCapture(MatchState* ms, const char* s, const char* p) {
  int l = CaptureToClose(ms);
  ms->capture[l].len = s - ms->capture[l].init;
  const char* res = Match(ms, s, p);
  if (!res) ms->capture[l].len = kCapUnfinished;
  return res;
}

const char* MatchCapture(MatchState* ms, const char* s, int l) {
  l = CheckCapture(ms, l);
  size_t len = static_cast<size_t>(ms->capture[l].len);
  ms->meter.Add(len);
  if (static_cast<size_t>(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) {
    return s + len;
  }
  return nullptr;
}

// The single-character-class case of Match: the class at p, then its
// optional suffix. Sets *p to continue with, or returns the result.
const char* MatchDefault(MatchState* ms, const char* s, const char** pp, bool* done) {
  const char* p = *pp;
  const char* ep = ClassEnd(ms, p);
  *done = true;
  if (!SingleMatch(ms, s, p, ep)) {
    if (*ep == '*' || *ep == '?' || *ep == '-') {  // accept empty
      *pp = ep + 1;
      *done = false;
      return s;
    }
    return nullptr;  // '+' or no suffix
  }
  switch (*ep) {
    case '?':
      if (const char* res = Match(ms, s + 1, ep + 1)) return res;
      *pp = ep + 1;
      *done = false;
      return s;
    case '+':
      return MaxExpand(ms, s + 1, p, ep);
    case '*':
      return MaxExpand(ms, s, p, ep);
    case '-':
      return MinExpand(ms, s, p, ep);
    default:
      *pp = ep;
      *done = false;
      return s + 1;
  }
}

}  // namespace

const char* Match(MatchState* ms, const char* s, const char* p) {
  if (ms->matchdepth-- == 0) luaL_error(ms->L, "pattern too complex");
  for (;;) {  // each `continue` is a tail call: match(ms, s, p)
    ms->meter.Add(1);
    if (p == ms->p_end) break;
    if (*p == '(') {
      s = *(p + 1) == ')' ? StartCapture(ms, s, p + 2, kCapPosition)
                          : StartCapture(ms, s, p + 1, kCapUnfinished);
      break;
    }
    if (*p == ')') {
      s = EndCapture(ms, s, p + 1);
      break;
    }
    if (*p == '$' && p + 1 == ms->p_end) {
      s = (s == ms->src_end) ? s : nullptr;
      break;
    }
    if (*p == kEsc && *(p + 1) == 'b') {
      s = MatchBalance(ms, s, p + 2);
      if (!s) break;
      p += 4;
      continue;
    }
    if (*p == kEsc && *(p + 1) == 'f') {
      p += 2;
      if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
      const char* ep = ClassEnd(ms, p);
      char previous = (s == ms->src_init) ? '\0' : *(s - 1);
      if (!MatchBracketClass(U(previous), p, ep - 1) && MatchBracketClass(U(*s), p, ep - 1)) {
        p = ep;
        continue;
      }
      s = nullptr;
      break;
    }
    if (*p == kEsc && isdigit(U(*(p + 1)))) {
      s = MatchCapture(ms, s, U(*(p + 1)));
      if (!s) break;
      p += 2;
      continue;
    }
    bool done;
    s = MatchDefault(ms, s, &p, &done);
    if (done) break;
  }
  ms->matchdepth++;
  return s;
}

// Plain search; every byte compared counts.
const char* MemFind(BudgetMeter* meter, const char* s1, size_t l1, const char* s2, size_t l2) {
  if (l2 == 0) return s1;
  if (l2 > l1) return nullptr;
  l2--;  // the first char is found by memchr
  l1 = l1 - l2;
  const char* init;
  while (l1 > 0 && (init = static_cast<const char*>(memchr(s1, *s2, l1))) != nullptr) {
    meter->Add(static_cast<size_t>(init - s1) / 64 + l2 + 1);
    init++;
    if (memcmp(init, s2 + 1, l2) == 0) return init - 1;
    l1 -= init - s1;
    s1 = init;
  }
  return nullptr;
}

size_t GetOneCapture(MatchState* ms, int i, const char* s, const char* e, const char** cap) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
    *cap = s;
    return e - s;
  }
  ptrdiff_t capl = ms->capture[i].len;
  *cap = ms->capture[i].init;
  if (capl == kCapUnfinished) {
    luaL_error(ms->L, "unfinished capture");
  } else if (capl == kCapPosition) {
    lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
  }
  return capl;
}

void PushOneCapture(MatchState* ms, int i, const char* s, const char* e) {
  const char* cap;
  ptrdiff_t l = GetOneCapture(ms, i, s, e, &cap);
  if (l != kCapPosition) lua_pushlstring(ms->L, cap, l);
}

int PushCaptures(MatchState* ms, const char* s, const char* e) {
  int nlevels = (ms->level == 0 && s) ? 1 : ms->level;
  luaL_checkstack(ms->L, nlevels, "too many captures");
  for (int i = 0; i < nlevels; i++) PushOneCapture(ms, i, s, e);
  return nlevels;
}

bool NoSpecials(const char* p, size_t l) {
  size_t upto = 0;
  do {
    if (strpbrk(p + upto, kSpecials)) return false;
    upto += strlen(p + upto) + 1;  // may have more after \0
  } while (upto <= l);
  return true;
}

void PrepState(MatchState* ms, lua_State* L, const char* s, size_t ls, const char* p, size_t lp) {
  ms->L = L;
  ms->matchdepth = kMaxMatchDepth;
  ms->src_init = s;
  ms->src_end = s + ls;
  ms->p_end = p + lp;
  ms->meter.SetState(L);
}

}  // namespace runbook::lua::pattern
