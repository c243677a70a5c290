// AMQP-native features: publisher confirms, mandatory returns,
// exchange-to-exchange bindings, queue arguments as RabbitMQ sees them and
// Kombu's header types on the wire.
#include "channel.hpp"
#include "support.hpp"
#include "transport.hpp"

using namespace amqp_test;

TEST_SUITE("amqp") {
    TEST_CASE("confirm_publish: publishes wait for the broker's ack; a window goes on") {
        for (const char* query :
             {"confirm_publish=true", "confirm_publish=true&confirm_window=50"}) {
            CAPTURE(query);
            kelp::Connection conn{url(broker_port(), query)};
            const kelp::Queue queue{unique_name("confirm"), kelp::QueueOptions{.durable = false}};
            kelp::Producer producer{conn};
            for (int i = 0; i < 200; ++i)
                producer.publish(std::to_string(i),
                                 {.routing_key = queue.name, .declare = {queue}});
            auto& channel = dynamic_cast<kelp::amqp::AmqpChannel&>(producer.channel());
            channel.wait_for_confirms();
            CHECK(channel.unconfirmed() == 0);
            // Confirmed means stored: the count is exact at once.
            CHECK(channel.queue_declare(queue, true).message_count == 200);
            channel.queue_delete(queue.name);
        }
    }

    TEST_CASE("mandatory: an unroutable message comes back through on_return") {
        kelp::Connection conn{url(broker_port(), "confirm_publish=true")};
        const kelp::Exchange exchange{
            unique_name("mx"), kelp::ExchangeType::topic, {.durable = false}};
        std::vector<kelp::ReturnedMessage> returned;
        kelp::Producer producer{conn,
                                {.exchange = exchange, .on_return = [&](kelp::ReturnedMessage& r) {
                                     returned.push_back(r);
                                 }}};
        producer.publish("lost",
                         {.routing_key = "no.one", .headers = {{"n", 1}}, .mandatory = true});
        // With confirms, the return comes before the publish's confirm.
        for (int i = 0; i < 100 && returned.empty(); ++i) {
            try {
                conn.drain_events(20ms);
            } catch (const kelp::TimeoutError&) {
            }
        }
        REQUIRE(returned.size() == 1);
        CHECK(returned[0].envelope.body == "lost");
        CHECK(returned[0].envelope.headers == kelp::Json{{"n", 1}});
        CHECK(returned[0].reply_code == 312);
        CHECK(returned[0].reply_text == "NO_ROUTE");
        CHECK(returned[0].routing_key == "no.one");
        conn.default_channel().exchange_delete(exchange.name);
    }

    TEST_CASE("exchange-to-exchange bindings route through both") {
        kelp::Connection conn{url(broker_port())};
        auto channel = std::dynamic_pointer_cast<kelp::amqp::AmqpChannel>(conn.channel());
        REQUIRE(channel);
        const kelp::Exchange front{
            unique_name("front"), kelp::ExchangeType::topic, {.durable = false}};
        const kelp::Exchange back{
            unique_name("back"), kelp::ExchangeType::fanout, {.durable = false}};
        const std::string queue = unique_name("e2e");
        channel->exchange_declare(front);
        channel->exchange_declare(back);
        channel->queue_declare(kelp::Queue{queue, kelp::QueueOptions{.durable = false}});
        channel->queue_bind(queue, back.name, "");
        channel->exchange_bind(back.name, front.name, "orders.*");
        channel->basic_publish(kelp::Envelope{.body = "routed"}, front.name, "orders.new");
        channel->basic_publish(kelp::Envelope{.body = "not routed"}, front.name, "users.new");
        std::optional<kelp::Message> got;
        for (int i = 0; i < 100 && !got; ++i) {
            got = channel->basic_get(queue, true);
            if (!got) std::this_thread::sleep_for(10ms);
        }
        REQUIRE(got.has_value());
        CHECK(got->body() == "routed");
        channel->exchange_unbind(back.name, front.name, "orders.*");
        channel->basic_publish(kelp::Envelope{.body = "after unbind"}, front.name, "orders.new");
        CHECK(channel->queue_declare(kelp::Queue{queue}, true).message_count == 0);
        channel->queue_delete(queue);
        channel->exchange_delete(front.name);
        channel->exchange_delete(back.name);
    }

    TEST_CASE("queue arguments reach the broker with their types") {
        kelp::Connection conn{url(broker_port())};
        const std::string name = unique_name("args");
        kelp::QueueOptions options{.durable = false};
        options.message_ttl = std::chrono::milliseconds(60000);
        options.expires = std::chrono::milliseconds(300000);
        options.max_length = 1000;
        options.max_length_bytes = std::int64_t{5} << 32;  // over 32 bits: 'l'
        options.max_priority = 10;
        options.dead_letter_exchange = "dlx";
        options.dead_letter_routing_key = "dead";
        auto channel = conn.channel();
        channel->queue_declare(kelp::Queue{name, options});
        // The same declaration again is accepted (RabbitMQ compares the
        // arguments, types included); a changed one is refused.
        CHECK_NOTHROW(conn.channel()->queue_declare(kelp::Queue{name, options}));
        options.max_length = 999;
        CHECK_THROWS_AS(conn.channel()->queue_declare(kelp::Queue{name, options}),
                        kelp::ChannelError);
        conn.channel()->queue_delete(name);
    }

    TEST_CASE("publish frames: bodies around frame boundaries and every property arrive intact") {
        // frame_max=4096: a body frame carries 4088 bytes, so these sizes
        // fill no frame, one exactly, one and a byte, two, and many.
        kelp::Connection conn{url(broker_port(), "frame_max=4096")};
        auto channel = conn.channel();
        const std::string queue = unique_name("frames");
        channel->queue_declare(kelp::Queue{queue, kelp::QueueOptions{.durable = false}});
        const kelp::Properties properties{.content_type = "text/plain",
                                          .content_encoding = "utf-8",
                                          .priority = 3,
                                          .delivery_mode = kelp::DeliveryMode::transient,
                                          .correlation_id = "corr",
                                          .reply_to = "replies",
                                          .expiration = std::chrono::milliseconds(600000),
                                          .message_id = "id-1",
                                          .timestamp = 1700000000,
                                          .type = "kind",
                                          .user_id = "guest",
                                          .app_id = "kelp-test"};
        const kelp::Table headers = {{"n", 1}, {"text", std::string(300, 'h')}};
        std::vector<std::string> bodies;
        for (std::size_t size : {0, 1, 4087, 4088, 4089, 2 * 4088, 2 * 4088 + 1, 100000}) {
            std::string body(size, '\0');
            for (std::size_t i = 0; i < size; ++i)
                body[i] = static_cast<char>((i * 131 + size) & 0xff);
            bodies.push_back(body);
            channel->basic_publish(
                kelp::Envelope{.body = body, .headers = headers, .properties = properties}, "",
                queue);
        }
        for (const std::string& body : bodies) {
            CAPTURE(body.size());
            std::optional<kelp::Message> got;
            for (int i = 0; i < 100 && !got; ++i) {
                got = channel->basic_get(queue, true);
                if (!got) std::this_thread::sleep_for(10ms);
            }
            REQUIRE(got.has_value());
            CHECK(got->body() == body);
            CHECK(got->properties() == properties);
            CHECK(got->headers() == headers);
        }
        // The link stayed in step: a method still gets its reply.
        CHECK(channel->queue_declare(kelp::Queue{queue}, true).message_count == 0);
        channel->queue_delete(queue);
    }

    TEST_CASE("acks made in consumer callbacks reach the broker before the connection closes") {
        // Acks made while a batch of deliveries is handed out are written
        // when the batch ends: none may be left behind.
        const kelp::Queue queue{unique_name("acks"), kelp::QueueOptions{.durable = false}};
        constexpr int total = 500;
        {
            kelp::Connection conn{url(broker_port())};
            kelp::Producer producer{conn};
            for (int i = 0; i < total; ++i)
                producer.publish(std::to_string(i),
                                 {.routing_key = queue.name, .declare = {queue}});
            int seen = 0;
            kelp::Consumer consumer{conn,
                                    {queue},
                                    [&](kelp::Message& message) {
                                        ++seen;
                                        message.ack();
                                    },
                                    {.prefetch_count = 100}};
            consumer.consume();
            const auto deadline = Clock::now() + 30s;
            while (seen < total && Clock::now() < deadline)
                conn.drain_events(1s);
            REQUIRE(seen == total);
        }
        // Unacked messages would be back in the queue once the connection
        // is gone.
        std::this_thread::sleep_for(300ms);
        kelp::Connection check{url(broker_port())};
        auto channel = check.channel();
        CHECK(channel->queue_declare(queue, true).message_count == 0);
        channel->queue_delete(queue.name);
    }

    TEST_CASE("headers keep 64-bit integers, nested tables and arrays") {
        kelp::Connection conn{url(broker_port())};
        auto channel = conn.channel();
        const std::string queue = unique_name("hdr");
        channel->queue_declare(kelp::Queue{queue, kelp::QueueOptions{.durable = false}});
        const kelp::Table headers = {{"big", std::int64_t{1} << 40},
                                     {"negative big", -(std::int64_t{1} << 40)},
                                     {"list", {1, "a", nullptr}},
                                     {"table", {{"a", 1}}}};
        channel->basic_publish(kelp::Envelope{.body = "h", .headers = headers}, "", queue);
        std::optional<kelp::Message> got;
        for (int i = 0; i < 100 && !got; ++i) {
            got = channel->basic_get(queue, true);
            if (!got) std::this_thread::sleep_for(10ms);
        }
        REQUIRE(got.has_value());
        CHECK(got->headers() == headers);
        channel->queue_delete(queue);
    }
}
