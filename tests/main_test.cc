#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdlib>

int main(int argc, char* argv[]) {
  // Every primitive result the suite sees, in this process and in the engines
  // it starts, is checked against the primitive's declared result shape.
  setenv("RUNBOOK_CHECK_RESULTS", "1", /*overwrite=*/0);
  return Catch::Session().run(argc, argv);
}
