// `runbook plan`: the static dry-run. Never connects: expands what params
// make known, keeps "${{ }}" where a value depends on an earlier step, asks
// each primitive for its exact effect, and prints the rollback plan.
#pragma once

#include <string>

#include "engine/core/redact.h"
#include "engine/core/registry.h"
#include "engine/model/model.h"

namespace runbook {

// Text for people; deterministic (no times, no ids) so it can be diffed.
std::string RenderPlan(const Runbook& rb, const Value& params, const Registry& registry,
                       const Redactor& redactor);

}  // namespace runbook
