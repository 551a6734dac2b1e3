// libFuzzer target: any bytes as a runbook (YAML) through the parser and
// validator, then, when it parses, the plan (which evaluates templates in
// the Lua sandbox). Nothing may crash, hang or leak; every refusal is a
// diagnostic. Built by scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,
// undefined); the suite runs it briefly.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/builtins/builtins.h"
#include "engine/core/redact.h"
#include "engine/exec/plan.h"
#include "engine/parser/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static runbook::Registry* registry = [] {
    auto* r = new runbook::Registry();
    runbook::RegisterBuiltins(r);
    return r;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<runbook::Diagnostic> diags;
  // A path of its own: includes resolve against an empty directory.
  std::shared_ptr<const runbook::Runbook> rb =
      runbook::ParseRunbook("/nonexistent-fuzz/rb.yaml", text, *registry, &diags);
  if (rb) {
    runbook::Redactor redactor;
    (void)runbook::RenderPlan(*rb, runbook::Value::object(), *registry, redactor);
  }
  return 0;
}
