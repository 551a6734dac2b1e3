// Registers the kube binding: the "kube" connection type and the kube.*
// primitives (kubectl underneath; see README.md).
#pragma once

#include "engine/core/registry.h"

namespace runbook {

void RegisterKube(Registry* r);

}  // namespace runbook
