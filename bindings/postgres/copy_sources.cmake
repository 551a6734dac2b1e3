# pg.copy (bindings/postgres/pg_copy*.{h,cc}, pg_primitives_copy.cc).
list(APPEND RUNBOOK_BINDING_SOURCES
  bindings/postgres/pg_copy.cc
  bindings/postgres/pg_copy_catalog.cc
  bindings/postgres/pg_copy_extras.cc
  bindings/postgres/pg_copy_jobs.cc
  bindings/postgres/pg_primitives_copy.cc
)
