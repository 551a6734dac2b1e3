# The postgres binding (bindings/postgres) and its tests.
list(APPEND RUNBOOK_BINDING_SOURCES
  bindings/postgres/pg_client.cc
  bindings/postgres/pg_conninfo.cc
  bindings/postgres/pg_primitive.cc
  bindings/postgres/pg_session.cc
  bindings/postgres/pg_sql.cc
  bindings/postgres/pg_value.cc
)
list(APPEND RUNBOOK_TEST_SOURCES
  tests/fixtures/pg_fixture.cc
  tests/bindings/postgres_client_test.cc
)
