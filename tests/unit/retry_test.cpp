// RetryPolicy and run_with_retries: how many tries, the waits between them,
// and the total deadline that is always honoured.
#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <vector>

#include "kelp/errors.hpp"
#include "kelp/retry.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_SUITE("retry") {
    TEST_CASE("interval grows by step from start and stops at max") {
        kelp::RetryPolicy policy{
            .interval_start = 10ms, .interval_step = 20ms, .interval_max = 45ms};
        CHECK(policy.interval(1) == 10ms);
        CHECK(policy.interval(2) == 30ms);
        CHECK(policy.interval(3) == 45ms);
        CHECK(policy.interval(100) == 45ms);
    }

    TEST_CASE("a success on a later try returns, after on_retry saw each failure") {
        std::vector<int> retried;
        kelp::RetryPolicy policy{
            .max_retries = 5, .interval_start = 0ms, .interval_step = 0ms, .jitter = 0};
        policy.on_retry = [&](std::exception_ptr, int attempt, std::chrono::milliseconds) {
            retried.push_back(attempt);
        };
        int tries = 0;
        int failures_seen = 0;
        kelp::run_with_retries(
            policy,
            [&](Clock::time_point) {
                if (++tries < 3) throw kelp::ConnectionError("down");
            },
            [&] { ++failures_seen; });
        CHECK(tries == 3);
        CHECK(failures_seen == 2);
        CHECK(retried == std::vector<int>{1, 2});
    }

    TEST_CASE("max_retries bounds the tries and the last error is rethrown") {
        kelp::RetryPolicy policy{.max_retries = 2, .interval_step = 0ms, .jitter = 0};
        int tries = 0;
        CHECK_THROWS_AS(kelp::run_with_retries(policy,
                                               [&](Clock::time_point) {
                                                   ++tries;
                                                   throw kelp::ConnectionError("down");
                                               }),
                        kelp::ConnectionError);
        CHECK(tries == 3);  // the first try and two retries
    }

    TEST_CASE("the total timeout wins over an unlimited retry count") {
        kelp::RetryPolicy policy{.max_retries = -1,
                                 .interval_start = 20ms,
                                 .interval_step = 0ms,
                                 .interval_max = 20ms,
                                 .timeout = 150ms,
                                 .jitter = 0};
        Clock::time_point seen_deadline{};
        int tries = 0;
        const auto started = Clock::now();
        CHECK_THROWS_AS(kelp::run_with_retries(policy,
                                               [&](Clock::time_point deadline) {
                                                   ++tries;
                                                   seen_deadline = deadline;
                                                   throw kelp::ConnectionError("down");
                                               }),
                        kelp::ConnectionError);
        // No retry is begun whose wait would reach the deadline: at most the
        // tries at 0, 20, ..., 140 ms (a late-waking sleep only means fewer).
        // The count is the claim; elapsed time only catches a runaway loop,
        // since a loaded machine may wake any sleep late.
        CHECK(tries >= 1);
        CHECK(tries <= 8);
        CHECK(Clock::now() - started < 150ms + 2s);
        // Each try is told the deadline so it can cut its own wait short.
        CHECK(seen_deadline <= started + 150ms + 1ms);
        CHECK(seen_deadline >= started + 150ms - 1ms);
    }

    TEST_CASE("errors other than ConnectionError are not retried") {
        kelp::RetryPolicy policy{.max_retries = 5, .interval_step = 0ms};
        int tries = 0;
        CHECK_THROWS_AS(kelp::run_with_retries(policy,
                                               [&](Clock::time_point) {
                                                   ++tries;
                                                   throw std::runtime_error("bug");
                                               }),
                        std::runtime_error);
        CHECK(tries == 1);
    }

    TEST_CASE("without a timeout the deadline passed to a try is unbounded") {
        kelp::RetryPolicy policy{};
        Clock::time_point seen{};
        kelp::run_with_retries(policy, [&](Clock::time_point deadline) { seen = deadline; });
        CHECK(seen == Clock::time_point::max());
    }
}
