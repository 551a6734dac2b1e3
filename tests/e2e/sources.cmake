# End-to-end tests: they run the real `runbook` binary (RUNBOOK_BINARY).
list(APPEND RUNBOOK_TEST_SOURCES
  tests/e2e/e2e_util.cc
  tests/e2e/approvals_windows_test.cc
  tests/e2e/cli_conveniences_test.cc
  tests/e2e/crash_test.cc
  tests/e2e/dry_run_plan_test.cc
  tests/e2e/invalid_input_test.cc
  tests/e2e/lua_sandbox_test.cc
  tests/e2e/resume_rollback_test.cc
  tests/e2e/report_render_test.cc
  tests/e2e/retries_report_test.cc
  tests/e2e/run_lock_test.cc
  tests/e2e/fleet_test.cc
  tests/e2e/secrets_test.cc
  tests/e2e/runbooks_test.cc
  tests/e2e/runbooks_move_test.cc
  tests/e2e/runbooks_expand_contract_test.cc
  tests/e2e/cutover_crash_test.cc
  tests/e2e/pg_resume_kill_test.cc
  tests/e2e/upgrade_matrix_test.cc
  tests/e2e/store_faults_test.cc
  tests/e2e/orphans_test.cc
  tests/e2e/nonroot_concurrent_test.cc
  tests/e2e/fallback_test.cc
  tests/e2e/copy_undo_guard_test.cc
  tests/e2e/database_undo_guard_test.cc
)
