// runbook validate FILE...: static checks, no connections.
#include "engine/cli/cli.h"

namespace runbook {

void AddValidateCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("validate", "static checks of runbooks; no connections");
  static std::vector<std::string> files;
  cmd->add_option("FILE", files, "runbooks")->required();
  cmd->callback([&cli]() {
    int bad = 0;
    for (const auto& f : files) {
      if (cli.Load(f)) {
        printf("%s: ok\n", f.c_str());
      } else {
        ++bad;
      }
    }
    cli.exit_code = bad ? static_cast<int>(ExitCode::kInvalid) : 0;
  });
}

}  // namespace runbook
