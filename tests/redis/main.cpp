// The doctest runner of the redis:// transport tests; see support.hpp for
// how they find the test server.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
