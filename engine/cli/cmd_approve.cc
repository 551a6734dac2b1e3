// runbook approve RUN STEP [--by NAME]: record an approval for a gated step.
#include "engine/cli/cli.h"
#include "engine/core/clock.h"

namespace runbook {

void AddApproveCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("approve", "record an approval for a gated step");
  static std::string run_id, step_id, by;
  cmd->add_option("RUN_ID", run_id, "a run id, or last (the newest run) or last-failed")
      ->required();
  cmd->add_option("STEP", step_id)->required();
  cmd->add_option("--by", by, "who approves (default $USER)");
  cmd->callback([&cli]() {
    auto store = cli.OpenStore();
    if (!store) return;
    if (!cli.ResolveRunId(*store, &run_id)) return;
    Result<RunRecord> run = store->GetRun(run_id);
    if (!run.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, run.status().message());
      return;
    }
    Result<std::optional<StepRecord>> step = store->GetStep(run_id, step_id);
    // A fleet's only gates are its own (--approve-waves: wave-2, ...); its
    // targets' gates are in their runs.
    if (IsFleet(*run) && (!step.ok() || !step->has_value() || (*step)->action != "fleet.wave" ||
                          (*step)->status != StepStatus::kWaiting)) {
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                run_id + " is a fleet with no gate '" + step_id +
                                    "' waiting: approve a step of its targets' runs (runbook "
                                    "status " +
                                    run_id + " lists them), then runbook resume " + run_id);
      return;
    }
    if (!step.ok() || !step->has_value() || (*step)->status != StepStatus::kWaiting) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, "run " + run_id + " has no step '" + step_id +
                                                        "' waiting for approval");
      return;
    }
    if (by.empty()) by = CurrentUser();
    Approval a{run_id, step_id, by, Clock::Real().NowMs()};
    Status s = store->RecordApproval(a);
    if (!s.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInternal, s.message());
      return;
    }
    if (cli.ShownStatus(*store, *run) == "running") {
      // Its engine lives and waits (--wait-for-approval): it goes on by itself.
      printf("approved step '%s' of run %s by %s; the run, waiting for it, goes on\n",
             step_id.c_str(), run_id.c_str(), by.c_str());
    } else {
      printf("approved step '%s' of run %s by %s; continue with: runbook resume %s\n",
             step_id.c_str(), run_id.c_str(), by.c_str(), run_id.c_str());
    }
    cli.exit_code = 0;
  });
}

}  // namespace runbook
