#include "engine/core/primitive.h"

#include <utility>

namespace runbook {

const char* RehearsalName(Rehearsal r) {
  switch (r) {
    case Rehearsal::kUndeclared:
      return "undeclared";
    case Rehearsal::kProbe:
      return "probe";
    case Rehearsal::kSimulate:
      return "simulate";
    case Rehearsal::kSkip:
      return "skip";
  }
  return "?";
}

PlanEffect ChangesNothing(std::string text, const std::string& why) {
  std::string undo = "nothing to undo";
  if (!why.empty()) undo += " (" + why + ")";
  return {std::move(text), UndoKind::kNothingToUndo, std::move(undo)};
}

PlanEffect Irreversible(std::string text, std::string why) {
  return {std::move(text), UndoKind::kIrreversible, std::move(why)};
}

Status CheckDeclaredResult(const Primitive& p, const Value& result) {
  if (!CheckResultsEnabled()) return Status::Ok();
  const std::optional<FieldSpec>& spec = p.schema().result;
  if (!spec) return Status::Ok();  // every registered one declares it (docs_test.cc)
  std::vector<std::string> errors = CheckResultShape(*spec, result);
  if (errors.empty()) return Status::Ok();
  std::string msg = p.name() + "'s result differs from its declaration (RUNBOOK_CHECK_RESULTS):";
  for (const std::string& e : errors) msg += " " + e + ";";
  msg.pop_back();
  return Status::Failed(msg);
}

}  // namespace runbook
