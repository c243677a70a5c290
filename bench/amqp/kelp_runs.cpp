// kelp's side: the public API as an application uses it (a Producer with
// options built once; a Consumer with prefetch 100 acking each message),
// doing the raw ceiling's work: the callback reads the sequence number from
// the body bytes, as raw_runs.cpp does.
#include <chrono>
#include <string>

#include <kelp/kelp.hpp>

#include "channel.hpp"
#include "common.hpp"

using namespace std::chrono_literals;

namespace kelp_bench {

Run kelp_publish(const Options& options, const std::string& queue, bool confirms) {
    const std::uint64_t total = confirms ? options.confirm_messages : options.messages;
    kelp::Connection conn{options.url(
        confirms ? "confirm_publish=true&confirm_window=" + std::to_string(confirm_window) : "")};
    conn.maybe_declare(kelp::Queue{queue, kelp::QueueOptions{.durable = false}});
    kelp::Producer producer{conn};
    const kelp::PublishOptions publish{.routing_key = queue,
                                       .content_type = "application/json",
                                       .content_encoding = "utf-8",
                                       .delivery_mode = kelp::DeliveryMode::transient};
    JsonBody body;

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    for (std::uint64_t seq = 0; seq < total; ++seq)
        producer.publish(body.with_seq(seq), publish);
    // The rest of the window: every publish confirmed before the clock stops.
    if (confirms) dynamic_cast<kelp::amqp::AmqpChannel&>(producer.channel()).wait_for_confirms();
    Run run{total, wall_ns() - wall0, process_cpu_ns() - cpu0};
    if (raw_queue_depth(options, queue, total) != total)
        fail("kelp publish: the queue does not hold the " + std::to_string(total) +
             " messages published");
    if (!confirms) run.stored_ns = wall_ns() - wall0;
    return run;
}

Run kelp_consume(const Options& options, const std::string& queue, std::uint64_t count) {
    Tally tally(count);
    kelp::Connection conn{options.url()};
    kelp::Consumer consumer{conn,
                            {kelp::Queue{queue, kelp::QueueOptions{.durable = false}}},
                            [&tally](kelp::Message& message) {
                                const std::string_view body = message.body();
                                tally.record(seq_of(body.data(), body.size()));
                                message.ack();
                            },
                            {.prefetch_count = prefetch}};
    consumer.consume();  // declares and subscribes, outside the timing

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    while (!tally.complete())
        conn.drain_events(30s);
    const Run run{count, wall_ns() - wall0, process_cpu_ns() - cpu0};
    check_tally(tally, "kelp consume+ack");
    return run;
}

}  // namespace kelp_bench
