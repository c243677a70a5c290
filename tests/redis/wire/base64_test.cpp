// Base64 as Kombu's envelope carries bodies.
#include <string>

#include <doctest/doctest.h>

#include "kelp/errors.hpp"
#include "wire/base64.hpp"

using kelp::redis::base64_decode;
using kelp::redis::base64_encode;

TEST_SUITE("base64") {
    TEST_CASE("encodes as Python's b64encode") {
        CHECK(base64_encode("") == "");
        CHECK(base64_encode("a") == "YQ==");
        CHECK(base64_encode("ab") == "YWI=");
        CHECK(base64_encode("abc") == "YWJj");
        CHECK(base64_encode(std::string("\x00\x01\xff raw", 7)) == "AAH/IHJhdw==");
        std::string out = "prefix ";
        kelp::redis::base64_append(out, "ab");
        CHECK(out == "prefix YWI=");
        CHECK(base64_encode(R"({"a": 1, "txt": "caf\u00e9"})") ==
              "eyJhIjogMSwgInR4dCI6ICJjYWZcdTAwZTkifQ==");
    }

    TEST_CASE("every byte value round-trips, at every length modulo 3") {
        std::string all;
        for (int i = 0; i < 256; ++i)
            all += static_cast<char>(i);
        for (std::size_t n = 250; n <= 256; ++n) {
            const std::string bytes = all.substr(0, n);
            CHECK(base64_decode(base64_encode(bytes)) == bytes);
        }
    }

    TEST_CASE("reads MIME line breaks and other whitespace, as Python does") {
        CHECK(base64_decode("eyJh\nIjog\r\nMSwg InR4dCI6\tICJjYWZcdTAwZTkifQ==\n") ==
              R"({"a": 1, "txt": "caf\u00e9"})");
        CHECK(base64_decode("Y Q = =") == "a");
    }

    TEST_CASE("ignores padding bits that are not zero, as Python does") {
        CHECK(base64_decode("YR==") == "a");
        CHECK(base64_decode("YWJ=") == "ab");
    }

    TEST_CASE("refuses what is not base64, saying where") {
        const auto error_of = [](std::string_view text) {
            try {
                (void)base64_decode(text);
            } catch (const kelp::DecodeError& e) {
                return std::string(e.what());
            }
            return std::string("no error");
        };
        CHECK(error_of("YW@J").find("byte 0x40 ('@') at offset 2 is not in the base64") !=
              std::string::npos);
        CHECK(error_of("YWJ-").find("'-'") != std::string::npos);  // urlsafe is not Kombu's
        CHECK(error_of("YWJjZ").find("one more than a multiple of 4") != std::string::npos);
        CHECK(error_of("YQ").find("lacks its '=' padding") != std::string::npos);
        CHECK(error_of("YQ=").find("lacks its '=' padding") != std::string::npos);
        CHECK(error_of("YQ==YWI=").find("data after the '=' padding") != std::string::npos);
        CHECK(error_of("YWI==").find("too much '=' padding") != std::string::npos);
        CHECK(error_of("=YWI").find("padding only ends a group") != std::string::npos);
        CHECK(error_of(std::string("YW\xc3\xa9", 4)).find("byte 0xc3") != std::string::npos);
        CHECK(error_of("YWJj").find("no error") != std::string::npos);
        // Every message says what a producer must write.
        CHECK(error_of("YQ").find("standard base64 (RFC 4648") != std::string::npos);
    }
}
