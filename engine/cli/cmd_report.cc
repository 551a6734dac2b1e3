// runbook report RUN_ID [--format markdown|json|html] [-o FILE]
#include <fstream>

#include "engine/cli/cli.h"
#include "engine/report/report.h"

namespace runbook {

void AddReportCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("report", "the run as a change-record implementation log");
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
      std::ofstream f(out, std::ios::binary);
      f << *text;
      if (!f) {
        cli.exit_code = cli.Error(ExitCode::kInvalid, "cannot write " + out);
        return;
      }
      fprintf(stderr, "report written to %s\n", out.c_str());
    }
    cli.exit_code = 0;
  });
}

}  // namespace runbook
