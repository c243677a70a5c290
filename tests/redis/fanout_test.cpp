// Fanout on Redis, both ways: durable lists (kelp's default, AMQP's meaning)
// with a PUBLISH for Kombu's subscribers, and Kombu's own pub/sub
// (fanout_mode=pubsub), subscribed before consume() returns.
#include "support.hpp"
#include "wire/keys.hpp"

using namespace redis_test;

namespace {

std::string fanout_channel(const std::string& prefix, const std::string& exchange,
                           const std::string& routing_key) {
    kelp::redis::RedisSettings settings;
    settings.global_keyprefix = prefix;
    return kelp::redis::KeySchema(settings).fanout_channel(exchange, routing_key);
}

}  // namespace

TEST_SUITE("redis fanout") {
    TEST_CASE("lists: bound kelp queues keep the message, Kombu's subscribers get it published") {
        const std::string prefix = unique("fan") + ":";
        const kelp::Exchange exchange{unique("ex"), kelp::ExchangeType::fanout};
        const std::string kelp_queue = unique("kelp-q");
        const std::string kombu_queue = unique("kombu-q");
        kelp::Connection conn{url(prefix)};
        conn.maybe_declare(kelp::Queue{kelp_queue, exchange, ""});
        auto inspector = raw();
        // A Kombu consumer's binding (empty pattern) and its subscription.
        command(*inspector, {"SADD", prefix + "_kombu.binding." + exchange.name,
                             "\x06\x16\x06\x16" + kombu_queue});
        std::vector<std::string> published;
        auto subscriber = raw();
        subscriber->set_push_handler([&](kelp::redis::ReplyView push) {
            if (push[0].text() == "message") published.emplace_back(push[2].text());
        });
        subscriber->send_subscription(
            kelp::redis::args({"SUBSCRIBE", fanout_channel(prefix, exchange.name, "")}));
        command(*subscriber, {"PING"});  // subscribed once the PING is answered

        kelp::Producer producer{conn, {.exchange = exchange}};
        producer.publish_bytes("to all", {.routing_key = ""});
        conn.default_channel().queue_declare(kelp::Queue{kelp_queue}, true);  // flushed

        CHECK(integer(command(*inspector, {"LLEN", prefix + kelp_queue})) == 1);
        // Kombu consumes its fanout queue by pub/sub: no list grows for it.
        CHECK(integer(command(*inspector, {"EXISTS", prefix + kombu_queue})) == 0);
        REQUIRE(eventually([&] {
            command(*subscriber, {"PING"});
            return !published.empty();
        }));
        CHECK(kelp::Json::parse(published[0])["properties"]["delivery_info"]["exchange"] ==
              exchange.name);
        conn.default_channel().queue_delete(kelp_queue);
        conn.default_channel().exchange_delete(exchange.name);
    }

    TEST_CASE(
        "pubsub: subscribed before consume() returns, Kombu's messages arrive, nothing is "
        "left in Redis") {
        const std::string prefix = unique("pubsub") + ":";
        const kelp::Exchange exchange{unique("ex"), kelp::ExchangeType::fanout};
        const std::string queue = unique("q");
        kelp::Connection conn{url(prefix, "fanout_mode=pubsub")};
        conn.maybe_declare(kelp::Queue{queue, exchange, ""});
        auto inspector = raw();
        // Kombu's binding member, exactly.
        CHECK(
            texts(command(*inspector, {"SMEMBERS", prefix + "_kombu.binding." + exchange.name})) ==
            std::vector<std::string>{"\x06\x16\x06\x16" + queue});

        std::vector<kelp::Message> received;
        kelp::Consumer consumer{conn, {kelp::Queue{queue, exchange, ""}}, [&](kelp::Message& m) {
                                    received.push_back(std::move(m));
                                }};
        consumer.consume();
        // Right after consume(): a Kombu publisher's PUBLISH is not missed.
        command(*inspector, {"PUBLISH", fanout_channel(prefix, exchange.name, ""),
                             kombu_envelope("from kombu", exchange.name, "")});
        kelp::Producer producer{conn, {.exchange = exchange}};
        producer.publish_bytes("from kelp", {.routing_key = ""});
        REQUIRE(drain_until(conn, [&] { return received.size() >= 2; }));
        CHECK(received[0].body() == "from kombu");
        CHECK(received[1].body() == "from kelp");

        // Acked or not, a pub/sub delivery leaves nothing in Redis: no record
        // (Kombu keeps one, and its restore pushes to a list nobody reads).
        CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 0);
        received[0].ack();
        received[1].requeue();  // handed out again, from memory
        REQUIRE(drain_until(conn, [&] { return received.size() >= 3; }));
        CHECK(received[2].body() == "from kelp");
        CHECK(received[2].redelivered());
        consumer.cancel();
        CHECK(integer(command(*inspector, {"EXISTS", prefix + queue})) == 0);
        conn.default_channel().queue_delete(queue);
        conn.default_channel().exchange_delete(exchange.name);
    }
}
