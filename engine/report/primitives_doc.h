// The reference of every primitive and connection type, generated from the
// registry the validator and the executor use (`runbook docs`): what
// docs/primitives.md holds. A test keeps the checked-in file current.
#pragma once

#include <string>
#include <vector>

#include "engine/core/registry.h"

namespace runbook {

// Markdown: each primitive's help, arguments (type, required, choices, what
// a value must look like), scalar form, rehearsal mode, whether a resume may
// run it again, and its effect and undo as `plan` shows them with every
// required argument left as a template.
std::string PrimitivesMarkdown(const Registry& registry);

// A primitive's arguments and result fields as the reference shows them
// (the markdown above, the man page's PRIMITIVES section): one row each.
struct DocRow {
  std::string name;  // an argument's name; a result field's path (`databases[].name`)
  std::string type;  // "string", "connection (postgres)", "list of strings"
  std::string note;  // its help, with choices and form; "optional: ..." for a field
  bool required = false;
};
std::vector<DocRow> ArgRows(const Schema& s);
std::vector<DocRow> ResultRows(const Schema& s);
// "a map", "a list of maps, one per row (other keys are data)"; "" when undeclared.
std::string ResultSummary(const Schema& s);
// "probe: runs for real, reads only", ...
const char* RehearsalText(Rehearsal r);

// The arguments `plan` would see for a step that gives every required one
// (and the first of each one_of group) as a template.
Value PlaceholderArgs(const Schema& s);

}  // namespace runbook
