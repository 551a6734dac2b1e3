#include "engine/core/rehearsal_plan.h"

#include <filesystem>

namespace runbook {

namespace {
constexpr char kMade[] = "made ";
constexpr char kGone[] = "gone ";
}  // namespace

void RehearsalPlan::Put(const std::string& what, const std::string& step_id, bool gone,
                        bool journal) {
  // Journaled in the order the plan changes (two foreach items noting one
  // key), without holding readers up while the journal writes.
  std::lock_guard<std::mutex> order(journal_mu_);
  std::function<void(const std::string&, const std::string&)> fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = entries_.try_emplace(what, Entry{step_id, gone});
    if (!added) {
      if (!gone && !it->second.gone) return;  // made already: the first maker keeps it
      it->second = Entry{step_id, gone};
    }
    if (journal) fn = journal_;
  }
  if (fn) fn((gone ? kGone : kMade) + what, step_id);
}

void RehearsalPlan::Note(const std::string& what, const std::string& step_id) {
  Put(what, step_id, false, true);
}

void RehearsalPlan::NoteGone(const std::string& what, const std::string& step_id) {
  Put(what, step_id, true, true);
}

std::string RehearsalPlan::StepFor(const std::string& what) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(what);
  return it == entries_.end() || it->second.gone ? std::string() : it->second.step_id;
}

std::string RehearsalPlan::GoneBy(const std::string& what) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(what);
  return it == entries_.end() || !it->second.gone ? std::string() : it->second.step_id;
}

bool RehearsalPlan::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.empty();
}

void RehearsalPlan::SetJournal(
    std::function<void(const std::string& line, const std::string& step_id)> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  journal_ = std::move(fn);
}

void RehearsalPlan::Replay(const std::string& line, const std::string& step_id) {
  if (line.rfind(kMade, 0) == 0) Put(line.substr(sizeof(kMade) - 1), step_id, false, false);
  if (line.rfind(kGone, 0) == 0) Put(line.substr(sizeof(kGone) - 1), step_id, true, false);
}

RehearsalPlan* PlanOf(StepContext& ctx) { return PlanOf(ctx.resources(), ctx.dry_run()); }

RehearsalPlan* PlanOf(Resources& resources, bool dry_run) {
  if (!dry_run) return nullptr;
  Result<Resource*> r =
      resources.GetOrCreate("rehearsal-plan", []() -> Result<std::unique_ptr<Resource>> {
        return std::unique_ptr<Resource>(std::make_unique<RehearsalPlan>());
      });
  return r.ok() ? dynamic_cast<RehearsalPlan*>(*r) : nullptr;
}

std::string PlannedFileKey(const std::string& path) {
  std::error_code ec;
  return "file:" + std::filesystem::absolute(path, ec).lexically_normal().string();
}

}  // namespace runbook
