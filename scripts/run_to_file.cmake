# Runs BIN with ARGS (a ;-list) and writes its standard output to OUT: the
# build's way to generate files from the binary (no shell redirection).
#   cmake -DBIN=<binary> -DARGS=man -DOUT=<file> -P scripts/run_to_file.cmake
execute_process(COMMAND "${BIN}" ${ARGS} OUTPUT_FILE "${OUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE "${OUT}")
  message(FATAL_ERROR "${BIN} ${ARGS} failed (${rc})")
endif()
