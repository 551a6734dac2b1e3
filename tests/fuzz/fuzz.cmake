# The fuzz targets (cmake -DRUNBOOK_FUZZ=ON with clang; scripts/fuzz.sh):
# the engine's core built with -fsanitize=fuzzer-no-link,address,undefined,
# and one libFuzzer binary per target. Nothing else is built in this mode.
foreach(target fuzz_runbook fuzz_template)
  add_executable(${target} tests/fuzz/${target}.cc)
  target_link_libraries(${target} PRIVATE runbook_core runbook_warnings)
  target_link_options(${target} PRIVATE -fsanitize=fuzzer)
endforeach()
