// The one place that knows which bindings exist.
#pragma once

#include "engine/core/registry.h"

namespace runbook {

// Registers the built-in actions and every binding's primitives.
void RegisterAll(Registry* registry);

}  // namespace runbook
