# End-to-end tests: they run the real `runbook` binary (RUNBOOK_BINARY).
list(APPEND RUNBOOK_TEST_SOURCES
)
