list(APPEND RUNBOOK_CORE_SOURCES
  engine/state/lock.cc
  engine/state/private_dir.cc
  engine/state/sqlite_stmt.cc
  engine/state/store.cc
  engine/state/store_steps.cc
)
list(APPEND RUNBOOK_TEST_SOURCES
  tests/engine/lock_test.cc
  tests/engine/state_durability_test.cc
  tests/engine/state_test.cc
)
