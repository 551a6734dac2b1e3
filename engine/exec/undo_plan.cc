// PlanUndo: which recorded steps a rollback undoes, newest first.
#include "engine/exec/undo_plan.h"

#include <algorithm>
#include <climits>

namespace runbook {

UndoPlan PlanUndo(const std::map<std::string, std::unique_ptr<StepRecord>>& records,
                  const std::vector<StepSpec>& root_steps, bool lift_boundaries) {
  UndoPlan out;
  int64_t keep_up_to = 0;
  for (const StepSpec& s : root_steps) {
    if (s.rollback_boundary.empty()) continue;
    auto after = records.find(s.rollback_boundary);
    auto here = records.find(s.id);
    if (after == records.end() || here == records.end()) continue;
    if (after->second->done_seq == 0) continue;  // never succeeded
    if (lift_boundaries && after->second->status == StepStatus::kUndone) continue;
    if (here->second->seq > keep_up_to) {
      keep_up_to = here->second->seq;
      out.kept_by = s.id;
      out.kept_until = s.rollback_boundary;
    }
  }
  for (const auto& [id, rec] : records) {
    if (keep_up_to > 0 && rec->seq <= keep_up_to) continue;
    const bool any_state = std::any_of(rec->undo.begin(), rec->undo.end(),
                                       [](const UndoEntry& e) { return !e.state.is_null(); });
    switch (rec->status) {
      case StepStatus::kSucceeded:
      case StepStatus::kUndoing:
      case StepStatus::kUndoFailed:
        out.steps.push_back(rec.get());
        break;
      case StepStatus::kFailed:
      case StepStatus::kRunning:
        // It may have acted part-way: undo what it recorded before acting.
        if (any_state) out.steps.push_back(rec.get());
        break;
      default:
        break;
    }
  }
  std::sort(out.steps.begin(), out.steps.end(), [](const StepRecord* a, const StepRecord* b) {
    int64_t ka = a->done_seq ? a->done_seq : INT64_MAX, kb = b->done_seq ? b->done_seq : INT64_MAX;
    if (ka != kb) return ka > kb;
    return a->seq > b->seq;
  });
  return out;
}

}  // namespace runbook
