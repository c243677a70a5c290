// Consuming: prefetch, fairness between queues, priorities, TTL and length
// limits, cancel, failing callbacks and undecodable messages.
#include <map>
#include <stdexcept>
#include <thread>

#include "support.hpp"

using namespace conformance;

namespace {

using Bodies = std::vector<std::string>;

struct Received {
    std::string body;
    bool redelivered;
};

template <class E>
bool holds(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const E&) {
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace

TEST_SUITE("conformance") {
    TEST_CASE("prefetch_count holds deliveries at N until an ack") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("prefetch");
        kelp::Producer producer{conn};
        constexpr std::uint32_t prefetch = 5;
        for (int i = 0; i < 20; ++i)
            producer.publish(std::to_string(i), {.routing_key = queue.name, .declare = {queue}});

        std::vector<kelp::Message> held;
        kelp::Consumer consumer{conn,
                                {queue},
                                [&](kelp::Message& m) { held.push_back(std::move(m)); },
                                {.prefetch_count = prefetch}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return held.size() >= prefetch; }));
        // Nothing can prove a delivery will never come; a window long enough
        // for any broker that ignores the limit to have overrun it will do.
        drain_for(conn, 200ms);
        CHECK(held.size() == prefetch);

        held[0].ack();
        REQUIRE(drain_until(conn, [&] { return held.size() >= prefetch + 1; }));
        drain_for(conn, 100ms);
        CHECK(held.size() == prefetch + 1);
        CHECK(held.back().body() == std::to_string(prefetch));

        // Acking the rest lets everything through, in order.
        std::size_t acked = 1;
        consumer.cancel();
        for (std::size_t i = 1; i < held.size(); ++i, ++acked)
            held[i].ack();
        int rest = 0;
        kelp::Consumer drainer{conn,
                               {queue},
                               [&](kelp::Message& m) {
                                   CHECK(m.body() == std::to_string(acked + rest));
                                   ++rest;
                                   m.ack();
                               },
                               {.prefetch_count = prefetch}};
        drainer.consume();
        CHECK(drain_until(conn, [&] { return acked + rest == 20; }));
    }

    TEST_CASE("drain_events returns as soon as a message is delivered") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("prompt-drain");
        kelp::Producer producer{conn};
        constexpr int count = 4;
        for (int i = 0; i < count; ++i)
            producer.publish(std::to_string(i), {.routing_key = queue.name, .declare = {queue}});
        // prefetch 1 and the ack after drain_events returns: the way a
        // worker handles one message at a time.
        std::vector<kelp::Message> held;
        kelp::Consumer consumer{conn,
                                {queue},
                                [&](kelp::Message& m) { held.push_back(std::move(m)); },
                                {.prefetch_count = 1}};
        consumer.consume();
        for (int i = 0; i < count; ++i) {
            CAPTURE(i);
            const auto started = Clock::now();
            conn.drain_events(2s);
            const auto waited =
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
            REQUIRE(held.size() == static_cast<std::size_t>(i + 1));
            CHECK(held.back().body() == std::to_string(i));
            CHECK_MESSAGE(waited < 1000ms, "drain_events(2s) took " << waited.count()
                                                                    << " ms to deliver a waiting "
                                                                       "message");
            held.back().ack();
        }
    }

    TEST_CASE("one consumer on three queues serves them in turn") {
        Scope scope;
        kelp::Connection conn{test_url()};
        std::vector<kelp::Queue> queues;
        std::map<std::string, int> index;
        for (int q = 0; q < 3; ++q) {
            queues.push_back(scope.queue("fair"));
            index[queues.back().name] = q;
            conn.maybe_declare(queues.back());
        }
        kelp::Producer producer{conn};
        constexpr int per_queue = 100;
        for (const auto& queue : queues) {
            for (int i = 0; i < per_queue; ++i)
                producer.publish(std::to_string(i), {.routing_key = queue.name});
        }
        for (const auto& queue : queues) {
            REQUIRE(wait_for_count(conn.default_channel(), queue, per_queue) == per_queue);
        }

        std::vector<int> order;  // queue index of each delivery
        std::vector<int> next(3, 0);
        int out_of_order = 0;
        // A bounded prefetch, as real workers use: without one an AMQP broker
        // pushes each queue's backlog as fast as it can, in bursts.
        kelp::Consumer consumer{conn,
                                queues,
                                [&](kelp::Message& m) {
                                    const int q = index.at(m.delivery_info().queue);
                                    if (std::stoi(m.body()) != next[q]) ++out_of_order;
                                    ++next[q];
                                    order.push_back(q);
                                    m.ack();
                                },
                                {.prefetch_count = 10}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return order.size() >= 3 * per_queue; }));
        CHECK(order.size() == 3 * per_queue);
        CHECK(out_of_order == 0);
        std::vector<int> early(3, 0);
        for (std::size_t i = 0; i < 30 && i < order.size(); ++i)
            ++early[order[i]];
        for (int q = 0; q < 3; ++q) {
            CAPTURE(q);
            CHECK_MESSAGE(early[q] >= 8,
                          "queue " << q << " got " << early[q] << " of the first 30 deliveries");
        }
    }

    TEST_CASE("higher priorities are consumed first") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, priorities);
        const kelp::Queue queue = scope.queue("priority", {.max_priority = 10});
        conn.maybe_declare(queue);
        kelp::Producer producer{conn};
        const std::vector<std::uint8_t> priorities = {3, 1, 9, 5, 7, 2, 8, 4, 6, 9, 1};
        for (std::size_t i = 0; i < priorities.size(); ++i) {
            producer.publish(std::to_string(priorities[i]) + "/" + std::to_string(i),
                             {.routing_key = queue.name, .priority = priorities[i]});
        }
        REQUIRE(wait_for_count(conn.default_channel(), queue, priorities.size()) ==
                priorities.size());
        Bodies received;
        kelp::Consumer consumer{conn,
                                {queue},
                                [&](kelp::Message& m) {
                                    received.push_back(m.body());
                                    m.ack();
                                },
                                {.prefetch_count = 1}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return received.size() >= priorities.size(); }));
        // Highest first; equal priorities keep publication order.
        const Bodies expected = {"9/2", "9/9", "8/6", "7/4", "6/8", "5/3",
                                 "4/7", "3/0", "2/5", "1/1", "1/10"};
        CHECK(received == expected);
    }

    TEST_CASE("expired messages are not delivered") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, message_ttl);
        kelp::Producer producer{conn};
        auto channel = conn.channel();

        SUBCASE("per-message expiration") {
            const kelp::Queue queue = scope.queue("expiration");
            conn.maybe_declare(queue);
            producer.publish("short", {.routing_key = queue.name, .expiration = 20ms});
            producer.publish("long", {.routing_key = queue.name, .expiration = 60000ms});
            producer.publish("forever", {.routing_key = queue.name});
            // Time must pass for a TTL to run out; the checks below do not
            // depend on how much more than 20 ms passes.
            std::this_thread::sleep_for(150ms);
            const auto got = collect(conn, {queue.name});
            CHECK(got.at(queue.name) == Bodies{"long", "forever"});
        }
        SUBCASE("queue message_ttl") {
            const kelp::Queue queue = scope.queue("queue-ttl", {.message_ttl = 300ms});
            conn.maybe_declare(queue);
            producer.publish("old", {.routing_key = queue.name});
            producer.publish("older", {.routing_key = queue.name});
            std::this_thread::sleep_for(450ms);
            CHECK_FALSE(channel->basic_get(queue.name).has_value());
            // Control: a fresh message in the same queue is delivered.
            producer.publish("fresh", {.routing_key = queue.name});
            auto fresh = get_within(*channel, queue.name, 250ms);
            REQUIRE(fresh.has_value());
            CHECK(fresh->body() == "fresh");
            fresh->ack();
        }
    }

    TEST_CASE("expired messages are dead-lettered when the queue has a DLX") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, message_ttl);
        KELP_REQUIRE_CAPABILITY(conn, dead_letter);
        const kelp::Exchange dlx{scope.exchange_name("ttl-dlx")};
        const kelp::Queue dead{scope.queue_name("ttl-dead"), dlx, "expired"};
        const kelp::Queue queue = scope.queue(
            "ttl-dl", {.dead_letter_exchange = dlx.name, .dead_letter_routing_key = "expired"});
        conn.maybe_declare(dead);
        conn.maybe_declare(queue);
        kelp::Producer producer{conn};
        producer.publish("expires", {.routing_key = queue.name, .expiration = 10ms});
        std::this_thread::sleep_for(100ms);
        auto channel = conn.channel();
        // Brokers may expire lazily, when the head is looked at.
        CHECK_FALSE(channel->basic_get(queue.name).has_value());
        auto message = get_within(*channel, dead.name, 2s);
        REQUIRE(message.has_value());
        CHECK(message->body() == "expires");
        message->ack();
    }

    TEST_CASE("max_length drops the oldest messages") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, max_length);
        const kelp::Queue queue = scope.queue("max-length", {.max_length = 3});
        conn.maybe_declare(queue);
        kelp::Producer producer{conn};
        for (const char* body : {"1", "2", "3", "4", "5"})
            producer.publish(body, {.routing_key = queue.name});
        auto channel = conn.channel();
        CHECK(wait_for_count(*channel, queue, 3) == 3);
        Bodies got;
        while (got.empty() || got.back() != "5") {
            auto message = get_within(*channel, queue.name, 2s);
            if (!message) break;
            got.push_back(message->body());
            message->ack();
        }
        CHECK(got == Bodies{"3", "4", "5"});
    }

    TEST_CASE("basic_cancel keeps the in-flight message and consume resumes") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("cancel");
        kelp::Producer producer{conn};
        for (const char* body : {"c0", "c1", "c2"})
            producer.publish(body, {.routing_key = queue.name, .declare = {queue}});
        std::vector<kelp::Message> held;
        auto channel = conn.channel();
        auto consumer = std::make_unique<kelp::Consumer>(
            conn, channel, std::vector<kelp::Queue>{queue},
            [&](kelp::Message& m) { held.push_back(std::move(m)); },
            kelp::ConsumerOptions{.prefetch_count = 1});
        consumer->consume();
        REQUIRE(drain_until(conn, [&] { return !held.empty(); }));
        consumer->cancel();
        CHECK_FALSE(consumer->consuming_from(queue.name));
        REQUIRE(held.size() == 1);
        CHECK(held[0].body() == "c0");

        SUBCASE("the in-flight message can still be acked, and consume resumes") {
            CHECK_NOTHROW(held[0].ack());
            // Cancelled: the freed prefetch slot must not pull the next one in.
            drain_for(conn, 100ms);
            CHECK(held.size() == 1);
            consumer->consume();
            REQUIRE(drain_until(conn, [&] { return held.size() >= 2; }));
            CHECK(held[1].body() == "c1");
            CHECK_FALSE(held[1].redelivered());
            held[1].ack();
            REQUIRE(drain_until(conn, [&] { return held.size() >= 3; }));
            CHECK(held[2].body() == "c2");
            held[2].ack();
        }
        SUBCASE("the in-flight message is redelivered after the channel closes") {
            consumer.reset();
            channel->close();
            kelp::Connection other{test_url()};
            auto other_channel = other.channel();
            auto again = get_within(*other_channel, queue.name);
            REQUIRE(again.has_value());
            CHECK(again->body() == "c0");
            CHECK(again->redelivered());
            again->ack();
        }
    }

    TEST_CASE("a consumer callback that throws: drain_events rethrows, nothing is lost") {
        Scope scope;
        const kelp::Queue queue = scope.queue("throws");
        {
            kelp::Connection conn{test_url()};
            kelp::Producer producer{conn};
            producer.publish("poison", {.routing_key = queue.name, .declare = {queue}});
            producer.publish("fine", {.routing_key = queue.name});
            int calls = 0;
            kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                        ++calls;
                                        if (m.body() == "poison")
                                            throw std::runtime_error("callback failed");
                                    }};
            consumer.consume();
            CHECK_THROWS_WITH_AS(conn.drain_events(5s), "callback failed", std::runtime_error);
            CHECK(calls >= 1);
            // The callback left both unacked; closing returns them.
        }
        kelp::Connection other{test_url()};
        std::vector<Received> again;
        kelp::Consumer consumer{other, {queue}, [&](kelp::Message& m) {
                                    again.push_back({m.body(), m.redelivered()});
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(other, [&] { return again.size() >= 2; }));
        CHECK(again[0].body == "poison");
        CHECK(again[0].redelivered);
        CHECK(again[1].body == "fine");
    }

    TEST_CASE("consumption goes on after a consumer callback threw") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("throws-continue");
        kelp::Producer producer{conn};
        for (const char* body : {"poison", "a", "b"})
            producer.publish(body, {.routing_key = queue.name, .declare = {queue}});
        Bodies fine;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    if (m.body() == "poison") {
                                        m.ack();
                                        throw std::runtime_error("callback failed");
                                    }
                                    fine.push_back(m.body());
                                    m.ack();
                                }};
        consumer.consume();
        CHECK_THROWS_AS(conn.drain_events(5s), std::runtime_error);
        // No new publish wakes the consumer: the messages already waiting
        // must still be delivered.
        CHECK(drain_until(
            conn, [&] { return fine.size() >= 2; }, 3s));
        CHECK(fine == Bodies{"a", "b"});
    }

    TEST_CASE("an undecodable message goes to on_decode_error") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("decode-handler");
        kelp::Producer producer{conn};
        producer.publish(
            "{not json",
            {.routing_key = queue.name, .content_type = "application/json", .declare = {queue}});
        producer.publish(R"({"ok": true})",
                         {.routing_key = queue.name, .content_type = "application/json"});
        Bodies good;
        Bodies bad;
        bool decode_error = false;
        kelp::Consumer consumer{conn,
                                {queue},
                                [&](kelp::Message& m) {
                                    good.push_back(m.body());
                                    m.ack();
                                },
                                {.on_decode_error = [&](kelp::Message& m, std::exception_ptr e) {
                                    bad.push_back(m.body());
                                    decode_error = holds<kelp::DecodeError>(e);
                                    m.ack();
                                }}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return good.size() + bad.size() >= 2; }));
        CHECK(bad == Bodies{"{not json"});
        CHECK(decode_error);
        CHECK(good == Bodies{R"({"ok": true})"});
    }

    TEST_CASE("an undecodable message is acked and dropped by default, not redelivered") {
        Scope scope;
        const kelp::Queue queue = scope.queue("decode-default");
        Bodies good;
        {
            kelp::Connection conn{test_url()};
            kelp::Producer producer{conn};
            producer.publish("{not json", {.routing_key = queue.name,
                                           .content_type = "application/json",
                                           .declare = {queue}});
            producer.publish("after", {.routing_key = queue.name});
            kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                        good.push_back(m.body());
                                        m.ack();
                                    }};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] { return !good.empty(); }));
        }
        CHECK(good == Bodies{"after"});
        // Closed and reopened: the bad message did not come back.
        kelp::Connection conn{test_url()};
        CHECK(collect(conn, {queue.name}).at(queue.name).empty());
    }

    TEST_CASE("an undecodable message is rejected to the DLX by default when there is one") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, dead_letter);
        const kelp::Exchange dlx{scope.exchange_name("decode-dlx")};
        const kelp::Queue dead{scope.queue_name("decode-dead"), dlx, "bad"};
        const kelp::Queue queue = scope.queue(
            "decode-dl", {.dead_letter_exchange = dlx.name, .dead_letter_routing_key = "bad"});
        conn.maybe_declare(dead);
        conn.maybe_declare(queue);
        kelp::Producer producer{conn};
        producer.publish("{not json",
                         {.routing_key = queue.name, .content_type = "application/json"});
        producer.publish("after", {.routing_key = queue.name});
        Bodies good;
        {
            kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                        good.push_back(m.body());
                                        m.ack();
                                    }};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] { return !good.empty(); }));
        }
        CHECK(good == Bodies{"after"});
        auto channel = conn.channel();
        auto message = get_within(*channel, dead.name);
        REQUIRE(message.has_value());
        CHECK(message->body() == "{not json");
        message->ack();
    }

    TEST_CASE("a content type outside the accept list goes to on_decode_error") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("accept");
        kelp::Producer producer{conn};
        producer.publish(
            "plain words",
            {.routing_key = queue.name, .content_type = "text/plain", .declare = {queue}});
        producer.publish(kelp::Json{{"packed", 1}},
                         {.routing_key = queue.name, .serializer = "msgpack"});
        producer.publish(kelp::Json{{"ok", 1}}, {.routing_key = queue.name});
        Bodies accepted;
        std::vector<std::string> refused_types;
        int disallowed = 0;
        SUBCASE("explicit accept list") {
            kelp::Consumer consumer{
                conn,
                {queue},
                [&](kelp::Message& m) {
                    accepted.push_back(m.content_type());
                    m.ack();
                },
                {.accept = kelp::AcceptList{"json"},
                 .on_decode_error = [&](kelp::Message& m, std::exception_ptr e) {
                     refused_types.push_back(m.content_type());
                     if (holds<kelp::ContentDisallowed>(e)) ++disallowed;
                     m.ack();
                 }}};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] { return accepted.size() + refused_types.size() >= 3; }));
            CHECK(accepted == Bodies{"application/json"});
            CHECK(refused_types == Bodies{"text/plain", "application/x-msgpack"});
            CHECK(disallowed == 2);
        }
        SUBCASE("default accept list refuses msgpack") {
            kelp::Consumer consumer{
                conn,
                {queue},
                [&](kelp::Message& m) {
                    accepted.push_back(m.content_type());
                    m.ack();
                },
                {.on_decode_error = [&](kelp::Message& m, std::exception_ptr e) {
                    refused_types.push_back(m.content_type());
                    if (holds<kelp::ContentDisallowed>(e)) ++disallowed;
                    m.ack();
                }}};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] { return accepted.size() + refused_types.size() >= 3; }));
            CHECK(accepted == Bodies{"text/plain", "application/json"});
            CHECK(refused_types == Bodies{"application/x-msgpack"});
            CHECK(disallowed == 1);
        }
    }
}
