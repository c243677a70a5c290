// Serializers, the accept list and Python-dialect JSON, checked against what
// Kombu and Python's json module do (and against /usr/bin/python3 when present).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "kelp/serialization.hpp"

namespace {

using kelp::AcceptList;
using kelp::Json;

std::string all_bytes() {
    std::string out;
    for (int i = 0; i < 256; ++i)
        out += static_cast<char>(i);
    return out;
}

std::string random_bytes(std::size_t size, unsigned seed) {
    std::mt19937 generator(seed);
    std::string out(size, '\0');
    for (auto& c : out)
        c = static_cast<char>(generator() & 0xFF);
    return out;
}

Json binary(std::string_view bytes) {
    return Json::binary(std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
}

std::string as_bytes(const Json& value) {
    REQUIRE(value.is_binary());
    const auto& bytes = value.get_binary();
    return std::string(bytes.begin(), bytes.end());
}

// The message of the exception `fn` throws as E (fails the test otherwise).
template <class E, class Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const E& error) {
        return error.what();
    }
    FAIL("expected an exception");
    return {};
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// A scratch directory for talking to python3 through files.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = std::filesystem::temp_directory_path() /
               ("kelp-ser-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    void write(const std::string& name, std::string_view data) const {
        std::ofstream(path / name, std::ios::binary)
            .write(data.data(), std::streamsize(data.size()));
    }
    std::string read(const std::string& name) const {
        std::ifstream in(path / name, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }
};

constexpr const char* kPython = "/usr/bin/python3";

// Runs a Python script with the directory as argv[1]; true when it exits 0.
bool run_python(const TempDir& dir, std::string_view script) {
    dir.write("check.py", script);
    const std::string command = std::string(kPython) + " '" + (dir.path / "check.py").string() +
                                "' '" + dir.path.string() + "' 2>'" +
                                (dir.path / "stderr").string() + "'";
    const int status = std::system(command.c_str());
    if (status != 0) MESSAGE("python3 said: " << dir.read("stderr"));
    return status == 0;
}

}  // namespace

TEST_SUITE("serialization") {
    TEST_CASE("json round-trips values and writes Python's json.dumps layout") {
        const Json value = {{"b", "h\xC3\xA9"},
                            {"a", {1, 2.5, nullptr, true, false, -7}},
                            {"nested", {{"empty_list", Json::array()}, {"empty", Json::object()}}}};
        const auto encoded = kelp::encode(value);
        CHECK(encoded.content_type == "application/json");
        CHECK(encoded.content_encoding == "utf-8");
        CHECK(encoded.body == R"({"a": [1, 2.5, null, true, false, -7], "b": "h\u00e9", )"
                              R"("nested": {"empty": {}, "empty_list": []}})");
        CHECK(kelp::decode(encoded.body, encoded.content_type, encoded.content_encoding) == value);
        CHECK(kelp::encode(value, "application/json") == encoded);
    }

    TEST_CASE("floats are written as Python's repr writes them") {
        const std::pair<double, const char*> cases[] = {
            {1.0, "1.0"},
            {100.0, "100.0"},
            {0.1, "0.1"},
            {1234.5, "1234.5"},
            {123456789.123, "123456789.123"},
            {1e15, "1000000000000000.0"},
            {1e16, "1e+16"},
            {1.5e16, "1.5e+16"},
            {0.0001, "0.0001"},
            {1e-05, "1e-05"},
            {1.5e-07, "1.5e-07"},
            {1e100, "1e+100"},
            {-2.5e-300, "-2.5e-300"},
            {5e-324, "5e-324"},
            {1.7976931348623157e308, "1.7976931348623157e+308"},
            {0.0, "0.0"},
            {-0.0, "-0.0"},
            {std::numeric_limits<double>::quiet_NaN(), "NaN"},
            {std::numeric_limits<double>::infinity(), "Infinity"},
            {-std::numeric_limits<double>::infinity(), "-Infinity"},
        };
        for (const auto& [value, text] : cases) {
            CAPTURE(text);
            CHECK(kelp::dump_json(value) == text);
            const Json back = kelp::parse_json(text);
            if (std::isnan(value)) {
                CHECK(std::isnan(back.get<double>()));
            } else {
                CHECK(back.get<double>() == value);
                CHECK(std::signbit(back.get<double>()) == std::signbit(value));
            }
        }
        CHECK(kelp::dump_json(Json(std::int64_t{-9223372036854775807 - 1})) ==
              "-9223372036854775808");
        CHECK(kelp::dump_json(Json(std::uint64_t{18446744073709551615u})) ==
              "18446744073709551615");
    }

    TEST_CASE("strings are escaped as with ensure_ascii, surrogate pairs included") {
        CHECK(kelp::dump_json("\xC3\xA9\xF0\x9F\x98\x80\x7F\x01\t/\"\\\n\r\b\f") ==
              R"("\u00e9\ud83d\ude00\u007f\u0001\t/\"\\\n\r\b\f")");
        CHECK(kelp::dump_json(Json{{"k\xC3\xA9y", 1}}) == R"({"k\u00e9y": 1})");
        CHECK(kelp::dump_json(std::string("a\0b", 3)) == R"("a\u0000b")");
        const auto message =
            error_of<kelp::Error>([] { (void)kelp::dump_json(std::string("bad \xFF byte")); });
        CHECK(contains(message, "not valid UTF-8"));
        CHECK(contains(message, "byte 4"));
    }

    TEST_CASE("bytes cannot be written as JSON, as in Kombu") {
        const auto message = error_of<kelp::Error>([] { (void)kelp::encode(binary("x")); });
        CHECK(contains(message, "encode_bytes"));
        CHECK(contains(message, "msgpack"));
    }

    TEST_CASE("Python's NaN, Infinity and -Infinity are read back") {
        const Json value = kelp::parse_json(
            R"({"x": NaN, "list": [null, NaN, null, Infinity, null, -Infinity, null],)"
            R"( "s": "NaN \"Infinity\" null -Infinity", "n": null, "t": true, "e": 1e5})");
        CHECK(std::isnan(value["x"].get<double>()));
        const auto& list = value["list"];
        REQUIRE(list.size() == 7);
        CHECK(list[0].is_null());
        CHECK(std::isnan(list[1].get<double>()));
        CHECK(list[2].is_null());
        CHECK(list[3].get<double>() == std::numeric_limits<double>::infinity());
        CHECK(list[4].is_null());
        CHECK(list[5].get<double>() == -std::numeric_limits<double>::infinity());
        CHECK(list[6].is_null());
        CHECK(value["s"] == "NaN \"Infinity\" null -Infinity");
        CHECK(value["n"].is_null());
        CHECK(value["t"] == true);
        CHECK(value["e"] == 1e5);
        CHECK(std::isnan(kelp::parse_json("NaN").get<double>()));
        CHECK(kelp::parse_json(" -Infinity ").get<double>() < 0);

        // And through encode/decode.
        const Json special = {std::numeric_limits<double>::quiet_NaN(),
                              std::numeric_limits<double>::infinity(), nullptr};
        const auto encoded = kelp::encode(special);
        CHECK(encoded.body == "[NaN, Infinity, null]");
        const Json back = kelp::decode(encoded.body, "application/json", "utf-8");
        CHECK(std::isnan(back[0].get<double>()));
        CHECK(std::isinf(back[1].get<double>()));
        CHECK(back[2].is_null());
    }

    TEST_CASE("what Python's json.loads rejects is a DecodeError") {
        for (const char* text : {"-NaN", "nan", "NaNa", "[Infinityx]", "inf", "[1,]", "{'a': 1}",
                                 "[NaN,]", "", "   ", "{\"a\": 1} x", "\"unterminated"}) {
            CAPTURE(text);
            CHECK_THROWS_AS((void)kelp::parse_json(text), kelp::DecodeError);
        }
    }

    TEST_CASE("printable_preview quotes, escapes and cuts what arrived") {
        using namespace std::string_literals;
        CHECK(kelp::printable_preview("plain") == R"("plain")");
        CHECK(kelp::printable_preview("a\"b\\c\nd\0\xff"s) == R"("a\"b\\c\nd\x00\xff")");
        CHECK(kelp::printable_preview("abcdef", 3) == R"("abc"...)");
        CHECK(kelp::printable_preview(std::string(48, 'x')) == "\"" + std::string(48, 'x') + "\"");
    }

    TEST_CASE("a raw NUL byte anywhere is a DecodeError, not the end of the input") {
        using namespace std::string_literals;
        for (const std::string& text :
             {"{\"a\": 1}\0junk"s, "\0"s, "[1,\0 2]"s, "\"a\0b\""s, "[NaN]\0"s}) {
            CAPTURE(text);
            CHECK_THROWS_AS((void)kelp::parse_json(text), kelp::DecodeError);
        }
        // Escaped, it is an ordinary character.
        CHECK(kelp::parse_json(R"("a\u0000b")") == kelp::Json("a\0b"s));
    }

    TEST_CASE("integers beyond 64 bits parse, as rounded doubles") {
        // 2**70 = 1180591620717411303424 is what Python writes for big ints.
        const Json big = kelp::parse_json("[1180591620717411303424, -1180591620717411303424]");
        CHECK(big[0].is_number_float());
        CHECK(big[0].get<double>() == std::ldexp(1.0, 70));
        CHECK(big[1].get<double>() == -std::ldexp(1.0, 70));
        // Not a power of two: parsed, precision lost.
        const Json odd = kelp::parse_json("123456789012345678901234567890");
        CHECK(odd.get<double>() == doctest::Approx(1.2345678901234568e29));
        // The 64-bit extremes stay exact integers.
        CHECK(kelp::parse_json("18446744073709551615").get<std::uint64_t>() ==
              18446744073709551615u);
        CHECK(kelp::parse_json("-9223372036854775808").get<std::int64_t>() ==
              -9223372036854775807 - 1);
    }

    TEST_CASE("surrogate pairs decode to UTF-8; lone surrogates become U+FFFD") {
        CHECK(kelp::parse_json(R"("\ud83d\ude00")") == "\xF0\x9F\x98\x80");
        CHECK(kelp::parse_json(R"(["\uD83D\uDE00", NaN])")[0] == "\xF0\x9F\x98\x80");
        CHECK(kelp::parse_json(R"("a\ud800b")") ==
              "a\xEF\xBF\xBD"
              "b");
        CHECK(kelp::parse_json(R"("\udc00")") == "\xEF\xBF\xBD");
        CHECK(kelp::parse_json(R"("x\ud83d")") == "x\xEF\xBF\xBD");
        CHECK(kelp::parse_json(R"("\ud83d\ud83d\ude00")") == "\xEF\xBF\xBD\xF0\x9F\x98\x80");
        // An escaped backslash before "u" is not an escape.
        CHECK(kelp::parse_json(R"(["\\ud800", NaN])")[0] == "\\ud800");
    }

    TEST_CASE("invalid UTF-8 in a JSON body is a DecodeError, as in Kombu") {
        const auto message = error_of<kelp::DecodeError>(
            [] { (void)kelp::decode("{\"a\": \"\xFF\"}", "application/json", "utf-8"); });
        CHECK(contains(message, "\\xff"));
    }

    TEST_CASE("a DecodeError quotes the start of the body, escaped") {
        const std::string body = std::string("{\"a\": \x01\xFE\0", 9) + std::string(100, 'z');
        const auto message = error_of<kelp::DecodeError>(
            [&] { (void)kelp::decode(body, "application/json", "utf-8"); });
        CHECK(contains(message, "invalid JSON"));
        CHECK(contains(message, R"("{\"a\": \x01\xfe\x00zz)"));
        CHECK(contains(message, "109 bytes"));
        CHECK(contains(message, "\"..."));
    }

    TEST_CASE("text serializer: a Json string as its UTF-8 bytes") {
        const auto encoded = kelp::encode("plain text \xC3\xA9", "text");
        CHECK(encoded == kelp::Encoded{"plain text \xC3\xA9", "text/plain", "utf-8"});
        CHECK(kelp::decode(encoded.body, encoded.content_type, encoded.content_encoding) ==
              "plain text \xC3\xA9");
        const std::string with_nul("a\0b", 3);
        CHECK(kelp::decode(kelp::encode(with_nul, "text").body, "text/plain", "utf-8") == with_nul);
        CHECK(contains(error_of<kelp::Error>([] {
                           (void)kelp::encode(Json{1, 2}, "text");
                       }),
                       "json serializer"));
        CHECK(contains(error_of<kelp::Error>([] { (void)kelp::encode("\xFF", "text"); }),
                       "encode_bytes"));
    }

    TEST_CASE("raw serializer and encode_bytes carry any bytes") {
        const std::string bytes = all_bytes() + std::string(3, '\0');
        for (const char* name : {"raw", "bytes", "application/data"}) {
            CAPTURE(name);
            const auto encoded = kelp::encode(binary(bytes), name);
            CHECK(encoded == kelp::Encoded{bytes, "application/data", "binary"});
            CHECK(as_bytes(kelp::decode(encoded.body, encoded.content_type,
                                        encoded.content_encoding)) == bytes);
        }
        CHECK(kelp::encode(Json("as is"), "raw").body == "as is");
        CHECK_THROWS_AS((void)kelp::encode(Json{1}, "raw"), kelp::Error);

        const auto raw = kelp::encode_bytes(bytes);
        CHECK(raw == kelp::Encoded{bytes, "application/data", "binary"});
        CHECK(as_bytes(kelp::decode(raw.body, raw.content_type, raw.content_encoding,
                                    AcceptList{"json"})) == bytes);
    }

    TEST_CASE("encode_bytes fills in the content encoding by Kombu's rules") {
        using kelp::Encoded;
        CHECK(kelp::encode_bytes("x") == Encoded{"x", "application/data", "binary"});
        CHECK(kelp::encode_bytes("{}", "application/json") ==
              Encoded{"{}", "application/json", "utf-8"});
        CHECK(kelp::encode_bytes("t", "text/plain") == Encoded{"t", "text/plain", "utf-8"});
        CHECK(kelp::encode_bytes("m", "application/x-msgpack") ==
              Encoded{"m", "application/x-msgpack", "binary"});
        CHECK(kelp::encode_bytes("<a/>", "application/xml") ==
              Encoded{"<a/>", "application/xml", "binary"});
        CHECK(kelp::encode_bytes("<a/>", "application/xml", "utf-8") ==
              Encoded{"<a/>", "application/xml", "utf-8"});
        CHECK(kelp::encode_bytes("x", "", "latin-1") ==
              Encoded{"x", "application/data", "latin-1"});
    }

    TEST_CASE("msgpack round-trips, bytes and NaN included") {
        const Json value = {{"bin", binary(all_bytes())},
                            {"nan", std::numeric_limits<double>::quiet_NaN()},
                            {"list", {1, -2, 3.5, "s", nullptr, true}},
                            {"big", std::uint64_t{18446744073709551615u}}};
        const auto encoded = kelp::encode(value, "msgpack");
        CHECK(encoded.content_type == "application/x-msgpack");
        CHECK(encoded.content_encoding == "binary");
        const Json back = kelp::decode(encoded.body, encoded.content_type, encoded.content_encoding,
                                       AcceptList{"msgpack"});
        CHECK(as_bytes(back["bin"]) == all_bytes());
        CHECK(std::isnan(back["nan"].get<double>()));
        CHECK(back["list"] == value["list"]);
        CHECK(back["big"] == value["big"]);
        CHECK_THROWS_AS(
            (void)kelp::decode("\xC1", "application/x-msgpack", "binary", AcceptList::all()),
            kelp::DecodeError);
    }

    TEST_CASE("8 MiB bodies round-trip through every serializer") {
        const std::size_t size = std::size_t{8} << 20;
        const std::string noise = random_bytes(size, 7);
        std::string text(size, 'a');
        for (std::size_t i = 0; i < size; i += 97)
            text[i] = '\n';

        const auto raw = kelp::encode(binary(noise), "raw");
        CHECK(as_bytes(kelp::decode(raw.body, raw.content_type, raw.content_encoding)) == noise);

        const auto plain = kelp::encode(text, "text");
        CHECK(kelp::decode(plain.body, plain.content_type, plain.content_encoding) == text);

        const auto json = kelp::encode(Json{{"text", text}});
        CHECK(json.body.size() > size);
        CHECK(kelp::decode(json.body, json.content_type, json.content_encoding)["text"] == text);

        const auto packed = kelp::encode(Json{{"bin", binary(noise)}}, "msgpack");
        CHECK(as_bytes(kelp::decode(packed.body, packed.content_type, packed.content_encoding,
                                    AcceptList::all())["bin"]) == noise);
    }

    TEST_CASE("types without a decoder are decided by the content encoding") {
        CHECK(kelp::decode("<a/>", "application/xml", "utf-8", AcceptList::all()) == "<a/>");
        CHECK(kelp::decode("<a/>", "application/xml", "UTF8", AcceptList::all()) == "<a/>");
        CHECK(kelp::decode("<a/>", "application/xml", "utf_8", AcceptList::all()) == "<a/>");
        CHECK(as_bytes(kelp::decode("<a/>", "application/xml", "binary", AcceptList::all())) ==
              "<a/>");
        CHECK(as_bytes(kelp::decode("<a/>", "application/xml", "ascii-8bit", AcceptList::all())) ==
              "<a/>");
        CHECK(kelp::decode("caf\xE9", "text/plain", "latin-1") == "caf\xC3\xA9");
        CHECK(kelp::decode("cafe", "text/plain", "ascii") == "cafe");
        CHECK(contains(error_of<kelp::DecodeError>(
                           [] { (void)kelp::decode("caf\xE9", "text/plain", "ascii"); }),
                       "not ASCII"));
        CHECK(contains(
            error_of<kelp::DecodeError>([] { (void)kelp::decode("\xFF", "text/plain", "utf-8"); }),
            "invalid UTF-8 at byte 0"));
        const auto message =
            error_of<kelp::DecodeError>([] { (void)kelp::decode("ab", "text/plain", "utf-16"); });
        CHECK(contains(message, "utf-16"));
        CHECK(contains(message, "binary"));
        // text/plain sent as binary stays bytes, as in Kombu.
        CHECK(as_bytes(kelp::decode("t", "text/plain", "binary")) == "t");
        // application/data with a text encoding is text, as in Kombu.
        CHECK(kelp::decode("d", "application/data", "utf-8") == "d");
    }

    TEST_CASE("missing content type and encoding") {
        // No type: application/data. Kombu then decodes by the encoding.
        CHECK(as_bytes(kelp::decode(all_bytes(), "", "binary", AcceptList{"json"})) == all_bytes());
        CHECK(kelp::decode("hi", "", "utf-8") == "hi");
        // Neither: text when it is UTF-8 (Kombu's answer), bytes when it is not
        // (where Kombu raises).
        CHECK(kelp::decode("hi \xC3\xA9", "", "") == "hi \xC3\xA9");
        const std::string raw("\x00\x01\xFF raw", 7);
        CHECK(as_bytes(kelp::decode(raw, "", "")) == raw);
        CHECK(kelp::decode("<a/>", "application/xml", "", AcceptList::all()) == "<a/>");
    }

    TEST_CASE("an empty body is never given to a decoder") {
        CHECK(kelp::decode("", "application/json", "utf-8") == "");
        CHECK(kelp::decode("", "text/plain", "utf-8") == "");
        CHECK(as_bytes(kelp::decode("", "application/x-msgpack", "binary", AcceptList::all()))
                  .empty());
        CHECK(as_bytes(kelp::decode("", "", "binary")).empty());
    }

    TEST_CASE("the default accept list is JSON, text and raw bytes") {
        const AcceptList accept;
        for (const char* type :
             {"application/json", "text/plain", "application/data", "application/text", ""}) {
            CAPTURE(type);
            CHECK(accept.allows(type));
        }
        for (const char* type : {"application/x-msgpack", "application/x-python-serialize",
                                 "application/x-yaml", "application/xml"}) {
            CAPTURE(type);
            CHECK_FALSE(accept.allows(type));
            const auto message =
                error_of<kelp::ContentDisallowed>([&] { (void)kelp::decode("x", type, "binary"); });
            CHECK(contains(message, type));
            CHECK(contains(message, "by default a consumer accepts only application/json"));
            CHECK(contains(message, "AcceptList{\"json\", \""));
        }
        CHECK(AcceptList::defaults().allows("text/plain"));
        CHECK(contains(accept.describe(), "application/json, text/plain"));
    }

    TEST_CASE("an explicit accept list: names, MIME types, always-trusted raw") {
        const AcceptList json_only{"json"};
        CHECK(json_only.allows("application/json"));
        CHECK(json_only.allows("application/data"));
        CHECK(json_only.allows("application/text"));
        CHECK(json_only.allows(""));
        CHECK_FALSE(json_only.allows("text/plain"));
        CHECK_FALSE(json_only.allows("application/x-msgpack"));
        CHECK_FALSE(json_only.allows("json"));  // a name is not a content type
        const auto message = error_of<kelp::ContentDisallowed>(
            [&] { (void)kelp::decode("hi", "text/plain", "utf-8", json_only); });
        CHECK(contains(message, "\"text/plain\""));
        CHECK(contains(message, "application/json"));
        CHECK(contains(message, "always trusted"));
        CHECK(contains(message, "AcceptList::all()"));

        const AcceptList several{"msgpack", "text", "application/x-custom", "json", "json"};
        CHECK(several.describe() ==
              "application/json, application/x-custom, application/x-msgpack, text/plain (and "
              "application/data, application/text, always trusted)");
        CHECK(several.allows("application/x-custom"));

        const AcceptList from_vector(std::vector<std::string>{"bytes", "application/json"});
        CHECK(from_vector.allows("application/json"));
        CHECK_FALSE(from_vector.allows("text/plain"));

        const AcceptList nothing(std::vector<std::string>{});
        CHECK(nothing.allows("application/data"));
        CHECK_FALSE(nothing.allows("application/json"));
        CHECK(contains(nothing.describe(), "only application/data"));

        const auto unknown = error_of<kelp::Error>([] { AcceptList{"pickle"}; });
        CHECK(contains(unknown, "pickle"));
        CHECK(contains(unknown, "json (application/json)"));

        CHECK(AcceptList::all().allows("application/x-python-serialize"));
        CHECK(AcceptList::all().describe() == "anything");
    }

    TEST_CASE("the accept list is checked before decoding") {
        CHECK_THROWS_AS(
            (void)kelp::decode("not json", "application/json", "utf-8", AcceptList{"text"}),
            kelp::ContentDisallowed);
        CHECK_THROWS_AS((void)kelp::decode("not json", "application/json", "utf-8"),
                        kelp::DecodeError);
    }

    TEST_CASE("the registry finds serializers by name, alias and content type") {
        CHECK(kelp::find_serializer("json")->content_type == "application/json");
        CHECK(kelp::find_serializer("application/json")->name == "json");
        CHECK(kelp::find_serializer("bytes")->name == "raw");
        CHECK(kelp::find_serializer("application/data")->name == "raw");
        CHECK(kelp::find_serializer("text/plain")->name == "text");
        CHECK(kelp::find_serializer("msgpack")->content_encoding == "binary");
        const auto names = kelp::serializer_names();
        for (const char* name : {"json", "msgpack", "raw", "text"}) {
            CHECK(std::find(names.begin(), names.end(), name) != names.end());
        }
        CHECK(std::is_sorted(names.begin(), names.end()));
        const auto message = error_of<kelp::Error>([] { (void)kelp::find_serializer("yaml"); });
        CHECK(contains(message, "\"yaml\""));
        CHECK(contains(message, "raw or bytes (application/data)"));
        CHECK(contains(message, "register_serializer"));
        CHECK_THROWS_AS((void)kelp::encode(Json{1}, "pickle"), kelp::Error);
    }

    TEST_CASE("registering a serializer, and replacing it") {
        kelp::register_serializer(
            {.name = "test-upper",
             .aliases = {"test-shout"},
             .content_type = "application/x-test-upper",
             .content_encoding = "utf-8",
             .encode =
                 [](const Json& value) {
                     std::string out = value.get<std::string>();
                     for (auto& c : out)
                         c = static_cast<char>(std::toupper(c));
                     return out;
                 },
             .decode = [](std::string_view body) { return Json(std::string(body) + "!"); }});
        const auto encoded = kelp::encode("hey", "test-shout");
        CHECK(encoded == kelp::Encoded{"HEY", "application/x-test-upper", "utf-8"});
        CHECK(kelp::decode("HEY", "application/x-test-upper", "utf-8", AcceptList::all()) ==
              "HEY!");
        // An encoder that throws anything gives a kelp::Error naming the serializer.
        CHECK(contains(error_of<kelp::Error>([] { (void)kelp::encode(Json{1}, "test-upper"); }),
                       "test-upper"));
        // A decoder that throws anything gives a DecodeError.
        kelp::register_serializer(
            {.name = "test-failing",
             .aliases = {},
             .content_type = "application/x-test-failing",
             .content_encoding = "binary",
             .encode = [](const Json&) { return std::string(); },
             .decode = [](std::string_view) -> Json { throw std::runtime_error("boom"); }});
        const auto failed = error_of<kelp::DecodeError>([] {
            (void)kelp::decode("x", "application/x-test-failing", "binary", AcceptList::all());
        });
        CHECK(contains(failed, "boom"));
        CHECK(contains(failed, "test-failing"));

        kelp::register_serializer({.name = "test-upper",
                                   .aliases = {},
                                   .content_type = "application/x-test-upper2",
                                   .content_encoding = "binary",
                                   .encode = [](const Json&) { return std::string("2"); },
                                   .decode = {}});
        // The replacement took the name; the old alias and content type are gone.
        CHECK(kelp::encode("x", "test-upper").body == "2");
        CHECK_THROWS_AS((void)kelp::find_serializer("test-shout"), kelp::Error);
        CHECK(kelp::decode("x", "application/x-test-upper", "utf-8", AcceptList::all()) == "x");

        CHECK_THROWS_AS(kelp::register_serializer({.name = "",
                                                   .aliases = {},
                                                   .content_type = "a/b",
                                                   .content_encoding = "",
                                                   .encode = [](const Json&) { return ""; },
                                                   .decode = {}}),
                        kelp::Error);
        CHECK(contains(error_of<kelp::Error>([] {
                           kelp::register_serializer({.name = "test-bad",
                                                      .aliases = {},
                                                      .content_type = "json",
                                                      .content_encoding = "",
                                                      .encode = [](const Json&) { return ""; },
                                                      .decode = {}});
                       }),
                       "MIME type"));
        CHECK_THROWS_AS(kelp::register_serializer({.name = "test-bad",
                                                   .aliases = {},
                                                   .content_type = "a/b",
                                                   .content_encoding = "",
                                                   .encode = {},
                                                   .decode = {}}),
                        kelp::Error);
    }

    TEST_CASE("lookups run concurrently with registration") {
        const auto churn = [](int i) {
            kelp::register_serializer({.name = "test-churn",
                                       .aliases = {"test-churn-" + std::to_string(i % 3)},
                                       .content_type = "application/x-test-churn",
                                       .content_encoding = "binary",
                                       .encode = [](const Json&) { return std::string(); },
                                       .decode = {}});
        };
        churn(0);  // before any reader looks it up
        std::atomic<bool> stop{false};
        std::atomic<int> failures{0};
        std::atomic<int> lookups{0};
        std::vector<std::thread> readers;
        for (int t = 0; t < 4; ++t) {
            readers.emplace_back([&] {
                while (!stop.load()) {
                    try {
                        const auto encoded = kelp::encode(Json{{"k", 1}});
                        if (kelp::decode(encoded.body, encoded.content_type,
                                         encoded.content_encoding) != Json{{"k", 1}} ||
                            kelp::find_serializer("test-churn")->content_type !=
                                "application/x-test-churn") {
                            ++failures;
                        }
                    } catch (...) {
                        ++failures;
                    }
                    ++lookups;
                }
            });
        }
        // Replaced over and over while the readers run; none may starve the other.
        for (int i = 1; i < 30; ++i) {
            churn(i);
            std::this_thread::yield();
        }
        while (lookups.load() < 1000)
            std::this_thread::yield();
        stop = true;
        for (auto& reader : readers)
            reader.join();
        CHECK(failures.load() == 0);
    }

    TEST_CASE("interop: python3's json reads kelp's JSON and writes the same bytes") {
        if (!std::filesystem::exists(kPython)) {
            MESSAGE("skipped: no " << kPython);
            return;
        }
        TempDir dir;
        const Json value = {
            {"text", "h\xC3\xA9 \xF0\x9F\x98\x80 \x01\t\"/\\"},
            {"numbers",
             {0, -1, 1.5, 1e-05, 1e+16, 123456789.123, -0.0, 1e100,
              std::uint64_t{18446744073709551615u}}},
            {"special",
             {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
              -std::numeric_limits<double>::infinity()}},
            {"nested", {{"a", nullptr}, {"b", true}, {"c", Json::array()}}}};
        dir.write("kelp.json", kelp::dump_json(value));
        REQUIRE(run_python(dir, R"PY(
import json, math, sys, os
d = sys.argv[1]
raw = open(os.path.join(d, 'kelp.json'), 'rb').read()
v = json.loads(raw)
assert v['text'] == 'h\u00e9 \U0001F600 \x01\t"/\\', v['text']
assert v['numbers'][8] == 2**64 - 1
assert math.isnan(v['special'][0]) and v['special'][1] == math.inf and v['special'][2] == -math.inf
assert math.copysign(1, v['numbers'][6]) == -1
# Python writes it back byte for byte the same (keys in the order kelp wrote them).
assert json.dumps(v).encode() == raw, (json.dumps(v), raw)
# And what Python writes, kelp must read.
out = {'big': 2**70, 'emoji': '\U0001F600', 'nan': float('nan'), 'inf': [float('inf'), -float('inf')],
       'lone': '\ud800', 'f': [0.1, 1e22, 5e-324]}
open(os.path.join(d, 'python.json'), 'w').write(json.dumps(out))
)PY"));
        const Json from_python = kelp::parse_json(dir.read("python.json"));
        CHECK(from_python["big"].get<double>() == std::ldexp(1.0, 70));
        CHECK(from_python["emoji"] == "\xF0\x9F\x98\x80");
        CHECK(std::isnan(from_python["nan"].get<double>()));
        CHECK(from_python["inf"][0].get<double>() == std::numeric_limits<double>::infinity());
        CHECK(from_python["inf"][1].get<double>() == -std::numeric_limits<double>::infinity());
        CHECK(from_python["lone"] == "\xEF\xBF\xBD");
        CHECK(from_python["f"] == Json{0.1, 1e22, 5e-324});
    }
}
