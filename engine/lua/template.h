// Templates: strings that embed ${{ lua expression }}. This file only splits
// and inspects them; evaluation is LuaRuntime's.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "engine/core/status.h"

namespace runbook {

struct TemplatePart {
  bool is_expr = false;
  std::string text;  // literal text, or the expression (trimmed)
  int offset = 0;    // byte offset of the part in the original string
};

// Splits "a ${{ x }} b" into parts. Fails on an unterminated "${{".
Result<std::vector<TemplatePart>> SplitTemplate(const std::string& s);
// True when s is exactly one "${{ expr }}" (its value keeps its type).
bool IsSingleExpression(const std::string& s);

// The scanners below work by hand, in linear time and constant stack
// (std::regex recursed per character and overflowed the stack on long
// expressions).

// Rewrites `steps.scale-down.result` to `steps["scale-down"].result` for the
// dashed ids in `step_ids`, so users can write ids as they name them.
std::string RewriteDashedIds(const std::string& expr, const std::set<std::string>& step_ids);

// Names an expression reads as steps.X / steps["X"] and params.X / params["X"].
std::set<std::string> ReferencedSteps(const std::string& expr);
std::set<std::string> ReferencedParams(const std::string& expr);
// Every steps.NAME in expr, NAME as written with its dashes, in order.
std::vector<std::string> DottedStepNames(const std::string& expr);
// True when expr reads `steps` other than as steps.NAME or steps["NAME"]
// (steps[x], pairs(steps)): which results it needs cannot be known.
bool ReadsStepsDynamically(const std::string& expr);
// True when Lua code reads the global `name` (not a field `x.name`, a key
// `{name = 1}`, an assignment, or text in a string or comment). False when
// the code declares a local of that name anywhere: which reads are the
// global's is then not known, and a check must not cry wolf.
bool ReadsGlobal(const std::string& code, const std::string& name);
// `code` with its Lua comments and the text of its strings blanked (newlines
// kept, so lines still count; a string that is a key, steps["x"], kept): the
// scanners above then read no prose.
std::string BlankLuaProse(const std::string& code);
// "id" of a foreach instance "id[3]"; other ids as they are.
std::string ForeachBase(const std::string& id);

}  // namespace runbook
