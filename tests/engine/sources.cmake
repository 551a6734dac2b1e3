# Unit tests of the engine core (lua, templates, registry, executor with OS fakes).
list(APPEND RUNBOOK_TEST_SOURCES
  tests/engine/core_test.cc
  tests/engine/docs_test.cc
  tests/engine/executor_test.cc
  tests/engine/journal_test.cc
  tests/engine/undo_plan_test.cc
  tests/engine/reporter_test.cc
  tests/engine/lua_test.cc
  tests/engine/lua_limits_test.cc
  tests/engine/lua_sandbox_test.cc
  tests/engine/primitive_kit_test.cc
)
# Moved from the engine areas: every test source is listed under tests/.
list(APPEND RUNBOOK_TEST_SOURCES
  tests/engine/parser_test.cc
  tests/engine/parser_errors_test.cc
  tests/engine/parser_errors_refs_test.cc
  tests/engine/parser_params_test.cc
  tests/engine/lock_test.cc
  tests/engine/state_durability_test.cc
  tests/engine/state_test.cc
  tests/engine/state_pg_test.cc
)
