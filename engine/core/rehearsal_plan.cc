#include "engine/core/rehearsal_plan.h"

#include <filesystem>

namespace runbook {

void RehearsalPlan::Note(const std::string& what, const std::string& step_id) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.emplace(what, step_id);
}

std::string RehearsalPlan::StepFor(const std::string& what) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = steps_.find(what);
  return it == steps_.end() ? std::string() : it->second;
}

bool RehearsalPlan::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return steps_.empty();
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
