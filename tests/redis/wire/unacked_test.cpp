// The unacked-hash record: Kombu's captured value, written and read.
#include <string>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "support.hpp"
#include "wire/envelope.hpp"
#include "wire/unacked.hpp"

using kelp::redis::decode_unacked;
using kelp::redis::encode_unacked;
using kelp::redis::UnackedRecord;
using wire_test::contains;
using wire_test::error_of;

namespace {

// kombu-wire-format.md §1.6: HGETALL unacked while a message was held.
constexpr std::string_view kHeldEnvelope =
    R"({"body": "eyJzdGVwIjogIkIifQ==", "content-encoding": "utf-8", "content-type": )"
    R"("application/json", "headers": {"h": 1}, "properties": {"delivery_mode": 2, )"
    R"("delivery_info": {"exchange": "ex_c", "routing_key": "k"}, "priority": 0, )"
    R"("body_encoding": "base64", "delivery_tag": "5b3e58ef-a035-487f-96b9-e401cb897fc8"}})";

}  // namespace

TEST_SUITE("unacked") {
    TEST_CASE("writes Kombu's captured record byte for byte") {
        CHECK(encode_unacked(kHeldEnvelope, "ex_c", "k") ==
              "[" + std::string(kHeldEnvelope) + R"(, "ex_c", "k"])");
        CHECK(encode_unacked("{}", "caf\xC3\xA9", "a\"b") == R"([{}, "caf\u00e9", "a\"b"])");
        // What surrounds the JSON object in a popped value stays out of the array.
        CHECK(encode_unacked("\xEF\xBB\xBF \n{\"a\": 1}\r\n\t", "", "q") ==
              R"([{"a": 1}, "", "q"])");
    }

    TEST_CASE("reads it back with the envelope's own text") {
        const std::string record = encode_unacked(kHeldEnvelope, "ex_c", "k");
        CHECK(decode_unacked(record) == UnackedRecord{std::string(kHeldEnvelope), "ex_c", "k"});
        // Compact, with braces and brackets inside strings.
        const UnackedRecord compact = decode_unacked(R"( [{"a":"}]\"{","b":[{}]},"","q"] )");
        CHECK(compact.payload == R"({"a":"}]\"{","b":[{}]})");
        CHECK(compact.exchange.empty());
        CHECK(compact.routing_key == "q");
        // The payload is what decode_message reads.
        CHECK(kelp::redis::decode_message(decode_unacked(record).payload).delivery.delivery_tag ==
              "5b3e58ef-a035-487f-96b9-e401cb897fc8");
    }

    TEST_CASE("a message as deep as decode_message allows fits in its record") {
        // Found by the fuzzer: the record's array is one level more.
        const std::string deep = "{\"d\": " + std::string(999, '[') + std::string(999, ']') + "}";
        const UnackedRecord r = decode_unacked(encode_unacked(deep, "", "q"));
        CHECK(r.payload == deep);
    }

    TEST_CASE("invalid UTF-8 is replaced, as Kombu reads the hash") {
        const UnackedRecord r = decode_unacked("[{\"h\": \"x\xFFy\"}, \"e\xFF\", \"k\"]");
        CHECK(r.payload == "{\"h\": \"x\xEF\xBF\xBDy\"}");
        CHECK(r.exchange == "e\xEF\xBF\xBD");
    }

    TEST_CASE("a record of another shape is a DecodeError saying what to do") {
        const std::pair<const char*, const char*> cases[] = {
            {"", "invalid JSON"},
            {"{}", "not an array of three"},
            {R"([{}, "e"])", "not an array of three"},
            {R"([{}, "e", "k", 1])", "not an array of three"},
            {R"(["{}", "e", "k"])", "first item is not an envelope object"},
            {R"([{}, null, "k"])", "exchange and routing key are not strings"},
            {R"([{}, "e", 5])", "exchange and routing key are not strings"},
        };
        for (const auto& [record, says] : cases) {
            const auto message = error_of<kelp::DecodeError>([&] { (void)decode_unacked(record); });
            INFO(record << " -> " << message);
            CHECK(contains(message, "cannot read an unacked record"));
            CHECK(contains(message, says));
        }
        CHECK(contains(error_of<kelp::DecodeError>([] { (void)decode_unacked("[1, 2]"); }),
                       "delete its field"));
    }
}
