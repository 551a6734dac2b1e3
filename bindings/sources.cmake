# Each binding's folder adds its sources here; bindings/register.cc is the
# one place that names them.
list(APPEND RUNBOOK_BINDING_SOURCES bindings/register.cc)
include(bindings/postgres/sources.cmake)
include(bindings/kube/sources.cmake)
include(bindings/ssh/sources.cmake)
