// Malformed Redis messages: each row of the reference's table of what crashed
// Celery workers (kombu-wire-format.md §4, pitfall 5), and more, must give a
// kelp::DecodeError that says what is wrong and what to write instead: never
// a crash, never another exception type.
//
// Rows 1-6 are broken envelopes: decode_message refuses them. Row 9 (body not
// UTF-8) is a broken body: the body decoder every kelp Consumer runs refuses
// it. Rows 7, 8, 10 and 11 are sound Kombu messages that only Celery's task
// protocol rejects (the body is not Celery's 3-array, no task id, a bad eta,
// an unknown task): a Redis transport carries any body, so decode_message must
// deliver them intact, as Kombu's own consumer does. Row 12 (a content type
// the consumer does not accept) is kelp::ContentDisallowed by design.
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "kelp/serialization.hpp"
#include "support.hpp"
#include "wire/base64.hpp"
#include "wire/envelope.hpp"

using kelp::Json;
using kelp::redis::decode_message;
using kelp::redis::DecodedMessage;
using wire_test::contains;
using wire_test::error_of;

namespace {

// An envelope with the given properties and body, otherwise sound.
std::string envelope_with(std::string_view properties, std::string_view body = R"("e30=")",
                          std::string_view headers = "{}") {
    return std::string(R"({"body": )") + std::string(body) +
           R"(, "content-encoding": "utf-8", "content-type": "application/json", "headers": )" +
           std::string(headers) + R"(, "properties": )" + std::string(properties) + "}";
}

constexpr std::string_view kSoundProperties =
    R"({"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, )"
    R"("priority": 0, "body_encoding": "base64", "delivery_tag": "t-1"})";

// The DecodeError decode_message throws, checked to name the problem and to
// say what a producer must write.
std::string decode_error(std::string_view payload) {
    const std::string message = error_of<kelp::DecodeError>([&] { (void)decode_message(payload); });
    INFO("payload: " << std::string(payload));
    INFO("message: " << message);
    CHECK(message.starts_with("cannot read a"));
    CHECK_FALSE(contains(message, "<another exception>"));
    CHECK_FALSE(contains(message, "<no exception>"));
    return message;
}

std::string b64(std::string_view bytes) {
    return "\"" + kelp::redis::base64_encode(bytes) + "\"";
}

}  // namespace

TEST_SUITE("malformed") {
    TEST_CASE("row 1: invalid JSON envelope") {
        for (const char* text : {"", "{", "not json", R"({"body": "x",})", "{'body': 1}",
                                 R"({"body": "x"} trailing)", "\xEF\xBB\xBF{]", "[1, 2"}) {
            const auto message = decode_error(text);
            CHECK(contains(message, "invalid JSON"));
        }
        // A NUL ends nlohmann's input early; the fuzzer found "{...}\0junk" passing.
        const std::string sound = envelope_with(kSoundProperties);
        for (const std::string& text : {sound + std::string("\0junk", 5),
                                        sound + std::string(1, '\0'), std::string("{\0}", 3)}) {
            const auto message = decode_error(text);
            CHECK(contains(message, "invalid JSON (a NUL byte at offset"));
        }
    }

    TEST_CASE("row 2: JSON that is not an object") {
        for (const char* text :
             {"[]", R"(["body", "properties"])", "\"text\"", "42", "null", "true", "NaN"}) {
            const auto message = decode_error(text);
            CHECK(contains(message, "not an object"));
            CHECK(contains(message, "Kombu's JSON envelope"));
        }
    }

    TEST_CASE("row 3: invalid base64 body") {
        for (const char* body :
             {R"("@@@")", R"("YWJjZ")", R"("YQ")", R"("YQ==YWI=")", R"("e30=\u00e9")"}) {
            const auto message = decode_error(envelope_with(kSoundProperties, body));
            CHECK(contains(message, "not valid base64"));
            CHECK(contains(message, "standard base64 (RFC 4648"));
        }
    }

    TEST_CASE("row 4: missing properties.delivery_tag") {
        const auto message = decode_error(envelope_with(
            R"({"delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0})"));
        CHECK(contains(message, "properties.delivery_tag is missing"));
        CHECK(contains(message, "\"delivery_tag\": \"<uuid4>\""));
    }

    TEST_CASE("row 5: missing properties.delivery_info") {
        const auto message = decode_error(envelope_with(R"({"delivery_tag": "t"})"));
        CHECK(contains(message, "properties.delivery_info is missing"));
    }

    TEST_CASE("row 6: missing properties") {
        const auto message = decode_error(R"({"body": "e30=", "headers": {}})");
        CHECK(contains(message, "properties is missing"));
    }

    TEST_CASE("row 7: a body that is not Celery's 3-array is still a sound message") {
        const DecodedMessage m = decode_message(
            envelope_with(kSoundProperties, b64(R"({"a": 1})"), R"({"task": "t", "id": "i"})"));
        CHECK(m.envelope.body == R"({"a": 1})");
        CHECK(kelp::decode(m.envelope.body, m.envelope.properties.content_type,
                           m.envelope.properties.content_encoding)
                  .is_object());
    }

    TEST_CASE("row 8: a Celery header missing (id) is still a sound message") {
        const DecodedMessage m = decode_message(
            envelope_with(kSoundProperties, b64("[[], {}, {}]"), R"({"task": "t"})"));
        CHECK(m.envelope.headers == Json{{"task", "t"}});
        CHECK_FALSE(m.envelope.headers.contains("id"));
    }

    TEST_CASE("row 9: body bytes that are not UTF-8 fail the body decode") {
        const DecodedMessage m =
            decode_message(envelope_with(kSoundProperties, b64("[\"\xFF\xFE\"]")));
        CHECK(m.envelope.body == "[\"\xFF\xFE\"]");  // carried intact
        const auto message = error_of<kelp::DecodeError>([&] {
            (void)kelp::decode(m.envelope.body, m.envelope.properties.content_type,
                               m.envelope.properties.content_encoding);
        });
        CHECK(contains(message, "invalid JSON"));
        // text/plain too.
        const auto text = error_of<kelp::DecodeError>(
            [&] { (void)kelp::decode("caf\xE9", "text/plain", "utf-8"); });
        CHECK_FALSE(contains(text, "<"));
    }

    TEST_CASE("row 10: an invalid eta header is still a sound message") {
        const DecodedMessage m = decode_message(envelope_with(
            kSoundProperties, b64("[[], {}, {}]"), R"({"eta": "not a date", "id": "i"})"));
        CHECK(m.envelope.headers["eta"] == "not a date");
    }

    TEST_CASE("row 11: an unregistered task name is still a sound message") {
        const DecodedMessage m = decode_message(
            envelope_with(kSoundProperties, b64("[[], {}, {}]"), R"({"task": "no.such.task"})"));
        CHECK(m.envelope.headers["task"] == "no.such.task");
    }

    TEST_CASE("row 12: a content type the consumer does not accept is ContentDisallowed") {
        const DecodedMessage m =
            decode_message(R"({"body": "YTogMQ==", "content-encoding": "utf-8", "content-type": )"
                           R"("application/x-yaml", "headers": {}, "properties": )" +
                           std::string(kSoundProperties) + "}");
        CHECK(m.envelope.body == "a: 1");
        const auto message = error_of<kelp::ContentDisallowed>([&] {
            (void)kelp::decode(m.envelope.body, m.envelope.properties.content_type,
                               m.envelope.properties.content_encoding, kelp::AcceptList{"json"});
        });
        CHECK(contains(message, "application/x-yaml"));
        CHECK_FALSE(contains(message, "<"));
    }

    TEST_CASE("fields of the wrong type are DecodeErrors naming the field") {
        struct Case {
            std::string payload;
            const char* says;
        };
        const std::vector<Case> cases = {
            {envelope_with("[]"), "properties is an array, not an object"},
            {envelope_with("null"), "properties is null, not an object"},
            {envelope_with(R"({"delivery_tag": 5, "delivery_info": {}})"),
             "properties.delivery_tag is a number, not a string"},
            {envelope_with(R"({"delivery_tag": null, "delivery_info": {}})"),
             "properties.delivery_tag is null, not a string"},
            {envelope_with(R"({"delivery_tag": "t", "delivery_info": "celery"})"),
             "properties.delivery_info is a string, not an object"},
            {envelope_with(R"({"delivery_tag": "t", "delivery_info": {"routing_key": "q"}})"),
             "properties.delivery_info.exchange is missing"},
            {envelope_with(R"({"delivery_tag": "t", "delivery_info": {"exchange": ""}})"),
             "properties.delivery_info.routing_key is missing"},
            {envelope_with(
                 R"({"delivery_tag": "t", "delivery_info": {"exchange": null, "routing_key": "q"}})"),
             "properties.delivery_info.exchange is null, not a string"},
            {envelope_with(
                 R"({"delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": 1}})"),
             "properties.delivery_info.routing_key is a number, not a string"},
            {envelope_with(kSoundProperties, "42"), "body is a number, not a string"},
            {envelope_with(kSoundProperties, "{}"), "body is an object, not a string"},
            {envelope_with(kSoundProperties, "false"), "body is a boolean, not a string"},
            {envelope_with(kSoundProperties, R"(["e30="])"), "body is an array, not a string"},
            {envelope_with(kSoundProperties, R"("e30=")", "[]"),
             "headers is an array, not an object"},
            {envelope_with(kSoundProperties, R"("e30=")", R"("h")"),
             "headers is a string, not an object"},
            {envelope_with(
                 R"({"delivery_tag": "t", "body_encoding": "zlib", "delivery_info": {"exchange": "", "routing_key": "q"}})"),
             R"(properties.body_encoding is "zlib"; Kombu knows only "base64")"},
            {envelope_with(
                 R"({"delivery_tag": "t", "body_encoding": 1, "delivery_info": {"exchange": "", "routing_key": "q"}})"),
             "properties.body_encoding is a number"},
            {R"({"body": "", "content-type": 1, "properties": )" + std::string(kSoundProperties) +
                 "}",
             "content-type is a number, not a string"},
            {R"({"body": "", "content-encoding": [], "properties": )" +
                 std::string(kSoundProperties) + "}",
             "content-encoding is an array, not a string"},
        };
        for (const auto& c : cases) {
            const auto message = decode_error(c.payload);
            CHECK(contains(message, c.says));
        }
    }

    TEST_CASE("nesting deeper than Python can read is refused before parsing") {
        const std::string deep =
            envelope_with(kSoundProperties, R"("e30=")",
                          R"({"h": )" + std::string(5000, '[') + std::string(5000, ']') + "}");
        CHECK(contains(decode_error(deep), "deeper than 1000 levels"));
        // Brackets inside strings do not count.
        const std::string quoted = envelope_with(kSoundProperties, R"("e30=")",
                                                 R"({"h": ")" + std::string(5000, '[') + "\"}");
        CHECK(decode_message(quoted).envelope.headers["h"].get<std::string>().size() == 5000);
        // Deep but within the limit is fine.
        const std::string ok =
            envelope_with(kSoundProperties, R"("e30=")",
                          R"({"h": )" + std::string(900, '[') + std::string(900, ']') + "}");
        CHECK(decode_message(ok).envelope.headers.contains("h"));
    }

    TEST_CASE("the error quotes the start of the payload, escaped") {
        const auto message =
            decode_error(std::string("\x01\x02 not json \"quoted\"") + std::string(200, 'x'));
        CHECK(contains(message, R"("\x01\x02 not json \"quoted\")"));
        CHECK(contains(message, "..."));
        CHECK(message.size() < 800);
    }

    TEST_CASE("mutated envelopes give a message or a DecodeError, nothing else") {
        const std::vector<std::string> seeds = {
            envelope_with(kSoundProperties),
            envelope_with(
                R"({"correlation_id": "c", "timestamp": 1, "expiration": "30000", "x": [1, {"y": NaN}], "delivery_info": {"exchange": "ex", "routing_key": "rk", "redelivered": true}, "priority": 5, "body_encoding": "base64", "delivery_tag": "t"})",
                b64(std::string("\x00\xFF\x10 bytes", 9)), R"({"a": "\ud83d\ude00", "b": -1e+16})"),
        };
        const std::string tokens[] = {"{",
                                      "}",
                                      "[",
                                      "]",
                                      "\"",
                                      "\\",
                                      ",",
                                      ":",
                                      "null",
                                      "NaN",
                                      "-Infinity",
                                      "\\ud800",
                                      "1e999",
                                      "\xFF",
                                      "\xC3",
                                      "=",
                                      "properties",
                                      "\"delivery_tag\": 1",
                                      "99999999999999999999999"};
        std::uint64_t state = 0x2545F4914F6CDD1DULL;  // fixed: the same cases every run
        const auto next = [&state](std::uint64_t bound) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            return state % bound;
        };
        int decoded = 0;
        int refused = 0;
        for (int round = 0; round < 3000; ++round) {
            std::string text = seeds[next(seeds.size())];
            const auto edits = 1 + next(4);
            for (std::uint64_t e = 0; e < edits && !text.empty(); ++e) {
                const std::size_t at = next(text.size());
                switch (next(4)) {
                    case 0:
                        text[at] = static_cast<char>(next(256));
                        break;
                    case 1:
                        text.erase(at, 1 + next(8));
                        break;
                    case 2:
                        text.insert(at, tokens[next(std::size(tokens))]);
                        break;
                    default:
                        text.resize(at);
                        break;
                }
            }
            INFO("payload: " << text);
            try {
                const DecodedMessage m = decode_message(text);
                ++decoded;
                // What kelp accepted, it can write back and read again.
                const std::string again = kelp::redis::encode_message(m.envelope, m.delivery);
                const DecodedMessage back = decode_message(again);
                CHECK(back.envelope.body == m.envelope.body);
                CHECK(back.delivery.delivery_tag == m.delivery.delivery_tag);
                CHECK(kelp::redis::encode_message(back.envelope, back.delivery) == again);
            } catch (const kelp::DecodeError&) {
                ++refused;
            }
        }
        // Both outcomes happen, so the edits are neither all fatal nor all harmless.
        CHECK(decoded > 100);
        CHECK(refused > 100);
    }
}
