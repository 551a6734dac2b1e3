// RehearsalPlan: what the rehearsed steps of a run would have made, so that
// a later step's probe can tell "missing: a real run would stop here" from
// "missing because a rehearsal makes nothing".
//
// A rehearsed step that would create or change something notes it under a
// binding's key ("file:/abs/path", "postgres:<server>/database:<name>"); a
// later probe that finds the thing missing (or unchanged) asks which step
// would have made it, and answers with Status::NotYet naming that step. The
// step then ends UNKNOWN ("not probed: ..."), and what reads its result
// follows as UNKNOWN too. Per run, kept in ctx.resources(); thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "engine/core/resources.h"
#include "engine/core/step_context.h"

namespace runbook {

class RehearsalPlan : public Resource {
 public:
  // Step `step_id` would create or change `what`. The first step to note a
  // key keeps it.
  void Note(const std::string& what, const std::string& step_id);
  // The step that would create or change `what`; "" when none would.
  std::string StepFor(const std::string& what) const;
  bool empty() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> steps_;  // key -> step id
};

// The run's plan in a rehearsal; null in a real run (nothing to plan: what a
// step makes, exists).
RehearsalPlan* PlanOf(StepContext& ctx);
// The same, from the run's resources (the executor's, between steps).
RehearsalPlan* PlanOf(Resources& resources, bool dry_run);

// The key of a file or directory: "file:" + its absolute, normalised path.
std::string PlannedFileKey(const std::string& path);

}  // namespace runbook
