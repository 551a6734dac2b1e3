list(APPEND RUNBOOK_CORE_SOURCES
  engine/core/clock.cc
  engine/core/duration.cc
  engine/core/process.cc
  engine/core/redact.cc
  engine/core/registry.cc
  engine/core/sha256.cc
  engine/core/status.cc
  engine/core/value.cc
  engine/model/model.cc
  engine/lua/template.cc
)
set(RUNBOOK_CLI_SOURCES
  engine/cli/main.cc
)
list(APPEND RUNBOOK_TEST_SOURCES
)
