// Interop with Python Kombu 5.2.4 (Debian's python3-kombu), no server needed:
// kombu_envelopes.py runs Kombu's own Redis channel over a fake client.
//
// Kombu -> kelp: Kombu publishes each message; kelp checks the key Kombu chose
// against KeySchema, reads the envelope, and writes the same message to the
// same bytes. kelp -> Kombu: kelp writes each message; Kombu reads it with
// basic_get and reports body, headers and properties, the unacked record its
// ack emulation stores and the envelope its restore pushes back, which must
// be kelp's encode_unacked and encode_message(redelivered) byte for byte.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kelp/compression.hpp"
#include "kelp/serialization.hpp"
#include "support.hpp"
#include "wire/base64.hpp"
#include "wire/envelope.hpp"
#include "wire/keys.hpp"
#include "wire/unacked.hpp"

using namespace std::chrono_literals;
using kelp::Envelope;
using kelp::Json;
using kelp::redis::DecodedMessage;
using kelp::redis::DeliveryFields;
using kelp::redis::KeySchema;
using wire_test::settings_from;

namespace {

const char* python() {
    const char* chosen = std::getenv("KELP_PYTHON");
    return chosen ? chosen : "/usr/bin/python3";  // Debian's, where python3-kombu lives
}

// A scratch directory for the script's input and output files.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = std::filesystem::temp_directory_path() /
               ("kelp-redis-wire-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    void write(const std::string& name, const std::string& data) const {
        std::ofstream(path / name, std::ios::binary)
            .write(data.data(), static_cast<std::streamsize>(data.size()));
    }
    std::string read(const std::string& name) const {
        std::ifstream in(path / name, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }
};

// Runs kombu_envelopes.py on `cases`; its results, one per case, by name.
Json run_kombu(std::string_view mode, const Json& cases) {
    TempDir dir;
    dir.write("cases.json", kelp::dump_json(cases));
    const std::string command = std::string(python()) + " '" + KELP_KOMBU_ENVELOPES_SCRIPT + "' " +
                                std::string(mode) + " '" + (dir.path / "cases.json").string() +
                                "' '" + (dir.path / "out.json").string() + "' 2>'" +
                                (dir.path / "stderr").string() + "'";
    const int status = std::system(command.c_str());
    INFO("python said: " << dir.read("stderr"));
    REQUIRE_MESSAGE(status == 0, "kombu_envelopes.py failed; it needs " << python()
                                                                        << " with python3-kombu "
                                                                           "(scripts/install-deps "
                                                                           "test)");
    const Json results = kelp::parse_json(dir.read("out.json"));
    REQUIRE(results.size() == cases.size());
    Json by_name = Json::object();
    for (const auto& result : results)
        by_name[result["name"].get<std::string>()] = result;
    return by_name;
}

std::string bytes_of(const Json& b64) {
    return kelp::redis::base64_decode(b64.get<std::string>());
}

Envelope json_envelope(const Json& value) {
    const auto encoded = kelp::encode(value);
    Envelope e;
    e.body = encoded.body;
    e.properties.content_type = encoded.content_type;
    e.properties.content_encoding = encoded.content_encoding;
    return e;
}

// One message Kombu publishes and kelp writes too.
struct PublishCase {
    Json spec;        // kombu.Producer.publish arguments
    std::string url;  // the same options as a kelp URL
    Envelope envelope;
    DeliveryFields delivery;            // delivery_tag is taken from Kombu's message
    std::multiset<std::string> keys;    // where the message must go (LPUSH or PUBLISH)
    std::vector<std::string> bindings;  // SADD members expected, "key|member"
    bool same_bytes = true;             // false when JSON numbers kelp cannot hold exactly
};

std::vector<PublishCase> publish_cases() {
    std::vector<PublishCase> cases;
    const std::string sep = "\x06\x16";
    {
        PublishCase c;
        const Json body = {{"a", 1}, {"txt", "caf\xC3\xA9"}};
        c.spec = {{"name", "json_default_exchange"},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"routing_key", "q"}};
        c.url = "redis://";
        c.envelope = json_envelope(body);
        c.delivery = {.routing_key = "q"};
        c.keys = {"q"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const Json body = {{"hello", "world"}, {"n", 1}};
        c.spec = {{"name", "direct_priority_headers"},
                  {"bindings", Json::array({Json::array({"myex", "direct", "my.key", "myq"})})},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"exchange", "myex"},
                  {"routing_key", "my.key"},
                  {"priority", 4},
                  {"headers", {{"h", "v"}, {"num", 5}}}};
        c.url = "redis://";
        c.envelope = json_envelope(body);
        c.envelope.headers = {{"h", "v"}, {"num", 5}};
        c.delivery = {.exchange = "myex", .routing_key = "my.key", .priority = 4};
        c.keys = {"myq" + sep + "3"};
        c.bindings = {"_kombu.binding.myex|my.key" + sep + sep + "myq"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const Json body = Json::array({1, 2.5, nullptr, true});
        c.spec = {{"name", "every_property"},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"routing_key", "q"},
                  {"priority", 9},
                  {"expiration", 30},
                  {"delivery_mode", 1},
                  {"properties",
                   Json::array(
                       {Json::array({"correlation_id", "corr-1"}),
                        Json::array({"reply_to", "reply.q"}), Json::array({"message_id", "mid-1"}),
                        Json::array({"timestamp", 1700000000}), Json::array({"type", "mytype"}),
                        Json::array({"app_id", "myapp"}), Json::array({"user_id", "guest"})})}};
        c.url = "redis://";
        c.envelope = json_envelope(body);
        auto& p = c.envelope.properties;
        p.correlation_id = "corr-1";
        p.reply_to = "reply.q";
        p.message_id = "mid-1";
        p.timestamp = 1700000000;
        p.type = "mytype";
        p.app_id = "myapp";
        p.user_id = "guest";
        p.expiration = 30000ms;
        p.delivery_mode = kelp::DeliveryMode::transient;
        c.delivery = {.routing_key = "q", .priority = 9};
        c.keys = {"q" + sep + "9"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const std::string text = "plain text \xC3\xA9 \xF0\x9F\x98\x80";
        c.spec = {{"name", "text_plain"}, {"body", {{"text", text}}}, {"routing_key", "q_text"}};
        c.url = "redis://";
        c.envelope.body = text;
        c.envelope.properties.content_type = "text/plain";
        c.envelope.properties.content_encoding = "utf-8";
        c.delivery = {.routing_key = "q_text"};
        c.keys = {"q_text"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const std::string bytes("\x00\x01\xff raw", 7);
        c.spec = {{"name", "raw_bytes"},
                  {"body", {{"bytes_b64", kelp::redis::base64_encode(bytes)}}},
                  {"routing_key", "q_raw"},
                  {"priority", 6}};
        c.url = "redis://";
        c.envelope.body = bytes;
        c.envelope.properties.content_type = "application/data";
        c.envelope.properties.content_encoding = "binary";
        c.delivery = {.routing_key = "q_raw", .priority = 6};
        c.keys = {"q_raw" + sep + "6"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const Json body = {{"compressed", std::string(200, 'z')}};
        c.spec = {{"name", "zlib"},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"compression", "zlib"},
                  {"routing_key", "q"}};
        c.url = "redis://";
        c.envelope = json_envelope(body);
        c.envelope.body = kelp::compress("zlib", c.envelope.body);
        c.envelope.headers = {{"compression", "application/x-gzip"}};
        c.delivery = {.routing_key = "q"};
        c.keys = {"q"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const Json body = {{"topic", true}};
        c.spec = {{"name", "topic_two_queues"},
                  {"bindings", Json::array({Json::array({"tex", "topic", "a.#", "q_hash"}),
                                            Json::array({"tex", "topic", "a.*", "q_star"}),
                                            Json::array({"tex", "topic", "b.*", "q_other"})})},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"exchange", "tex"},
                  {"routing_key", "a.b.c"}};
        c.url = "redis://";
        c.envelope = json_envelope(body);
        c.delivery = {.exchange = "tex", .routing_key = "a.b.c"};
        // Kombu's '*' spans words: a.* takes a.b.c too.
        c.keys = {"q_hash", "q_star"};
        const KeySchema keys(settings_from(c.url));
        for (const auto& [rk, queue] :
             {std::pair{"a.#", "q_hash"}, std::pair{"a.*", "q_star"}, std::pair{"b.*", "q_other"}})
            c.bindings.push_back(
                keys.binding_key("tex") + "|" +
                keys.encode_binding(rk, kelp::redis::kombu_topic_pattern(rk), queue));
        cases.push_back(c);
    }
    const auto fanout = [&](std::string name, Json options, int db, std::string url,
                            std::string routing_key, std::string channel) {
        PublishCase c;
        const Json body = {{"fan", 2}};
        c.spec = {{"name", name},
                  {"options", std::move(options)},
                  {"db", db},
                  {"bindings", Json::array({Json::array({"fex", "fanout", "", "qf"})})},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"exchange", "fex"},
                  {"routing_key", routing_key}};
        c.url = std::move(url);
        c.envelope = json_envelope(body);
        c.delivery = {.exchange = "fex", .routing_key = routing_key};
        c.keys = {channel};
        const KeySchema keys(settings_from(c.url));
        CHECK(keys.fanout_channel("fex", routing_key) == channel);
        c.bindings = {keys.binding_key("fex") + "|" + keys.encode_binding("", "", "qf")};
        cases.push_back(c);
    };
    fanout("fanout", Json::object(), 0, "redis://", "news", "/0.fex/news");
    fanout("fanout_empty_key", Json::object(), 0, "redis://", "", "/0.fex");
    fanout("fanout_db3", Json::object(), 3, "redis://localhost/3", "news", "/3.fex/news");
    fanout("fanout_no_prefix", {{"fanout_prefix", false}}, 0, "redis://?fanout_prefix=false",
           "news", "fex/news");
    fanout("fanout_custom_prefix", {{"fanout_prefix", "/custom."}, {"fanout_patterns", false}}, 0,
           "redis://?fanout_prefix=/custom.&fanout_patterns=false", "news", "/custom.fex");
    fanout("fanout_keyprefix", {{"global_keyprefix", "pfx:"}}, 0,
           "redis://?global_keyprefix=pfx:", "news", "pfx:/0.fex/news");
    {
        PublishCase c;
        const Json body = {{"p", 1}};
        c.spec = {{"name", "global_keyprefix"},
                  {"options", {{"global_keyprefix", "pfx:"}}},
                  {"bindings", Json::array({Json::array({"ex_p", "direct", "rk", "q_pref"})})},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"exchange", "ex_p"},
                  {"routing_key", "rk"},
                  {"priority", 3}};
        c.url = "redis://?global_keyprefix=pfx:";
        c.envelope = json_envelope(body);
        c.delivery = {.exchange = "ex_p", .routing_key = "rk", .priority = 3};
        c.keys = {"pfx:q_pref" + sep + "3"};
        c.bindings = {"pfx:_kombu.binding.ex_p|rk" + sep + sep + "q_pref"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const Json body = Json::array({Json::array({2, 3}), Json::object(), Json::object()});
        c.spec = {{"name", "celery_priority_steps"},
                  {"options",
                   {{"sep", ":"},
                    {"priority_steps", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
                    {"queue_order_strategy", "priority"}}},
                  {"body", {{"json", body}}},
                  {"serializer", "json"},
                  {"routing_key", "celery"},
                  {"priority", 7}};
        c.url = "redis://?sep=:&priority_steps=0,1,2,3,4,5,6,7,8,9&queue_order_strategy=priority";
        c.envelope = json_envelope(body);
        c.delivery = {.routing_key = "celery", .priority = 7};
        c.keys = {"celery:7"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        const Json headers = {{"emoji", "\xF0\x9F\x98\x80"},
                              {"inf", HUGE_VAL},
                              {"nan", std::nan("")},
                              {"neg", -HUGE_VAL},
                              {"uni", "caf\xC3\xA9 \xE2\x98\x83"}};
        c.spec = {{"name", "python_json_headers"},
                  {"body", {{"text", "x"}}},
                  {"routing_key", "q"},
                  {"headers", headers}};
        c.url = "redis://";
        c.envelope.body = "x";
        c.envelope.properties.content_type = "text/plain";
        c.envelope.properties.content_encoding = "utf-8";
        c.envelope.headers = headers;
        c.delivery = {.routing_key = "q"};
        c.keys = {"q"};
        cases.push_back(c);
    }
    {
        PublishCase c;
        c.spec = {{"name", "big_integers"},
                  {"body", {{"text", "x"}}},
                  {"routing_key", "q"},
                  {"python_headers", "{'big': 2**70, 'small': -2**64, 'max': 2**64 - 1}"}};
        c.url = "redis://";
        c.envelope.body = "x";
        c.envelope.properties.content_type = "text/plain";
        c.envelope.properties.content_encoding = "utf-8";
        c.envelope.headers = {{"big", 1180591620717411303424.0},
                              {"max", 18446744073709551615ULL},
                              {"small", -18446744073709551616.0}};
        c.delivery = {.routing_key = "q"};
        c.keys = {"q"};
        c.same_bytes = false;  // kelp holds 2**70 as a double and writes it so
        cases.push_back(c);
    }
    return cases;
}

bool same_json(const Json& a, const Json& b) {
    // NaN is not equal to itself; compare the text Python would write.
    return kelp::dump_json(a) == kelp::dump_json(b);
}

}  // namespace

TEST_SUITE("interop_kombu") {
    TEST_CASE("Kombu's publishes land on kelp's keys, read back, and are kelp's bytes") {
        std::vector<PublishCase> cases = publish_cases();
        Json specs = Json::array();
        for (const auto& c : cases)
            specs.push_back(c.spec);
        const Json results = run_kombu("publish", specs);

        for (auto& c : cases) {
            const std::string name = c.spec["name"].get<std::string>();
            INFO("case " << name);
            const KeySchema keys(settings_from(c.url));
            std::multiset<std::string> pushed_to;
            std::vector<std::string> bound;
            for (const auto& command : results[name]["commands"]) {
                const std::string verb = command[0].get<std::string>();
                const std::string key = command[1].get<std::string>();
                const std::string value = command[2].get<std::string>();
                if (verb == "SADD") {
                    bound.push_back(key + "|" + value);
                    continue;
                }
                REQUIRE((verb == "LPUSH" || verb == "PUBLISH"));
                pushed_to.insert(key);
                INFO("Kombu wrote: " << value);
                const DecodedMessage m = kelp::redis::decode_message(value);
                CHECK(m.envelope.body == c.envelope.body);
                CHECK(m.envelope.properties.content_type == c.envelope.properties.content_type);
                CHECK(m.envelope.properties.content_encoding ==
                      c.envelope.properties.content_encoding);
                CHECK(same_json(m.envelope.headers, c.envelope.headers));
                CHECK(m.delivery.exchange == c.delivery.exchange);
                CHECK(m.delivery.routing_key == c.delivery.routing_key);
                CHECK(m.delivery.priority == c.delivery.priority);
                CHECK(m.delivery.extra_properties.is_null());
                c.envelope.properties.priority = static_cast<std::uint8_t>(c.delivery.priority);
                CHECK(m.envelope.properties == c.envelope.properties);
                // The same message written by kelp, with Kombu's tag: the same bytes.
                c.delivery.delivery_tag = m.delivery.delivery_tag;
                if (c.same_bytes)
                    CHECK(kelp::redis::encode_message(c.envelope, c.delivery) == value);
                // A list key is also where KeySchema puts this priority.
                if (verb == "LPUSH") {
                    const auto parsed = keys.parse_queue_key(key);
                    REQUIRE(parsed.has_value());
                    CHECK(keys.queue_key(parsed->queue, c.delivery.priority) == key);
                }
            }
            CHECK(pushed_to == c.keys);
            std::sort(bound.begin(), bound.end());
            std::sort(c.bindings.begin(), c.bindings.end());
            CHECK(bound == c.bindings);
        }
    }

    TEST_CASE("Kombu reads kelp's messages, stores kelp's unacked record, restores kelp's bytes") {
        struct ConsumeCase {
            std::string name;
            Envelope envelope;
            DeliveryFields delivery;
            kelp::redis::BodyEncoding body_encoding = kelp::redis::BodyEncoding::base64;
            Json decoded;  // what Kombu's message.decode() must give
            // message.body when Kombu changes it (it decompresses on receipt).
            std::optional<std::string> body_seen;
        };
        std::vector<ConsumeCase> cases;
        {
            ConsumeCase c{.name = "json_every_property"};
            c.decoded = {{"k", Json::array({1, 2.5, nullptr, "caf\xC3\xA9"})}};
            c.envelope = json_envelope(c.decoded);
            c.envelope.headers = {{"lang", "py"}, {"nested", {{"a", Json::array({true})}}}};
            auto& p = c.envelope.properties;
            p.correlation_id = "c-1";
            p.reply_to = "r";
            p.message_id = "m-1";
            p.timestamp = 1700000000;
            p.type = "t";
            p.app_id = "a";
            p.user_id = "u";
            p.expiration = 1500ms;
            p.delivery_mode = kelp::DeliveryMode::transient;
            c.delivery = {.routing_key = "kq", .priority = 5};
            cases.push_back(c);
        }
        {
            ConsumeCase c{.name = "raw_bytes"};
            for (int i = 0; i < 256; ++i)
                c.envelope.body += static_cast<char>(i);
            c.envelope.properties.content_type = "application/data";
            c.envelope.properties.content_encoding = "binary";
            c.decoded = {{"bytes_b64", kelp::redis::base64_encode(c.envelope.body)}};
            c.delivery = {.routing_key = "kq", .priority = 9};
            cases.push_back(c);
        }
        {
            ConsumeCase c{.name = "redelivered_with_extras"};
            c.decoded = {{"n", 0}};
            c.envelope = json_envelope(c.decoded);
            c.envelope.headers = {{"a", 1}};
            c.delivery = {.routing_key = "kq",
                          .redelivered = true,
                          .extra_properties = {{"origin", "gen1@host"}, {"retries", 2}}};
            cases.push_back(c);
        }
        {
            ConsumeCase c{.name = "plain_text_body"};
            c.envelope.body = "caf\xC3\xA9 \xF0\x9F\x98\x80";
            c.envelope.properties.content_type = "text/plain";
            c.envelope.properties.content_encoding = "utf-8";
            c.decoded = c.envelope.body;
            c.body_encoding = kelp::redis::BodyEncoding::none;
            c.delivery = {.routing_key = "kq"};
            cases.push_back(c);
        }
        {
            ConsumeCase c{.name = "python_json_headers"};
            c.decoded = {{"x", 1}};
            c.envelope = json_envelope(c.decoded);
            c.envelope.headers = {
                {"emoji", "\xF0\x9F\x98\x80"}, {"inf", HUGE_VAL}, {"nan", std::nan("")}};
            c.delivery = {.routing_key = "kq"};
            cases.push_back(c);
        }
        {
            ConsumeCase c{.name = "zlib_compressed"};
            c.decoded = {{"big", std::string(500, 'b')}};
            c.envelope = json_envelope(c.decoded);
            c.body_seen = c.envelope.body;
            c.envelope.body = kelp::compress("zlib", c.envelope.body);
            c.envelope.headers = {{"compression", std::string(kelp::compression_mime("zlib"))}};
            c.delivery = {.routing_key = "kq"};
            cases.push_back(c);
        }

        const KeySchema keys(settings_from("redis://"));
        Json specs = Json::array();
        std::vector<std::string> payloads;
        for (auto& c : cases) {
            c.delivery.delivery_tag = kelp::redis::new_delivery_tag();
            payloads.push_back(
                kelp::redis::encode_message(c.envelope, c.delivery, c.body_encoding));
            specs.push_back({{"name", c.name},
                             {"queue", c.delivery.routing_key},
                             {"key", keys.queue_key(c.delivery.routing_key, c.delivery.priority)},
                             {"payload", payloads.back()}});
        }
        const Json results = run_kombu("consume", specs);

        for (std::size_t i = 0; i < cases.size(); ++i) {
            const auto& c = cases[i];
            const std::string& payload = payloads[i];
            INFO("case " << c.name << ": " << payload);
            const Json& r = results[c.name];
            REQUIRE_FALSE(r.contains("error"));
            const kelp::Properties& p = c.envelope.properties;
            CHECK(bytes_of(r["body_b64"]) == c.body_seen.value_or(c.envelope.body));
            CHECK(r["content_type"] == p.content_type);
            CHECK(r["content_encoding"] == p.content_encoding);
            CHECK_FALSE(r.contains("decode_error"));
            CHECK(same_json(r["decoded"], c.decoded));
            Json headers = c.envelope.headers.is_null() ? Json::object() : c.envelope.headers;
            if (c.delivery.redelivered) headers["redelivered"] = true;
            CHECK(same_json(r["headers"], headers));
            CHECK(r["delivery_tag"] == c.delivery.delivery_tag);
            CHECK(r["priority"] == c.delivery.priority);
            Json info = {{"exchange", c.delivery.exchange},
                         {"routing_key", c.delivery.routing_key}};
            if (c.delivery.redelivered) info["redelivered"] = true;
            CHECK(r["delivery_info"] == info);
            const Json& props = r["properties"];
            const auto text_or_missing = [&](const char* name, const std::string& value) {
                if (value.empty())
                    CHECK_FALSE(props.contains(name));
                else
                    CHECK(props[name] == value);
            };
            text_or_missing("correlation_id", p.correlation_id);
            text_or_missing("reply_to", p.reply_to);
            text_or_missing("message_id", p.message_id);
            text_or_missing("type", p.type);
            text_or_missing("app_id", p.app_id);
            text_or_missing("user_id", p.user_id);
            if (p.timestamp) CHECK(props["timestamp"] == *p.timestamp);
            if (p.expiration) CHECK(props["expiration"] == std::to_string(p.expiration->count()));
            CHECK(props["delivery_mode"] == static_cast<int>(p.delivery_mode));
            if (c.delivery.extra_properties.is_object())
                for (const auto& [name, value] : c.delivery.extra_properties.items())
                    CHECK(props[name] == value);
            // Kombu's own tag check: str(uuid.UUID(tag)) == tag and version 4.
            CHECK(r["tag_is_uuid4"] == true);

            // Kombu's ack emulation stores [envelope, exchange, routing_key]: kelp's record.
            CHECK(r["unacked_record"] == kelp::redis::encode_unacked(payload, c.delivery.exchange,
                                                                     c.delivery.routing_key));
            // Kombu's restore pushes the envelope with redelivered set: kelp's encoding.
            DeliveryFields redelivered = c.delivery;
            redelivered.redelivered = true;
            CHECK(r["restored"] ==
                  kelp::redis::encode_message(c.envelope, redelivered, c.body_encoding));
        }
    }
}
