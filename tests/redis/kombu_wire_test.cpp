// What kelp leaves in Redis is what Kombu reads, and what Kombu leaves kelp
// reads: messages, binding members, the unacked record and its restore.
// Kombu's side is played by raw commands, written as Kombu 5.2.4 writes them
// (reference kombu-wire-format §1).
#include "support.hpp"
#include "wire/delivery_tag.hpp"

using namespace redis_test;

TEST_SUITE("redis kombu wire") {
    TEST_CASE("a kelp publish through a named exchange is a Kombu envelope in the queue's list") {
        const std::string prefix = unique("wire") + ":";
        const std::string queue = unique("q");
        const kelp::Exchange exchange{unique("ex"), kelp::ExchangeType::direct};
        kelp::Connection conn{url(prefix)};
        conn.maybe_declare(kelp::Queue{queue, exchange, "rk"});
        kelp::Producer producer{conn, {.exchange = exchange}};
        producer.publish(kelp::Json{{"a", 1}}, {.routing_key = "rk"});
        conn.default_channel().queue_declare(kelp::Queue{queue, exchange, "rk"}, true);

        auto inspector = raw();
        const auto stored = texts(command(*inspector, {"LRANGE", prefix + queue, "0", "-1"}));
        REQUIRE(stored.size() == 1);
        const kelp::Json envelope = kelp::Json::parse(stored[0]);
        CHECK(envelope["content-type"] == "application/json");
        CHECK(envelope["properties"]["delivery_info"]["exchange"] == exchange.name);
        CHECK(envelope["properties"]["delivery_info"]["routing_key"] == "rk");
        CHECK(envelope["properties"]["body_encoding"] == "base64");
        CHECK(envelope["properties"]["delivery_tag"].get<std::string>().size() == 36);

        // The binding, as Kombu writes and reads it.
        CHECK(
            texts(command(*inspector, {"SMEMBERS", prefix + "_kombu.binding." + exchange.name})) ==
            std::vector<std::string>{"rk\x06\x16\x06\x16" + queue});
        command(*inspector, {"DEL", prefix + queue});
    }

    TEST_CASE("a topic binding carries Kombu's regex, so Kombu publishers route to kelp") {
        const std::string prefix = unique("topic") + ":";
        const std::string queue = unique("q");
        const kelp::Exchange exchange{unique("ex"), kelp::ExchangeType::topic};
        kelp::Connection conn{url(prefix)};
        conn.maybe_declare(kelp::Queue{queue, exchange, "stock.*.nyse"});
        auto inspector = raw();
        CHECK(
            texts(command(*inspector, {"SMEMBERS", prefix + "_kombu.binding." + exchange.name})) ==
            std::vector<std::string>{"stock.*.nyse\x06\x16^stock\\..*?[^\\.]\\.nyse$\x06\x16" +
                                     queue});
    }

    TEST_CASE("kelp routes to a queue Kombu bound, and consumes what Kombu pushed") {
        const std::string prefix = unique("bound") + ":";
        const std::string queue = unique("kombu-q");
        const kelp::Exchange exchange{unique("ex"), kelp::ExchangeType::direct};
        auto inspector = raw();
        // Kombu's queue_bind: a member in the binding set, nothing else.
        command(*inspector, {"SADD", prefix + "_kombu.binding." + exchange.name,
                             "jobs\x06\x16\x06\x16" + queue});
        // A Kombu publisher's message, already waiting.
        command(*inspector,
                {"LPUSH", prefix + queue, kombu_envelope("from kombu", exchange.name, "jobs")});

        kelp::Connection conn{url(prefix)};
        kelp::Producer producer{conn, {.exchange = exchange}};
        producer.publish_bytes("from kelp", {.routing_key = "jobs"});
        std::vector<std::string> received;
        kelp::Consumer consumer{conn,
                                {kelp::Queue{queue}},
                                [&](kelp::Message& m) {
                                    received.push_back(m.body());
                                    CHECK(m.delivery_info().exchange == exchange.name);
                                    CHECK(m.delivery_info().routing_key == "jobs");
                                    m.ack();
                                },
                                {.auto_declare = false}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return received.size() >= 2; }));
        CHECK(received == std::vector<std::string>{"from kombu", "from kelp"});
        command(*inspector, {"DEL", prefix + "_kombu.binding." + exchange.name});
    }

    TEST_CASE("kelp's unacked record is Kombu's, and Kombu's restore of it works") {
        const std::string prefix = unique("record") + ":";
        const std::string queue = unique("q");
        auto inspector = raw();
        std::string field;
        {
            kelp::Connection conn{url(prefix)};
            kelp::Producer producer{conn};
            producer.publish_bytes("held", {.routing_key = queue, .declare = {kelp::Queue{queue}}});
            auto channel = conn.channel();
            std::optional<kelp::Message> message;
            REQUIRE(eventually([&] { return (message = channel->basic_get(queue)).has_value(); }));

            const auto fields = texts(command(*inspector, {"HKEYS", prefix + "unacked"}));
            REQUIRE(fields.size() == 1);
            field = fields[0];
            CHECK(texts(command(*inspector, {"ZRANGE", prefix + "unacked_index", "0", "-1"})) ==
                  fields);
            // [envelope, exchange, routing_key]: Kombu's M, EX, RK = loads(p).
            const kelp::Json record =
                kelp::Json::parse(text(command(*inspector, {"HGET", prefix + "unacked", field})));
            REQUIRE(record.is_array());
            REQUIRE(record.size() == 3);
            CHECK(record[0].is_object());
            CHECK(record[1] == "");
            CHECK(record[2] == queue);

            // Kombu's restore_by_tag, by hand: the envelope back to the
            // routing key's queue (default exchange), record and index gone.
            command(*inspector, {"RPUSH", prefix + queue, record[0].dump()});
            command(*inspector, {"HDEL", prefix + "unacked", field});
            command(*inspector, {"ZREM", prefix + "unacked_index", field});
            // The kelp consumer's late ack now finds nothing to remove.
            message->ack();
        }
        kelp::Connection conn{url(prefix)};
        auto channel = conn.channel();
        auto again = channel->basic_get(queue);
        REQUIRE(again.has_value());
        CHECK(again->body() == "held");
        again->ack();
    }

    TEST_CASE(
        "the pop's record names the properties' exchange and routing key, whatever the "
        "envelope's shape") {
        // The pop script reads the common envelope's tail without decoding
        // it, and decodes everything else: both must give Kombu's record.
        const std::string prefix = unique("shapes") + ":";
        const std::string queue = unique("q");
        auto inspector = raw();
        struct Shape {
            std::string name;
            std::string payload;
            std::string exchange;
            std::string routing_key;
        };
        const std::string tag = kelp::redis::new_delivery_tag();
        auto tail = [&](const std::string& info) {
            return R"(, "properties": {"delivery_mode": 2, "delivery_info": )" + info +
                   R"(, "priority": 0, "body_encoding": "base64", "delivery_tag": ")" + tag +
                   "\"}}";
        };
        const std::string head =
            R"({"body": "aGk=", "content-encoding": "binary", "content-type": "application/data")";
        const std::vector<Shape> shapes{
            {"kelp's envelope", kombu_envelope("hi", "ex", "rk"), "ex", "rk"},
            {"a slash (cjson escapes it)", kombu_envelope("hi", "a/b", "c/d"), "a/b", "c/d"},
            {"an escaped quote", kombu_envelope("hi", "say \"hi\"", "rk"), "say \"hi\"", "rk"},
            {"a header named delivery_info",
             head +
                 R"(, "headers": {"delivery_info": {"exchange": "wrong", "routing_key": "wrong"}, "priority": 1})" +
                 tail(R"({"exchange": "right", "routing_key": "rk"})"),
             "right", "rk"},
            {"a redelivered message",
             head + R"(, "headers": {"redelivered": true})" +
                 tail(R"({"exchange": "ex", "routing_key": "rk", "redelivered": true})"),
             "ex", "rk"},
            {"compact JSON",
             R"({"body":"aGk=","headers":{},"properties":{"delivery_info":{"exchange":"ex","routing_key":"rk"},"body_encoding":"base64","delivery_tag":")" +
                 tag + "\"}}",
             "ex", "rk"},
        };
        kelp::Connection conn{url(prefix)};
        conn.maybe_declare(kelp::Queue{queue});
        auto channel = conn.channel();
        for (const Shape& shape : shapes) {
            CAPTURE(shape.name);
            command(*inspector, {"LPUSH", prefix + queue, shape.payload});
            std::optional<kelp::Message> message = channel->basic_get(queue);
            REQUIRE(message.has_value());
            const auto fields = texts(command(*inspector, {"HKEYS", prefix + "unacked"}));
            REQUIRE(fields.size() == 1);
            const std::string record =
                text(command(*inspector, {"HGET", prefix + "unacked", fields[0]}));
            const kelp::Json parsed = kelp::Json::parse(record);
            REQUIRE(parsed.size() == 3);
            CHECK(parsed[0] == kelp::Json::parse(shape.payload));
            CHECK(parsed[1] == shape.exchange);
            CHECK(parsed[2] == shape.routing_key);
            // The envelope embedded as it was popped, byte for byte.
            CHECK(record.substr(0, shape.payload.size() + 1) == "[" + shape.payload);
            message->ack();
        }
    }

    TEST_CASE(
        "the default exchange reaches queues kelp declared or Kombu bound, not unknown ones") {
        const std::string prefix = unique("default") + ":";
        const std::string unknown = unique("unknown");
        const std::string celery = unique("celery");
        auto inspector = raw();
        // Celery's declaration: the queue bound to an exchange of its own name.
        command(*inspector, {"SADD", prefix + "_kombu.binding." + celery,
                             celery + "\x06\x16\x06\x16" + celery});
        kelp::Connection conn{url(prefix)};
        auto channel = conn.channel();
        channel->basic_publish(kelp::Envelope{.body = "lost"}, "", unknown);
        channel->basic_publish(kelp::Envelope{.body = "task"}, "", celery);
        // AMQP drops a message for a queue that does not exist; Kombu's LPUSH
        // would start a list nobody consumes.
        CHECK(channel->unroutable_dropped() == std::optional<std::uint64_t>(1));
        CHECK(integer(command(*inspector, {"EXISTS", prefix + unknown})) == 0);
        CHECK(integer(command(*inspector, {"LLEN", prefix + celery})) == 1);
        command(*inspector, {"DEL", prefix + celery, prefix + "_kombu.binding." + celery});
    }
}
