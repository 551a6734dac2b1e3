// runbook stubs: LuaLS annotations of the Lua sandbox (docs/lua/runbook.lua).
#include "engine/cli/cli.h"
#include "engine/report/lua_stubs.h"

namespace runbook {

void AddStubsCommand(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("stubs",
                                 "print LuaLS annotations of the Lua API, so an editor "
                                 "completes primitives, params and steps "
                                 "(docs/lua/runbook.lua)");
  cmd->callback([&cli]() {
    fputs(LuaStubs(cli.registry).c_str(), stdout);
    cli.exit_code = 0;
  });
}

}  // namespace runbook
