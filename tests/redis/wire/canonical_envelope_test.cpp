// decode_message's fast path (wire/canonical_envelope.hpp) against the JSON
// parser: every envelope must decode the same both ways (or fail with the
// same error), and the fast path must take exactly the canonical ones.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "support.hpp"
#include "wire/canonical_envelope.hpp"
#include "wire/envelope.hpp"

using namespace std::chrono_literals;
using kelp::DeliveryMode;
using kelp::Envelope;
using kelp::Json;
using kelp::redis::BodyEncoding;
using kelp::redis::decode_canonical_message;
using kelp::redis::decode_message;
using kelp::redis::decode_message_parsed;
using kelp::redis::DecodedMessage;
using kelp::redis::DeliveryFields;
using kelp::redis::encode_message;
using wire_test::error_of;

namespace {

void check_same(const DecodedMessage& fast, const DecodedMessage& parsed) {
    CHECK(fast.envelope == parsed.envelope);
    CHECK(fast.delivery.exchange == parsed.delivery.exchange);
    CHECK(fast.delivery.routing_key == parsed.delivery.routing_key);
    CHECK(fast.delivery.delivery_tag == parsed.delivery.delivery_tag);
    CHECK(fast.delivery.priority == parsed.delivery.priority);
    CHECK(fast.delivery.redelivered == parsed.delivery.redelivered);
    CHECK(fast.delivery.extra_properties == parsed.delivery.extra_properties);
}

// The fast path takes `text` and reads what the parser reads.
void check_canonical(std::string_view text) {
    INFO("envelope: " << text);
    const std::optional<DecodedMessage> fast = decode_canonical_message(text);
    REQUIRE(fast.has_value());
    check_same(*fast, decode_message_parsed(text));
    check_same(decode_message(text), decode_message_parsed(text));
}

// The fast path leaves `text` to the parser, and decode_message gives the
// parser's result or its error.
void check_not_canonical(std::string_view text) {
    INFO("envelope: " << text);
    CHECK_FALSE(decode_canonical_message(text).has_value());
    std::optional<DecodedMessage> parsed;
    const std::string parsed_error =
        error_of<kelp::DecodeError>([&] { parsed = decode_message_parsed(text); });
    const std::string error = error_of<kelp::DecodeError>([&] { (void)decode_message(text); });
    CHECK(error == parsed_error);
    if (parsed) check_same(decode_message(text), *parsed);
}

// Kombu's envelope with `properties` (the text between the braces) and the
// other top-level values as given.
std::string kombu_text(std::string_view properties, std::string_view body = R"("aGVsbG8=")",
                       std::string_view headers = "{}") {
    return std::string(R"({"body": )") + std::string(body) +
           R"(, "content-encoding": "utf-8", "content-type": "text/plain", "headers": )" +
           std::string(headers) + R"(, "properties": {)" + std::string(properties) + "}}";
}

constexpr std::string_view kInfo =
    R"("delivery_info": {"exchange": "ex", "routing_key": "rk"}, "delivery_tag": "t-1")";

}  // namespace

TEST_SUITE("redis wire: canonical envelopes") {
    TEST_CASE("every plain message kelp writes takes the fast path and decodes the same") {
        const std::vector<std::string> bodies = {
            "", "hello", std::string("\x00\xff\x10 binary", 10), R"({"seq": 1, "pad": "xxxx"})"};
        std::size_t checked = 0;
        for (const auto& body : bodies) {
            for (const int priority : {-1, 0, 5, 9}) {
                for (const int variant : {0, 1, 2, 3}) {
                    for (const auto encoding : {BodyEncoding::base64, BodyEncoding::none}) {
                        // Binary bodies only travel as base64.
                        if (encoding == BodyEncoding::none && body.size() == 10) continue;
                        Envelope e;
                        e.body = body;
                        DeliveryFields d{.exchange = variant % 2 ? "media" : "",
                                         .routing_key = "video.mp4",
                                         .delivery_tag = "df157af3-eb0a-4907-9a8b-ac3af53c3e5b",
                                         .priority = priority < 0 ? 0 : priority};
                        if (priority >= 0)
                            e.properties.priority = static_cast<std::uint8_t>(priority);
                        if (variant >= 1) {
                            e.properties.content_type = "application/json";
                            e.properties.content_encoding = "utf-8";
                        }
                        if (variant >= 2) {
                            e.properties.correlation_id = "c-1";
                            e.properties.reply_to = "replies";
                            e.properties.message_id = "m-1";
                            e.properties.timestamp = variant == 2 ? 1700000000 : -5;
                            e.properties.type = "job";
                            e.properties.app_id = "kelp";
                            e.properties.user_id = "guest";
                            e.properties.expiration = 30000ms;
                        }
                        if (variant == 3) e.properties.delivery_mode = DeliveryMode::transient;
                        const std::string text = encode_message(e, d, encoding);
                        // A JSON body as a JSON string has escaped quotes.
                        if (encoding == BodyEncoding::none && body.find('"') != std::string::npos) {
                            check_not_canonical(text);
                        } else {
                            check_canonical(text);
                        }
                        ++checked;
                    }
                }
            }
        }
        CHECK(checked == 112);
    }

    TEST_CASE("Kombu's own layouts take the fast path") {
        // As Kombu 5.2.4 writes a publish, and Celery's body_encoding=None text.
        check_canonical(
            R"({"body": "eyJhIjogMSwgInR4dCI6ICJjYWZcdTAwZTkifQ==", "content-encoding": "utf-8", )"
            R"("content-type": "application/json", "headers": {}, "properties": {"delivery_mode": )"
            R"(2, "delivery_info": {"exchange": "myex", "routing_key": "my.key"}, "priority": 4, )"
            R"("body_encoding": "base64", "delivery_tag": "df157af3-eb0a-4907-9a8b-ac3af53c3e5b"}})");
        check_canonical(
            kombu_text(std::string(kInfo) + R"(, "body_encoding": null)", R"("plain text")"));
        check_canonical(kombu_text(kInfo, R"("plain text")"));  // no body_encoding: as it is
        check_canonical(kombu_text(kInfo, R"("")"));
        // Properties in another order, redelivered in delivery_info, null types.
        check_canonical(
            R"({"body": "aGk=", "content-encoding": null, "content-type": null, "headers": {}, )"
            R"("properties": {"delivery_tag": "t", "priority": 12, "body_encoding": "base64", )"
            R"("delivery_info": {"exchange": "", "routing_key": "q", "redelivered": true}}})");
        check_canonical(
            kombu_text(R"("priority": -3, "delivery_info": {"exchange": "e", "routing_key": "r", )"
                       R"("redelivered": false}, "delivery_tag": "t", "body_encoding": "base64")"));
    }

    TEST_CASE("anything else goes to the parser, with the parser's result or error") {
        const std::string info(kInfo);
        // Layouts and strings the fast path does not read.
        check_not_canonical(R"({"body":"aGVsbG8=","content-encoding":"utf-8","content-type":)"
                            R"("text/plain","headers":{},"properties":{"delivery_info":)"
                            R"({"exchange":"ex","routing_key":"rk"},"delivery_tag":"t"}})");
        check_not_canonical(kombu_text(info, "null"));
        check_not_canonical(kombu_text(info, R"("aGVsbG8=")", R"({"h": "v"})"));
        check_not_canonical(kombu_text(info, R"("aGVsbG8=")", R"({"redelivered": true})"));
        check_not_canonical(kombu_text(info + R"(, "type": "caf\u00e9")"));
        check_not_canonical(kombu_text(info + R"(, "type": "a\/b")"));
        check_not_canonical(kombu_text(info + ", \"type\": \"caf\xc3\xa9\""));
        check_not_canonical(kombu_text(info + ", \"type\": \"bad\xff\""));
        check_not_canonical(kombu_text(info + ", \"type\": \"tab\there\""));
        check_not_canonical(kombu_text(R"("delivery_info": {"exchange": "caf\u00e9", )"
                                       R"("routing_key": "rk"}, "delivery_tag": "t")"));
        // Properties kelp keeps as extra properties, or reads another way.
        check_not_canonical(kombu_text(info + R"(, "origin": "gen1@host")"));
        check_not_canonical(kombu_text(info + R"(, "correlation_id": "")"));
        check_not_canonical(kombu_text(info + R"(, "delivery_mode": 3)"));
        check_not_canonical(kombu_text(info + R"(, "timestamp": 1700000000.5)"));
        check_not_canonical(kombu_text(info + R"(, "timestamp": 1e9)"));
        check_not_canonical(kombu_text(info + R"(, "expiration": "1.5")"));
        check_not_canonical(kombu_text(info + R"(, "priority": "7")"));
        check_not_canonical(kombu_text(info + R"(, "priority": 99999999999999999999)"));
        // 19 digits and more could overflow while being read: the parser
        // takes them (found by the fuzzer as signed overflow).
        check_not_canonical(kombu_text(info + R"(, "timestamp": 1701180591620717411)"));
        check_not_canonical(kombu_text(info + R"(, "timestamp": 1701180591620717411303424)"));
        check_not_canonical(kombu_text(info + R"(, "timestamp": -9999999999999999999)"));
        // 18 digits still take the fast path, read as the parser reads them.
        check_canonical(kombu_text(info + R"(, "timestamp": 999999999999999999)"));
        check_not_canonical(kombu_text(info + R"(, "priority": true)"));
        check_not_canonical(kombu_text(info + R"(, "priority": -0)"));
        check_not_canonical(kombu_text(info + R"(, "priority": 1, "priority": 2)"));
        check_not_canonical(
            kombu_text(R"("delivery_info": {"exchange": "a", "routing_key": "b", "other": 1}, )"
                       R"("delivery_tag": "t")"));
        // What the parser rejects: the same error both ways.
        check_not_canonical(
            kombu_text(R"("delivery_info": {"exchange": "a", "routing_key": "b"})"));
        check_not_canonical(kombu_text(R"("delivery_tag": "t")"));
        check_not_canonical(kombu_text(info + R"(, "priority": 01)"));
        check_not_canonical(kombu_text(info + R"(, "body_encoding": "hex")"));
        check_not_canonical(kombu_text(info + R"(, "body_encoding": "base64")", R"("not*base64")"));
        check_not_canonical(kombu_text(info) + " ");
        check_not_canonical(kombu_text(info) + "x");
        check_not_canonical(kombu_text(info).substr(0, 60));
        check_not_canonical("");
        check_not_canonical("[]");
    }
}
