// The doctest runner of the conformance suite; see support.hpp for how a
// run picks its transport (KELP_TEST_URL).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
