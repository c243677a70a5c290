// kelp's side of the benchmark: the public API only, used the way an
// application would (Producer::publish with options built once, a Consumer
// with prefetch 100 whose callback reads the decoded body and acks).
#include <chrono>
#include <string>

#include <kelp/kelp.hpp>

#include "common.hpp"

using namespace std::chrono_literals;

namespace kelp_bench {

namespace {

// Long enough for a loaded machine, short enough that a lost message fails
// the run instead of hanging it.
constexpr auto drain_timeout = 30s;

kelp::PublishOptions json_publish(const std::string& queue) {
    return {.routing_key = queue, .content_type = "application/json", .content_encoding = "utf-8"};
}

// A publish run must leave exactly its messages in the queue, none dropped.
void check_published(kelp::Producer& producer, const std::string& queue, std::uint64_t total,
                     std::optional<std::uint64_t> dropped, const char* run_name) {
    if (dropped.value_or(0) != 0) {
        fail(std::string(run_name) + ": " + std::to_string(*dropped) +
             " publishes were unroutable");
    }
    const kelp::QueueDeclareOk declared =
        producer.channel().queue_declare(kelp::Queue{queue}, /*passive=*/true);
    if (declared.message_count != total) {
        fail(std::string(run_name) + ": the queue holds " + std::to_string(declared.message_count) +
             " messages after " + std::to_string(total) + " publishes");
    }
}

}  // namespace

Run kelp_publish(const Options& options, const std::string& queue, std::size_t batch) {
    const std::uint64_t total = options.messages;
    kelp::Connection conn{options.url()};
    conn.maybe_declare(kelp::Queue{queue});  // connects, outside the timing
    kelp::Producer producer{conn};
    const kelp::PublishOptions publish = json_publish(queue);
    JsonBody body;

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    if (batch == 0) {
        for (std::uint64_t seq = 0; seq < total; ++seq)
            producer.publish(body.with_seq(seq), publish);
    } else {
        // As redis-benchmark -P 16 sends 16 commands per write.
        kelp::PublishBatch held{producer};
        for (std::uint64_t seq = 0; seq < total; ++seq) {
            producer.publish(body.with_seq(seq), publish);
            if ((seq + 1) % batch == 0) held.flush();
        }
    }
    // Publishes are pipelined: the channel can say how many were dropped only
    // once every reply is in, so the clock stops after that.
    const std::optional<std::uint64_t> dropped = producer.channel().unroutable_dropped();
    const Run run{total, wall_ns() - wall0, process_cpu_ns() - cpu0};
    check_published(producer, queue, total, dropped, "kelp publish");
    return run;
}

Run kelp_publish_confirmed(const Options& options, const std::string& queue) {
    const std::uint64_t total = options.confirm_messages;
    kelp::Connection conn{options.url()};
    conn.maybe_declare(kelp::Queue{queue});
    kelp::Producer producer{conn};
    const kelp::PublishOptions publish = json_publish(queue);
    JsonBody body;

    std::uint64_t dropped = 0;
    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    for (std::uint64_t seq = 0; seq < total; ++seq) {
        producer.publish(body.with_seq(seq), publish);
        // Waits for this publish's reply (Redis has no publisher confirms;
        // the reply to the push is the confirmation).
        dropped += producer.channel().unroutable_dropped().value_or(0);
    }
    const Run run{total, wall_ns() - wall0, process_cpu_ns() - cpu0};
    check_published(producer, queue, total, dropped, "kelp publish, waiting for each reply");
    return run;
}

Run kelp_consume(const Options& options, const std::string& queue, std::uint64_t count,
                 bool ack_emulation) {
    const std::string run_name = "kelp consume+ack (queue " + queue + ")";
    Tally tally(count);
    kelp::Connection conn{options.url(ack_emulation ? "" : "ack_emulation=false")};
    kelp::Consumer consumer{
        conn,
        {kelp::Queue{queue}},
        [&tally](kelp::Message& message) {
            const kelp::Json& seq = message.payload()["seq"];
            tally.record(seq.is_number_integer() ? seq.get<std::int64_t>() : -1);
            message.ack();
        },
        {.prefetch_count = prefetch}};
    consumer.consume();  // declares and subscribes, outside the timing

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    while (!tally.complete())
        conn.drain_events(drain_timeout);
    // Acks are pipelined: closing waits until every one's reply is in.
    conn.close();
    const Run run{count, wall_ns() - wall0, process_cpu_ns() - cpu0};

    check_tally(tally, run_name);
    const std::uint64_t left = redis_cli_number(options, {"LLEN", queue});
    const std::uint64_t records = redis_cli_number(options, {"HLEN", "unacked"});
    const std::uint64_t index = redis_cli_number(options, {"ZCARD", "unacked_index"});
    if (left != 0 || records != 0 || index != 0) {
        fail(run_name + ": after acking every message, " + std::to_string(left) +
             " messages are left in the queue, " + std::to_string(records) +
             " unacked records and " + std::to_string(index) + " unacked index entries");
    }
    return run;
}

}  // namespace kelp_bench
