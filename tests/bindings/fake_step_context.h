// A StepContext for unit-level tests of primitives: what the executor would
// provide, minus the executor. Connections come from a map, undo records and
// tables are collected, resources are real (so connections are reused across
// calls exactly as in a run), Invoke/RunChild/Approve fail.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bindings/register.h"
#include "engine/core/registry.h"

namespace runbook::testing {

class FakeStepContext : public StepContext {
 public:
  FakeStepContext() = default;

  // Adds a connection of `type` with `config` (an object).
  void AddConnection(const std::string& name, const std::string& type, Value config) {
    connections_[name] = Connection{name, type, std::move(config)};
  }

  bool dry_run_ = false;
  SteadyTime deadline_ = SteadyTime::max();
  std::string run_id_ = "run-test";
  std::string step_id_ = "step-test";

  std::vector<Value> undo_records;  // every RecordUndo call, in order
  // What PreviousUndo() answers: set it to the record of an earlier attempt
  // to play a retry or a resume.
  Value previous_undo;
  std::vector<Table> tables;
  std::vector<std::pair<LogLevel, std::string>> logs;
  std::vector<ProgressInfo> progress;  // what Progress was told, in order

  // The latest undo record (null if none).
  Value LastUndo() const { return undo_records.empty() ? Value() : undo_records.back(); }
  // All log lines joined, for "contains" checks.
  std::string AllLogs() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& [level, text] : logs) out += text + "\n";
    return out;
  }

  const std::string& run_id() const override { return run_id_; }
  const std::string& step_id() const override { return step_id_; }
  bool dry_run() const override { return dry_run_; }
  SteadyTime deadline() const override { return deadline_; }
  Status RecordUndo(const Value& state) override {
    std::lock_guard<std::mutex> lock(mu_);
    undo_records.push_back(state);
    return Status::Ok();
  }
  Result<Connection> GetConnection(const std::string& name) override {
    auto it = connections_.find(name);
    if (it == connections_.end()) return Status::NotFound("no connection named '" + name + "'");
    return it->second;
  }
  // Every binding's connection types, as a run has them: a connection
  // `via:` a kube or ssh one is routed as in a run.
  const ConnectionType* FindConnectionType(const std::string& type) const override {
    static const Registry* all = [] {
      auto* r = new Registry;  // for the life of the test binary
      RegisterAll(r);
      return r;
    }();
    return all->FindConnectionType(type);
  }
  Value PreviousUndo() override { return previous_undo; }
  // What the primitive told SetChanged last (unset: it did not).
  std::optional<bool> changed;
  void SetChanged(bool c) override { changed = c; }
  Resources& resources() override { return resources_; }
  void Log(LogLevel level, const std::string& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    logs.emplace_back(level, message);
  }
  void Progress(const ProgressInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    progress.push_back(info);
  }
  void AddTable(const Table& table) override {
    std::lock_guard<std::mutex> lock(mu_);
    tables.push_back(table);
  }
  Redactor& redactor() override { return redactor_; }
  ProcessRunner& processes() override { return ProcessRunner::Real(); }
  Clock& clock() override { return Clock::Real(); }
  Result<Value> Invoke(const std::string& primitive, const Value&) override {
    return Status::Internal("FakeStepContext cannot invoke " + primitive);
  }
  Result<Value> RunChild(const std::string& path, const Value&) override {
    return Status::Internal("FakeStepContext cannot run " + path);
  }
  Status Approve(const std::string&) override {
    return Status::Internal("FakeStepContext cannot approve");
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Connection> connections_;
  Resources resources_;
  Redactor redactor_;
};

}  // namespace runbook::testing
