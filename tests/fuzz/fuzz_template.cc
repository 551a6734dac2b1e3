// libFuzzer target: any bytes as a template string: split, rewritten for
// dashed ids, scanned for references, then expanded in the Lua sandbox with
// a short budget. Nothing may crash, hang past the budget or escape it.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/lua/runtime.h"
#include "engine/lua/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static runbook::LuaRuntime* lua = new runbook::LuaRuntime();
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)runbook::SplitTemplate(text);
  const std::set<std::string> ids = {"a", "scale-down", "b-2"};
  const std::string rewritten = runbook::RewriteDashedIds(text, ids);
  (void)runbook::ReferencedSteps(rewritten);
  (void)runbook::ReferencedParams(rewritten);
  runbook::Value env{{"params", {{"x", 1}, {"s", "text"}}},
                     {"steps", {{"a", {{"status", "succeeded"}, {"result", {1, 2}}}}}},
                     {"run", {{"id", "r"}, {"dry_run", false}}}};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  (void)runbook::ExpandTemplates(*lua, runbook::Value(text), runbook::Pos{"fuzz"}, env, deadline);
  return 0;
}
