// The parser: runbook files (YAML or Lua) -> validated Runbook.
//
// Pipeline: a loader turns the file into a Node tree with positions (YAML:
// yaml-cpp marks; Lua: the table a sandboxed chunk returns), and the
// validator turns the tree into the model, checking everything that can be
// checked without connecting: keys, types, durations, ids, actions and their
// arguments (from the Registry), connection references, template
// references, include cycles.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/registry.h"
#include "engine/model/model.h"

namespace runbook {

// One problem found in a runbook or in params.
struct Diagnostic {
  Pos pos;
  std::string step;        // the step it concerns, or ""
  std::string message;
  std::string suggestion;  // "did you mean" candidate, or ""

  // "file:line:col: step 'id': message (did you mean 'x'?)"
  std::string ToString() const;
};

// Loads and validates `path` and, recursively, the runbooks it includes.
// Returns nullptr when diags holds at least one error.
std::shared_ptr<const Runbook> LoadRunbook(const std::string& path, const Registry& registry,
                                           std::vector<Diagnostic>* diags);

// Same, from text already in memory (tests); `path` names it in messages and
// anchors relative includes.
std::shared_ptr<const Runbook> ParseRunbook(const std::string& path, const std::string& text,
                                            const Registry& registry,
                                            std::vector<Diagnostic>* diags);

// Resolves a run's params: `-p k=v` values (strings, converted to the declared
// type; lists and maps as YAML flow: [a, b], {k: v}), then a params file
// (YAML map), then `env:`, then defaults. Unknown names, bad types and
// missing required params are diagnostics. Returns an object.
Value ResolveParams(const Runbook& rb, const std::map<std::string, std::string>& cli,
                    const std::string& params_file, std::vector<Diagnostic>* diags);

// The JSON Schema (draft 2020-12) of the runbook format, generated from the
// same Registry the validator uses.
Value RunbookJsonSchema(const Registry& registry);

}  // namespace runbook
