# Unit tests of the engine core (lua, templates, registry, executor with OS fakes).
list(APPEND RUNBOOK_TEST_SOURCES
  tests/engine/core_test.cc
  tests/engine/docs_test.cc
  tests/engine/executor_test.cc
  tests/engine/lua_test.cc
  tests/engine/lua_limits_test.cc
  tests/engine/lua_sandbox_test.cc
)
