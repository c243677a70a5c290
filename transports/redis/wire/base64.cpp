// RFC 4648 base64, read with Python's tolerance for whitespace.
#include "wire/base64.hpp"

#include <array>
#include <cstdint>

#include "kelp/errors.hpp"

namespace kelp::redis {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint8_t kSkip = 0xFE;     // whitespace
constexpr std::uint8_t kInvalid = 0xFF;  // anything else outside the alphabet
constexpr std::uint8_t kPad = 0xFD;      // '='

constexpr std::array<std::uint8_t, 256> make_table() {
    std::array<std::uint8_t, 256> table{};
    for (auto& entry : table)
        entry = kInvalid;
    for (std::uint8_t i = 0; i < 64; ++i)
        table[static_cast<unsigned char>(kAlphabet[i])] = i;
    for (const char c : {' ', '\t', '\n', '\r', '\v', '\f'})
        table[static_cast<unsigned char>(c)] = kSkip;
    table['='] = kPad;
    return table;
}

constexpr std::array<std::uint8_t, 256> kTable = make_table();

std::string describe_byte(unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "byte 0x";
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
    if (c >= 0x20 && c < 0x7F) {
        out += " ('";
        out += static_cast<char>(c);
        out += "')";
    }
    return out;
}

[[noreturn]] void fail(const std::string& what) {
    throw DecodeError("the message body is not valid base64: " + what +
                      ". A producer must write standard base64 (RFC 4648, '=' padding) "
                      "with properties.body_encoding \"base64\", or the body as plain text "
                      "without body_encoding");
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    base64_append(out, bytes);
    return out;
}

void base64_append(std::string& out, std::string_view bytes) {
    const std::size_t start = out.size();
    out.resize(start + (bytes.size() + 2) / 3 * 4);
    char* o = out.data() + start;
    std::size_t i = 0;
    const auto byte = [&](std::size_t k) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
    };
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        *o++ = kAlphabet[(v >> 18) & 63];
        *o++ = kAlphabet[(v >> 12) & 63];
        *o++ = kAlphabet[(v >> 6) & 63];
        *o++ = kAlphabet[v & 63];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest > 0) {
        const std::uint32_t v = (byte(i) << 16) | (rest == 2 ? byte(i + 1) << 8 : 0);
        *o++ = kAlphabet[(v >> 18) & 63];
        *o++ = kAlphabet[(v >> 12) & 63];
        *o++ = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
}

std::string base64_decode(std::string_view text) {
    // Sized for the most the text can carry, cut to what it did at the end;
    // bytes are written through a pointer, not appended one at a time.
    std::string out;
    out.resize(text.size() / 4 * 3 + 3);
    char* o = out.data();
    const auto value = [&text](std::size_t k) {
        return static_cast<std::uint32_t>(kTable[static_cast<unsigned char>(text[k])]);
    };
    // Whole groups of four alphabet characters, as producers write nearly
    // all of the text: no whitespace, padding or invalid byte (each of which
    // has a table value of 64 or more) until the general loop below.
    std::size_t i = 0;
    for (; i + 4 <= text.size(); i += 4) {
        const std::uint32_t a = value(i), b = value(i + 1), c = value(i + 2), d = value(i + 3);
        if (((a | b | c | d) & 0xC0) != 0) break;
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
        *o++ = static_cast<char>((v >> 16) & 0xFF);
        *o++ = static_cast<char>((v >> 8) & 0xFF);
        *o++ = static_cast<char>(v & 0xFF);
    }
    std::uint32_t quad = 0;  // bits of the quad read so far
    int in_quad = 0;         // data characters of the current quad
    int pads = 0;            // '=' seen; once non-zero, only '=' and whitespace may follow
    std::size_t data_chars = i;
    for (; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        const std::uint8_t v = kTable[c];
        if (v == kSkip) continue;
        if (v == kInvalid)
            fail(describe_byte(c) + " at offset " + std::to_string(i) +
                 " is not in the base64 alphabet (A-Z, a-z, 0-9, '+', '/')");
        if (v == kPad) {
            if (in_quad < 2)
                fail("'=' at offset " + std::to_string(i) + " comes after " +
                     std::to_string(in_quad) +
                     " character(s) of a group of four; padding only ends a group of 2 or 3");
            if (in_quad + ++pads > 4) fail("too much '=' padding at offset " + std::to_string(i));
            continue;
        }
        if (pads > 0)
            fail("data after the '=' padding, at offset " + std::to_string(i) +
                 " (two base64 texts glued together?)");
        quad = (quad << 6) | v;
        ++data_chars;
        if (++in_quad == 4) {
            *o++ = static_cast<char>((quad >> 16) & 0xFF);
            *o++ = static_cast<char>((quad >> 8) & 0xFF);
            *o++ = static_cast<char>(quad & 0xFF);
            quad = 0;
            in_quad = 0;
        }
    }
    if (in_quad == 1)
        fail(std::to_string(data_chars) +
             " base64 characters is one more than a multiple of 4 (the text is cut short)");
    if (in_quad != 0 && in_quad + pads != 4)
        fail("the last group of four lacks its '=' padding (" + std::to_string(data_chars) +
             " base64 characters)");
    // 2 or 3 characters carry 1 or 2 bytes; the leftover bits are ignored, as Python does.
    if (in_quad == 2) {
        *o++ = static_cast<char>((quad >> 4) & 0xFF);
    } else if (in_quad == 3) {
        *o++ = static_cast<char>((quad >> 10) & 0xFF);
        *o++ = static_cast<char>((quad >> 2) & 0xFF);
    }
    out.resize(static_cast<std::size_t>(o - out.data()));
    return out;
}

}  // namespace kelp::redis
