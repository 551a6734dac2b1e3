# The bindings' tests against real servers (tests/fixtures start them) and
# the fixtures themselves.
list(APPEND RUNBOOK_TEST_SOURCES
  tests/fixtures/pg_fixture.cc
  tests/bindings/pg_fidelity_util.cc
  tests/bindings/postgres_compare_test.cc
  tests/bindings/postgres_fidelity_test.cc
  tests/bindings/postgres_client_test.cc
  tests/bindings/postgres_query_test.cc
  tests/bindings/postgres_replicate_test.cc
  tests/bindings/postgres_counts_test.cc
  tests/bindings/postgres_database_test.cc
  tests/bindings/postgres_dump_test.cc
  tests/bindings/postgres_dump_e2e_test.cc
  tests/bindings/postgres_dump_ssh_test.cc
  tests/bindings/postgres_tools_test.cc
  tests/bindings/postgres_collation_test.cc
  tests/bindings/postgres_errors_test.cc
  tests/bindings/postgres_schema_test.cc
  tests/bindings/postgres_sql_test.cc
  tests/bindings/postgres_copy_split_test.cc
  tests/bindings/postgres_copy_test.cc
  tests/fixtures/kube_fixture.cc
  tests/bindings/kube_test.cc
  tests/bindings/kube_apply_test.cc
  tests/bindings/kube_example_test.cc
  tests/bindings/kube_forward_test.cc
  tests/bindings/kube_job_exec_test.cc
  tests/bindings/kube_patch_test.cc
  tests/bindings/kube_scale_test.cc
  tests/bindings/kube_faults_test.cc
  tests/fixtures/sshd_fixture.cc
  tests/bindings/ssh_quote_test.cc
  tests/bindings/ssh_test.cc
  tests/bindings/ssh_connect_test.cc
  tests/bindings/ssh_transfer_test.cc
  tests/bindings/ssh_tunnel_test.cc
)
