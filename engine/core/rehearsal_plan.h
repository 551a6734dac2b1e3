// RehearsalPlan: what the rehearsed steps of a run would have made, so that
// a later step's probe can tell "missing: a real run would stop here" from
// "missing because a rehearsal makes nothing".
//
// A rehearsed step that would create or change something notes it under a
// binding's key ("file:/abs/path", "postgres:<server>/database:<name>"); a
// later probe that finds the thing missing (or unchanged) asks which step
// would have made it, and answers with Status::NotYet naming that step. The
// step then ends UNKNOWN ("not probed: ..."), and what reads its result
// follows as UNKNOWN too. A rehearsed step that would remove something
// (pg.drop_database) notes it gone: a later step that finds it still there
// answers as a real run would (it would not be there), and a later step may
// make it again. Per run, kept in ctx.resources(); thread-safe. The executor
// journals every note (events "plan.note"), so a resumed rehearsal knows
// what its earlier steps planned.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/resources.h"
#include "engine/core/step_context.h"

namespace runbook {

class RehearsalPlan : public Resource {
 public:
  // Step `step_id` would create or change `what`. The first step to note a
  // key keeps it, unless a step noted it gone since.
  void Note(const std::string& what, const std::string& step_id);
  // Step `step_id` would create `what`, which only one step can (a
  // database, a file written without overwrite): notes it and returns "",
  // or, when another step would make it already, returns that step and
  // notes nothing. Checked and noted at once: two foreach items running
  // side by side cannot both claim it, as a real run would not make it
  // twice.
  // `*noted` (if given) says whether this call noted it (not when the step
  // had claimed it already).
  std::string Claim(const std::string& what, const std::string& step_id, bool* noted = nullptr);
  // Step `step_id` would remove `what` (whoever made it).
  void NoteGone(const std::string& what, const std::string& step_id);
  // The step that would create or change `what`; "" when none would, or a
  // later step would remove it.
  std::string StepFor(const std::string& what) const;
  // The step that would have removed `what` by now; "" when none would, or
  // a later step would make it again.
  std::string GoneBy(const std::string& what) const;
  // The step that would make the first key (in key order) `match` accepts
  // (and no later step would remove); "" when none.
  std::string FirstStepWhere(const std::function<bool(const std::string& key)>& match) const;
  bool empty() const;

  // Takes back every note of step `step_id` (an attempt of it starts again:
  // a retry, a resume): what it made or removed is as before it ran.
  void Forget(const std::string& step_id);
  // Takes back the last note of `what` by step `step_id` only (one call of
  // a Lua step failed whole: what the step's other calls noted stays).
  void Unnote(const std::string& what, const std::string& step_id);

  // Called with each note as it is made ("made <key>", "gone <key>" or
  // "forget", "unnote <key>", and the step), outside the plan's lock; Replay takes such a
  // line back.
  void SetJournal(std::function<void(const std::string& line, const std::string& step_id)> fn);
  void Replay(const std::string& line, const std::string& step_id);

 private:
  struct Entry {
    std::string step_id;
    bool gone = false;
  };
  // Returns the step that made `what` already (a make is then not noted).
  // `*noted`: whether it was.
  std::string Put(const std::string& what, const std::string& step_id, bool gone, bool journal,
                  bool* noted = nullptr);
  void Take(const std::string& what, const std::string& step_id, bool journal);

  std::mutex journal_mu_;  // taken before mu_, held while journaling
  mutable std::mutex mu_;
  // key -> the steps that made or removed it, in order (the last decides)
  std::map<std::string, std::vector<Entry>> entries_;
  std::function<void(const std::string&, const std::string&)> journal_;
};

// The run's plan in a rehearsal; null in a real run (nothing to plan: what a
// step makes, exists).
RehearsalPlan* PlanOf(StepContext& ctx);
// The same, from the run's resources (the executor's, between steps).
RehearsalPlan* PlanOf(Resources& resources, bool dry_run);

// The key of a file or directory: "file:" + its absolute, normalised path.
std::string PlannedFileKey(const std::string& path);

}  // namespace runbook
