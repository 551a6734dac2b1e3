# The postgres binding (bindings/postgres) and its tests.
list(APPEND RUNBOOK_BINDING_SOURCES
  bindings/postgres/pg_client.cc
  bindings/postgres/pg_collation.cc
  bindings/postgres/pg_conninfo.cc
  bindings/postgres/pg_counts.cc
  bindings/postgres/pg_database_checks.cc
  bindings/postgres/pg_primitive.cc
  bindings/postgres/pg_primitives_collation.cc
  bindings/postgres/pg_primitives_counts.cc
  bindings/postgres/pg_primitives_database.cc
  bindings/postgres/pg_primitives_dump.cc
  bindings/postgres/pg_primitives_query.cc
  bindings/postgres/pg_primitives_restore.cc
  bindings/postgres/pg_primitives_schema.cc
  bindings/postgres/pg_primitives_sessions.cc
  bindings/postgres/pg_schema.cc
  bindings/postgres/pg_session.cc
  bindings/postgres/pg_sql.cc
  bindings/postgres/pg_tools.cc
  bindings/postgres/pg_value.cc
  bindings/postgres/pg_via_kube.cc
  bindings/postgres/pg_via_ssh.cc
  bindings/postgres/register.cc
)
list(APPEND RUNBOOK_TEST_SOURCES
  tests/fixtures/pg_fixture.cc
  tests/bindings/postgres_client_test.cc
  tests/bindings/postgres_query_test.cc
  tests/bindings/postgres_counts_test.cc
  tests/bindings/postgres_database_test.cc
  tests/bindings/postgres_dump_test.cc
  tests/bindings/postgres_tools_test.cc
  tests/bindings/postgres_collation_test.cc
  tests/bindings/postgres_errors_test.cc
  tests/bindings/postgres_schema_test.cc
  tests/bindings/postgres_sql_test.cc
)
