// The executor: runs a validated runbook step by step, journaling every
// transition in the StateStore before the next side effect, and resumes,
// rolls back and rehearses.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "engine/core/clock.h"
#include "engine/core/process.h"
#include "engine/core/redact.h"
#include "engine/core/registry.h"
#include "engine/core/status.h"
#include "engine/exec/reporter.h"
#include "engine/model/model.h"
#include "engine/state/store.h"

namespace runbook {

// Asks a human a yes/no question on a terminal (approvals).
class Prompter {
 public:
  virtual ~Prompter() = default;
  // nullopt: no answer could be had (end of input).
  virtual std::optional<bool> Ask(const std::string& question) = 0;
  // The name recorded with an approval ($USER).
  virtual std::string Who() = 0;
};

// The outside world the executor acts through. Not owned.
struct ExecEnv {
  const Registry* registry = nullptr;
  StateStore* store = nullptr;
  Clock* clock = nullptr;
  ProcessRunner* processes = nullptr;
  Reporter* reporter = nullptr;
  Redactor* redactor = nullptr;
  Prompter* prompter = nullptr;  // null: no terminal (an approval pauses the run)
};

struct RunOptions {
  bool dry_run = false;
  bool yes = false;            // pre-approve every approval
  bool ignore_window = false;
  std::string from_step;       // start here; earlier steps are skipped
  std::set<std::string> retry_steps;  // resume: re-run these although not idempotent
  std::set<std::string> mark_done;    // resume: a human says these took effect
  bool allow_changed = false;         // resume although the runbook changed
  bool accept_data_loss = false;      // rollback: undo even what would destroy others' writes
  // Without a terminal, an approval gate waits this long for `runbook
  // approve` (from any machine using the same state store) before it
  // pauses the run; zero: it pauses at once.
  std::chrono::milliseconds approval_wait{0};
  Value options_to_store = Value::object();
};

// How a command ended. A run that started told the Reporter how it ended
// (RunFinished); `refusal` says why one did not start, or stopped before
// its steps (outside its window, locked, a changed runbook, a param to
// give again, a store that cannot be read), a line per reason, for the
// caller to print: the engine prints nothing itself.
struct RunOutcome {
  ExitCode code = ExitCode::kOk;
  std::string refusal;  // redacted

  static RunOutcome Refused(ExitCode code, std::string why) { return {code, std::move(why)}; }
};

// Runs, resumes and rolls back. One Executor per command.
class Executor {
 public:
  explicit Executor(ExecEnv env);
  ~Executor();

  // A new run of `rb` with resolved `params` (secrets included; they are
  // registered with the redactor and stored as ***).
  RunOutcome Run(std::shared_ptr<const Runbook> rb, const Value& params, const RunOptions& opts);
  // Continues a run from its checkpoint. `params` supplies secret params
  // again (they are never stored); `rb` is the runbook loaded from the
  // stored path.
  RunOutcome Resume(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                    const Value& secret_params, const RunOptions& opts);
  // Undoes the completed steps of a run, newest first.
  RunOutcome Rollback(const std::string& run_id, std::shared_ptr<const Runbook> rb,
                      const Value& secret_params, const RunOptions& opts = {});

  // The run id of the last Run/Resume/Rollback (empty before).
  const std::string& run_id() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// sha256 over a runbook's text and, sorted by path, its includes' texts.
std::string RunbookDigest(const Runbook& rb);
// The same over {absolute path: text} (the files as laid out elsewhere).
std::string SourcesDigest(const std::map<std::string, std::string>& sources);
// {path: text} of a runbook and its includes.
Value RunbookSources(const Runbook& rb);
// Makes `redactor` hide the passwords written into the connection maps of
// `rb` and its includes (as a run does before it stores their sources).
void RegisterRunbookLiteralSecrets(const Runbook& rb, const Registry& registry, Redactor& redactor);

}  // namespace runbook
