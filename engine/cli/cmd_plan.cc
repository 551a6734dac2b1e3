// runbook plan FILE: the ordered steps with their exact effects and the
// rollback plan. Never connects.
#include "engine/cli/cli.h"
#include "engine/exec/plan.h"

namespace runbook {

void AddPlanCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("plan", "static dry-run: each step's exact effect and the "
                                         "rollback plan; no connections");
  static std::string file, params_file;
  static std::vector<std::string> pairs;
  cmd->add_option("FILE", file, "runbook")->required();
  cmd->add_option("-p,--param", pairs, "param as name=value (repeatable)");
  cmd->add_option("--params-file", params_file, "YAML file of params");
  cmd->callback([&cli]() {
    std::shared_ptr<const Runbook> rb = cli.Load(file);
    if (!rb) {
      cli.exit_code = static_cast<int>(ExitCode::kInvalid);
      return;
    }
    std::optional<Value> params = cli.Params(*rb, pairs, params_file);
    if (!params) return;
    fputs(RenderPlan(*rb, *params, cli.registry, cli.redactor).c_str(), stdout);
    cli.exit_code = 0;
  });
}

}  // namespace runbook
