// runbook status [RUN_ID] [--json]: list runs, or one run's steps.
#include "engine/cli/cli.h"
#include "engine/core/clock.h"
#include "engine/core/duration.h"
#include "engine/exec/reporter.h"

namespace runbook {

// "interrupted" for a run the store says is running whose lock no live
// engine holds (it was killed: resume or roll it back).
static std::string ShownStatus(const Cli& cli, StateStore& store, const RunRecord& run) {
  return cli.ShownStatus(store, run);
}

static void PrintRun(StateStore& store, const RunRecord& run, bool json, Cli& cli) {
  if (IsFleet(run)) {
    PrintFleet(cli, store, run, json);
    return;
  }
  Result<std::vector<StepRecord>> steps = store.GetSteps(run.id);
  if (!steps.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInternal, steps.status().message());
    return;
  }
  if (json) {
    Value out{{"run", run.id},
              {"runbook", run.runbook_name},
              {"status", ShownStatus(cli, store, run)},
              {"dry_run", run.dry_run},
              {"started", FormatUtc(run.created_ms)},
              {"error", run.error},
              {"steps", Value::array()}};
    for (const auto& s : *steps) {
      out["steps"].push_back({{"step", s.step_id},
                              {"item", s.item},
                              {"status", StepStatusName(s.status)},
                              {"action", s.action},
                              {"attempts", s.attempts},
                              {"duration_ms", s.duration_ms},
                              {"error", s.error},
                              {"undo_error", s.undo_error}});
    }
    printf("%s\n", out.dump(2).c_str());
    return;
  }
  printf("run %s  %s  %s%s  started %s\n", run.id.c_str(), TerminalSafe(run.runbook_name).c_str(),
         ShownStatus(cli, store, run).c_str(), run.dry_run ? " (rehearsal)" : "",
         FormatUtc(run.created_ms).c_str());
  if (!run.error.empty()) printf("  %s\n", TerminalSafe(run.error).c_str());
  for (const auto& s : *steps) {
    printf("  %-12s %-28s %-20s %8s  attempts %d%s%s\n", StepStatusName(s.status),
           TerminalSafe(StepLabel(s)).c_str(), TerminalSafe(s.action).c_str(),
           s.duration_ms ? FormatDuration(Millis(s.duration_ms)).c_str() : "-", s.attempts,
           s.error.empty() ? "" : ("  " + TerminalSafe(s.error)).c_str(),
           s.undo_error.empty() ? "" : ("  undo: " + TerminalSafe(s.undo_error)).c_str());
  }
}

void AddStatusCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("status", "list runs, or one run's steps");
  static std::string run_id;
  static bool json = false;
  static int limit = 50;
  cmd->add_option("RUN_ID", run_id, "a run id, or last (the newest run) or last-failed");
  cmd->add_option("--limit", limit, "how many runs the list shows, newest first (50; 0: all)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_flag("--json", json, "JSON output");
  cmd->callback([&cli]() {
    auto store = cli.OpenStore();
    if (!store) return;
    cli.exit_code = 0;
    if (!run_id.empty()) {
      if (!cli.ResolveRunId(*store, &run_id)) return;
      Result<RunRecord> run = store->GetRun(run_id);
      if (!run.ok()) {
        cli.exit_code = cli.Error(ExitCode::kInvalid, run.status().message());
        return;
      }
      PrintRun(*store, *run, json, cli);
      return;
    }
    // One more than shown, to say when there are more.
    Result<std::vector<RunRecord>> runs = store->ListRuns(limit > 0 ? limit + 1 : 0);
    if (!runs.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInternal, runs.status().message());
      return;
    }
    const bool more = limit > 0 && runs->size() > static_cast<size_t>(limit);
    if (more) runs->resize(limit);
    if (json) {
      Value out = Value::array();
      for (const auto& r : *runs) {
        out.push_back({{"run", r.id},
                       {"runbook", r.runbook_name},
                       {"status", ShownStatus(cli, *store, r)},
                       {"dry_run", r.dry_run},
                       {"started", FormatUtc(r.created_ms)}});
        if (IsFleet(r)) out.back()["fleet"] = true;
      }
      printf("%s\n", out.dump(2).c_str());
      if (more) fprintf(stderr, "runbook: the %d newest runs; --limit 0 lists them all\n", limit);
      return;
    }
    if (runs->empty()) printf("no runs in %s\n", store->path().c_str());
    for (const auto& r : *runs) {
      printf("%s  %-16s %-28s %s%s%s\n", r.id.c_str(), ShownStatus(cli, *store, r).c_str(),
             TerminalSafe(r.runbook_name).c_str(), FormatUtc(r.created_ms).c_str(),
             r.dry_run ? "  (rehearsal)" : "", IsFleet(r) ? "  (fleet)" : "");
    }
    if (more) printf("(the %d newest runs; --limit 0 lists them all)\n", limit);
  });
}

}  // namespace runbook
