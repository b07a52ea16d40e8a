# cmake -DXENT=... -DPLUGIN=... -DEXPECTED=<exit status> -DARGS=<list> -P expect_verdict.cmake
execute_process(COMMAND ${XENT} verify --plugin ${PLUGIN} ${ARGS}
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT "${status}" STREQUAL "${EXPECTED}")
  message(FATAL_ERROR "xent verify exited with ${status}, expected ${EXPECTED}")
endif()
