// Hub cross-thread entry points under load: call_soon_threadsafe from many
// threads while the hub runs run_forever. Runs once per poller back end
// (suite "hub").
#include <array>
#include <atomic>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "hub_test_support.hpp"
#include "kelp/hub.hpp"

using namespace kelp_test;

namespace {

constexpr int producer_count = 4;
constexpr int calls_per_producer = 100'000;

// Touched only on the hub thread, so plain ints; TSan checks that claim.
struct Tally {
    kelp::Hub* hub = nullptr;
    std::array<int, producer_count> next{};
    std::array<int, producer_count> count{};
    int out_of_order = 0;
    int total = 0;

    void record(int producer, int sequence) {
        auto& expected = next[static_cast<std::size_t>(producer)];
        if (sequence != expected) ++out_of_order;
        expected = sequence + 1;
        ++count[static_cast<std::size_t>(producer)];
        if (++total == producer_count * calls_per_producer) hub->stop();
    }
};

}  // namespace

TEST_SUITE("hub") {
    TEST_CASE("call_soon_threadsafe from 4 threads: each call runs once, FIFO per thread") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        Tally tally;
        tally.hub = &hub;
        std::atomic<bool> go{false};

        std::vector<std::thread> producers;
        for (int p = 0; p < producer_count; ++p) {
            producers.emplace_back([&hub, &go, &tally, p] {
                // Start together, once the hub is running, for maximum contention.
                while (!go.load())
                    std::this_thread::yield();
                Tally* target = &tally;
                for (int i = 0; i < calls_per_producer; ++i) {
                    hub.call_soon_threadsafe([target, p, i] { target->record(p, i); });
                }
            });
        }
        hub.call_soon([&] { go = true; });

        Watchdog watchdog(hub, 60s);
        const auto start = Clock::now();
        hub.run_forever();
        const auto elapsed = Clock::now() - start;
        watchdog.dismiss();
        go = true;  // in case the hub never ran the starter
        for (auto& t : producers)
            t.join();
        MESSAGE("400k call_soon_threadsafe took " << to_ms(elapsed) << " ms");

        CHECK_FALSE(watchdog.fired());
        CHECK(tally.total == producer_count * calls_per_producer);
        CHECK(tally.out_of_order == 0);
        for (int p = 0; p < producer_count; ++p) {
            CAPTURE(p);
            CHECK(tally.count[static_cast<std::size_t>(p)] == calls_per_producer);
        }
        // Nothing left over to run twice.
        run_iterations(hub, 2);
        CHECK(tally.total == producer_count * calls_per_producer);
    }

    TEST_CASE("stop and call_soon_threadsafe race with a running hub") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        std::atomic<int> ran{0};
        // Repeated start/stop cycles: a lost wake-up shows up as a hang,
        // caught by the watchdog.
        for (int round = 0; round < 50; ++round) {
            CAPTURE(round);
            Watchdog watchdog(hub, 10s);
            std::thread other([&] {
                hub.call_soon_threadsafe([&] { ran.fetch_add(1); });
                hub.stop();
            });
            hub.run_forever();
            other.join();
            watchdog.dismiss();
            REQUIRE_FALSE(watchdog.fired());
        }
        REQUIRE(run_until(hub, [&] { return ran.load() == 50; }));
    }
}
