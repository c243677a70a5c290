// What goes in comes out: body bytes, headers of every type, every property,
// and the order of a queue.
#include <limits>
#include <random>

#include "support.hpp"

using namespace conformance;

namespace {

// Index of the first differing byte, for a readable failure on big bodies.
std::size_t first_difference(const std::string& a, const std::string& b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i] != b[i]) return i;
    }
    return n;
}

void check_same_bytes(const std::string& got, const std::string& want) {
    const bool same = got == want;
    CHECK_MESSAGE(same, "got " << got.size() << " bytes, want " << want.size()
                               << "; first difference at byte " << first_difference(got, want));
}

std::string all_byte_values() {
    std::string bytes;
    for (int i = 0; i < 256; ++i)
        bytes.push_back(static_cast<char>(i));
    return bytes;
}

std::string random_bytes(std::size_t size) {
    std::mt19937_64 rng{42};
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; i += 8) {
        const std::uint64_t word = rng();
        for (std::size_t j = 0; j < 8 && i + j < size; ++j)
            bytes[i + j] = static_cast<char>((word >> (8 * j)) & 0xff);
    }
    return bytes;
}

}  // namespace

TEST_SUITE("conformance") {
    TEST_CASE("body bytes round-trip exactly") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("bytes");
        std::vector<std::pair<std::string, std::string>> bodies = {
            {"empty", ""},
            {"NUL bytes", std::string("\0a\0\0b\0", 6)},
            {"all 256 byte values (not UTF-8)", all_byte_values()},
            {"invalid UTF-8", "\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x90\x28\xbc\xff\xfe"},
            {"8 MiB", random_bytes(8u << 20)},
        };
        if (const auto limit = conn.capabilities().max_message_bytes;
            limit != 0 && bodies.back().second.size() > limit / 2) {
            // A broker with a message size limit gets the largest body it
            // surely takes (half its limit leaves room for headers).
            report_skip("8 MiB body: transport '" + std::string(conn.transport_name()) +
                        "' takes messages up to " + std::to_string(limit) + " bytes; sent " +
                        std::to_string(limit / 2) + " bytes instead");
            bodies.back() = {"half the size limit", random_bytes(limit / 2)};
        }
        kelp::Producer producer{conn};
        for (const auto& [label, body] : bodies) {
            producer.publish(body, {.routing_key = queue.name, .declare = {queue}});
        }

        SUBCASE("through basic_get") {
            auto channel = conn.channel();
            for (const auto& [label, body] : bodies) {
                CAPTURE(label);
                auto message = get_within(*channel, queue.name);
                REQUIRE(message.has_value());
                check_same_bytes(message->body(), body);
                CHECK(message->content_type() == "application/data");
                CHECK(message->content_encoding() == "binary");
                // Raw bytes decode to a Json binary of the same bytes.
                REQUIRE(message->payload().is_binary());
                const auto& binary = message->payload().get_binary();
                check_same_bytes(std::string(binary.begin(), binary.end()), body);
                message->ack();
            }
        }
        SUBCASE("through a consumer") {
            std::vector<std::string> received;
            kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                        received.push_back(m.body());
                                        m.ack();
                                    }};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] { return received.size() >= bodies.size(); }));
            REQUIRE(received.size() == bodies.size());
            for (std::size_t i = 0; i < bodies.size(); ++i) {
                CAPTURE(bodies[i].first);
                check_same_bytes(received[i], bodies[i].second);
            }
        }
    }

    TEST_CASE("headers of every type round-trip") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("headers");
        const kelp::Table headers = {
            {"string", "text"},
            {"unicode", "h\xc3\xa9llo \xe2\x9c\x93"},
            {"empty string", ""},
            {"int", 42},
            {"zero", 0},
            {"negative int", -7},
            // 2^53 + 1 is not a double: it must travel as an integer.
            {"int64", std::int64_t{9007199254740993}},
            {"int64 max", std::numeric_limits<std::int64_t>::max()},
            {"int64 min", std::numeric_limits<std::int64_t>::min()},
            {"double", 3.25},
            {"negative double", -0.5},
            {"true", true},
            {"false", false},
            {"null", nullptr},
            {"object", {{"k", "v"}, {"inner", {{"x", 1}, {"list", {1, 2}}}}}},
            {"array", {1, "two", 3.5, false, nullptr, {{"k", "v"}}}},
            {"empty array", kelp::Json::array()},
            {"empty object", kelp::Json::object()},
        };
        kelp::Producer producer{conn};
        producer.publish("with headers",
                         {.routing_key = queue.name, .headers = headers, .declare = {queue}});

        std::optional<kelp::Table> got;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    got = m.headers();
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return got.has_value(); }));
        REQUIRE(got->is_object());
        for (const auto& [key, want] : headers.items()) {
            CAPTURE(key);
            REQUIRE(got->contains(key));
            const kelp::Json& value = got->at(key);
            CHECK(value == want);
            CHECK(value.type_name() == std::string(want.type_name()));
            if (want.is_number_integer()) {
                REQUIRE(value.is_number_integer());
                CHECK(value.get<std::int64_t>() == want.get<std::int64_t>());
            }
            if (want.is_number_float()) CHECK(value.is_number_float());
        }
        // Nothing lost and nothing added, except what brokers may add under
        // their own "x-" prefix.
        for (const auto& [key, value] : got->items()) {
            if (key.rfind("x-", 0) == 0) continue;
            CHECK_MESSAGE(headers.contains(key), "unexpected header " << key << " = " << value);
        }
    }

    TEST_CASE("every property round-trips") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const auto& caps = conn.capabilities();
        const kelp::Queue queue = scope.queue("properties");
        // AMQP brokers check user_id against the authenticated user, so it is
        // the URL's user (RabbitMQ's default user when none is given).
        const std::string user_id = conn.url().user.empty() ? "guest" : conn.url().user;
        kelp::PublishOptions options{
            .routing_key = queue.name,
            .content_type = "application/json",
            .content_encoding = "utf-8",
            .delivery_mode = kelp::DeliveryMode::transient,
            .correlation_id = "corr-1",
            .reply_to = "reply.queue",
            .message_id = "msg-1",
            .type = "kconf.test",
            .app_id = "kelp-conformance",
            .user_id = user_id,
            .timestamp = 1700000000,
            .declare = {queue},
        };
        // Only the properties the transport can honour: setting one it cannot
        // is an error by design.
        if (caps.priorities) options.priority = 7;
        if (caps.message_ttl) options.expiration = 600000ms;
        kelp::Producer producer{conn};
        producer.publish(R"({"k": 1})", options);

        std::optional<kelp::Properties> got;
        kelp::Json payload;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    got = m.properties();
                                    payload = m.payload();
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return got.has_value(); }));
        CHECK(got->content_type == "application/json");
        CHECK(got->content_encoding == "utf-8");
        CHECK(got->delivery_mode == kelp::DeliveryMode::transient);
        CHECK(got->correlation_id == "corr-1");
        CHECK(got->reply_to == "reply.queue");
        CHECK(got->message_id == "msg-1");
        CHECK(got->type == "kconf.test");
        CHECK(got->app_id == "kelp-conformance");
        CHECK(got->user_id == user_id);
        CHECK(got->timestamp == std::optional<std::int64_t>(1700000000));
        if (caps.priorities) {
            CHECK(got->priority == std::optional<std::uint8_t>(7));
        } else {
            report_skip("transport lacks capability 'priorities' (priority property not checked)");
        }
        if (caps.message_ttl) {
            CHECK(got->expiration == std::optional<std::chrono::milliseconds>(600000ms));
        } else {
            report_skip("transport lacks capability 'message_ttl' (expiration not checked)");
        }
        CHECK(payload == kelp::Json{{"k", 1}});

        // And the defaults: persistent, nothing else set (nothing left over
        // from the message before, whose envelope a producer may reuse).
        got.reset();
        producer.publish("plain", {.routing_key = queue.name});
        REQUIRE(drain_until(conn, [&] { return got.has_value(); }));
        CHECK(got->content_type == "application/data");
        CHECK(got->content_encoding == "binary");
        CHECK(got->delivery_mode == kelp::DeliveryMode::persistent);
        CHECK(got->correlation_id.empty());
        CHECK(got->reply_to.empty());
        CHECK(got->message_id.empty());
        CHECK(got->type.empty());
        CHECK(got->app_id.empty());
        CHECK(got->user_id.empty());
        CHECK_FALSE(got->priority.has_value());
        CHECK_FALSE(got->expiration.has_value());
        CHECK_FALSE(got->timestamp.has_value());
    }

    TEST_CASE("JSON values round-trip through the serializer") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("json");
        const kelp::Json value = {{"n", 1}, {"s", "x"}, {"list", {1, 2, 3}}, {"f", 0.25}};
        kelp::Producer producer{conn};
        producer.publish(value, {.routing_key = queue.name, .declare = {queue}});
        producer.publish(value, {.routing_key = queue.name, .compression = "zlib"});
        std::vector<kelp::Json> got;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    CHECK(m.content_type() == "application/json");
                                    got.push_back(m.payload());
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return got.size() == 2; }));
        CHECK(got[0] == value);
        CHECK(got[1] == value);
    }

    TEST_CASE("a queue delivers 1000 messages in publication order") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("fifo");
        kelp::Producer producer{conn};
        conn.maybe_declare(queue);
        constexpr int count = 1000;
        for (int i = 0; i < count; ++i) {
            producer.publish(std::to_string(i), {.routing_key = queue.name});
        }
        std::vector<int> order;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    order.push_back(std::stoi(m.body()));
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return order.size() >= count; }));
        REQUIRE(order.size() == count);
        int out_of_order = 0;
        for (int i = 0; i < count; ++i) {
            if (order[i] != i) ++out_of_order;
        }
        CHECK(out_of_order == 0);
    }
}
