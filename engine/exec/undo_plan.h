// The order a rollback undoes a run's steps in, as a function of the
// journal's records and the runbook's rollback boundaries: no I/O, so the
// decision is unit-tested on hand-made records (tests/engine/
// undo_plan_test.cc), not only through killed engines.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/model.h"
#include "engine/state/store.h"

namespace runbook {

struct UndoPlan {
  // Newest first: by order of success; steps that never succeeded (failed
  // or killed after recording an undo state) are newest.
  std::vector<StepRecord*> steps;
  // A rollback boundary keeps the steps up to `kept_by` (empty: none kept)
  // until step `kept_until` (the switch it guards) is undone.
  std::string kept_by;
  std::string kept_until;
};

// What a rollback undoes: the steps that succeeded (or whose undo began or
// failed), and those that failed or were running after recording an undo
// state (they may have acted part-way), minus those a rollback boundary of
// `root_steps` keeps. A boundary is active once the step it names has
// succeeded (a switch that failed moved nothing); `lift_boundaries` (a
// second rollback of a run rolled back to its boundary) lifts those whose
// step is undone by now. Whether each step has anything to undo is the
// executor's (WillUndo): it needs the runbook and the registry.
UndoPlan PlanUndo(const std::map<std::string, std::unique_ptr<StepRecord>>& records,
                  const std::vector<StepSpec>& root_steps, bool lift_boundaries);

}  // namespace runbook
