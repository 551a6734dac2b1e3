#include "engine/core/rehearsal_plan.h"

#include <algorithm>
#include <filesystem>

namespace runbook {

namespace {
constexpr char kMade[] = "made ";
constexpr char kGone[] = "gone ";
constexpr char kForget[] = "forget";
constexpr char kUnnote[] = "unnote ";
}  // namespace

std::string RehearsalPlan::Put(const std::string& what, const std::string& step_id, bool gone,
                               bool journal, bool* noted) {
  if (noted) *noted = false;
  // Journaled in the order the plan changes (two foreach items noting one
  // key), without holding readers up while the journal writes.
  std::lock_guard<std::mutex> order(journal_mu_);
  std::function<void(const std::string&, const std::string&)> fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Entry>& history = entries_[what];
    if (!gone && !history.empty() && !history.back().gone) {
      // The first maker since it was last removed keeps it.
      size_t i = history.size();
      while (i > 0 && !history[i - 1].gone) --i;
      return history[i].step_id;
    }
    history.push_back(Entry{step_id, gone});
    if (noted) *noted = true;
    if (journal) fn = journal_;
  }
  if (fn) fn((gone ? kGone : kMade) + what, step_id);
  return "";
}

void RehearsalPlan::Note(const std::string& what, const std::string& step_id) {
  Put(what, step_id, false, true);
}

std::string RehearsalPlan::Claim(const std::string& what, const std::string& step_id, bool* noted) {
  const std::string first = Put(what, step_id, false, true, noted);
  return first == step_id ? "" : first;
}

void RehearsalPlan::Unnote(const std::string& what, const std::string& step_id) {
  Take(what, step_id, true);
}

void RehearsalPlan::Take(const std::string& what, const std::string& step_id, bool journal) {
  std::lock_guard<std::mutex> order(journal_mu_);
  std::function<void(const std::string&, const std::string&)> fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(what);
    if (it == entries_.end()) return;
    std::vector<Entry>& h = it->second;
    auto last =
        std::find_if(h.rbegin(), h.rend(), [&](const Entry& e) { return e.step_id == step_id; });
    if (last == h.rend()) return;
    h.erase(std::next(last).base());
    if (h.empty()) entries_.erase(it);
    if (journal) fn = journal_;
  }
  if (fn) fn(kUnnote + what, step_id);
}

void RehearsalPlan::NoteGone(const std::string& what, const std::string& step_id) {
  Put(what, step_id, true, true);
}

void RehearsalPlan::Forget(const std::string& step_id) {
  std::lock_guard<std::mutex> order(journal_mu_);
  std::function<void(const std::string&, const std::string&)> fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool any = false;
    for (auto it = entries_.begin(); it != entries_.end();) {
      std::vector<Entry>& h = it->second;
      const size_t before = h.size();
      h.erase(
          std::remove_if(h.begin(), h.end(), [&](const Entry& e) { return e.step_id == step_id; }),
          h.end());
      any = any || h.size() != before;
      it = h.empty() ? entries_.erase(it) : std::next(it);
    }
    if (any) fn = journal_;
  }
  if (fn) fn(kForget, step_id);
}

std::string RehearsalPlan::StepFor(const std::string& what) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(what);
  if (it == entries_.end() || it->second.empty() || it->second.back().gone) return "";
  // The first of the makers since it was last removed.
  const std::vector<Entry>& h = it->second;
  size_t i = h.size();
  while (i > 0 && !h[i - 1].gone) --i;
  return h[i].step_id;
}

std::string RehearsalPlan::GoneBy(const std::string& what) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(what);
  if (it == entries_.end() || it->second.empty() || !it->second.back().gone) return "";
  return it->second.back().step_id;
}

std::string RehearsalPlan::FirstStepWhere(
    const std::function<bool(const std::string& key)>& match) const {
  std::vector<std::string> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, h] : entries_) {
      if (!h.empty() && !h.back().gone) keys.push_back(key);
    }
  }
  for (const std::string& key : keys) {
    if (match(key)) return StepFor(key);
  }
  return "";
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
  if (line == kForget) {
    std::function<void(const std::string&, const std::string&)> fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn.swap(journal_);
    }
    Forget(step_id);
    std::lock_guard<std::mutex> lock(mu_);
    journal_.swap(fn);
    return;
  }
  if (line.rfind(kUnnote, 0) == 0) Take(line.substr(sizeof(kUnnote) - 1), step_id, false);
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
