// Reporter: what a run prints while it runs. Text for people (one line per
// step, colour on a terminal unless NO_COLOR) or JSON lines for machines.
// Every string passes through the run's Redactor first. Thread-safe.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/core/redact.h"
#include "engine/core/registry.h"
#include "engine/state/store.h"

namespace runbook {

// `s` for a terminal: control characters (ESC and the rest of C0 but
// newline and tab, DEL, C1) shown as \xNN, so text from a runbook or a
// server cannot drive the terminal.
std::string TerminalSafe(const std::string& s);

class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void RunStarted(const RunRecord& run, const std::string& what) = 0;
  virtual void StepFinished(const StepRecord& step, const std::string& detail) = 0;
  virtual void StepStarted(const std::string& step_id, const std::string& change) = 0;
  virtual void Log(const std::string& step_id, LogLevel level, const std::string& msg) = 0;
  virtual void Progress(const std::string& step_id, const ProgressInfo& info) = 0;
  virtual void RunFinished(const RunRecord& run, int exit_code, const std::string& message) = 0;
};

enum class LogFormat { kText, kJson };

// Writes to `out` (stdout in the CLI). color: ANSI colours for a terminal.
// Progress redraws one line on a terminal; elsewhere (CI, a Kubernetes Job's
// log) it is a timestamped line per step at most every kProgressEvery.
constexpr std::chrono::seconds kProgressEvery{30};
std::unique_ptr<Reporter> MakeReporter(LogFormat format, FILE* out, bool color, bool verbose,
                                       const Redactor* redactor);

}  // namespace runbook
