// Hub timer cancellation against the heap: cancelled entries in the middle of
// the heap, compaction (while idle and while timers fire), slot reuse after
// mass cancels, and what a cancelled timer keeps alive. Runs once per poller
// back end (suite "hub").
//
// Most cases use overdue deadlines (in the past), so one run_once(0) fires
// every timer scheduled before it in a single pass, in heap order, with no
// dependence on the machine's timing.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "hub_test_support.hpp"
#include "kelp/hub.hpp"

using namespace kelp_test;

namespace {

// A timer's planned deadline and its position in scheduling order.
struct Planned {
    Clock::time_point when;
    int id;
};

// The order a correct Hub fires `planned` in, leaving out `cancelled`:
// deadline first, then scheduling order.
std::vector<int> expected_order(std::vector<Planned> planned, const std::vector<bool>& cancelled) {
    std::stable_sort(planned.begin(), planned.end(),
                     [](const Planned& a, const Planned& b) { return a.when < b.when; });
    std::vector<int> order;
    for (const Planned& p : planned) {
        if (!cancelled[static_cast<std::size_t>(p.id)]) order.push_back(p.id);
    }
    return order;
}

// Schedules `count` overdue timers whose deadlines are drawn from `distinct`
// values (few values: many ties), each recording its id into `fired`.
std::vector<kelp::Handle> schedule_overdue(kelp::Hub& hub, int count, int distinct,
                                           std::vector<Planned>& planned, std::vector<int>& fired) {
    std::mt19937 random(2024);  // fixed seed: a failure must be reproducible
    std::uniform_int_distribution<int> pick(0, distinct - 1);
    const auto base = Clock::now() - 1s;
    std::vector<kelp::Handle> handles;
    for (int id = 0; id < count; ++id) {
        const auto when = base + std::chrono::microseconds(10 * pick(random));
        planned.push_back({when, id});
        handles.push_back(hub.call_at(when, [&fired, id] { fired.push_back(id); }));
    }
    return handles;
}

}  // namespace

TEST_SUITE("hub") {
    TEST_CASE("cancelling timers in the middle of the heap keeps the rest in order") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        constexpr int count = 600;
        std::vector<Planned> planned;
        std::vector<int> fired;
        auto handles = schedule_overdue(hub, count, 100000, planned, fired);
        // Every fourth timer, wherever it sits in the heap; fewer than the
        // Hub's compaction threshold, so the dead entries stay in place.
        std::vector<bool> cancelled(count, false);
        for (int id = 1; id < count; id += 4) {
            handles[static_cast<std::size_t>(id)].cancel();
            cancelled[static_cast<std::size_t>(id)] = true;
        }
        CHECK(hub.timer_count() == count - count / 4);
        hub.run_once(Clock::duration::zero());
        CHECK(fired == expected_order(planned, cancelled));
        CHECK(hub.timer_count() == 0);
    }

    TEST_CASE("compacting cancelled timers keeps deadline order and FIFO among ties") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        constexpr int count = 20000;
        std::vector<Planned> planned;
        std::vector<int> fired;
        // Ten distinct deadlines: many ties each. Keeping one timer in 50
        // takes the heap through two compactions and leaves some cancelled
        // entries for the pass itself to skip.
        auto handles = schedule_overdue(hub, count, 10, planned, fired);
        const auto kept = [](int id) { return id % 50 == 2; };
        std::vector<bool> cancelled(count, false);
        for (int id = 0; id < count; ++id) {
            if (!kept(id)) {
                handles[static_cast<std::size_t>(id)].cancel();
                cancelled[static_cast<std::size_t>(id)] = true;
            }
        }
        CHECK(hub.timer_count() == count / 50);
        int wrong_state = 0;
        for (int id = 0; id < count; ++id) {
            if (handles[static_cast<std::size_t>(id)].active() != kept(id)) ++wrong_state;
        }
        CHECK(wrong_state == 0);
        hub.run_once(Clock::duration::zero());
        CHECK(fired == expected_order(planned, cancelled));
        CHECK(hub.timer_count() == 0);
    }

    TEST_CASE("a firing timer that cancels most of its batch and schedules more") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        constexpr int count = 3000;
        std::vector<Planned> planned;
        std::vector<int> fired;
        std::vector<kelp::Handle> handles;
        std::vector<bool> cancelled(count + 1, false);
        std::vector<int> next_pass;
        // Due before all the others: it runs first and cancels enough of the
        // batch (five in six) for the Hub to compact the heap under it.
        const auto first = Clock::now() - 2s;
        planned.push_back({first, count});
        hub.call_at(first, [&] {
            fired.push_back(count);
            for (int id = 0; id < count; id += 6) {
                for (int k = id; k < std::min(id + 5, count); ++k) {
                    handles[static_cast<std::size_t>(k)].cancel();
                    cancelled[static_cast<std::size_t>(k)] = true;
                }
            }
            // Overdue too (due after the whole batch), but scheduled during
            // the pass: they wait for the next iteration.
            for (int k = 0; k < 10; ++k)
                hub.call_at(Clock::now() - 100ms, [&next_pass, k] { next_pass.push_back(k); });
        });
        handles = schedule_overdue(hub, count, 50, planned, fired);
        hub.run_once(Clock::duration::zero());
        CHECK(fired == expected_order(planned, cancelled));
        CHECK(next_pass.empty());
        CHECK(hub.timer_count() == 10);
        hub.run_once(Clock::duration::zero());
        CHECK(next_pass == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
        CHECK(hub.timer_count() == 0);
    }

    TEST_CASE("many cancels then new timers: slots are reused, order and handles hold") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        std::vector<kelp::Handle> old_handles;
        int old_ran = 0;
        for (int i = 0; i < 4000; ++i)
            old_handles.push_back(hub.call_later(1h, [&old_ran] { ++old_ran; }));
        for (kelp::Handle& handle : old_handles)
            handle.cancel();
        CHECK(hub.timer_count() == 0);

        std::vector<Planned> planned;
        std::vector<int> fired;
        auto handles = schedule_overdue(hub, 200, 7, planned, fired);
        CHECK(hub.timer_count() == 200);
        // The new timers reuse the cancelled ones' slots: no stale handle may
        // see them or cancel them.
        for (kelp::Handle& handle : old_handles) {
            CHECK_FALSE(handle.active());
            handle.cancel();
        }
        for (const kelp::Handle& handle : handles)
            CHECK(handle.active());
        CHECK(hub.timer_count() == 200);
        hub.run_once(Clock::duration::zero());
        CHECK(fired == expected_order(planned, std::vector<bool>(200, false)));
        CHECK(old_ran == 0);
        CHECK(hub.timer_count() == 0);
        for (const kelp::Handle& handle : handles)
            CHECK_FALSE(handle.active());
    }

    TEST_CASE("a cancelled timer lets go of its callback at once") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        auto held = std::make_shared<int>(7);
        auto handle = hub.call_later(1h, [held] { (void)*held; });
        auto repeating = hub.call_repeatedly(1h, [held] { (void)*held; });
        CHECK(held.use_count() == 3);
        handle.cancel();
        repeating.cancel();
        // Before any iteration pops the entries out of the heap.
        CHECK(held.use_count() == 1);
        CHECK(hub.timer_count() == 0);
    }

    TEST_CASE("a repeating timer that cancels itself and schedules a timer in its place") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        int repeats = 0;
        int replacement_runs = 0;
        kelp::Handle repeating;
        kelp::Handle replacement;
        repeating = hub.call_repeatedly(1ms, [&] {
            ++repeats;
            repeating.cancel();
            // Likely to land in the slot just freed, while the Hub is still
            // inside this callback's run.
            replacement = hub.call_later(0ms, [&] { ++replacement_runs; });
            CHECK(replacement.active());
            CHECK_FALSE(repeating.active());
        });
        REQUIRE(run_until(hub, [&] { return replacement_runs == 1; }));
        run_iterations(hub, 3);
        hub.run_once(5ms);
        CHECK(repeats == 1);
        CHECK(replacement_runs == 1);
        CHECK_FALSE(replacement.active());
        CHECK(hub.timer_count() == 0);
    }

    TEST_CASE("a repeating timer cancelled by another timer while it waits") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        int repeats = 0;
        auto repeating = hub.call_repeatedly(1ms, [&] { ++repeats; });
        REQUIRE(run_until(hub, [&] { return repeats >= 1; }));
        bool cancelled = false;
        hub.call_later(0ms, [&] {
            repeating.cancel();
            cancelled = true;
        });
        REQUIRE(run_until(hub, [&] { return cancelled; }));
        const int seen = repeats;
        hub.run_once(5ms);
        run_iterations(hub, 2);
        CHECK(repeats == seen);
        CHECK_FALSE(repeating.active());
        CHECK(hub.timer_count() == 0);
    }

    TEST_CASE("close() with cancelled timers still in the heap") {
        auto held = std::make_shared<int>(1);
        std::vector<kelp::Handle> handles;
        {
            kelp::Hub hub;
            fail_on_callback_error(hub);
            for (int i = 0; i < 100; ++i)
                handles.push_back(hub.call_later(1h, [held] { (void)*held; }));
            for (std::size_t i = 0; i < handles.size(); i += 2)
                handles[i].cancel();
            CHECK(hub.timer_count() == 50);
            hub.close();
            CHECK(hub.timer_count() == 0);
            for (const kelp::Handle& handle : handles)
                CHECK_FALSE(handle.active());
            CHECK(held.use_count() == 1);
        }
    }
}
