// The higher-level APIs on top of a transport: SimpleQueue, eventloop(), and
// consumption driven by an application's Hub.
#include "support.hpp"

using namespace conformance;

namespace {

// Busy work standing in for a real message handler: it keeps the thread (and
// so the Hub) occupied without sleeping.
void busy_for(std::chrono::microseconds duration) {
    const auto until = Clock::now() + duration;
    while (Clock::now() < until) {
    }
}

std::chrono::milliseconds since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

}  // namespace

TEST_SUITE("conformance") {
    TEST_CASE("SimpleQueue put, get, qsize and clear") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const std::string name = scope.queue_name("simple");
        kelp::SimpleQueue queue{conn, name};
        CHECK(queue.qsize() == 0);

        queue.put(kelp::Json{{"n", 0}});
        queue.put(kelp::Json{{"n", 1}});
        queue.put("raw bytes");
        CHECK(queue.qsize() == 3);

        for (int i = 0; i < 2; ++i) {
            auto message = queue.get(5s);
            REQUIRE(message.has_value());
            CHECK(message->payload() == kelp::Json{{"n", i}});
            message->ack();
        }
        auto raw = queue.get(5s);
        REQUIRE(raw.has_value());
        CHECK(raw->body() == "raw bytes");
        raw->ack();

        // Empty: get(timeout) gives up after about the timeout, not before.
        const auto started = Clock::now();
        CHECK_FALSE(queue.get(100ms).has_value());
        const auto waited = since(started);
        CHECK(waited >= 95ms);
        CHECK(waited < 600ms);
        CHECK(queue.qsize() == 0);

        queue.put("x");
        queue.put("y");
        CHECK(queue.qsize() == 2);
        CHECK(queue.clear() == 2);
        CHECK(queue.qsize() == 0);
        CHECK_FALSE(queue.get(50ms).has_value());

        // After a get() the consumer may hold the others already: they still
        // count as waiting, clear() removes them too, and they do not come
        // back when the queue is closed.
        for (const char* body : {"p", "q", "r"})
            queue.put(body);
        auto first = queue.get(5s);
        REQUIRE(first.has_value());
        CHECK(first->body() == "p");
        first->ack();
        CHECK(queue.qsize() == 2);
        CHECK(queue.clear() == 2);
        CHECK(queue.qsize() == 0);
        queue.close();
        kelp::SimpleQueue reopened{conn, name};
        CHECK_FALSE(reopened.get(100ms).has_value());
    }

    TEST_CASE("SimpleQueue takes at most prefetch_count messages ahead of get()") {
        Scope scope;
        const std::string name = scope.queue_name("simple-window");
        kelp::Connection conn{test_url()};
        kelp::SimpleQueue queue{conn, name, {.prefetch_count = 5}};
        constexpr int total = 30;
        for (int i = 0; i < total; ++i)
            queue.put(std::to_string(i));
        auto first = queue.get(5s);
        REQUIRE(first.has_value());
        CHECK(first->body() == "0");
        // Held unacked. Time for the consumer to take more, were it
        // unbounded: with the window, at most five are out of the broker.
        for (int i = 0; i < 3; ++i) {
            try {
                conn.drain_events(50ms);
            } catch (const kelp::TimeoutError&) {
            }
        }
        kelp::Connection other{test_url()};
        const auto ready = other.default_channel().queue_declare(kelp::Queue{name}, true);
        CHECK(ready.message_count >= static_cast<std::uint64_t>(total - 5));
        CHECK(queue.qsize() == static_cast<std::uint64_t>(total - 1));
        first->ack();
        // Every message still comes, in order.
        for (int i = 1; i < total; ++i) {
            auto next = queue.get(5s);
            REQUIRE(next.has_value());
            CHECK(next->body() == std::to_string(i));
            next->ack();
        }
        CHECK_FALSE(queue.get(50ms).has_value());
    }

    TEST_CASE("publishes made in a PublishBatch all arrive, in order, once it ends") {
        Scope scope;
        const std::string name = scope.queue_name("batch");
        kelp::Connection conn{test_url()};
        kelp::SimpleQueue queue{conn, name};
        kelp::Producer producer{conn};
        constexpr int total = 50;
        {
            kelp::PublishBatch batch{producer};
            for (int i = 0; i < total / 2; ++i)
                producer.publish(std::to_string(i), {.routing_key = name});
            batch.flush();
            for (int i = total / 2; i < total; ++i)
                producer.publish(std::to_string(i), {.routing_key = name});
        }
        for (int i = 0; i < total; ++i) {
            auto next = queue.get(5s);
            REQUIRE(next.has_value());
            CHECK(next->body() == std::to_string(i));
            next->ack();
        }
        CHECK_FALSE(queue.get(50ms).has_value());
    }

    TEST_CASE("SimpleQueue get_nowait returns a waiting message at once") {
        Scope scope;
        kelp::Connection conn{test_url()};
        kelp::SimpleQueue queue{conn, scope.queue_name("nowait")};
        // An idle queue, polled a few times: nothing, and no waiting either.
        for (int i = 0; i < 3; ++i) {
            const auto started = Clock::now();
            CHECK_FALSE(queue.get_nowait().has_value());
            CHECK(since(started) < 100ms);
        }
        queue.put("waiting");
        REQUIRE(queue.qsize() == 1);
        auto message = queue.get_nowait();
        REQUIRE_MESSAGE(message.has_value(), "get_nowait missed a message that qsize() counted");
        CHECK(message->body() == "waiting");
        message->ack();
    }

    TEST_CASE("SimpleQueue get(timeout) returns as soon as a message is there") {
        Scope scope;
        kelp::Connection conn{test_url()};
        kelp::SimpleQueue queue{conn, scope.queue_name("prompt")};
        for (int round = 0; round < 3; ++round) {
            CAPTURE(round);
            // Idle first, as a worker is between messages.
            CHECK_FALSE(queue.get(20ms).has_value());
            queue.put("m" + std::to_string(round));
            const auto started = Clock::now();
            auto message = queue.get(2s);
            const auto waited = since(started);
            REQUIRE(message.has_value());
            CHECK(message->body() == "m" + std::to_string(round));
            CHECK_MESSAGE(waited < 1000ms,
                          "get(2s) took " << waited.count() << " ms for a waiting message");
            message->ack();
        }
    }

    TEST_CASE("SimpleQueue close returns unacked messages") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const std::string name = scope.queue_name("simple-close");
        {
            kelp::SimpleQueue queue{conn, name};
            queue.put("kept");
            auto message = queue.get(5s);
            REQUIRE(message.has_value());
            // Not acked: closing the queue gives it back.
            queue.close();
        }
        kelp::SimpleQueue again{conn, name};
        const auto started = Clock::now();
        auto message = again.get(2s);
        const auto waited = since(started);
        REQUIRE(message.has_value());
        CHECK(message->body() == "kept");
        CHECK(message->redelivered());
        CHECK_MESSAGE(waited < 1000ms,
                      "get(2s) took " << waited.count() << " ms for a waiting message");
        message->ack();
    }

    TEST_CASE("eventloop honours limit") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("loop-limit");
        kelp::Producer producer{conn};
        producer.publish("0", {.routing_key = queue.name, .declare = {queue}});
        // Each delivery publishes the next message from the following loop
        // iteration, so every drain has exactly one message to deliver, and a
        // drain beyond the limit would show as an extra delivery.
        int received = 0;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    ++received;
                                    m.ack();
                                    conn.hub().call_soon([&, next = received] {
                                        producer.publish(std::to_string(next),
                                                         {.routing_key = queue.name});
                                    });
                                }};
        consumer.consume();
        std::uint64_t steps = 0;
        for (auto step : kelp::eventloop(conn, {.limit = 3, .timeout = 5s})) {
            ++steps;
            CHECK(step.number == steps);
            CHECK_FALSE(step.timed_out);
        }
        CHECK(steps == 3);
        CHECK(received == 3);
        // The loop can be entered again, and a limit of zero drains nothing.
        for (auto _ : kelp::eventloop(conn, {.limit = 0, .timeout = 5s}))
            ++steps;
        CHECK(steps == 3);
        for (auto _ : kelp::eventloop(conn, {.limit = 1, .timeout = 5s}))
            ++steps;
        CHECK(steps == 4);
        CHECK(received == 4);
    }

    TEST_CASE("eventloop step that times out throws TimeoutError") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("loop-timeout");
        kelp::Consumer consumer{conn, {queue}, [](kelp::Message& m) { m.ack(); }};
        consumer.consume();
        int steps = 0;
        const auto started = Clock::now();
        CHECK_THROWS_AS(
            [&] {
                for (auto _ : kelp::eventloop(conn, {.limit = 2, .timeout = 50ms}))
                    ++steps;
            }(),
            kelp::TimeoutError);
        const auto waited = since(started);
        CHECK(steps == 0);
        CHECK(waited >= 45ms);
        CHECK(waited < 1000ms);
        // The bare drain_events, too.
        CHECK_THROWS_AS(conn.drain_events(20ms), kelp::TimeoutError);
    }

    TEST_CASE("eventloop with ignore_timeouts goes on after a timeout") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("loop-ignore");
        kelp::Producer producer{conn};
        producer.publish("only one", {.routing_key = queue.name, .declare = {queue}});
        int received = 0;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    ++received;
                                    m.ack();
                                }};
        consumer.consume();
        std::vector<bool> timed_out;
        const auto started = Clock::now();
        for (auto step :
             kelp::eventloop(conn, {.limit = 3, .timeout = 30ms, .ignore_timeouts = true})) {
            timed_out.push_back(step.timed_out);
        }
        CHECK(timed_out == std::vector<bool>{false, true, true});
        CHECK(received == 1);
        CHECK(since(started) >= 55ms);
    }

    TEST_CASE("Hub-driven consumption keeps timers firing") {
        Scope scope;
        // Declared before the connection: the transport's handles must not
        // outlive their Hub.
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler([&](std::exception_ptr e) {
            errors.push_back(describe(e));
            hub.stop();
        });
        kelp::Connection conn{test_url()};
        conn.register_with_event_loop(hub);
        CHECK(&conn.hub() == &hub);

        const kelp::Queue queue = scope.queue("hub");
        conn.maybe_declare(queue);
        kelp::Producer producer{conn};
        constexpr int count = 1000;
        for (int i = 0; i < count; ++i)
            producer.publish(std::to_string(i), {.routing_key = queue.name});
        REQUIRE(wait_for_count(conn.default_channel(), queue, count) == count);

        int ticks = 0;
        int received = 0;
        int ticks_at_first = -1;
        int ticks_at_last = -1;
        int out_of_order = 0;
        kelp::Handle ticker = hub.call_repeatedly(5ms, [&] { ++ticks; });
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    if (received == 0) ticks_at_first = ticks;
                                    if (m.body() != std::to_string(received)) ++out_of_order;
                                    // 1000 x 100 us: consumption spans ~20 timer periods.
                                    busy_for(100us);
                                    m.ack();
                                    if (++received == count) {
                                        ticks_at_last = ticks;
                                        hub.stop();
                                    }
                                }};
        consumer.consume();
        kelp::Handle safety = hub.call_later(30s, [&] { hub.stop(); });
        hub.run_forever();
        ticker.cancel();
        safety.cancel();

        CHECK(errors.empty());
        CHECK(received == count);
        CHECK(out_of_order == 0);
        CHECK_MESSAGE(ticks_at_last - ticks_at_first >= 3,
                      "timer ticks while consuming: " << ticks_at_last - ticks_at_first
                                                      << " (ticks in total " << ticks << ")");
    }

    TEST_CASE("Hub-driven consumption of messages published while it runs") {
        Scope scope;
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler([&](std::exception_ptr e) {
            errors.push_back(describe(e));
            hub.stop();
        });
        kelp::Connection conn{test_url()};
        conn.register_with_event_loop(hub);
        const kelp::Queue queue = scope.queue("hub-live");
        conn.maybe_declare(queue);
        kelp::Producer producer{conn};

        constexpr int batches = 10;
        constexpr int per_batch = 100;
        int sent = 0;
        int received = 0;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    m.ack();
                                    if (++received == batches * per_batch) hub.stop();
                                }};
        consumer.consume();
        kelp::Handle publisher = hub.call_repeatedly(2ms, [&] {
            for (int i = 0; i < per_batch; ++i)
                producer.publish(std::to_string(sent++), {.routing_key = queue.name});
            if (sent == batches * per_batch) publisher.cancel();
        });
        kelp::Handle safety = hub.call_later(30s, [&] { hub.stop(); });
        hub.run_forever();
        publisher.cancel();
        safety.cancel();
        CHECK(errors.empty());
        CHECK(sent == batches * per_batch);
        CHECK(received == batches * per_batch);
    }
}
