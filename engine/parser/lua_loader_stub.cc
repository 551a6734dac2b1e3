// TEMPORARY: keeps the parser linking until engine/lua/lua_loader.cc
// implements LoadLuaRunbookTree. Remove this file (and its line in
// engine/parser/sources.cmake) when that lands.
#include "engine/parser/node.h"

namespace runbook {

std::optional<Node> LoadLuaRunbookTree(const std::string& path, const std::string& /*text*/,
                                       std::vector<Diagnostic>* diags) {
  diags->push_back({Pos{path, 1, 1}, "", "Lua runbooks are not supported yet", ""});
  return std::nullopt;
}

}  // namespace runbook
