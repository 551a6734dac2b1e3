// runbook schema: the JSON Schema of the runbook format, for editors.
#include "engine/cli/cli.h"
#include "engine/parser/parser.h"

namespace runbook {

void AddSchemaCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("schema", "print the JSON Schema of the runbook format");
  cmd->callback([&cli]() {
    printf("%s\n", RunbookJsonSchema(cli.registry).dump(2).c_str());
    cli.exit_code = 0;
  });
}

}  // namespace runbook
