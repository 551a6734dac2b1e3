// The reference of every primitive and connection type, generated from the
// registry the validator and the executor use (`runbook docs`): what
// docs/primitives.md holds. A test keeps the checked-in file current.
#pragma once

#include <string>

#include "engine/core/registry.h"

namespace runbook {

// Markdown: each primitive's help, arguments (type, required, choices, what
// a value must look like), scalar form, rehearsal mode, whether a resume may
// run it again, and its effect and undo as `plan` shows them with every
// required argument left as a template.
std::string PrimitivesMarkdown(const Registry& registry);

// The arguments `plan` would see for a step that gives every required one
// (and the first of each one_of group) as a template.
Value PlaceholderArgs(const Schema& s);

}  // namespace runbook
