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

}  // namespace runbook
