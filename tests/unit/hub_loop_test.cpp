// Hub loop mechanics: iteration order, call_soon, on_tick, on_close, error
// handling, run_once timeouts, stop and EINTR. Runs once per poller back end
// (suite "hub").
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "hub_test_support.hpp"
#include "kelp/errors.hpp"
#include "kelp/hub.hpp"

using namespace kelp_test;

namespace {

bool contains(const std::vector<std::string>& items, const std::string& wanted) {
    for (const auto& item : items) {
        if (item == wanted) return true;
    }
    return false;
}

std::atomic<int> sigusr1_seen{0};

void count_sigusr1(int) {
    sigusr1_seen.fetch_add(1);
}

// Installs a SIGUSR1 handler without SA_RESTART so blocking calls see EINTR.
class ScopedSigusr1 {
  public:
    ScopedSigusr1() {
        struct sigaction action {};
        action.sa_handler = count_sigusr1;
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0;
        ::sigaction(SIGUSR1, &action, &previous_);
    }
    ScopedSigusr1(const ScopedSigusr1&) = delete;
    ScopedSigusr1& operator=(const ScopedSigusr1&) = delete;
    ~ScopedSigusr1() { ::sigaction(SIGUSR1, &previous_, nullptr); }

  private:
    struct sigaction previous_ {};
};

}  // namespace

TEST_SUITE("hub") {
    TEST_CASE("one iteration runs timers, call_soon, on_tick, then I/O") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        std::vector<std::string> log;
        auto pipe = Pipe::make();
        REQUIRE(write_byte(pipe.w()));
        hub.add_reader(pipe.r(), [&] {
            log.push_back("reader");
            drain(pipe.r());
        });
        auto tick = hub.on_tick([&] { log.push_back("tick"); });
        hub.call_soon([&] { log.push_back("soon"); });
        hub.call_at(Clock::now() - 1ms, [&] { log.push_back("timer"); });
        hub.run_once(1s);
        CHECK(log == std::vector<std::string>{"timer", "soon", "tick", "reader"});
        tick.cancel();
        hub.remove_reader(pipe.r());
    }

    TEST_CASE("now() is the clock at the start of the iteration") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        Clock::time_point seen_in_first;
        Clock::time_point seen_in_second;
        const auto before = Clock::now();
        hub.call_soon([&] {
            seen_in_first = hub.now();
            std::this_thread::sleep_for(5ms);
        });
        hub.call_soon([&] { seen_in_second = hub.now(); });
        hub.run_once(0ms);
        const auto after = Clock::now();
        CHECK(seen_in_first >= before);
        CHECK(seen_in_first <= after);
        // Cached: not re-read between callbacks of one iteration.
        CHECK(seen_in_second == seen_in_first);
    }

    TEST_CASE("call_soon runs in FIFO order; what it schedules waits an iteration") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        std::vector<int> order;
        for (int i = 1; i <= 5; ++i) {
            hub.call_soon([&, i] {
                order.push_back(i);
                if (i == 2) hub.call_soon([&] { order.push_back(99); });
            });
        }
        hub.run_once(0ms);
        CHECK(order == std::vector<int>{1, 2, 3, 4, 5});
        hub.run_once(0ms);
        CHECK(order == std::vector<int>{1, 2, 3, 4, 5, 99});
        hub.run_once(0ms);
        CHECK(order.size() == 6);
    }

    TEST_CASE("a pending call_soon makes the poll non-blocking") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        int runs = 0;
        hub.call_soon([&] {
            ++runs;
            hub.call_soon([&] { ++runs; });
        });
        const auto start = Clock::now();
        // The inner callback is pending after the call_soon phase, so this must
        // not wait anywhere near 5 s.
        hub.run_once(5s);
        CHECK(Clock::now() - start < 1s);
        CHECK(runs == 1);
        hub.run_once(0ms);
        CHECK(runs == 2);
    }

    TEST_CASE("has_pending_callbacks reports queued call_soon work") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        CHECK_FALSE(hub.has_pending_callbacks());
        hub.call_soon([] {});
        CHECK(hub.has_pending_callbacks());
        hub.run_once(0ms);
        CHECK_FALSE(hub.has_pending_callbacks());

        std::thread([&] { hub.call_soon_threadsafe([] {}); }).join();
        CHECK(hub.has_pending_callbacks());
        hub.run_once(0ms);
        CHECK_FALSE(hub.has_pending_callbacks());

        // Timers and ticks are not call_soon work.
        hub.call_later(1h, [] {});
        auto tick = hub.on_tick([] {});
        CHECK_FALSE(hub.has_pending_callbacks());
        tick.cancel();
    }

    TEST_CASE("call_soon handles can be cancelled, also by an earlier callback") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        std::vector<int> order;
        auto first = hub.call_soon([&] { order.push_back(1); });
        auto second = hub.call_soon([&] { order.push_back(2); });
        kelp::Handle fourth;
        hub.call_soon([&] {
            order.push_back(3);
            fourth.cancel();
        });
        fourth = hub.call_soon([&] { order.push_back(4); });
        CHECK(second.active());
        second.cancel();
        CHECK_FALSE(second.active());
        CHECK(first.active());
        hub.run_once(0ms);
        CHECK(order == std::vector<int>{1, 3});
        CHECK_FALSE(first.active());
        CHECK_FALSE(fourth.active());
        run_iterations(hub, 2);
        CHECK(order == std::vector<int>{1, 3});
    }

    TEST_CASE("on_tick runs every iteration until cancelled") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        int ticks = 0;
        auto tick = hub.on_tick([&] { ++ticks; });
        CHECK(tick.active());
        run_iterations(hub, 3);
        CHECK(ticks == 3);
        tick.cancel();
        CHECK_FALSE(tick.active());
        run_iterations(hub, 3);
        CHECK(ticks == 3);

        int self_ticks = 0;
        kelp::Handle self;
        self = hub.on_tick([&] {
            if (++self_ticks == 2) self.cancel();
        });
        run_iterations(hub, 5);
        CHECK(self_ticks == 2);
        CHECK_FALSE(self.active());
    }

    TEST_CASE("on_close callbacks run once at close in FIFO order") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        std::vector<int> order;
        hub.on_close([&] { order.push_back(1); });
        auto cancelled = hub.on_close([&] { order.push_back(2); });
        hub.on_close([&] { order.push_back(3); });
        hub.on_close([&] { order.push_back(4); });
        cancelled.cancel();

        auto pipe = Pipe::make();
        hub.add_reader(pipe.r(), [] {});
        hub.call_later(1h, [] {});
        hub.call_repeatedly(1h, [] {});
        CHECK(hub.timer_count() == 2);
        run_iterations(hub, 2);
        CHECK(order.empty());

        CHECK_FALSE(hub.closed());
        hub.close();
        CHECK(hub.closed());
        CHECK(order == std::vector<int>{1, 3, 4});
        CHECK(hub.timer_count() == 0);
        CHECK_FALSE(hub.has_reader(pipe.r()));

        hub.close();  // idempotent
        CHECK(hub.closed());
        CHECK(order == std::vector<int>{1, 3, 4});
    }

    TEST_CASE("handles are inactive after close; a throwing on_close does not stop the rest") {
        std::vector<std::string> errors;
        kelp::Hub hub;
        hub.set_error_handler([&](std::exception_ptr e) { errors.push_back(describe(e)); });
        std::vector<int> order;
        hub.on_close([&] {
            order.push_back(1);
            throw std::runtime_error("closer");
        });
        auto closer = hub.on_close([&] { order.push_back(2); });
        auto timer = hub.call_later(1h, [] {});
        auto repeating = hub.call_repeatedly(1h, [] {});
        auto tick = hub.on_tick([] {});
        auto soon = hub.call_soon([] {});
        CHECK(closer.active());
        CHECK(timer.active());
        hub.close();
        CHECK(order == std::vector<int>{1, 2});
        CHECK(errors == std::vector<std::string>{"closer"});
        CHECK_FALSE(closer.active());
        CHECK_FALSE(timer.active());
        CHECK_FALSE(repeating.active());
        CHECK_FALSE(tick.active());
        CHECK_FALSE(soon.active());
        CHECK(hub.timer_count() == 0);
        timer.cancel();  // harmless after close
        CHECK(hub.timer_count() == 0);
    }

    TEST_CASE("on_close callbacks run at destruction unless already closed") {
        int closes = 0;
        {
            kelp::Hub hub;
            fail_on_callback_error(hub);
            hub.on_close([&] { ++closes; });
        }
        CHECK(closes == 1);
        {
            kelp::Hub hub;
            fail_on_callback_error(hub);
            hub.on_close([&] { ++closes; });
            hub.close();
            CHECK(closes == 2);
        }
        CHECK(closes == 2);
    }

    TEST_CASE("close() from a callback ends run_once promptly") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        int closes = 0;
        int second_tick = 0;
        hub.on_close([&] { ++closes; });
        SUBCASE("from call_soon") {
            hub.call_soon([&] { hub.close(); });
        }
        SUBCASE("from a timer") {
            hub.call_later(1ms, [&] { hub.close(); });
        }
        SUBCASE("from a tick, with another tick behind it") {
            hub.on_tick([&] { hub.close(); });
            hub.on_tick([&] { ++second_tick; });
        }
        SUBCASE("from a reader") {
            auto pipe = Pipe::make();
            REQUIRE(write_byte(pipe.w()));
            hub.add_reader(pipe.r(), [&] { hub.close(); });
            const auto start = Clock::now();
            while (!hub.closed() && Clock::now() - start < 2s)
                hub.run_once(10ms);
        }
        // Nothing is left to wait for once the hub is closed: the iteration
        // must not sit out the caller's timeout in an empty poll.
        const auto start = Clock::now();
        while (!hub.closed() && Clock::now() - start < 2s)
            hub.run_once(3s);
        const auto elapsed = Clock::now() - start;
        CAPTURE(to_ms(elapsed));
        CHECK(hub.closed());
        CHECK(closes == 1);
        CHECK(second_tick == 0);
        CHECK(elapsed < 1s);
    }

    TEST_CASE("close() from a callback ends run_forever") {
        ScopedSigusr1 handler;
        kelp::Hub hub;
        fail_on_callback_error(hub);
        // If the loop blocks in an empty poll after close, neither stop() nor
        // call_soon_threadsafe can reach it (the wake-up fd is gone): only a
        // signal interrupts it, so the test fails rather than hangs.
        std::mutex mutex;
        std::condition_variable cv;
        bool returned = false;
        const pthread_t hub_thread = ::pthread_self();
        std::thread rescuer([&] {
            std::unique_lock lock(mutex);
            if (cv.wait_for(lock, 3s, [&] { return returned; })) return;
            while (!returned) {
                ::pthread_kill(hub_thread, SIGUSR1);
                hub.stop();
                cv.wait_for(lock, 100ms, [&] { return returned; });
            }
        });
        hub.call_later(10ms, [&] { hub.close(); });
        const auto start = Clock::now();
        hub.run_forever();
        const auto elapsed = Clock::now() - start;
        {
            std::lock_guard lock(mutex);
            returned = true;
        }
        cv.notify_all();
        rescuer.join();
        CAPTURE(to_ms(elapsed));
        CHECK(hub.closed());
        CHECK(elapsed < 2s);
    }

    TEST_CASE("throwing callbacks reach on_error and the loop goes on") {
        std::vector<std::string> errors;
        kelp::HubOptions options;
        options.on_error = [&](std::exception_ptr error) { errors.push_back(describe(error)); };
        kelp::Hub hub(std::move(options));

        auto pipe = Pipe::make();
        auto pair = SocketPair::make();
        bool timer_after = false;
        bool soon_after = false;
        int tick_runs = 0;
        bool reader_ran = false;
        bool writer_ran = false;
        bool other_reader_ran = false;
        auto other = Pipe::make();

        const auto when = Clock::now() + 5ms;
        hub.call_at(when, [] { throw std::runtime_error("timer"); });
        hub.call_at(when, [&] { timer_after = true; });
        hub.call_soon([] { throw std::runtime_error("soon"); });
        hub.call_soon([] { throw 42; });
        hub.call_soon([&] { soon_after = true; });
        auto tick = hub.on_tick([&] {
            if (++tick_runs == 1) throw std::runtime_error("tick");
        });
        hub.add_reader(pipe.r(), [&] {
            drain(pipe.r());
            if (!reader_ran) {
                reader_ran = true;
                throw std::runtime_error("reader");
            }
        });
        hub.add_writer(pair.a.get(), [&] {
            hub.remove_writer(pair.a.get());
            writer_ran = true;
            throw std::runtime_error("writer");
        });
        hub.add_reader(other.r(), [&] {
            drain(other.r());
            other_reader_ran = true;
        });
        REQUIRE(write_byte(pipe.w()));
        REQUIRE(write_byte(other.w()));

        REQUIRE(run_until(hub, [&] {
            return timer_after && soon_after && tick_runs >= 2 && reader_ran && writer_ran &&
                   other_reader_ran;
        }));
        CHECK(contains(errors, "timer"));
        CHECK(contains(errors, "soon"));
        CHECK(contains(errors, "int 42"));
        CHECK(contains(errors, "tick"));
        CHECK(contains(errors, "reader"));
        CHECK(contains(errors, "writer"));
        CHECK(errors.size() == 6);
        tick.cancel();
        hub.remove_reader(pipe.r());
        hub.remove_reader(other.r());
    }

    TEST_CASE("set_error_handler replaces the handler") {
        std::vector<std::string> from_options;
        std::vector<std::string> from_setter;
        kelp::HubOptions options;
        options.on_error = [&](std::exception_ptr e) { from_options.push_back(describe(e)); };
        kelp::Hub hub(std::move(options));
        hub.call_soon([] { throw std::runtime_error("first"); });
        hub.run_once(0ms);
        hub.set_error_handler([&](std::exception_ptr e) { from_setter.push_back(describe(e)); });
        hub.call_soon([] { throw std::runtime_error("second"); });
        hub.call_later(1ms, [] { throw kelp::HubError("third"); });
        bool done = false;
        hub.call_later(2ms, [&] { done = true; });
        REQUIRE(run_until(hub, [&] { return done; }));
        CHECK(from_options == std::vector<std::string>{"first"});
        CHECK(from_setter == std::vector<std::string>{"second", "third"});
    }

    TEST_CASE("a throwing call_soon_threadsafe callback reaches the handler") {
        std::vector<std::string> errors;
        kelp::Hub hub;
        hub.set_error_handler([&](std::exception_ptr e) { errors.push_back(describe(e)); });
        bool after = false;
        std::thread([&] {
            hub.call_soon_threadsafe([] { throw std::runtime_error("threadsafe"); });
            hub.call_soon_threadsafe([&] { after = true; });
        }).join();
        REQUIRE(run_until(hub, [&] { return after; }));
        CHECK(errors == std::vector<std::string>{"threadsafe"});
    }

    TEST_CASE("run_once with nothing registered waits about the timeout") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        for (const Clock::duration timeout :
             {Clock::duration(20ms), Clock::duration(50ms), Clock::duration(2500us)}) {
            CAPTURE(to_ms(timeout));
            const auto start = Clock::now();
            hub.run_once(timeout);
            const auto elapsed = Clock::now() - start;
            CAPTURE(to_ms(elapsed));
            CHECK(elapsed >= timeout - 1ms);
            CHECK(elapsed < timeout + 1s);
        }
        const auto start = Clock::now();
        hub.run_once(0ms);
        CHECK(Clock::now() - start < 500ms);
    }

    TEST_CASE("run_once waits no longer than the next timer") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        bool fired = false;
        hub.call_later(30ms, [&] { fired = true; });
        hub.call_later(1h, [] {});
        const auto start = Clock::now();
        // The poll ends at the deadline; the timer itself runs in the timer
        // phase of the next iteration.
        hub.run_once(10s);
        const auto elapsed = Clock::now() - start;
        CAPTURE(to_ms(elapsed));
        CHECK(elapsed >= 29ms);
        CHECK(elapsed < 2s);
        REQUIRE(run_until(
            hub, [&] { return fired; }, 1s, 1ms));
        CHECK(hub.timer_count() == 1);
    }

    TEST_CASE("stop from another thread ends run_forever blocked in poll") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        const auto start = Clock::now();
        Watchdog watchdog(hub, 10s);
        std::thread stopper([&] {
            // Gives run_forever time to block; the assertion is the return below.
            std::this_thread::sleep_for(50ms);
            hub.stop();
        });
        hub.run_forever();
        const auto elapsed = Clock::now() - start;
        watchdog.dismiss();
        stopper.join();
        CHECK_FALSE(watchdog.fired());
        CHECK(elapsed >= 50ms);
        CHECK(elapsed < 2s);
    }

    TEST_CASE("stop from another thread makes a blocked run_once return") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        const auto start = Clock::now();
        std::thread stopper([&] {
            std::this_thread::sleep_for(50ms);
            hub.stop();
        });
        hub.run_once(10s);
        const auto elapsed = Clock::now() - start;
        stopper.join();
        CHECK(elapsed < 5s);
    }

    TEST_CASE("call_soon_threadsafe wakes a blocked poll") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        std::atomic<bool> ran{false};
        std::thread producer([&] {
            std::this_thread::sleep_for(50ms);
            hub.call_soon_threadsafe([&] { ran = true; });
        });
        const auto start = Clock::now();
        hub.run_once(10s);
        const auto elapsed = Clock::now() - start;
        producer.join();
        CHECK(elapsed < 5s);
        // Queued callbacks run in the call_soon phase of the next iteration.
        REQUIRE(run_until(hub, [&] { return ran.load(); }));
    }

    TEST_CASE("stop from a callback ends run_forever, which can run again") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        Watchdog watchdog(hub, 10s);
        int same_iteration = 0;
        hub.call_soon([&] { hub.stop(); });
        // stop() ends run_forever after the current iteration, not mid-phase.
        hub.call_soon([&] { ++same_iteration; });
        hub.run_forever();
        CHECK(same_iteration == 1);

        // The stop request was cleared: this run lasts until its own stop.
        bool timer_ran = false;
        const auto start = Clock::now();
        hub.call_later(30ms, [&] {
            timer_ran = true;
            hub.stop();
        });
        hub.run_forever();
        CHECK(timer_ran);
        CHECK(Clock::now() - start >= 30ms);

        // From a timer, a reader and a tick as well.
        auto pipe = Pipe::make();
        hub.add_reader(pipe.r(), [&] {
            drain(pipe.r());
            hub.stop();
        });
        REQUIRE(write_byte(pipe.w()));
        hub.run_forever();
        hub.remove_reader(pipe.r());
        auto tick = hub.on_tick([&] { hub.stop(); });
        hub.run_forever();
        tick.cancel();

        watchdog.dismiss();
        CHECK_FALSE(watchdog.fired());
    }

    TEST_CASE("a stop before run_forever ends it after one non-blocking iteration") {
        kelp::Hub hub;
        fail_on_callback_error(hub);
        Watchdog watchdog(hub, 10s);
        int ran = 0;
        hub.call_soon([&] { ++ran; });
        hub.stop();
        const auto start = Clock::now();
        hub.run_forever();
        CHECK(Clock::now() - start < 1s);
        CHECK(ran == 1);

        // Cleared afterwards: the next run needs its own stop.
        bool second = false;
        hub.call_later(20ms, [&] {
            second = true;
            hub.stop();
        });
        hub.run_forever();
        CHECK(second);
        watchdog.dismiss();
        CHECK_FALSE(watchdog.fired());
    }

    TEST_CASE("an interrupted poll (EINTR) neither throws nor loses timers") {
        ScopedSigusr1 handler;
        kelp::Hub hub;
        fail_on_callback_error(hub);
        const int signals_before = sigusr1_seen.load();
        const pthread_t hub_thread = ::pthread_self();
        const auto start = Clock::now();
        Clock::time_point fired_at;
        bool fired = false;
        hub.call_later(100ms, [&] {
            fired_at = Clock::now();
            fired = true;
            // Leaves a callback pending at poll time (the nested one waits an
            // iteration), so the test does not sit out the rest of the 2 s.
            hub.call_soon([&] { hub.call_soon([] {}); });
        });
        std::thread killer([&] {
            // Several signals so at least one lands while the hub blocks.
            for (int i = 0; i < 3; ++i) {
                std::this_thread::sleep_for(20ms);
                ::pthread_kill(hub_thread, SIGUSR1);
            }
        });
        int iterations = 0;
        while (!fired && iterations < 100 && Clock::now() - start < 5s) {
            CHECK_NOTHROW(hub.run_once(2s));
            ++iterations;
        }
        killer.join();
        // Standard signals do not queue: under load some of the three merge.
        CHECK(sigusr1_seen.load() - signals_before >= 1);
        REQUIRE(fired);
        CHECK(fired_at - start >= 100ms);
        CHECK(fired_at - start < 1s);
    }
}
