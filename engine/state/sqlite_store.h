// Internal to engine/state: the SQLite state store (store.cc, store_steps.cc).
// Run locks are flock(2)s in the "locks" directory beside the file.
#pragma once

#include <mutex>

#include "engine/state/store.h"

struct sqlite3;

namespace runbook {

class SqliteStateStore final : public StateStore {
 public:
  ~SqliteStateStore() override;
  static Result<std::unique_ptr<StateStore>> Open(const std::string& path);
  const std::string& path() const override { return path_; }

  Status CreateRun(const RunRecord& run) override;
  Status UpdateRun(const std::string& run_id, RunStatus status, const std::string& error) override;
  Result<RunRecord> GetRun(const std::string& run_id) override;
  Result<std::vector<RunRecord>> ListRuns(int limit) override;
  Status PutStep(StepRecord* step, const Event* event, bool durable) override;
  Result<std::vector<StepRecord>> GetSteps(const std::string& run_id) override;
  Result<std::optional<StepRecord>> GetStep(const std::string& run_id,
                                            const std::string& step_id) override;
  Status AppendEvent(const Event& e) override;
  Result<std::vector<Event>> GetEvents(const std::string& run_id) override;
  Status RecordApproval(const Approval& a) override;
  Result<std::optional<Approval>> GetApproval(const std::string& run_id,
                                              const std::string& step_id) override;
  Result<std::map<std::string, int64_t>> RecentDurations(const std::string& runbook_name) override;
  Result<std::unique_ptr<StoreLock>> AcquireLock(const std::string& key,
                                                 const std::string& run_id) override;
  bool LockHeld(const std::string& key) override;

 private:
  SqliteStateStore() = default;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace runbook
