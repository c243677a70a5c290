// The doctest runner of the amqp:// transport tests; they find the test
// broker through $KELP_TEST_AMQP_PORT (set by ctest).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
