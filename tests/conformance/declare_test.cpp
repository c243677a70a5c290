// Declaring exchanges, queues and bindings; passive declares; redeclares.
#include "support.hpp"

using namespace conformance;

TEST_SUITE("conformance") {
    TEST_CASE("declare an exchange of each supported type, a queue and a binding") {
        Scope scope;
        kelp::Connection conn{test_url()};
        for (kelp::ExchangeType type : {kelp::ExchangeType::direct, kelp::ExchangeType::topic,
                                        kelp::ExchangeType::fanout, kelp::ExchangeType::headers}) {
            CAPTURE(to_string(type));
            if (!conn.capabilities().supports(type)) {
                report_skip("transport lacks exchange type '" + std::string(to_string(type)) + "'");
                continue;
            }
            auto channel = conn.channel();
            const kelp::Exchange exchange{scope.exchange_name(to_string(type)), type};
            channel->exchange_declare(exchange);
            channel->exchange_declare(exchange);  // the same declaration again is fine
            CHECK_NOTHROW(channel->exchange_declare(exchange, /*passive=*/true));

            const kelp::Queue queue{scope.queue_name("declared")};
            const kelp::QueueDeclareOk ok = channel->queue_declare(queue);
            CHECK(ok.queue == queue.name);
            CHECK(ok.message_count == 0);
            CHECK(ok.consumer_count == 0);
            kelp::Table arguments;
            if (type == kelp::ExchangeType::headers) arguments = {{"x-match", "all"}, {"k", "v"}};
            CHECK_NOTHROW(channel->queue_bind(queue.name, exchange.name, "key", arguments));
            CHECK_NOTHROW(channel->queue_declare(queue, /*passive=*/true));
        }
    }

    TEST_CASE("a queue declared with its exchange is bound and receives") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Exchange exchange{scope.exchange_name("with-queue")};
        const kelp::Queue queue{scope.queue_name("bound"), exchange, "rk"};
        CHECK(conn.maybe_declare(queue));
        CHECK_FALSE(conn.maybe_declare(queue));  // cached: the same definition
        kelp::Producer producer{conn, {.exchange = exchange}};
        producer.publish("via exchange", {.routing_key = "rk"});
        const auto received = collect(conn, {queue.name});
        CHECK(received.at(queue.name) == std::vector<std::string>{"via exchange"});
    }

    TEST_CASE("passive declare of a missing queue or exchange throws NotFound") {
        kelp::Connection conn{test_url()};
        // One channel per failure: AMQP closes a channel on a channel error.
        CHECK_THROWS_AS(conn.channel()->queue_declare(kelp::Queue{unique_name("missing")}, true),
                        kelp::NotFound);
        CHECK_THROWS_AS(
            conn.channel()->exchange_declare(kelp::Exchange{unique_name("missing")}, true),
            kelp::NotFound);
        // NotFound is a ChannelError, so callers catching the broader one see it too.
        CHECK_THROWS_AS(conn.channel()->queue_declare(kelp::Queue{unique_name("missing")}, true),
                        kelp::ChannelError);
        // The connection survives channel errors.
        CHECK(conn.connected());
        CHECK_NOTHROW(conn.channel());
    }

    TEST_CASE("redeclaring a queue with different arguments fails with ChannelError") {
        Scope scope;
        kelp::Connection conn{test_url()};
        kelp::QueueOptions changed;
        if (conn.capabilities().max_length) {
            changed.max_length = 10;
        } else if (conn.capabilities().message_ttl) {
            changed.message_ttl = 60s;
        } else if (conn.capabilities().priorities) {
            changed.max_priority = 5;
        } else {
            report_skip(
                "transport supports no queue argument (max_length, message_ttl, "
                "priorities) to change");
            return;
        }
        const std::string name = scope.queue_name("redeclare");
        conn.channel()->queue_declare(kelp::Queue{name});
        CHECK_NOTHROW(conn.channel()->queue_declare(kelp::Queue{name}));
        CHECK_THROWS_AS(conn.channel()->queue_declare(kelp::Queue{name, changed}),
                        kelp::ChannelError);
        // The original definition still stands.
        CHECK_NOTHROW(conn.channel()->queue_declare(kelp::Queue{name}));
    }

    TEST_CASE("redeclaring an exchange with another type fails with ChannelError") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const std::string name = scope.exchange_name("retype");
        conn.channel()->exchange_declare(kelp::Exchange{name, kelp::ExchangeType::direct});
        kelp::Exchange changed{name, kelp::ExchangeType::direct};
        if (conn.capabilities().exchange_fanout) {
            changed.type = kelp::ExchangeType::fanout;
        } else if (conn.capabilities().exchange_topic) {
            changed.type = kelp::ExchangeType::topic;
        } else {
            changed.durable = false;  // the one difference every transport can see
        }
        CHECK_THROWS_AS(conn.channel()->exchange_declare(changed), kelp::ChannelError);
        CHECK_NOTHROW(
            conn.channel()->exchange_declare(kelp::Exchange{name, kelp::ExchangeType::direct}));
    }

    TEST_CASE("queue_unbind stops routing") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Exchange exchange{scope.exchange_name("unbind")};
        const kelp::Queue queue{scope.queue_name("unbind"), exchange, "k"};
        conn.maybe_declare(queue);
        kelp::Producer producer{conn, {.exchange = exchange}};
        producer.publish("bound", {.routing_key = "k"});
        conn.default_channel().queue_unbind(queue.name, exchange.name, "k");
        producer.publish("unbound", {.routing_key = "k"});
        CHECK(collect(conn, {queue.name}).at(queue.name) == std::vector<std::string>{"bound"});
    }

    TEST_CASE("queue_delete honours if_empty and if_unused") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("delete-if");
        kelp::Producer producer{conn};
        producer.publish("x", {.routing_key = queue.name, .declare = {queue}});
        REQUIRE(wait_for_count(conn.default_channel(), queue, 1) == 1);
        CHECK_THROWS_AS(conn.channel()->queue_delete(queue.name, false, /*if_empty=*/true),
                        kelp::ChannelError);
        {
            kelp::Consumer consumer{conn, {queue}, [](kelp::Message&) {}};
            consumer.consume();
            CHECK_THROWS_AS(conn.channel()->queue_delete(queue.name, /*if_unused=*/true),
                            kelp::ChannelError);
        }
        // Still there, message and all (the consumer's channel gave it back).
        CHECK(wait_for_count(conn.default_channel(), queue, 1) == 1);
        CHECK(conn.channel()->queue_delete(queue.name) == 1);
    }

    TEST_CASE("queue_delete removes the queue and reports its messages") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("delete");
        kelp::Producer producer{conn};
        producer.publish("one", {.routing_key = queue.name, .declare = {queue}});
        producer.publish("two", {.routing_key = queue.name});
        REQUIRE(wait_for_count(conn.default_channel(), queue, 2) == 2);
        CHECK(conn.channel()->queue_delete(queue.name) == 2);
        CHECK_THROWS_AS(conn.channel()->queue_declare(queue, true), kelp::NotFound);
    }

    TEST_CASE("purge returns the count and empties the queue") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("purge");
        kelp::Producer producer{conn};
        for (int i = 0; i < 7; ++i) {
            producer.publish(std::to_string(i), {.routing_key = queue.name, .declare = {queue}});
        }
        auto channel = conn.channel();
        REQUIRE(wait_for_count(*channel, queue, 7) == 7);
        CHECK(channel->queue_purge(queue.name) == 7);
        CHECK(channel->queue_declare(queue, true).message_count == 0);
        CHECK_FALSE(channel->basic_get(queue.name).has_value());
        CHECK(channel->queue_purge(queue.name) == 0);
        // The queue itself is still there and usable.
        producer.publish("after purge", {.routing_key = queue.name});
        auto message = get_within(*channel, queue.name);
        REQUIRE(message.has_value());
        CHECK(message->body() == "after purge");
        message->ack();
    }
}
