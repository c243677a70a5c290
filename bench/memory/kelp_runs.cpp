// kelp's side of the benchmark: the public API only, used the way an
// application would (Producer::publish with options built once, a Consumer
// callback that acks).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <exception>
#include <string>
#include <thread>

#include <kelp/kelp.hpp>

#include "common.hpp"

using namespace std::chrono_literals;

namespace kelp_bench {

namespace {

// Long enough for a loaded machine, short enough that a lost message fails
// the run instead of hanging it.
constexpr auto drain_timeout = 30s;

// A fresh broker per run: nothing left over from an earlier round.
std::string broker_url(const char* shape, int round) {
    return "memory://bench-" + std::string(shape) + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(round);
}

}  // namespace

Run kelp_one_thread(const Options& options, int round) {
    const std::uint64_t total = options.messages;
    kelp::Connection conn{broker_url("one", round)};
    const kelp::Queue queue{"bench"};
    Tally tally(total);
    kelp::Consumer consumer{conn, {queue}, [&tally](kelp::Message& message) {
                                tally.record(message.body());
                                message.ack();
                            }};
    consumer.consume();
    kelp::Producer producer{conn};
    // Built once: a PublishOptions holds a dozen strings, and an application
    // publishing in a loop would not rebuild it per message either.
    const kelp::PublishOptions publish{.routing_key = queue.name};
    Body body;

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = thread_cpu_ns();
    std::uint64_t sent = 0;
    while (sent < total) {
        const std::uint64_t end = std::min(total, sent + options.batch);
        for (; sent < end; ++sent)
            producer.publish(body.with_seq(sent), publish);
        while (tally.count() < sent)
            conn.drain_events(drain_timeout);
    }
    const Run run{total, wall_ns() - wall0, thread_cpu_ns() - cpu0};
    check_tally(tally, "kelp one thread");
    return run;
}

Run kelp_two_threads(const Options& options, int round, bool use_hub) {
    const std::uint64_t total = options.messages;
    const std::string url = broker_url(use_hub ? "hub" : "two", round);
    kelp::Connection conn{url};
    const kelp::Queue queue{"bench"};
    Tally tally(total);
    kelp::Hub hub;
    if (use_hub) conn.register_with_event_loop(hub);
    kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& message) {
                                tally.record(message.body());
                                message.ack();
                                if (use_hub && tally.count() == total) hub.stop();
                            }};
    // Declared before the producer starts: publishing to a missing queue
    // would drop the message.
    consumer.consume();

    // Both sides are set up before the clock starts.
    std::barrier ready(2);
    std::exception_ptr producer_error;
    std::atomic<bool> producer_failed{false};
    // A jthread: joined even when the consumer side throws.
    std::jthread producer_thread([&] {
        bool arrived = false;
        try {
            kelp::Connection producer_conn{url};
            kelp::Producer producer{producer_conn};
            producer_conn.default_channel();  // connect now, not inside the timing
            const kelp::PublishOptions publish{.routing_key = queue.name};
            Body body;
            arrived = true;
            ready.arrive_and_wait();
            for (std::uint64_t seq = 0; seq < total; ++seq)
                producer.publish(body.with_seq(seq), publish);
        } catch (...) {
            producer_error = std::current_exception();
            producer_failed = true;
            if (!arrived) ready.arrive_and_wait();
            hub.stop();
        }
    });
    ready.arrive_and_wait();

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    std::int64_t longest_drain = 0;
    if (use_hub) {
        // A safety net: a lost message ends the loop and fails the tally.
        kelp::Handle guard = hub.call_later(300s, [&] { hub.stop(); });
        hub.run_forever();
        guard.cancel();
    } else {
        while (tally.count() < total && !producer_failed) {
            const std::int64_t start = wall_ns();
            conn.drain_events(drain_timeout);
            longest_drain = std::max(longest_drain, wall_ns() - start);
        }
    }
    const Run run{total, wall_ns() - wall0, process_cpu_ns() - cpu0, longest_drain};
    producer_thread.join();
    if (producer_error) std::rethrow_exception(producer_error);
    check_tally(tally, use_hub ? "kelp two threads (Hub)" : "kelp two threads (drain_events)");
    return run;
}

}  // namespace kelp_bench
