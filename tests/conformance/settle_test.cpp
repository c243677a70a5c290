// Settling messages: ack, reject, requeue, dead-lettering, settle errors,
// redelivery of unacked messages, basic_get and basic_recover.
#include "support.hpp"

using namespace conformance;

namespace {

using Bodies = std::vector<std::string>;

struct Received {
    std::string body;
    bool redelivered;
};

}  // namespace

TEST_SUITE("conformance") {
    TEST_CASE("ack removes the message for good") {
        Scope scope;
        const kelp::Queue queue = scope.queue("ack");
        {
            kelp::Connection conn{test_url()};
            kelp::Producer producer{conn};
            producer.publish("once", {.routing_key = queue.name, .declare = {queue}});
            auto channel = conn.channel();
            auto message = get_within(*channel, queue.name);
            REQUIRE(message.has_value());
            CHECK(message->body() == "once");
            CHECK_FALSE(message->redelivered());
            message->ack();
            CHECK(message->state() == kelp::MessageState::acked);
            CHECK(message->settled());
        }
        // A new connection finds the queue empty: nothing came back on close.
        kelp::Connection conn{test_url()};
        const auto got = collect(conn, {queue.name});
        CHECK(got.at(queue.name).empty());
    }

    TEST_CASE("reject drops the message when the queue has no dead-letter exchange") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("reject");
        kelp::Producer producer{conn};
        producer.publish("rejected", {.routing_key = queue.name, .declare = {queue}});
        producer.publish("next", {.routing_key = queue.name});
        auto channel = conn.channel();
        auto message = get_within(*channel, queue.name);
        REQUIRE(message.has_value());
        CHECK(message->body() == "rejected");
        message->reject();
        CHECK(message->state() == kelp::MessageState::rejected);
        channel->close();
        // Had the reject requeued it, it would come before "next".
        const auto got = collect(conn, {queue.name});
        CHECK(got.at(queue.name) == Bodies{"next"});
    }

    TEST_CASE("reject dead-letters to the queue's dead-letter exchange") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, dead_letter);
        const kelp::Exchange dlx{scope.exchange_name("dlx")};
        const kelp::Queue dead{scope.queue_name("dead"), dlx, "dead"};
        const kelp::Queue queue = scope.queue(
            "with-dlx", {.dead_letter_exchange = dlx.name, .dead_letter_routing_key = "dead"});
        conn.maybe_declare(dead);
        conn.maybe_declare(queue);
        kelp::Producer producer{conn};
        producer.publish("to the dlx", {.routing_key = queue.name, .headers = {{"h", 1}}});
        auto channel = conn.channel();
        auto message = get_within(*channel, queue.name);
        REQUIRE(message.has_value());
        message->reject();

        auto dead_message = get_within(*channel, dead.name);
        REQUIRE(dead_message.has_value());
        CHECK(dead_message->body() == "to the dlx");
        CHECK(dead_message->headers().value("h", 0) == 1);
        CHECK_FALSE(dead_message->redelivered());
        dead_message->ack();
        const auto got = collect(conn, {queue.name, dead.name});
        CHECK(got.at(queue.name).empty());
        CHECK(got.at(dead.name).empty());
    }

    TEST_CASE("requeue redelivers with redelivered() set") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, per_message_requeue);
        const kelp::Queue queue = scope.queue("requeue");
        kelp::Producer producer{conn};
        producer.publish("again", {.routing_key = queue.name, .declare = {queue}});
        std::vector<Received> received;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    received.push_back({m.body(), m.redelivered()});
                                    if (received.size() == 1) {
                                        m.requeue();
                                        CHECK(m.state() == kelp::MessageState::requeued);
                                    } else {
                                        m.ack();
                                    }
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return received.size() >= 2; }));
        CHECK(received[0].body == "again");
        CHECK_FALSE(received[0].redelivered);
        CHECK(received[1].body == "again");
        CHECK(received[1].redelivered);
        consumer.cancel();
        CHECK(collect(conn, {queue.name}).at(queue.name).empty());
    }

    TEST_CASE("a second settle throws MessageStateError") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("settle-twice");
        kelp::Producer producer{conn};
        for (int i = 0; i < 4; ++i)
            producer.publish(std::to_string(i), {.routing_key = queue.name, .declare = {queue}});
        auto channel = conn.channel();
        std::vector<kelp::Message> messages;
        for (int i = 0; i < 4; ++i) {
            auto message = get_within(*channel, queue.name);
            REQUIRE(message.has_value());
            messages.push_back(std::move(*message));
        }
        messages[0].ack();
        CHECK_THROWS_AS(messages[0].ack(), kelp::MessageStateError);
        CHECK_THROWS_AS(messages[0].reject(), kelp::MessageStateError);
        CHECK_THROWS_AS(messages[0].requeue(), kelp::MessageStateError);
        messages[1].reject();
        CHECK_THROWS_AS(messages[1].ack(), kelp::MessageStateError);
        CHECK_THROWS_AS(messages[1].reject(), kelp::MessageStateError);
        messages[2].requeue();
        CHECK_THROWS_AS(messages[2].ack(), kelp::MessageStateError);
        CHECK_THROWS_AS(messages[2].requeue(), kelp::MessageStateError);
        // The failed settles changed nothing: the requeued one is still there.
        CHECK(messages[2].state() == kelp::MessageState::requeued);
        messages[3].ack();
        auto again = get_within(*channel, queue.name);
        REQUIRE(again.has_value());
        CHECK(again->body() == "2");
        CHECK(again->redelivered());
        again->ack();
    }

    TEST_CASE("settling after the channel closed throws ChannelError") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("settle-closed");
        kelp::Producer producer{conn};
        producer.publish("a", {.routing_key = queue.name, .declare = {queue}});
        producer.publish("b", {.routing_key = queue.name});

        SUBCASE("channel closed") {
            auto channel = conn.channel();
            auto message = get_within(*channel, queue.name);
            REQUIRE(message.has_value());
            channel->close();
            CHECK_FALSE(channel->is_open());
            CHECK_THROWS_AS(message->ack(), kelp::ChannelError);
            CHECK_THROWS_AS(message->reject(), kelp::ChannelError);
            CHECK_THROWS_AS(message->requeue(), kelp::ChannelError);
            CHECK(message->state() == kelp::MessageState::received);
        }
        SUBCASE("connection closed") {
            std::optional<kelp::Message> held;
            kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                        if (!held) held.emplace(std::move(m));
                                    }};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] { return held.has_value(); }));
            conn.close();
            CHECK_THROWS_AS(held->ack(), kelp::ChannelError);
        }
        // Either way the message went back to the queue, marked redelivered.
        kelp::Connection other{test_url()};
        auto channel = other.channel();
        auto first = get_within(*channel, queue.name);
        REQUIRE(first.has_value());
        CHECK(first->body() == "a");
        CHECK(first->redelivered());
        first->ack();
    }

    TEST_CASE("unacked messages come back to another consumer when the channel closes") {
        Scope scope;
        const kelp::Queue queue = scope.queue("unacked");
        const Bodies sent = {"m0", "m1", "m2"};
        {
            kelp::Connection conn{test_url()};
            kelp::Producer producer{conn};
            for (const auto& body : sent)
                producer.publish(body, {.routing_key = queue.name, .declare = {queue}});
        }

        kelp::Connection first{test_url()};
        std::vector<kelp::Message> held;
        auto channel = first.channel();
        auto consumer = std::make_unique<kelp::Consumer>(
            first, channel, std::vector<kelp::Queue>{queue},
            [&](kelp::Message& m) { held.push_back(std::move(m)); });
        consumer->consume();
        REQUIRE(drain_until(first, [&] { return held.size() >= sent.size(); }));

        SUBCASE("consumer destroyed and its channel closed") {
            consumer.reset();
            channel->close();
        }
        SUBCASE("connection closed") {
            first.close();
        }
        SUBCASE("channel closed, consumer left alive") {
            channel->close();
        }

        kelp::Connection second{test_url()};
        std::vector<Received> again;
        kelp::Consumer other{second, {queue}, [&](kelp::Message& m) {
                                 again.push_back({m.body(), m.redelivered()});
                                 m.ack();
                             }};
        other.consume();
        REQUIRE(drain_until(second, [&] { return again.size() >= sent.size(); }));
        REQUIRE(again.size() == sent.size());
        for (std::size_t i = 0; i < sent.size(); ++i) {
            CHECK(again[i].body == sent[i]);  // in their original order
            CHECK(again[i].redelivered);
        }
    }

    TEST_CASE("a callback that closes its channel mid-stream loses nothing and keeps the order") {
        // Transports may hand messages out in batches (memory pops several
        // under one lock, AMQP prefetches): whatever was fetched but not yet
        // delivered must go back in its place, behind the unacked ones.
        Scope scope;
        const kelp::Queue queue = scope.queue("midclose");
        constexpr int total = 40;
        {
            kelp::Connection conn{test_url()};
            kelp::Producer producer{conn};
            for (int i = 0; i < total; ++i)
                producer.publish(std::to_string(i),
                                 {.routing_key = queue.name, .declare = {queue}});
        }
        kelp::Connection first{test_url()};
        auto channel = first.channel();
        int seen = 0;
        std::vector<kelp::Message> held;
        kelp::Consumer consumer{first, channel, {queue}, [&](kelp::Message& m) {
                                    ++seen;
                                    if (std::stoi(m.body()) < 5) {
                                        m.ack();
                                        return;
                                    }
                                    // Message 5 stays unacked and the channel closes.
                                    held.push_back(std::move(m));
                                    channel->close();
                                }};
        consumer.consume();
        REQUIRE(drain_until(first, [&] { return !held.empty(); }));
        CHECK(seen == 6);  // nothing delivered on a closed channel

        kelp::Connection second{test_url()};
        std::vector<Received> again;
        kelp::Consumer other{second, {queue}, [&](kelp::Message& m) {
                                 again.push_back({m.body(), m.redelivered()});
                                 m.ack();
                             }};
        other.consume();
        REQUIRE(drain_until(second, [&] { return again.size() >= total - 5; }));
        REQUIRE(again.size() == total - 5);
        for (int i = 5; i < total; ++i) {
            CHECK(again[i - 5].body == std::to_string(i));
        }
        CHECK(again[0].redelivered);
    }

    TEST_CASE("a requeue inside a callback redelivers that message, and loses none") {
        Scope scope;
        const kelp::Queue queue = scope.queue("midrequeue");
        constexpr int total = 40;
        kelp::Connection conn{test_url()};
        kelp::Producer producer{conn};
        for (int i = 0; i < total; ++i)
            producer.publish(std::to_string(i), {.routing_key = queue.name, .declare = {queue}});
        std::vector<int> count(total, 0);
        int redelivered = 0;
        int received = 0;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    ++received;
                                    const int i = std::stoi(m.body());
                                    ++count[i];
                                    if (m.redelivered()) ++redelivered;
                                    if (i % 10 == 3 && !m.redelivered()) {
                                        m.requeue();
                                    } else {
                                        m.ack();
                                    }
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return received >= total + 4; }));
        for (int i = 0; i < total; ++i) {
            CHECK_MESSAGE(count[i] == (i % 10 == 3 ? 2 : 1), "message ", i);
        }
        CHECK(redelivered == 4);
    }

    TEST_CASE("a no_ack consumer's messages are settled on delivery") {
        Scope scope;
        const kelp::Queue queue = scope.queue("no-ack");
        int received = 0;
        {
            kelp::Connection conn{test_url()};
            kelp::Producer producer{conn};
            for (int i = 0; i < 3; ++i)
                producer.publish(std::to_string(i),
                                 {.routing_key = queue.name, .declare = {queue}});
            kelp::Consumer consumer{conn,
                                    {queue},
                                    [&](kelp::Message& m) {
                                        CHECK(m.state() == kelp::MessageState::auto_acked);
                                        CHECK(m.settled());
                                        ++received;
                                    },
                                    {.no_ack = true}};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] { return received == 3; }));
        }
        // Closed without any ack: nothing comes back.
        kelp::Connection conn{test_url()};
        CHECK(collect(conn, {queue.name}).at(queue.name).empty());
    }

    TEST_CASE("basic_get returns a message or nothing") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("get");
        auto channel = conn.channel();
        channel->queue_declare(queue);
        CHECK_FALSE(channel->basic_get(queue.name).has_value());

        kelp::Producer producer{conn};
        producer.publish("got", {.routing_key = queue.name});
        producer.publish("auto", {.routing_key = queue.name});
        auto message = get_within(*channel, queue.name);
        REQUIRE(message.has_value());
        CHECK(message->body() == "got");
        CHECK(message->delivery_info().routing_key == queue.name);
        CHECK(message->delivery_info().exchange.empty());
        CHECK(message->delivery_tag() != 0);
        CHECK(message->state() == kelp::MessageState::received);
        message->ack();

        auto automatic = channel->basic_get(queue.name, /*no_ack=*/true);
        REQUIRE(automatic.has_value());
        CHECK(automatic->body() == "auto");
        CHECK(automatic->state() == kelp::MessageState::auto_acked);
        CHECK_NOTHROW(automatic->ack());  // allowed, does nothing (as in Kombu)
        CHECK_THROWS_AS(automatic->reject(), kelp::MessageStateError);
        CHECK_THROWS_AS(automatic->requeue(), kelp::MessageStateError);
        channel->close();

        // Neither comes back: one acked, one taken without ack.
        CHECK(collect(conn, {queue.name}).at(queue.name).empty());
    }

    TEST_CASE("basic_recover redelivers unacked messages") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("recover");
        kelp::Producer producer{conn};
        for (const char* body : {"r0", "r1", "r2"})
            producer.publish(body, {.routing_key = queue.name, .declare = {queue}});
        std::vector<Received> received;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    received.push_back({m.body(), m.redelivered()});
                                    // The first round is left unacked.
                                    if (received.size() > 3) m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return received.size() >= 3; }));
        consumer.recover(true);
        REQUIRE(drain_until(conn, [&] { return received.size() >= 6; }));
        REQUIRE(received.size() == 6);
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK_FALSE(received[i].redelivered);
            CHECK(received[i + 3].body == received[i].body);
            CHECK(received[i + 3].redelivered);
        }
        consumer.cancel();
        CHECK(collect(conn, {queue.name}).at(queue.name).empty());
    }
}
