list(APPEND RUNBOOK_CORE_SOURCES
  engine/state/lock.cc
  engine/state/pg_store.cc
  engine/state/private_dir.cc
  engine/state/sqlite_stmt.cc
  engine/state/store.cc
  engine/state/store_steps.cc
)
