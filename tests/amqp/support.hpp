// Helpers of the amqp:// transport tests: the test broker's URL, unique
// names, a Hub runner with a budget, and the shared fault proxy
// (tests/support/fault_proxy.hpp) under a short name.
#pragma once

#include <doctest/doctest.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <kelp/kelp.hpp>

#include "fault_proxy.hpp"

namespace amqp_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::uint16_t broker_port() {
    const char* port = std::getenv("KELP_TEST_AMQP_PORT");
    REQUIRE_MESSAGE(port != nullptr, "KELP_TEST_AMQP_PORT is not set: run these tests via ctest");
    return static_cast<std::uint16_t>(std::stoi(port));
}

inline std::string url(std::uint16_t port, const std::string& query = "") {
    return "amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "//" +
           (query.empty() ? "" : "?" + query);
}

inline std::string unique_name(const std::string& stem) {
    static std::mt19937_64 random{std::random_device{}()};
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random()));
    return "kamqp-" + stem + "-" + hex;
}

inline bool run_until(kelp::Hub& hub, const std::function<bool()>& done, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done() && Clock::now() < deadline)
        hub.run_once(20ms);
    return done();
}

using Proxy = kelp_test::FaultProxy;

}  // namespace amqp_test
