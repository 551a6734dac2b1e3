// runbook report RUN_ID [--format markdown|json|html] [-o FILE]
#include <filesystem>
#include <fstream>

#include "engine/cli/cli.h"
#include "engine/report/report.h"

namespace runbook {

namespace {

// Each target run's report of fleet `fleet_id`, as RUN_ID.md (.json,
// .html) in the directory of `out`, which the fleet's report links.
bool WriteTargetReports(Cli& cli, StateStore& store, const std::string& fleet_id, ReportFormat f,
                        const std::string& out) {
  Result<std::vector<StepRecord>> targets = store.GetSteps(fleet_id);
  if (!targets.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInternal, targets.status().message());
    return false;
  }
  const std::filesystem::path dir = std::filesystem::path(out).parent_path();
  const char* ext = f == ReportFormat::kJson ? ".json" : f == ReportFormat::kHtml ? ".html" : ".md";
  int n = 0;
  for (const StepRecord& t : *targets) {
    const std::string run = t.result.value("run", "");
    if (run.empty()) continue;
    Result<std::string> text = RenderReport(store, run, f);
    if (!text.ok()) {
      cli.exit_code =
          cli.Error(ExitCode::kInternal, "target run " + run + ": " + text.status().message());
      return false;
    }
    const std::filesystem::path path = dir / (run + ext);
    std::ofstream file(path, std::ios::binary);
    file << *text;
    if (!file) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, "cannot write " + path.string());
      return false;
    }
    ++n;
  }
  fprintf(stderr, "%d target reports written beside it\n", n);
  return true;
}

}  // namespace

void AddReportCommand(CLI::App& app, Cli& cli) {
  auto* cmd =
      app.add_subcommand("report", "the run (or fleet) as a change-record implementation log");
  static std::string run_id, format = "markdown", out;
  cmd->add_option("RUN_ID", run_id, "a run id, or last (the newest run) or last-failed")
      ->required();
  cmd->add_option("--format", format, "markdown | json | html")
      ->check(CLI::IsMember({"markdown", "json", "html"}));
  cmd->add_option("-o,--output", out, "write to FILE instead of stdout");
  cmd->callback([&cli]() {
    auto store = cli.OpenStore();
    if (!store) return;
    ReportFormat f = format == "json" ? ReportFormat::kJson
                     : format == "html" ? ReportFormat::kHtml
                                        : ReportFormat::kMarkdown;
    if (!cli.ResolveRunId(*store, &run_id)) return;
    Result<std::string> text = RenderReport(*store, run_id, f);
    if (!text.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, text.status().message());
      return;
    }
    if (out.empty()) {
      fputs(text->c_str(), stdout);
    } else {
      std::ofstream file(out, std::ios::binary);
      file << *text;
      if (!file) {
        cli.exit_code = cli.Error(ExitCode::kInvalid, "cannot write " + out);
        return;
      }
      fprintf(stderr, "report written to %s\n", out.c_str());
      // A fleet's report links each target's: written beside it.
      if (Result<RunRecord> run = store->GetRun(run_id); run.ok() && IsFleet(*run)) {
        if (!WriteTargetReports(cli, *store, run_id, f, out)) return;
      }
    }
    cli.exit_code = 0;
  });
}

}  // namespace runbook
