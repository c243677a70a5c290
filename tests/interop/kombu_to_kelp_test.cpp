// Python Kombu publishes, kelp consumes, on a real Redis server: what kelp
// receives must be what Kombu sent (kombu_peer.py publishes exactly the
// spec given here).
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include <doctest/doctest.h>

#include "support.hpp"
#include "wire/base64.hpp"

using namespace interop;
using kelp::Json;
using kelp::redis::base64_encode;
using namespace std::string_literals;

namespace {

// One message for kombu_peer.py publish.
Json kombu_message(std::string_view routing_key, Json body, Json options = Json::object()) {
    options["routing_key"] = routing_key;
    options["body"] = std::move(body);
    return options;
}

Json text_body(std::string_view text) {
    return Json{{"text", text}};
}

Json bytes_body(std::string_view bytes) {
    return Json{{"bytes_b64", base64_encode(bytes)}};
}

std::string payload_bytes(const Json& payload) {
    const auto& bytes = payload.get_binary();
    return std::string(bytes.begin(), bytes.end());
}

// "queue: body, ..." for failure messages.
std::string describe(const std::vector<Received>& received) {
    std::string out;
    for (const auto& message : received)
        out += message.queue + ": " + message.envelope.body + ", ";
    return out;
}

}  // namespace

TEST_SUITE("kombu_to_kelp") {
    TEST_CASE("direct, topic and fanout exchanges reach kelp's queues") {
        RedisProbe probe;
        probe.flush();
        // A Kombu publisher's fanout is a PUBLISH only: kelp's fanout queues
        // get it with fanout_mode=pubsub (with the default, lists, they wait
        // for messages pushed by kelp publishers).
        kelp::Connection conn{redis_url("fanout_mode=pubsub")};
        const kelp::Exchange direct{"x.direct", kelp::ExchangeType::direct};
        const kelp::Exchange topic{"x.topic", kelp::ExchangeType::topic};
        const kelp::Exchange fanout{"x.fanout", kelp::ExchangeType::fanout};
        // kelp owns the queues and bindings and consumes before Kombu
        // publishes (a fanout message reaches only who listens).
        KelpConsumer kelp_side(
            conn,
            {kelp::Queue{"q.direct", direct, "rk.a"}, kelp::Queue{"q.topic", topic, "logs.*.error"},
             kelp::Queue{"q.fan1", fanout, ""}, kelp::Queue{"q.fan2", fanout, ""}});
        kombu_publish(Json{
            {"url", redis_url()},
            {"messages",
             Json::array({
                 kombu_message("rk.a", text_body("to direct"), {{"exchange", "x.direct"}}),
                 kombu_message("rk.b", text_body("direct, other key"), {{"exchange", "x.direct"}}),
                 kombu_message("logs.db.error", text_body("to topic"),
                               {{"exchange", "x.topic"}, {"type", "topic"}}),
                 kombu_message("logs.db.info", text_body("topic, no match"),
                               {{"exchange", "x.topic"}, {"type", "topic"}}),
                 kombu_message("", text_body("to fanout"),
                               {{"exchange", "x.fanout"}, {"type", "fanout"}}),
             })}});

        const auto& received = kelp_side.collect(4, 10s, 500ms);
        std::multiset<std::pair<std::string, std::string>> got;
        for (const auto& message : received) {
            got.emplace(message.queue, message.envelope.body);
            CHECK(message.exchange == (message.queue == "q.direct"  ? "x.direct"
                                       : message.queue == "q.topic" ? "x.topic"
                                                                    : "x.fanout"));
            CHECK(message.routing_key == (message.queue == "q.direct"  ? "rk.a"
                                          : message.queue == "q.topic" ? "logs.db.error"
                                                                       : ""));
            CHECK(message.envelope.properties.content_type == "text/plain");
            CHECK_FALSE(message.redelivered);
        }
        INFO("kelp received " << describe(received));
        const std::multiset<std::pair<std::string, std::string>> expected{{"q.direct", "to direct"},
                                                                          {"q.topic", "to topic"},
                                                                          {"q.fan1", "to fanout"},
                                                                          {"q.fan2", "to fanout"}};
        CHECK(got == expected);
    }

    TEST_CASE("priorities: kelp serves the highest bucket first, or Kombu's order when asked") {
        RedisProbe probe;
        probe.flush();
        Json messages = Json::array();
        for (const std::string queue : {"q.pri.kelp", "q.pri.kombu"}) {
            for (const int priority : {9, 0, 5, 3, 6, 1}) {
                messages.push_back(kombu_message(queue, text_body("p" + std::to_string(priority)),
                                                 {{"priority", priority}}));
            }
        }
        kombu_publish(Json{{"url", redis_url()}, {"messages", messages}});

        const auto order_of = [](const std::string& url, const std::string& queue) {
            kelp::Connection conn{url};
            KelpConsumer kelp_side(conn, {kelp::Queue{queue}});
            std::vector<std::string> order;
            for (const auto& message : kelp_side.collect(6)) {
                order.push_back(message.envelope.body);
                // Kombu always writes a priority, 0 by default: kelp reads 0
                // as "none given".
                CHECK(message.envelope.properties.priority.value_or(0) ==
                      std::stoi(message.envelope.body.substr(1)));
            }
            return order;
        };
        // Kombu's buckets 0-2, 3-5, 6-8, 9, FIFO inside one.
        CHECK(order_of(redis_url(), "q.pri.kelp") ==
              std::vector<std::string>{"p9", "p6", "p5", "p3", "p0", "p1"});
        CHECK(order_of(redis_url("priority_order=lower_first"), "q.pri.kombu") ==
              std::vector<std::string>{"p0", "p1", "p5", "p3", "p6", "p9"});
    }

    TEST_CASE("headers and JSON bodies of every JSON type arrive with their values") {
        RedisProbe probe;
        probe.flush();
        // What Kombu sends ({"$int": ...} is a Python int beyond 64 bits)...
        Json sent = {
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
            {"infinity", std::numeric_limits<double>::infinity()},
            {"nan", std::numeric_limits<double>::quiet_NaN()},
            {"text", "caf\xC3\xA9 \xE2\x98\x83 \xF0\x9F\x98\x80"},
            {"controls", "tab\tline\nnul\0quote\"backslash\\"s},
            {"list", Json::array({1, "a", nullptr, Json::array({true, Json::object()})})},
            {"object", {{"nested", {{"deeper", Json::array({1.25, {{"k", "v"}}})}}}}},
        };
        Json expected = sent;
        // ...and integers beyond 64 bits, which kelp reads as the nearest
        // double (exact for these powers of two).
        sent["two_to_64"] = big_int("18446744073709551616");
        expected["two_to_64"] = 18446744073709551616.0;
        sent["minus_two_to_70"] = big_int("-1180591620717411303424");
        expected["minus_two_to_70"] = -1180591620717411303424.0;
        sent["nested_big"] = Json::array({big_int("1180591620717411303424")});
        expected["nested_big"] = Json::array({1180591620717411303424.0});

        kelp::Connection conn{redis_url()};
        kombu_publish(Json{{"url", redis_url()},
                           {"messages", Json::array({kombu_message(
                                            "q.json", {{"json", sent}},
                                            {{"headers", sent}, {"serializer", "json"}})})}});
        KelpConsumer kelp_side(conn, {kelp::Queue{"q.json"}});
        const auto& received = kelp_side.collect(1);
        REQUIRE(received.size() == 1);
        // Compared as text: NaN never equals itself, and the text tells an
        // int (1) from a float (1.0).
        CHECK(kelp::dump_json(received[0].envelope.headers) == kelp::dump_json(expected));
        CHECK(kelp::dump_json(received[0].payload) == kelp::dump_json(expected));
        CHECK(received[0].envelope.properties.content_type == "application/json");
        CHECK(received[0].envelope.properties.content_encoding == "utf-8");
    }

    TEST_CASE("properties arrive as kelp's message properties") {
        RedisProbe probe;
        probe.flush();
        kombu_publish(
            Json{{"url", redis_url()},
                 {"messages", Json::array({kombu_message("q.props", {{"json", {{"n", 1}}}},
                                                         {{"priority", 4},
                                                          {"expiration", 30},
                                                          {"delivery_mode", 1},
                                                          {"properties",
                                                           {{"correlation_id", "corr-1"},
                                                            {"reply_to", "reply.q"},
                                                            {"message_id", "mid-1"},
                                                            {"timestamp", 1700000000},
                                                            {"type", "mytype"},
                                                            {"app_id", "myapp"},
                                                            {"user_id", "guest"}}}})})}});
        kelp::Connection conn{redis_url()};
        KelpConsumer kelp_side(conn, {kelp::Queue{"q.props"}});
        const auto& received = kelp_side.collect(1);
        REQUIRE(received.size() == 1);
        const kelp::Properties& p = received[0].envelope.properties;
        CHECK(p.correlation_id == "corr-1");
        CHECK(p.reply_to == "reply.q");
        CHECK(p.message_id == "mid-1");
        CHECK(p.timestamp == 1700000000);
        CHECK(p.type == "mytype");
        CHECK(p.app_id == "myapp");
        CHECK(p.user_id == "guest");
        CHECK(p.priority == 4);
        CHECK(p.delivery_mode == kelp::DeliveryMode::transient);
        // Kombu's expiration=30 (seconds) is "30000" (ms) on the wire.
        CHECK(p.expiration == 30000ms);
        CHECK(received[0].payload == Json{{"n", 1}});
    }

    TEST_CASE("binary and text bodies arrive byte for byte") {
        RedisProbe probe;
        probe.flush();
        const std::string raw = "\x00\x01\xff\xfe raw \x80\xc3\x28\x00"s;  // not UTF-8, NULs
        const std::string text = "caf\xC3\xA9 text";
        kombu_publish(
            Json{{"url", redis_url()},
                 {"messages", Json::array({
                                  // Python bytes, no serializer: Kombu's application/data, binary.
                                  kombu_message("q.bin", bytes_body(raw)),
                                  kombu_message("q.bin", bytes_body(raw),
                                                {{"content_type", "application/octet-stream"}}),
                                  kombu_message("q.bin", text_body(text)),
                              })}});
        kelp::Connection conn{redis_url()};
        KelpConsumer kelp_side(
            conn, {kelp::Queue{"q.bin"}},
            {.accept = kelp::AcceptList{"json", "text", "application/octet-stream"}});
        const auto& received = kelp_side.collect(3);
        REQUIRE(received.size() == 3);
        CHECK(received[0].envelope.body == raw);
        CHECK(received[0].envelope.properties.content_type == "application/data");
        CHECK(received[0].envelope.properties.content_encoding == "binary");
        REQUIRE(received[0].payload.is_binary());
        CHECK(payload_bytes(received[0].payload) == raw);
        CHECK(received[1].envelope.body == raw);
        CHECK(received[1].envelope.properties.content_type == "application/octet-stream");
        CHECK(received[1].envelope.properties.content_encoding == "binary");
        REQUIRE(received[1].payload.is_binary());
        CHECK(payload_bytes(received[1].payload) == raw);
        CHECK(received[2].envelope.body == text);
        CHECK(received[2].envelope.properties.content_type == "text/plain");
        CHECK(received[2].envelope.properties.content_encoding == "utf-8");
        CHECK(received[2].payload == text);
    }

    TEST_CASE("compressed bodies: kelp decompresses Kombu's zlib, bzip2 and lzma") {
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
            {"bzip2", "application/x-bz2"},
            {"lzma", "application/x-lzma"}};
        Json messages = Json::array();
        for (const auto& [method, mime] : methods) {
            messages.push_back(kombu_message("q.zip", {{"json", value}},
                                             {{"serializer", "json"}, {"compression", method}}));
        }
        messages.push_back(kombu_message("q.zip", bytes_body(raw), {{"compression", "zlib"}}));
        kombu_publish(Json{{"url", redis_url()}, {"messages", messages}});

        kelp::Connection conn{redis_url()};
        KelpConsumer kelp_side(conn, {kelp::Queue{"q.zip"}});
        const auto& received = kelp_side.collect(4);
        REQUIRE(received.size() == 4);
        for (std::size_t i = 0; i < methods.size(); ++i) {
            INFO("compression " << methods[i].first);
            CHECK(received[i].envelope.headers == Json{{"compression", methods[i].second}});
            CHECK(received[i].payload == value);
        }
        CHECK(received[3].envelope.properties.content_type == "application/data");
        REQUIRE(received[3].payload.is_binary());
        CHECK(payload_bytes(received[3].payload) == raw);
    }
}
