// The built-in actions: lua, exec, sleep, log, fail,
// approve, include. They implement the same Primitive interface as the
// bindings; nothing in the executor knows their names except for display.
#pragma once

#include "engine/core/registry.h"

namespace runbook {

void RegisterBuiltins(Registry* registry);

}  // namespace runbook
