# Unit tests of the engine core (lua, templates, registry, executor with OS fakes).
list(APPEND RUNBOOK_TEST_SOURCES
)
