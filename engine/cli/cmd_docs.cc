// runbook docs: the reference of every primitive (docs/primitives.md).
#include "engine/cli/cli.h"
#include "engine/report/primitives_doc.h"

namespace runbook {

void AddDocsCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("docs", "print the reference of every primitive and connection "
                                         "type (markdown: docs/primitives.md)");
  cmd->callback([&cli]() {
    fputs(PrimitivesMarkdown(cli.registry).c_str(), stdout);
    cli.exit_code = 0;
  });
}

}  // namespace runbook
