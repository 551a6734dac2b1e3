// The command line: one small struct shared by the
// subcommands, one file per subcommand (cmd_*.cc).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/redact.h"
#include "engine/core/registry.h"
#include "engine/core/status.h"
#include "engine/model/model.h"
#include "engine/state/store.h"

namespace runbook {

struct Cli {
  // Global options.
  std::string state_path;
  bool state_on_argv = false;  // --state was given (it shows in ps)
  bool no_color = false;
  bool verbose = false;

  Registry registry;
  Redactor redactor;
  int exit_code = 0;

  // Prints "runbook: message" to stderr, returns `code` for the caller to set.
  int Error(ExitCode code, const std::string& message);
  std::string StatePath() const;
  // Opens the state store, or prints why not.
  std::unique_ptr<StateStore> OpenStore();
  // Loads and validates; prints every diagnostic. Null on error.
  std::shared_ptr<const Runbook> Load(const std::string& path);
  // -p k=v pairs and a params file -> resolved params. nullopt on error
  // (diagnostics printed).
  std::optional<Value> Params(const Runbook& rb, const std::vector<std::string>& pairs,
                              const std::string& params_file);
  // Only the secret params (from -p or their env), for resume and rollback.
  // The params given to resume or rollback (-p, converted to their types),
  // and the secret ones from their env: or default: the executor takes the
  // secret and withheld ones from these and refuses any other that differs.
  std::optional<Value> ResumeParams(const Runbook& rb, const std::vector<std::string>& pairs);
  bool Color(FILE* f) const;
  // `last` (the newest run) and `last-failed` (the newest that failed, or
  // whose rollback failed) become that run's id, said on stderr; any other
  // id is left as it is. False (exit code set, why printed) if none matches.
  bool ResolveRunId(StateStore& store, std::string* run_id);
  // The run's status as `status` shows it: "interrupted" (or
  // "interrupted_rollback") for a run whose process is gone.
  std::string ShownStatus(StateStore& store, const RunRecord& run) const;
};

// A $RUNBOOK_STATE that holds a password becomes cli->state_path and leaves
// this process's environment, so that no child inherits it; a `runbook`
// started by a child then refuses to guess a store (RUNBOOK_STATE_WITHHELD).
void WithholdStateFromChildren(Cli* cli);

// Who runs this command, as this machine knows them: $USER or the uid's name.
std::string CurrentUser();
// "user@host", for change records.
std::string OperatorName();

// The subcommand names of `app`, for did-you-mean.
std::vector<std::string> SubcommandNames(CLI::App& app);
// The first word of argv that is not an option (nor a global option's
// value), or "" if none: the subcommand the user meant.
std::string FirstCommandWord(int argc, char** argv);

void AddValidateCommand(CLI::App& app, Cli& cli);
void AddPlanCommand(CLI::App& app, Cli& cli);
void AddRunCommands(CLI::App& app, Cli& cli);  // run, resume, rollback
void AddFleetCommand(CLI::App& app, Cli& cli);
// The command a fleet's Job runs in its pod (hidden).
void AddFleetTargetCommand(CLI::App& app, Cli& cli);
void AddStatusCommand(CLI::App& app, Cli& cli);
void AddReportCommand(CLI::App& app, Cli& cli);
void AddApproveCommand(CLI::App& app, Cli& cli);
void AddSchemaCommand(CLI::App& app, Cli& cli);
void AddDocsCommand(CLI::App& app, Cli& cli);
void AddStubsCommand(CLI::App& app, Cli& cli);
void AddCompletionCommand(CLI::App& app, Cli& cli);
void AddManCommand(CLI::App& app, Cli& cli);
// `resume` of a fleet's record: runs again what did not finish, as the
// fleet was defined (`given`: params given again, -p). False if `record` is
// not a fleet; else cli.exit_code is set. `approval_wait`: how long a gate
// of --approve-waves waits.
bool ResumeFleet(Cli& cli, StateStore& store, const RunRecord& record,
                 const std::vector<std::string>& given, bool yes, bool allow_changed,
                 std::chrono::milliseconds approval_wait);
// `status` of a fleet's record: each target, what became of it and its run.
void PrintFleet(Cli& cli, StateStore& store, const RunRecord& record, bool json);
// The manual page runbook(1) in roff, from `app`'s commands and options.
std::string ManPage(CLI::App& app, const Registry& registry);

}  // namespace runbook
