# Runs a command and checks its exit code and, optionally, its output.
#   cmake -DEXPECT_EXIT=2 -DEXPECT_REGEX=text -P check_output.cmake -- program args...
# The regex is matched against stdout and stderr together.
set(command "")
set(collect FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(collect)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
    set(collect TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "check_output.cmake: no command after --")
endif()

execute_process(COMMAND ${command} RESULT_VARIABLE status OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
set(output "${out}${err}")
if(NOT "${status}" STREQUAL "${EXPECT_EXIT}")
  message(FATAL_ERROR "exit code ${status}, expected ${EXPECT_EXIT}\n--- output:\n${output}")
endif()
if(NOT "${EXPECT_REGEX}" STREQUAL "" AND NOT output MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "output does not match '${EXPECT_REGEX}'\n--- output:\n${output}")
endif()
message(STATUS "exit ${status} as expected\n${output}")
