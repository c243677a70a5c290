// Reading Redis values as Kombu does, and writing JSON strings as Python does.
#include "wire/json_text.hpp"

#include <algorithm>
#include <cstdint>

#include "kelp/errors.hpp"
#include "kelp/serialization.hpp"

namespace kelp::redis {
namespace {

bool nested_deeper_than(std::string_view text, std::size_t limit) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

// The length of the well-formed UTF-8 sequence at `i`, or the length of its
// maximal ill-formed prefix negated (at least 1), following the Unicode
// recommendation that Python's decoder implements.
int utf8_sequence_at(std::string_view s, std::size_t i) {
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) return 1;
    int need = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        need = 1;
    } else if (lead == 0xE0) {
        need = 2, low = 0xA0;
    } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
        need = 2;
    } else if (lead == 0xED) {
        need = 2, high = 0x9F;  // no surrogates
    } else if (lead == 0xF0) {
        need = 3, low = 0x90;
    } else if (lead >= 0xF1 && lead <= 0xF3) {
        need = 3;
    } else if (lead == 0xF4) {
        need = 3, high = 0x8F;  // nothing past U+10FFFF
    } else {
        return -1;
    }
    int have = 0;
    while (have < need && i + 1 + static_cast<std::size_t>(have) < s.size()) {
        const auto next = static_cast<unsigned char>(s[i + 1 + static_cast<std::size_t>(have)]);
        const unsigned char lo = have == 0 ? low : 0x80;
        const unsigned char hi = have == 0 ? high : 0xBF;
        if (next < lo || next > hi) break;
        ++have;
    }
    return have == need ? need + 1 : -(have + 1);
}

bool is_valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const int n = utf8_sequence_at(s, i);
        if (n < 0) return false;
        i += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

std::string replace_invalid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 16);
    for (std::size_t i = 0; i < text.size();) {
        const int n = utf8_sequence_at(text, i);
        if (n > 0) {
            out.append(text.substr(i, static_cast<std::size_t>(n)));
            i += static_cast<std::size_t>(n);
        } else {
            out += "\xEF\xBF\xBD";
            i += static_cast<std::size_t>(-n);
        }
    }
    return out;
}

ParsedJson parse_kombu_json(std::string_view text, std::string_view what, std::size_t max_depth) {
    if (nested_deeper_than(text, max_depth))
        throw DecodeError("cannot read " + std::string(what) + ": it nests arrays or objects " +
                          "deeper than " + std::to_string(max_depth) +
                          " levels, which Python's json module cannot read either; " +
                          std::to_string(text.size()) + " bytes starting " + preview(text));
    // nlohmann's parser stops at a NUL byte as at the end of input, so
    // "{...}\0junk" would pass; JSON has no raw NUL anywhere (Python rejects it).
    if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos)
        throw DecodeError("cannot read " + std::string(what) + ": invalid JSON (a NUL byte at " +
                          "offset " + std::to_string(nul) + "; JSON writes it as \\u0000); " +
                          std::to_string(text.size()) + " bytes starting " + preview(text));
    ParsedJson parsed;
    std::string_view source = text;
    // Kombu decodes the bytes with errors="replace" before parsing, so
    // invalid UTF-8 costs the bytes, not the message.
    if (!is_valid_utf8(text)) {
        parsed.repaired = replace_invalid_utf8(text);
        parsed.was_repaired = true;
        source = parsed.repaired;
    }
    try {
        parsed.value = kelp::parse_json(source);
    } catch (const DecodeError& error) {
        throw DecodeError("cannot read " + std::string(what) + ": " + error.what());
    }
    return parsed;
}

void append_json_string(std::string& out, std::string_view s) {
    const bool plain = std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
    });
    if (!plain) {
        out += kelp::dump_json(kelp::Json(std::string(s)));
        return;
    }
    out += '"';
    out += s;
    out += '"';
}

std::size_t json_value_end(std::string_view text, std::size_t begin) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = begin; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
                if (depth == 0) return i + 1;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            ++depth;
        } else if (c == ']' || c == '}') {
            if (depth <= 1) return i + 1;
            --depth;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;  // the end of a number or literal
        }
    }
    return text.size();
}

std::string preview(std::string_view text) {
    return kelp::printable_preview(text, 64);
}

}  // namespace kelp::redis
