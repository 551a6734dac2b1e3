// Validator: Node tree -> Runbook. Internal to the parser.
//
// It reports every problem it finds (never stops at the first) as a
// Diagnostic with file:line:col, the step it concerns and, for unknown
// names, a suggestion. One Validator validates one file; includes are
// loaded through the shared LoadContext.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/core/registry.h"
#include "engine/model/model.h"
#include "engine/parser/node.h"
#include "engine/parser/parser.h"

namespace runbook {

// Shared by a runbook and everything it includes, recursively.
struct LoadContext {
  std::vector<std::string> stack;  // absolute paths being loaded, outermost first
  // Every runbook loaded so far, by absolute path; nullptr when it failed.
  std::map<std::string, std::shared_ptr<const Runbook>> cache;
};

// LoadRunbook / ParseRunbook with a context (for includes).
std::shared_ptr<const Runbook> LoadRunbookWith(const std::string& path, const Registry& registry,
                                               LoadContext* ctx, std::vector<Diagnostic>* diags);
std::shared_ptr<const Runbook> ParseRunbookWith(const std::string& path, const std::string& text,
                                                const Registry& registry, LoadContext* ctx,
                                                std::vector<Diagnostic>* diags);

// Which step results a template or expression may read.
struct RefScope {
  const std::set<std::string>* visible = nullptr;  // step ids it may read
  std::string no_steps;  // when set: step references are refused with this reason
};

class Validator {
 public:
  Validator(const std::string& path, const Registry& registry, LoadContext* ctx,
            std::vector<Diagnostic>* diags);

  // Fills *rb from the tree. Returns false when it found any problem.
  bool Validate(const Node& root, Runbook* rb);

 private:
  // validator.cc: the top level.
  void TopLevel(const Node& root);
  void Format(const Node& n);
  void Name(const Node& n);
  void ParseOnFailure(const Node& n);
  // validate_window.cc
  void ParseWindow(const Node& n);
  void WindowDays(const Node& n, Window* w);
  bool WindowTime(const Node& n, const std::string& what, int* minute);
  // validate_params.cc
  void Params(const Node& n);
  void Param(const Node& key, const Node& value);
  // validate_connections.cc
  void Connections(const Node& n);
  void ConnectionEntry(const Node& key, const Node& value);
  void CheckConnectionRefs(const Schema& schema, const Value& args, const Node& value,
                           const Pos& anchor, const std::string& label, const std::string& self);
  // After the steps: a connection whose templates read steps.X is not
  // opened (first used) by a step that runs before X, when it would be nil.
  void CheckConnectionOrder();
  // validate_steps.cc
  void Steps(const Node& n);
  void CollectIds(const Node& n);
  void Step(const Node& n, size_t index);
  void StepId(const Node& n, StepSpec* s);
  void StepKey(const std::string& key, const Node& v, StepSpec* s);
  bool UnknownStepKey(const Node& k, const std::vector<const std::pair<Node, Node>*>& actions);
  void StepActions(const Node& n, const std::vector<const std::pair<Node, Node>*>& actions,
                   StepSpec* s);
  // validate_step_keys.cc
  void Expression(const Node& v, const std::string& key, const RefScope& scope,
                  std::optional<std::string>* out, Pos* pos);
  void Foreach(const Node& v, StepSpec* s);
  bool IntKey(const Node& v, const std::string& key, int min, int* out);
  bool DurationKey(const Node& v, const std::string& key, std::chrono::milliseconds* out);
  bool BoolKey(const Node& v, const std::string& key, bool* out);
  bool StringKey(const Node& v, const std::string& key, std::string* out);
  void Rollback(const Node& v, StepSpec* s);
  // validate_action.cc
  bool Action(const Node& key, const Node& value, const RefScope& scope, ActionSpec* out);
  void ReportArgErrors(const std::vector<ArgError>& errors, const std::string& label,
                       const Node& value, const Pos& anchor);
  // validate_include.cc
  void Include(const Node& key, const Node& value, const Value& args);
  void IncludeParams(const Runbook& child, const std::string& shown, const Node& value,
                     const Value& args, const Pos& anchor);
  // validate_templates.cc
  void CheckTemplates(const Node& n, const RefScope& scope);
  void CheckTemplateString(const Node& n, const RefScope& scope);
  // A lua: step's code, compiled (not run): a syntax error at its line;
  // then what it reads, as CheckRefs.
  void CheckLuaCode(const Value& code, const Pos& first_line, const RefScope& scope);
  void CheckExpr(const std::string& expr, const Pos& pos, const std::string& where,
                 const RefScope& scope);
  // What Lua `code` (an expression, or a chunk when first_line is set)
  // reads: params that exist, steps that have run, `item` in a foreach.
  // Each problem at `pos`, or for a chunk at the line that reads it.
  void CheckRefs(const std::string& code, const Pos& pos, const std::string& where,
                 const RefScope& scope, const Pos* first_line = nullptr);
  bool StepRefOk(const std::string& name, const Pos& pos, const std::string& where,
                 const RefScope& scope);

  void SortDiagnostics();
  // Reports a problem; `step_` names the step being validated.
  void Error(const Pos& pos, const std::string& message, const std::string& suggestion = "");
  std::string Display(const std::string& path) const;

  std::string path_;
  const Registry& registry_;
  LoadContext* ctx_;
  std::vector<Diagnostic>* diags_;
  size_t first_diag_;
  bool failed_ = false;  // an include failed earlier (its diagnostics are already out)
  Runbook* rb_ = nullptr;

  std::string step_;                      // the step being validated, for messages
  std::string step_id_;                   // its id ("" when it has none)
  std::set<std::string> all_ids_;         // every step id in the file
  std::map<std::string, Pos> seen_ids_;   // ids of steps validated so far
  std::set<std::string> earlier_;         // ids of steps before the current one
  std::set<std::string> with_self_;       // earlier_ and the current step (assert, rollback)
  std::set<std::string> include_steps_;   // ids of include steps so far
  bool item_ = false;                     // `item` is set where we are (a foreach step)
  bool in_connection_ = false;            // validating a connection's config
  std::map<std::string, std::string> connection_types_;  // name -> type, from the file
};

// Makes the expressions inside every `${{ }}` of s (or of every string in v)
// Lua-ready: `steps.scale-down` -> `steps["scale-down"]` for the dashed ids
// in `ids`. The model holds templates rewritten so, so that the runtime, plan
// and rollback need not know about dashed ids; text outside `${{ }}` and
// expressions that need no change are kept exactly as written.
std::string RewriteTemplateIds(const std::string& s, const std::set<std::string>& ids);
Value RewriteTemplateIds(const Value& v, const std::set<std::string>& ids);

// Shared by the validator and ResolveParams (param_values.cc).
bool ParseParamType(const std::string& name, ParamType* out);
// Converts a declared value (a default, a params file entry, an include's
// param) to the param's type. Returns "" or the problem ("expected int, got
// a string").
std::string ParamValueFromNode(ParamType type, const Node& n, Value* out);
// Converts a command-line or environment string (lists and maps as YAML
// flow). Returns "" or the problem.
std::string ParamValueFromString(ParamType type, const std::string& text, Value* out);

}  // namespace runbook
