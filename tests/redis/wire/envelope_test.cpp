// The Redis envelope: Kombu's exact bytes (the reference's captures), what
// Kombu and Celery write read back, Python's JSON dialect, round trips.
#include <chrono>
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "kelp/serialization.hpp"
#include "support.hpp"
#include "wire/envelope.hpp"

using namespace std::chrono_literals;
using kelp::Envelope;
using kelp::Json;
using kelp::redis::BodyEncoding;
using kelp::redis::decode_message;
using kelp::redis::DecodedMessage;
using kelp::redis::DeliveryFields;
using kelp::redis::encode_message;
using wire_test::contains;
using wire_test::error_of;

namespace {

Envelope json_envelope(const Json& value) {
    const auto encoded = kelp::encode(value);
    Envelope e;
    e.body = encoded.body;
    e.properties.content_type = encoded.content_type;
    e.properties.content_encoding = encoded.content_encoding;
    return e;
}

// decode(encode(m)) gives m back (the priority property mirrors the field).
void check_round_trip(Envelope envelope, const DeliveryFields& delivery,
                      BodyEncoding body_encoding = BodyEncoding::base64) {
    const std::string text = encode_message(envelope, delivery, body_encoding);
    INFO("encoded: " << text);
    const DecodedMessage back = decode_message(text);
    envelope.properties.priority = static_cast<std::uint8_t>(delivery.priority);
    if (envelope.headers.is_object() && envelope.headers.empty()) envelope.headers = nullptr;
    if (delivery.redelivered && !envelope.headers.contains("redelivered"))
        envelope.headers["redelivered"] = true;
    CHECK(back.envelope == envelope);
    CHECK(back.delivery.exchange == delivery.exchange);
    CHECK(back.delivery.routing_key == delivery.routing_key);
    CHECK(back.delivery.delivery_tag == delivery.delivery_tag);
    CHECK(back.delivery.priority == delivery.priority);
    CHECK(back.delivery.redelivered == delivery.redelivered);
    CHECK(back.delivery.extra_properties == delivery.extra_properties);
    // And the same bytes again.
    CHECK(encode_message(back.envelope, back.delivery, body_encoding) ==
          encode_message(envelope, delivery, body_encoding));
}

// §1.2: an exact stored value.
constexpr std::string_view kStoredExample =
    R"({"body": "eyJhIjogMSwgInR4dCI6ICJjYWZcdTAwZTkifQ==", "content-encoding": "utf-8", )"
    R"("content-type": "application/json", "headers": {"h": "v"}, "properties": )"
    R"({"delivery_mode": 2, "delivery_info": {"exchange": "myex", "routing_key": "my.key"}, )"
    R"("priority": 4, "body_encoding": "base64", "delivery_tag": )"
    R"("df157af3-eb0a-4907-9a8b-ac3af53c3e5b"}})";

// §3.2: Celery 5.2.6 send_task, captured from Redis.
constexpr std::string_view kCeleryTask =
    R"({"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", )"
    R"("content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", )"
    R"("task": "wiretasks.add", "id": "d7322e00-9a55-4363-be1e-96b941e22e4c", "shadow": null, )"
    R"("eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, )"
    R"("timelimit": [null, null], "root_id": "d7322e00-9a55-4363-be1e-96b941e22e4c", )"
    R"("parent_id": null, "argsrepr": "[2, 3]", "kwargsrepr": "{}", "origin": "gen10519@vm", )"
    R"("ignore_result": false}, "properties": {"correlation_id": )"
    R"("d7322e00-9a55-4363-be1e-96b941e22e4c", "reply_to": "7f3b45fe-60d8-3a0a-84a7-2c89341ce310", )"
    R"("delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, )"
    R"("priority": 0, "body_encoding": "base64", "delivery_tag": )"
    R"("f6a5b72b-adfb-4972-94c0-03dd0a373877"}})";

}  // namespace

TEST_SUITE("envelope") {
    TEST_CASE("writes the reference's stored envelope byte for byte") {
        Envelope e = json_envelope(Json{{"a", 1}, {"txt", "caf\xC3\xA9"}});
        e.headers = Json{{"h", "v"}};
        const std::string text =
            encode_message(e, {.exchange = "myex",
                               .routing_key = "my.key",
                               .delivery_tag = "df157af3-eb0a-4907-9a8b-ac3af53c3e5b",
                               .priority = 4});
        CHECK(text == kStoredExample);
    }

    TEST_CASE("writes every property in Kombu's order") {
        Envelope e = json_envelope(Json{{"hello", "world"}});
        e.headers = Json{{"num", 5}, {"x-custom", "v"}};
        e.properties.correlation_id = "corr-1";
        e.properties.reply_to = "reply.q";
        e.properties.message_id = "mid-1";
        e.properties.timestamp = 1700000000;
        e.properties.type = "mytype";
        e.properties.app_id = "myapp";
        e.properties.user_id = "guest";
        e.properties.expiration = 30000ms;
        const std::string text =
            encode_message(e, {.exchange = "ex_direct",
                               .routing_key = "rk1",
                               .delivery_tag = "ea41a7ad-7a5c-4f5b-a9ad-0956a48c8753"});
        // The reference's observed properties (§1.2); headers come out sorted.
        CHECK(text ==
              R"({"body": "eyJoZWxsbyI6ICJ3b3JsZCJ9", "content-encoding": "utf-8", )"
              R"("content-type": "application/json", "headers": {"num": 5, "x-custom": "v"}, )"
              R"("properties": {"correlation_id": "corr-1", "reply_to": "reply.q", )"
              R"("message_id": "mid-1", "timestamp": 1700000000, "type": "mytype", )"
              R"("app_id": "myapp", "user_id": "guest", "delivery_mode": 2, "expiration": )"
              R"("30000", "delivery_info": {"exchange": "ex_direct", "routing_key": "rk1"}, )"
              R"("priority": 0, "body_encoding": "base64", "delivery_tag": )"
              R"("ea41a7ad-7a5c-4f5b-a9ad-0956a48c8753"}})");
    }

    TEST_CASE("writes raw bytes, text and transient messages as Kombu does (§1.2 captures)") {
        Envelope raw;
        raw.body = std::string("\x00\x01\xff raw", 7);
        raw.properties.content_type = "application/data";
        raw.properties.content_encoding = "binary";
        const std::string tag = "818b96ca-6f53-4e67-82ac-0123a0496459";
        CHECK(encode_message(raw, {.routing_key = "q_plain", .delivery_tag = tag}) ==
              R"({"body": "AAH/IHJhdw==", "content-encoding": "binary", "content-type": )"
              R"("application/data", "headers": {}, "properties": {"delivery_mode": 2, )"
              R"("delivery_info": {"exchange": "", "routing_key": "q_plain"}, "priority": 0, )"
              R"("body_encoding": "base64", "delivery_tag": )"
              R"("818b96ca-6f53-4e67-82ac-0123a0496459"}})");
        Envelope transient = json_envelope(Json{{"transient", true}});
        transient.properties.delivery_mode = kelp::DeliveryMode::transient;
        const std::string text = encode_message(
            transient,
            {.routing_key = "q_plain", .delivery_tag = "b271aa85-5559-4bd3-b03b-5900324f6987"});
        CHECK(text == R"({"body": "eyJ0cmFuc2llbnQiOiB0cnVlfQ==", "content-encoding": "utf-8", )"
                      R"("content-type": "application/json", "headers": {}, "properties": )"
                      R"({"delivery_mode": 1, "delivery_info": {"exchange": "", "routing_key": )"
                      R"("q_plain"}, "priority": 0, "body_encoding": "base64", "delivery_tag": )"
                      R"("b271aa85-5559-4bd3-b03b-5900324f6987"}})");
    }

    TEST_CASE("reads the reference's stored envelope") {
        const DecodedMessage m = decode_message(kStoredExample);
        CHECK(m.envelope.body == R"({"a": 1, "txt": "caf\u00e9"})");
        CHECK(m.envelope.properties.content_type == "application/json");
        CHECK(m.envelope.properties.content_encoding == "utf-8");
        CHECK(m.envelope.headers == Json{{"h", "v"}});
        CHECK(m.envelope.properties.priority == 4);
        CHECK(m.envelope.properties.delivery_mode == kelp::DeliveryMode::persistent);
        CHECK(m.delivery.exchange == "myex");
        CHECK(m.delivery.routing_key == "my.key");
        CHECK(m.delivery.delivery_tag == "df157af3-eb0a-4907-9a8b-ac3af53c3e5b");
        CHECK(m.delivery.priority == 4);
        CHECK_FALSE(m.delivery.redelivered);
        CHECK(m.delivery.extra_properties.is_null());
        CHECK(encode_message(m.envelope, m.delivery) == kStoredExample);
    }

    TEST_CASE("reads Celery's task message, its body a 3-array") {
        const DecodedMessage m = decode_message(kCeleryTask);
        CHECK(m.envelope.headers["task"] == "wiretasks.add");
        CHECK(m.envelope.headers["id"] == "d7322e00-9a55-4363-be1e-96b941e22e4c");
        CHECK(m.envelope.headers["timelimit"] == Json::array({nullptr, nullptr}));
        CHECK(m.envelope.headers["ignore_result"] == false);
        CHECK(m.envelope.properties.correlation_id == "d7322e00-9a55-4363-be1e-96b941e22e4c");
        CHECK(m.envelope.properties.reply_to == "7f3b45fe-60d8-3a0a-84a7-2c89341ce310");
        CHECK(m.delivery.exchange.empty());
        CHECK(m.delivery.routing_key == "celery");
        CHECK(
            m.envelope.body ==
            R"([[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])");
        const Json body = kelp::decode(m.envelope.body, m.envelope.properties.content_type,
                                       m.envelope.properties.content_encoding);
        CHECK(body.size() == 3);
    }

    TEST_CASE("reads the hand-built envelope a real Celery worker ran (§3.5)") {
        const DecodedMessage m = decode_message(
            R"({"body":"W1syLDNdLHt9LHt9XQ==","content-encoding":"utf-8","content-type":)"
            R"("application/json","headers":{"lang":"py","task":"wiretasks.add","id":)"
            R"("c0000000-0000-0000-0000-000000000001"},"properties":{"correlation_id":)"
            R"("c0000000-0000-0000-0000-000000000001","delivery_info":{"exchange":"",)"
            R"("routing_key":"celery"},"delivery_tag":"t-1","body_encoding":"base64"}})");
        CHECK(m.envelope.body == "[[2,3],{},{}]");
        CHECK(m.delivery.delivery_tag == "t-1");
        // No priority in the JSON: none in the envelope, Kombu's 0 for the bucket.
        CHECK_FALSE(m.envelope.properties.priority.has_value());
        CHECK(m.delivery.priority == 0);
    }

    TEST_CASE("reads a body without body_encoding as plain text, and raw UTF-8") {
        const DecodedMessage m = decode_message(
            "{\"body\": \"{\\\"h\\u00e9\\\": \\\"caf\xC3\xA9\\\"}\", \"content-type\": "
            "\"application/json\", \"content-encoding\": \"utf-8\", \"properties\": "
            "{\"delivery_tag\": \"t\", \"delivery_info\": {\"exchange\": \"\", \"routing_key\": "
            "\"q\"}}}");
        CHECK(m.envelope.body == "{\"h\xC3\xA9\": \"caf\xC3\xA9\"}");
        CHECK(m.envelope.headers.is_null());
        // body_encoding null is the same as absent (Kombu writes null for None).
        CHECK(decode_message(R"({"body": "plain", "properties": {"body_encoding": null, )"
                             R"("delivery_tag": "t", "delivery_info": {"exchange": "", )"
                             R"("routing_key": "q"}}})")
                  .envelope.body == "plain");
    }

    TEST_CASE("a missing, null or empty body is an empty body, whatever body_encoding says") {
        for (const char* body : {"", R"("body": null, )", R"("body": "", )"}) {
            const std::string text =
                std::string("{") + body +
                R"("properties": {"body_encoding": "rot13", "delivery_tag": )"
                R"("t", "delivery_info": {"exchange": "", "routing_key": "q"}}})";
            INFO(text);
            CHECK(decode_message(text).envelope.body.empty());
        }
    }

    TEST_CASE("reads JSON as Python writes it: NaN, Infinity, big integers, surrogate pairs") {
        const DecodedMessage m = decode_message(
            R"({"body": "", "headers": {"nan": NaN, "inf": Infinity, "ninf": -Infinity, )"
            R"("big": 1180591620717411303424, "neg": -1180591620717411303424, "emoji": )"
            R"("\ud83d\ude00", "e": "caf\u00e9", "max": 18446744073709551615}, "properties": )"
            R"({"delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}}})");
        const Json& h = m.envelope.headers;
        CHECK(std::isnan(h["nan"].get<double>()));
        CHECK(h["inf"].get<double>() == HUGE_VAL);
        CHECK(h["ninf"].get<double>() == -HUGE_VAL);
        // Beyond 64 bits: the nearest double, as kelp::parse_json reads it.
        CHECK(h["big"].get<double>() == doctest::Approx(1.180591620717411303424e21));
        CHECK(h["neg"].get<double>() == doctest::Approx(-1.180591620717411303424e21));
        CHECK(h["max"].get<std::uint64_t>() == 18446744073709551615ULL);
        CHECK(h["emoji"] == "\xF0\x9F\x98\x80");
        CHECK(h["e"] == "caf\xC3\xA9");
        // Written back the way Python writes them.
        const std::string again = encode_message(m.envelope, m.delivery);
        CHECK(contains(again, R"("emoji": "\ud83d\ude00")"));
        CHECK(contains(again, R"("inf": Infinity)"));
        CHECK(contains(again, R"("nan": NaN)"));
        CHECK(contains(again, R"("ninf": -Infinity)"));
    }

    TEST_CASE("invalid UTF-8 in the envelope becomes U+FFFD, as Kombu's errors='replace'") {
        // A stray continuation byte, a truncated sequence and an overlong form.
        const std::string text =
            "{\"body\": \"\", \"headers\": {\"a\": \"x\x80y\", \"b\": \"\xE2\x82\", \"c\": "
            "\"\xC0\xAF\"}, \"properties\": {\"delivery_tag\": \"t\xFF\", \"delivery_info\": "
            "{\"exchange\": \"\", \"routing_key\": \"q\"}}}";
        const DecodedMessage m = decode_message(text);
        CHECK(m.envelope.headers["a"] == "x\xEF\xBF\xBDy");
        CHECK(m.envelope.headers["b"] == "\xEF\xBF\xBD");
        CHECK(m.envelope.headers["c"] == "\xEF\xBF\xBD\xEF\xBF\xBD");
        CHECK(m.delivery.delivery_tag == "t\xEF\xBF\xBD");
    }

    TEST_CASE("key order and layout do not matter when reading") {
        const DecodedMessage m = decode_message(
            "\n {\"properties\":{\"delivery_info\":{\"routing_key\":\"q\",\"exchange\":\"x\"},"
            "\"priority\":9,\"delivery_tag\":\"t\"},\"headers\":{},\"content-type\":null,"
            "\"body\":\"YQ==\",\"body_encoding\":\"ignored at top level\"}\t");
        // body_encoding belongs in properties; at the top level it means nothing.
        CHECK(m.envelope.body == "YQ==");
        CHECK(m.envelope.properties.content_type.empty());
        CHECK(m.envelope.headers.is_null());
        CHECK(m.delivery.exchange == "x");
        CHECK(m.delivery.priority == 9);
    }

    TEST_CASE("priority is read with Kombu's rule: int(), clamped to 0..9, else 0") {
        const auto priority_of = [](std::string_view value) {
            return decode_message(std::string(R"({"properties": {"priority": )") +
                                  std::string(value) +
                                  R"(, "delivery_tag": "t", "delivery_info": {"exchange": "", )"
                                  R"("routing_key": "q"}}})")
                .delivery.priority;
        };
        CHECK(priority_of("5") == 5);
        CHECK(priority_of("15") == 9);
        CHECK(priority_of("-3") == 0);
        CHECK(priority_of("5.9") == 5);
        CHECK(priority_of("true") == 1);
        CHECK(priority_of("\"7\"") == 7);
        CHECK(priority_of("\" +8 \"") == 8);
        CHECK(priority_of("\"1_0\"") == 9);
        CHECK(priority_of("\"7.0\"") == 0);
        CHECK(priority_of("\"high\"") == 0);
        CHECK(priority_of("null") == 0);
        CHECK(priority_of("[5]") == 0);
        CHECK(priority_of("NaN") == 0);
        CHECK(priority_of("Infinity") == 0);
        CHECK(priority_of("1180591620717411303424") == 9);
        CHECK(priority_of("18446744073709551615") == 9);
    }

    TEST_CASE("redelivered: delivery_info.redelivered and headers.redelivered, as Kombu restores") {
        Envelope e = json_envelope(Json{{"n", 0}});
        e.headers = Json{{"h", 1}};
        const DeliveryFields d{.exchange = "ex_c",
                               .routing_key = "k",
                               .delivery_tag = "5b3e58ef-a035-487f-96b9-e401cb897fc8",
                               .redelivered = true};
        const std::string text = encode_message(e, d);
        CHECK(contains(text, R"("headers": {"h": 1, "redelivered": true})"));
        CHECK(contains(
            text,
            R"("delivery_info": {"exchange": "ex_c", "routing_key": "k", "redelivered": true})"));
        Envelope bare = json_envelope(Json{{"n", 0}});
        CHECK(contains(encode_message(bare, d), R"("headers": {"redelivered": true})"));
        const DecodedMessage m = decode_message(text);
        CHECK(m.delivery.redelivered);
        CHECK(m.envelope.headers["redelivered"] == true);
        // Written once even when the header is already there.
        CHECK(encode_message(m.envelope, m.delivery) == text);
        // In sorted place like any header, so re-encoding gives the same bytes
        // (found by the fuzzer: a header after "redelivered" moved).
        Envelope later = json_envelope(Json{{"n", 0}});
        later.headers = Json{{"h", "v"}, {"task", "t"}};
        const std::string first = encode_message(later, d);
        CHECK(contains(first, R"("headers": {"h": "v", "redelivered": true, "task": "t"})"));
        const DecodedMessage again = decode_message(first);
        CHECK(encode_message(again.envelope, again.delivery) == first);
        // Python's truth value, as Kombu tests it.
        const auto redelivered = [](std::string_view value) {
            return decode_message(std::string(R"({"properties": {"delivery_tag": "t", )"
                                              R"("delivery_info": {"exchange": "", )"
                                              R"("routing_key": "q", "redelivered": )") +
                                  std::string(value) + "}}}")
                .delivery.redelivered;
        };
        CHECK(redelivered("1"));
        CHECK(redelivered("\"yes\""));
        CHECK_FALSE(redelivered("0"));
        CHECK_FALSE(redelivered("null"));
        CHECK_FALSE(redelivered("\"\""));
        CHECK_FALSE(redelivered("false"));
    }

    TEST_CASE("properties kelp cannot type are kept and written back") {
        const std::string text =
            R"({"body": "", "content-encoding": null, "content-type": null, "headers": {}, )"
            R"("properties": {"correlation_id": "", "timestamp": 1700000000.25, "reply_to": null, )"
            R"("origin": "gen1@host", "replaced_task_nesting": 0, "delivery_mode": 3, )"
            R"("expiration": 5, "delivery_info": {"exchange": "", "routing_key": "q"}, )"
            R"("priority": 0, "body_encoding": "base64", "delivery_tag": "t"}})";
        const DecodedMessage m = decode_message(text);
        const Json& extra = m.delivery.extra_properties;
        CHECK(extra["correlation_id"] == "");
        CHECK(extra["timestamp"] == 1700000000.25);
        CHECK(extra["reply_to"].is_null());
        CHECK(extra["origin"] == "gen1@host");
        CHECK(extra["replaced_task_nesting"] == 0);
        CHECK(extra["delivery_mode"] == 3);
        CHECK(extra["expiration"] == 5);
        CHECK(extra.size() == 7);
        CHECK_FALSE(m.envelope.properties.timestamp.has_value());
        // Typed fields first in Kombu's order, the others after them.
        CHECK(encode_message(m.envelope, m.delivery) ==
              R"({"body": "", "content-encoding": null, "content-type": null, "headers": {}, )"
              R"("properties": {"correlation_id": "", "reply_to": null, "timestamp": )"
              R"(1700000000.25, "origin": "gen1@host", "replaced_task_nesting": 0, )"
              R"("delivery_mode": 3, "expiration": 5, "delivery_info": {"exchange": "", )"
              R"("routing_key": "q"}, "priority": 0, "body_encoding": "base64", )"
              R"("delivery_tag": "t"}})");
    }

    TEST_CASE("typed properties read into their fields") {
        const DecodedMessage m = decode_message(
            R"({"properties": {"correlation_id": "c", "reply_to": "r", "message_id": "m", )"
            R"("timestamp": -5, "type": "t", "app_id": "a", "user_id": "u", )"
            R"("delivery_mode": 1, "expiration": "250", "delivery_tag": "tag", )"
            R"("delivery_info": {"exchange": "", "routing_key": "q"}}})");
        const kelp::Properties& p = m.envelope.properties;
        CHECK(p.correlation_id == "c");
        CHECK(p.reply_to == "r");
        CHECK(p.message_id == "m");
        CHECK(p.timestamp == -5);
        CHECK(p.type == "t");
        CHECK(p.app_id == "a");
        CHECK(p.user_id == "u");
        CHECK(p.delivery_mode == kelp::DeliveryMode::transient);
        CHECK(p.expiration == 250ms);
        CHECK(m.delivery.extra_properties.is_null());
    }

    TEST_CASE("round trips") {
        Envelope e = json_envelope(Json{{"k", Json::array({1, 2.5, nullptr})}});
        check_round_trip(e, {.exchange = "ex", .routing_key = "rk", .delivery_tag = "t1"});

        e.headers = Json{{"compression", "application/x-gzip"},
                         {"nested", {{"a", Json::array({true, false})}}},
                         {"uni", "\xE2\x98\x83 \xF0\x9F\x98\x80"}};
        e.properties.priority = 7;
        e.properties.correlation_id = "c-1";
        e.properties.expiration = 0ms;
        e.properties.timestamp = 0;
        check_round_trip(e, {.exchange = "ex",
                             .routing_key = "a.b",
                             .delivery_tag = kelp::redis::new_delivery_tag(),
                             .priority = 7,
                             .redelivered = true,
                             .extra_properties = Json{{"origin", "x"}, {"type", 5}}});

        Envelope binary;
        for (int i = 0; i < 256; ++i)
            binary.body += static_cast<char>(i);
        binary.properties.content_type = "application/data";
        binary.properties.content_encoding = "binary";
        check_round_trip(binary, {.routing_key = "q", .delivery_tag = "t2", .priority = 9});

        Envelope text;
        text.body = "caf\xC3\xA9 \"quoted\" \\ \n\t\x01";
        text.properties.content_type = "text/plain";
        text.properties.content_encoding = "utf-8";
        check_round_trip(text, {.routing_key = "q", .delivery_tag = "t3"}, BodyEncoding::none);
        check_round_trip(Envelope{}, {.routing_key = "q", .delivery_tag = "t4"});
    }

    TEST_CASE("body_encoding none writes the body as a JSON string, as Kombu with None") {
        Envelope text;
        text.body = "caf\xC3\xA9";
        text.properties.content_type = "text/plain";
        text.properties.content_encoding = "utf-8";
        const std::string out =
            encode_message(text, {.routing_key = "q", .delivery_tag = "t"}, BodyEncoding::none);
        CHECK(out.starts_with(R"({"body": "caf\u00e9", )"));
        CHECK(contains(out, R"("body_encoding": null)"));
    }

    TEST_CASE("encode refuses what JSON or Kombu cannot carry, and says what to do") {
        const DeliveryFields d{.routing_key = "q", .delivery_tag = "t"};
        Envelope bytes;
        bytes.body = "\xFF\xFE";
        CHECK(contains(
            error_of<kelp::Error>([&] { (void)encode_message(bytes, d, BodyEncoding::none); }),
            "use body_encoding=base64"));
        CHECK(encode_message(bytes, d).starts_with(R"({"body": "//4=")"));

        DeliveryFields bad_key = d;
        bad_key.routing_key = "q\xFF";
        CHECK(contains(error_of<kelp::Error>([&] { (void)encode_message(Envelope{}, bad_key); }),
                       "not valid UTF-8"));

        Envelope list_headers;
        list_headers.headers = Json::array({1});
        CHECK(contains(error_of<kelp::Error>([&] { (void)encode_message(list_headers, d); }),
                       "headers must be a JSON object (or null), not array"));

        Envelope expired;
        expired.properties.expiration = -1ms;
        CHECK(contains(error_of<kelp::Error>([&] { (void)encode_message(expired, d); }),
                       "expiration is negative"));

        DeliveryFields owned = d;
        owned.extra_properties = Json{{"delivery_tag", "x"}};
        CHECK(contains(error_of<kelp::Error>([&] { (void)encode_message(Envelope{}, owned); }),
                       "set the DeliveryFields member instead"));
        owned.extra_properties = Json::array();
        CHECK(contains(error_of<kelp::Error>([&] { (void)encode_message(Envelope{}, owned); }),
                       "must be a JSON object or null"));
    }
}
