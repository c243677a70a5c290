// kelp publishes, Python Kombu consumes, on a real Redis server: what Kombu
// receives (kombu_peer.py's report) must be what kelp sent.
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include <doctest/doctest.h>

#include "kelp/compression.hpp"
#include "support.hpp"
#include "wire/base64.hpp"

using namespace interop;
using kelp::Json;
using kelp::redis::base64_decode;
using namespace std::string_literals;

namespace {

Json kombu_queue(std::string_view name, std::string_view exchange = {},
                 std::string_view type = "direct", std::string_view routing_key = {}) {
    return Json{
        {"name", name}, {"exchange", exchange}, {"type", type}, {"routing_key", routing_key}};
}

std::string body_of(const Json& report_entry) {
    return base64_decode(report_entry["body_b64"].get<std::string>());
}

// The headers and bodies below hold every JSON type Kombu's json module
// writes: kelp must send each so that Python reads back the same value and
// type (1 stays an int, 1.0 a float, NaN and Infinity are Python's literals).
Json every_json_type() {
    return Json{
        {"null", nullptr},
        {"true", true},
        {"false", false},
        {"zero", 0},
        {"negative", -42},
        {"int64_max", std::numeric_limits<std::int64_t>::max()},
        {"int64_min", std::numeric_limits<std::int64_t>::min()},
        {"uint64_max", std::numeric_limits<std::uint64_t>::max()},
        {"float", 1.5},
        {"float_integral", 2.0},
        {"float_small", 1e-05},
        {"float_large", 1e+16},
        {"infinity", std::numeric_limits<double>::infinity()},
        {"minus_infinity", -std::numeric_limits<double>::infinity()},
        {"nan", std::numeric_limits<double>::quiet_NaN()},
        {"text", "caf\xC3\xA9 \xE2\x98\x83 \xF0\x9F\x98\x80"},
        {"empty_text", ""},
        {"controls", "tab\tline\nnul\0quote\"backslash\\"s},
        {"list",
         Json::array({1, "a", nullptr, Json::array({true, Json::object()}), Json::array()})},
        {"object",
         {{"nested", {{"deeper", Json::array({1.25, {{"k", "v"}}})}}}, {"empty", Json::object()}}},
    };
}

}  // namespace

TEST_SUITE("kelp_to_kombu") {
    TEST_CASE("direct, topic and fanout exchanges reach Kombu's queues") {
        // Either fanout mode PUBLISHes on Kombu's channel.
        std::string query;
        SUBCASE("fanout_mode=lists (the default)") {}
        SUBCASE("fanout_mode=pubsub") {
            query = "fanout_mode=pubsub";
        }
        RedisProbe probe;
        probe.flush();
        // Kombu owns the queues and bindings; its fanout queues listen on
        // pub/sub, so it subscribes before kelp publishes.
        KombuConsumer kombu(
            Json{{"url", redis_url()},
                 {"queues", Json::array({
                                kombu_queue("k.direct", "x.direct", "direct", "rk.a"),
                                kombu_queue("k.topic", "x.topic", "topic", "logs.*.error"),
                                kombu_queue("k.fan1", "x.fanout", "fanout"),
                                kombu_queue("k.fan2", "x.fanout", "fanout"),
                            })},
                 {"count", 4},
                 {"linger", 0.5},
                 {"timeout", 15}});
        REQUIRE(kombu.ready());

        kelp::Connection conn{redis_url(query)};
        const kelp::Exchange direct{"x.direct", kelp::ExchangeType::direct};
        const kelp::Exchange topic{"x.topic", kelp::ExchangeType::topic};
        const kelp::Exchange fanout{"x.fanout", kelp::ExchangeType::fanout};
        for (const auto& exchange : {direct, topic, fanout})
            conn.maybe_declare(exchange);
        kelp::Producer producer{conn};
        producer.publish("to direct", {.exchange = direct, .routing_key = "rk.a"});
        producer.publish("direct, other key", {.exchange = direct, .routing_key = "rk.b"});
        producer.publish("to topic", {.exchange = topic, .routing_key = "logs.db.error"});
        producer.publish("topic, no match", {.exchange = topic, .routing_key = "logs.db.info"});
        producer.publish("to fanout", {.exchange = fanout, .routing_key = ""});
        conn.close();  // the pipelined publishes reach Redis first

        const Json report = kombu.report();
        std::multiset<std::pair<std::string, std::string>> got;
        for (const auto& entry : report) {
            got.emplace(entry["queue"].get<std::string>(), body_of(entry));
            const std::string queue = entry["queue"].get<std::string>();
            const std::string exchange = entry["exchange"].get<std::string>();
            CHECK(exchange == (queue == "k.direct"  ? "x.direct"
                               : queue == "k.topic" ? "x.topic"
                                                    : "x.fanout"));
            CHECK(entry["routing_key"] == (queue == "k.direct"  ? "rk.a"
                                           : queue == "k.topic" ? "logs.db.error"
                                                                : ""));
            CHECK(entry["redelivered"] == false);
        }
        const std::multiset<std::pair<std::string, std::string>> expected{{"k.direct", "to direct"},
                                                                          {"k.topic", "to topic"},
                                                                          {"k.fan1", "to fanout"},
                                                                          {"k.fan2", "to fanout"}};
        CHECK(got == expected);
    }

    TEST_CASE("priorities: Kombu serves the lowest bucket first and sees each number") {
        RedisProbe probe;
        probe.flush();
        kelp::Connection conn{redis_url()};
        // A kelp publisher drops what the default exchange routes to a queue
        // no one declared (as AMQP does; Kombu pushes it anyway): declare it.
        conn.maybe_declare(kelp::Queue{"k.pri"});
        kelp::Producer producer{conn};
        for (const std::uint8_t priority : std::initializer_list<std::uint8_t>{9, 0, 5, 3, 6, 1}) {
            producer.publish("p" + std::to_string(priority),
                             {.routing_key = "k.pri", .priority = priority});
        }
        conn.close();

        const Json report = kombu_consume(Json{
            {"url", redis_url()}, {"queues", Json::array({kombu_queue("k.pri")})}, {"count", 6}});
        std::vector<std::string> order;
        for (const auto& entry : report) {
            const std::string body = body_of(entry);
            order.push_back(body);
            CHECK(entry["properties"]["priority"] == std::stoi(body.substr(1)));
        }
        // Kombu's buckets: 0-2, 3-5, 6-8, 9; lowest first, FIFO inside one.
        CHECK(order == std::vector<std::string>{"p0", "p1", "p5", "p3", "p6", "p9"});
    }

    TEST_CASE("headers and JSON bodies of every JSON type arrive with their values and types") {
        RedisProbe probe;
        probe.flush();
        const Json value = every_json_type();
        kelp::Connection conn{redis_url()};
        conn.maybe_declare(kelp::Queue{"k.json"});
        kelp::Producer producer{conn};
        producer.publish(value, {.routing_key = "k.json", .headers = value});
        conn.close();

        const Json report = kombu_consume(Json{
            {"url", redis_url()}, {"queues", Json::array({kombu_queue("k.json")})}, {"count", 1}});
        REQUIRE(report.size() == 1);
        const Json& entry = report[0];
        // Python's json.dumps(sort_keys=True) of what Kombu decoded, against
        // kelp's text of what it sent: equal only if every value and type is.
        CHECK(entry["headers_json"].get<std::string>() == kelp::dump_json(value));
        CHECK(entry["content_type"] == "application/json");
        CHECK(entry["content_encoding"] == "utf-8");
        REQUIRE(entry["decoded"].contains("json_text"));
        CHECK(entry["decoded"]["json_text"].get<std::string>() == kelp::dump_json(value));
    }

    TEST_CASE("properties arrive as Kombu's message properties") {
        RedisProbe probe;
        probe.flush();
        kelp::Connection conn{redis_url()};
        conn.maybe_declare(kelp::Queue{"k.props"});
        kelp::Producer producer{conn};
        producer.publish(Json{{"n", 1}}, {.routing_key = "k.props",
                                          .priority = 4,
                                          .delivery_mode = kelp::DeliveryMode::transient,
                                          .correlation_id = "corr-1",
                                          .reply_to = "reply.q",
                                          .message_id = "mid-1",
                                          .type = "mytype",
                                          .app_id = "myapp",
                                          .user_id = "guest",
                                          .timestamp = 1700000000});
        // Kombu writes an expiration but Redis never enforces it; kelp
        // refuses it rather than pretend (capability message_ttl is false).
        CHECK_THROWS_WITH_AS(producer.publish("x", {.routing_key = "k.props", .expiration = 30s}),
                             doctest::Contains("cannot expire on Redis"), kelp::ChannelError);
        conn.close();

        const Json report = kombu_consume(Json{
            {"url", redis_url()}, {"queues", Json::array({kombu_queue("k.props")})}, {"count", 1}});
        REQUIRE(report.size() == 1);
        CHECK(report[0]["properties"] == Json{{"correlation_id", "corr-1"},
                                              {"reply_to", "reply.q"},
                                              {"message_id", "mid-1"},
                                              {"timestamp", 1700000000},
                                              {"type", "mytype"},
                                              {"app_id", "myapp"},
                                              {"user_id", "guest"},
                                              {"delivery_mode", 1},
                                              {"priority", 4}});
        CHECK(report[0]["decoded"]["json_text"] == "{\"n\": 1}");
    }

    TEST_CASE("binary and text bodies arrive byte for byte") {
        RedisProbe probe;
        probe.flush();
        const std::string raw = "\x00\x01\xff\xfe raw \x80\xc3\x28\x00"s;  // not UTF-8, NULs
        const std::string text = "caf\xC3\xA9 text";
        kelp::Connection conn{redis_url()};
        conn.maybe_declare(kelp::Queue{"k.bin"});
        kelp::Producer producer{conn};
        producer.publish(raw, {.routing_key = "k.bin"});
        producer.publish(raw, {.routing_key = "k.bin", .content_type = "application/octet-stream"});
        producer.publish(text, {.routing_key = "k.bin", .content_type = "text/plain"});
        conn.close();

        const Json report = kombu_consume(Json{
            {"url", redis_url()}, {"queues", Json::array({kombu_queue("k.bin")})}, {"count", 3}});
        REQUIRE(report.size() == 3);
        CHECK(body_of(report[0]) == raw);
        CHECK(report[0]["content_type"] == "application/data");
        CHECK(report[0]["content_encoding"] == "binary");
        CHECK(base64_decode(report[0]["decoded"]["bytes_b64"].get<std::string>()) == raw);
        CHECK(body_of(report[1]) == raw);
        CHECK(report[1]["content_type"] == "application/octet-stream");
        CHECK(report[1]["content_encoding"] == "binary");
        CHECK(base64_decode(report[1]["decoded"]["bytes_b64"].get<std::string>()) == raw);
        CHECK(body_of(report[2]) == text);
        CHECK(report[2]["content_type"] == "text/plain");
        CHECK(report[2]["content_encoding"] == "utf-8");
        CHECK(report[2]["decoded"]["text"] == text);
    }

    TEST_CASE("compressed bodies: Kombu decompresses zlib, bz2 and lzma") {
        RedisProbe probe;
        probe.flush();
        Json value = {{"text", ""}, {"numbers", Json::array()}};
        for (int i = 0; i < 50; ++i) {
            value["text"] = value["text"].get<std::string>() + "caf\xC3\xA9 \xE2\x98\x83 ";
            value["numbers"].push_back(i);
        }
        const std::string raw = "\x00\x01\xff compressible \x00 bytes \xfe"s;
        const std::vector<std::pair<std::string, std::string>> methods{
            {"zlib", "application/x-gzip"},
            {"bz2", "application/x-bz2"},
            {"lzma", "application/x-lzma"}};
        kelp::Connection conn{redis_url()};
        conn.maybe_declare(kelp::Queue{"k.zip"});
        kelp::Producer producer{conn};
        for (const auto& [method, mime] : methods) {
            REQUIRE_MESSAGE(kelp::compression_available(method),
                            method << " missing from this build");
            producer.publish(value, {.routing_key = "k.zip", .compression = method});
        }
        producer.publish(raw, {.routing_key = "k.zip", .compression = "zlib"});
        conn.close();

        const Json report = kombu_consume(Json{
            {"url", redis_url()}, {"queues", Json::array({kombu_queue("k.zip")})}, {"count", 4}});
        REQUIRE(report.size() == 4);
        for (std::size_t i = 0; i < methods.size(); ++i) {
            INFO("compression " << methods[i].first);
            // Kombu's message.body is already decompressed: kelp's JSON bytes.
            CHECK(body_of(report[i]) == kelp::encode(value).body);
            CHECK(report[i]["decoded"]["json_text"].get<std::string>() == kelp::dump_json(value));
            CHECK(kelp::parse_json(report[i]["headers_json"].get<std::string>()) ==
                  Json{{"compression", methods[i].second}});
        }
        CHECK(body_of(report[3]) == raw);
        CHECK(base64_decode(report[3]["decoded"]["bytes_b64"].get<std::string>()) == raw);
    }
}
