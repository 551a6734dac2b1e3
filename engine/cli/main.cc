// runbook: executes declarative YAML runbooks with checkpointing, rollback
// and real dry-runs. The one top-level catch lives here.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bindings/register.h"
#include "engine/cli/cli.h"
#include "engine/parser/parser.h"
#include "engine/parser/validator.h"
#include "engine/state/store.h"
#include "runbook_commit.h"  // generated at build time: RUNBOOK_COMMIT

int main(int argc, char** argv) {
  using namespace runbook;
  Cli cli;
  try {
    RegisterAll(&cli.registry);
    CLI::App app{"runbook: execute declarative runbooks with checkpoints, rollback and "
                 "real dry-runs"};
    app.require_subcommand(1);
    // Global options anywhere: `runbook run x.yaml --no-color -v`.
    app.fallthrough();
    app.set_version_flag("--version",
                         std::string("runbook ") + RUNBOOK_VERSION + " (" + RUNBOOK_COMMIT + ")");
    // The state store's password is the engine's, not the runbook's: no
    // program the engine starts (an exec step's, pg_dump, kubectl, ssh)
    // inherits it. The location stays in cli; a fleet hands it to its own
    // child engines explicitly.
    WithholdStateFromChildren(&cli);
    app.add_option("--state", cli.state_path,
                   "state store: a SQLite file or a postgresql:// URI (default "
                   "$RUNBOOK_STATE, $XDG_STATE_HOME/runbook/state.db, "
                   "~/.local/state/runbook/state.db)")
        ->each([&cli](const std::string&) { cli.state_on_argv = true; });
    app.add_flag("--no-color", cli.no_color, "no colours (also NO_COLOR)");
    app.add_flag("-v,--verbose", cli.verbose, "more output");
    AddValidateCommand(app, cli);
    AddPlanCommand(app, cli);
    AddRunCommands(app, cli);
    AddFleetCommand(app, cli);
    AddFleetTargetCommand(app, cli);
    AddStatusCommand(app, cli);
    AddReportCommand(app, cli);
    AddApproveCommand(app, cli);
    AddSchemaCommand(app, cli);
    AddDocsCommand(app, cli);
    AddStubsCommand(app, cli);
    AddCompletionCommand(app, cli);
    AddManCommand(app, cli);
    const std::string word = FirstCommandWord(argc, argv);
    const std::vector<std::string> commands = SubcommandNames(app);
    if (!word.empty() && std::find(commands.begin(), commands.end(), word) == commands.end()) {
      const std::string near = Suggest(word, commands);
      return cli.Error(ExitCode::kInvalid,
                       "unknown command '" + word + "'" +
                           (near.empty() ? "" : "; did you mean '" + near + "'?") +
                           " (runbook --help lists them)");
    }
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      int rc = app.exit(e);
      return rc == 0 ? 0 : static_cast<int>(ExitCode::kInvalid);
    }
    return cli.exit_code;
  } catch (const std::exception& e) {
    fprintf(stderr, "runbook: internal error: %s\n", cli.redactor.Redact(std::string(e.what())).c_str());
    return static_cast<int>(ExitCode::kInternal);
  }
}
