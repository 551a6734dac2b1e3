// Registers the ssh binding: the "ssh" connection type and the ssh.*
// primitives (exec, upload, download, tunnel).
#pragma once

#include "engine/core/registry.h"

namespace runbook {

void RegisterSsh(Registry* r);

}  // namespace runbook
