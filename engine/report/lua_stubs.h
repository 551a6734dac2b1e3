// LuaLS annotations of what runbook's Lua sees (`runbook stubs`): the
// primitives as functions with their arguments as classes, params, steps,
// run, item, result, log and fail. With them, an editor running the Lua
// language server completes `pg.copy{...}` and `steps.x.result` in `lua:`
// steps and `.lua` runbooks. docs/lua/runbook.lua holds the output; a test
// keeps it current and checks that it is valid Lua.
#pragma once

#include <string>

#include "engine/core/registry.h"

namespace runbook {

std::string LuaStubs(const Registry& registry);

}  // namespace runbook
