// The serializer registry, the accept list and Python-dialect JSON.
#include "kelp/serialization.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kelp/errors.hpp"

namespace kelp {
namespace {

constexpr std::string_view kRawType = raw_content_type;
constexpr std::size_t kNpos = std::string_view::npos;

// Kombu's TRUSTED_CONTENT: accepted whatever the accept list says.
constexpr std::string_view kTrusted[] = {"application/data", "application/text"};
// What a consumer decodes when it names no accept list: JSON and text, besides
// the trusted raw types. Celery's accept_content=['json'] in spirit: nothing
// that can run code (pickle, yaml) or that a sender must opt into (msgpack).
constexpr std::string_view kAcceptedByDefault[] = {"application/json", "text/plain"};

// --- UTF-8 ---------------------------------------------------------------------

// Decodes one code point at `i` and advances; returns -1 for an ill-formed
// sequence (overlong forms, surrogates and values past U+10FFFF included, as
// Python's strict UTF-8 codec rejects them).
std::int32_t next_code_point(std::string_view s, std::size_t& i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char lead = byte(i);
    if (lead < 0x80) {
        ++i;
        return lead;
    }
    std::size_t length = 0;
    std::int32_t cp = 0;
    std::int32_t min = 0;
    if ((lead & 0xE0) == 0xC0) {
        length = 2, cp = lead & 0x1F, min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        length = 3, cp = lead & 0x0F, min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        length = 4, cp = lead & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (i + length > s.size()) return -1;
    for (std::size_t k = 1; k < length; ++k) {
        const unsigned char next = byte(i + k);
        if ((next & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (next & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    i += length;
    return cp;
}

// Offset of the first ill-formed byte, or kNpos when `s` is valid UTF-8.
std::size_t invalid_utf8_at(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        const std::size_t at = i;
        if (next_code_point(s, i) < 0) return at;
    }
    return kNpos;
}

std::string preview(std::string_view body) {
    return printable_preview(body, 48);
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    });
    return out;
}

// --- Python-dialect JSON: reading ------------------------------------------------

enum class Literal : std::uint8_t { null, nan, pos_inf, neg_inf };

// nlohmann's parser rejects NaN/Infinity and lone surrogate escapes, both of
// which Python's json module reads and writes. The rewrite turns every
// NaN/Infinity/-Infinity outside strings into `null` and remembers, for each
// null literal in document order, what it really was; the parser then reports
// null values in that same order, so each is mapped back without any marker
// value that real data could collide with. Lone surrogates become U+FFFD.
struct Rewrite {
    std::string text;
    std::vector<Literal> literals;  // one per null literal outside strings
    bool changed = false;
};

bool is_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The \uXXXX escape at `i` (pointing at the backslash), or -1.
std::int32_t unicode_escape_at(std::string_view s, std::size_t i) {
    if (i + 6 > s.size() || s[i] != '\\' || s[i + 1] != 'u') return -1;
    std::int32_t value = 0;
    for (std::size_t k = i + 2; k < i + 6; ++k) {
        const int digit = hex_value(s[k]);
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return value;
}

Rewrite rewrite_python_json(std::string_view in) {
    Rewrite r;
    r.text.reserve(in.size() + 16);
    bool in_string = false;
    std::size_t i = 0;
    while (i < in.size()) {
        const char c = in[i];
        if (in_string) {
            if (c == '"') {
                in_string = false;
            } else if (c == '\\' && i + 1 < in.size()) {
                const std::int32_t unit = unicode_escape_at(in, i);
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    const std::int32_t low = unicode_escape_at(in, i + 6);
                    if (low >= 0xDC00 && low <= 0xDFFF) {
                        r.text.append(in.substr(i, 12));
                        i += 12;
                    } else {
                        r.text += "\\ufffd";
                        r.changed = true;
                        i += 6;
                    }
                    continue;
                }
                if (unit >= 0xDC00 && unit <= 0xDFFF) {
                    r.text += "\\ufffd";
                    r.changed = true;
                    i += 6;
                    continue;
                }
                r.text.append(in.substr(i, 2));  // the escape's second char cannot end the string
                i += 2;
                continue;
            }
            r.text += c;
            ++i;
            continue;
        }
        if (c == '"') {
            in_string = true;
            r.text += c;
            ++i;
            continue;
        }
        const bool negative = c == '-' && i + 1 < in.size() && is_letter(in[i + 1]);
        if (is_letter(c) || negative) {
            const std::size_t start = negative ? i + 1 : i;
            std::size_t end = start;
            while (end < in.size() && is_letter(in[end]))
                ++end;
            const std::string_view word = in.substr(start, end - start);
            std::optional<Literal> literal;
            if (!negative && word == "null") {
                literal = Literal::null;
            } else if (!negative && word == "NaN") {
                literal = Literal::nan;
            } else if (word == "Infinity") {
                literal = negative ? Literal::neg_inf : Literal::pos_inf;
            }
            if (!literal) {
                // Not ours (true, false, an exponent, or garbage the parser will report).
                r.text.append(in.substr(i, end - i));
            } else {
                r.text += "null";
                r.literals.push_back(*literal);
                r.changed = r.changed || *literal != Literal::null;
            }
            i = end;
            continue;
        }
        r.text += c;
        ++i;
    }
    return r;
}

[[noreturn]] void throw_json_error(std::string_view text, const std::exception& error) {
    throw DecodeError("invalid JSON (" + std::string(error.what()) + "); " +
                      std::to_string(text.size()) + " bytes starting " + preview(text));
}

// --- Python-dialect JSON: writing --------------------------------------------------

void write_string(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    const auto escape_unit = [&](std::uint32_t unit) {
        out += "\\u";
        for (int shift = 12; shift >= 0; shift -= 4)
            out += kHex[(unit >> shift) & 0xF];
    };
    out += '"';
    std::size_t i = 0;
    while (i < s.size()) {
        // Copy runs that need no escaping in one go: the common case.
        std::size_t run = i;
        while (run < s.size()) {
            const auto c = static_cast<unsigned char>(s[run]);
            if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') break;
            ++run;
        }
        out.append(s.substr(i, run - i));
        i = run;
        if (i == s.size()) break;
        const char c = s[i];
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default: {
                const std::size_t at = i;
                const std::int32_t cp = next_code_point(s, i);
                if (cp < 0) {
                    throw Error("cannot encode a string as JSON: it is not valid UTF-8 (byte " +
                                std::to_string(at) + "); send bytes with encode_bytes instead");
                }
                if (cp < 0x10000) {
                    escape_unit(static_cast<std::uint32_t>(cp));
                } else {
                    const auto v = static_cast<std::uint32_t>(cp - 0x10000);
                    escape_unit(0xD800 + (v >> 10));
                    escape_unit(0xDC00 + (v & 0x3FF));
                }
                continue;
            }
        }
        ++i;
    }
    out += '"';
}

// Python's repr(float): the shortest digits that round-trip, in fixed notation
// for exponents -4..15 (always with a fractional part) and in scientific
// notation otherwise, with a signed exponent of at least two digits.
void write_double(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "Infinity" : "-Infinity";
        return;
    }
    char buf[64];
    const auto result = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    const std::string_view sci(buf, static_cast<std::size_t>(result.ptr - buf));
    const std::size_t e = sci.find('e');
    std::string_view mantissa = sci.substr(0, e);
    if (mantissa.front() == '-') {
        out += '-';
        mantissa.remove_prefix(1);
    }
    std::string digits;
    for (const char c : mantissa) {
        if (c != '.') digits += c;
    }
    int exponent = 0;
    const std::string_view exp_text = sci.substr(e + 1);
    std::from_chars(exp_text.data() + (exp_text.front() == '+' ? 1 : 0),
                    exp_text.data() + exp_text.size(), exponent);
    const auto n = static_cast<int>(digits.size());
    if (exponent >= -4 && exponent < 16) {
        if (exponent < 0) {
            out += "0.";
            out.append(static_cast<std::size_t>(-exponent - 1), '0');
            out += digits;
        } else if (exponent + 1 >= n) {
            out += digits;
            out.append(static_cast<std::size_t>(exponent + 1 - n), '0');
            out += ".0";
        } else {
            out.append(digits, 0, static_cast<std::size_t>(exponent + 1));
            out += '.';
            out.append(digits, static_cast<std::size_t>(exponent + 1));
        }
        return;
    }
    out += digits[0];
    if (n > 1) {
        out += '.';
        out.append(digits, 1);
    }
    out += exponent < 0 ? "e-" : "e+";
    const int magnitude = std::abs(exponent);
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
}

void write_json(std::string& out, const Json& value) {
    switch (value.type()) {
        case Json::value_t::null:
            out += "null";
            return;
        case Json::value_t::boolean:
            out += value.get<bool>() ? "true" : "false";
            return;
        case Json::value_t::number_integer:
            out += std::to_string(value.get<std::int64_t>());
            return;
        case Json::value_t::number_unsigned:
            out += std::to_string(value.get<std::uint64_t>());
            return;
        case Json::value_t::number_float:
            write_double(out, value.get<double>());
            return;
        case Json::value_t::string:
            write_string(out, value.get_ref<const std::string&>());
            return;
        case Json::value_t::array: {
            out += '[';
            bool first = true;
            for (const auto& item : value) {
                if (!first) out += ", ";
                first = false;
                write_json(out, item);
            }
            out += ']';
            return;
        }
        case Json::value_t::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, item] : value.items()) {
                if (!first) out += ", ";
                first = false;
                write_string(out, key);
                out += ": ";
                write_json(out, item);
            }
            out += '}';
            return;
        }
        case Json::value_t::binary:
            throw Error(
                "cannot encode bytes (a Json binary) as JSON, as Kombu cannot either; publish "
                "them with encode_bytes, or use the msgpack serializer");
        case Json::value_t::discarded:
            break;
    }
    throw Error("cannot encode a discarded Json value (the result of a failed parse)");
}

// --- text codecs -------------------------------------------------------------------

enum class TextCodec { utf8, ascii, latin1, binary, unknown };

// Python looks codecs up ignoring case and '-'/'_' differences; Kombu skips
// decoding for exactly "binary" and "ascii-8bit".
TextCodec codec_for(std::string_view encoding) {
    const std::string name = lower(encoding);
    if (name == "binary" || name == "ascii-8bit") return TextCodec::binary;
    std::string key;
    for (const char c : name) {
        if (c != '-' && c != '_' && c != ' ') key += c;
    }
    if (key == "utf8" || key == "u8" || key == "utf" || key == "cp65001") return TextCodec::utf8;
    if (key == "ascii" || key == "usascii" || key == "us" || key == "646") return TextCodec::ascii;
    if (key == "latin1" || key == "latin" || key == "l1" || key == "iso88591" || key == "8859" ||
        key == "iso8859" || key == "cp819") {
        return TextCodec::latin1;
    }
    return TextCodec::unknown;
}

Json bytes_value(std::string_view body) {
    return Json::binary(std::vector<std::uint8_t>(body.begin(), body.end()));
}

Json decode_text(std::string_view body, std::string_view content_type, std::string_view encoding) {
    const auto fail = [&](const std::string& why) -> DecodeError {
        return DecodeError("cannot decode a " + std::string(content_type) + " body as " +
                           std::string(encoding) + " text: " + why + "; " +
                           std::to_string(body.size()) + " bytes starting " + preview(body));
    };
    if (encoding.empty()) {
        // Unlabelled: Kombu tries UTF-8 and fails on anything else; bytes are
        // more useful than an error.
        return invalid_utf8_at(body) == kNpos ? Json(std::string(body)) : bytes_value(body);
    }
    switch (codec_for(encoding)) {
        case TextCodec::binary:
            return bytes_value(body);
        case TextCodec::utf8:
            if (const auto at = invalid_utf8_at(body); at != kNpos) {
                throw fail("invalid UTF-8 at byte " + std::to_string(at));
            }
            return std::string(body);
        case TextCodec::ascii:
            for (std::size_t i = 0; i < body.size(); ++i) {
                if (static_cast<unsigned char>(body[i]) >= 0x80) {
                    throw fail("byte " + std::to_string(i) + " is not ASCII");
                }
            }
            return std::string(body);
        case TextCodec::latin1: {
            std::string out;
            out.reserve(body.size());
            for (const char c : body) {
                const auto b = static_cast<unsigned char>(c);
                if (b < 0x80) {
                    out += c;
                } else {
                    out += static_cast<char>(0xC0 | (b >> 6));
                    out += static_cast<char>(0x80 | (b & 0x3F));
                }
            }
            return out;
        }
        case TextCodec::unknown:
            break;
    }
    throw fail(
        "kelp decodes only utf-8, ascii and latin-1 text (or \"binary\" for raw bytes), "
        "not this encoding");
}

// --- the registry --------------------------------------------------------------------

using SerializerPtr = std::shared_ptr<const Serializer>;

// Lookups copy a pointer to an immutable snapshot under a mutex held for
// nanoseconds, then search without any lock; registration builds a new
// snapshot. Unlike a reader-writer lock (glibc's prefers readers), a steady
// stream of decoding threads can never starve a registration.
class Registry {
  public:
    Registry() { install_builtins(); }

    void add(Serializer serializer) {
        if (serializer.name.empty()) throw Error("register_serializer: the name is empty");
        if (serializer.content_type.find('/') == std::string::npos) {
            throw Error("register_serializer(\"" + serializer.name +
                        "\"): the content type must be a MIME type such as "
                        "\"application/x-thing\", not \"" +
                        serializer.content_type + "\"");
        }
        if (!serializer.encode) {
            throw Error("register_serializer(\"" + serializer.name + "\"): no encode function");
        }
        auto entry = std::make_shared<const Serializer>(std::move(serializer));
        std::lock_guard writer(write_mutex_);
        auto next = std::make_shared<Tables>(*snapshot());
        if (const auto old = next->by_name.find(entry->name); old != next->by_name.end()) {
            const SerializerPtr replaced = old->second;
            std::erase_if(next->by_name, [&](const auto& item) { return item.second == replaced; });
            std::erase_if(next->by_type, [&](const auto& item) { return item.second == replaced; });
        }
        next->by_name[entry->name] = entry;
        for (const auto& alias : entry->aliases)
            next->by_name[alias] = entry;
        next->by_type[entry->content_type] = entry;
        std::lock_guard lock(snapshot_mutex_);
        tables_ = std::move(next);
    }

    SerializerPtr by_name_or_type(std::string_view key) const {
        const auto tables = snapshot();
        if (const auto it = tables->by_name.find(key); it != tables->by_name.end())
            return it->second;
        if (const auto it = tables->by_type.find(key); it != tables->by_type.end())
            return it->second;
        return nullptr;
    }

    SerializerPtr by_type(std::string_view content_type) const {
        const auto tables = snapshot();
        const auto it = tables->by_type.find(content_type);
        return it == tables->by_type.end() ? nullptr : it->second;
    }

    SerializerPtr by_name(std::string_view name) const {
        const auto tables = snapshot();
        const auto it = tables->by_name.find(name);
        return it == tables->by_name.end() ? nullptr : it->second;
    }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& [key, entry] : snapshot()->by_name) {
            if (key == entry->name) out.push_back(key);
        }
        return out;  // sorted: the map is
    }

    // "json (application/json), raw or bytes (application/data), ..."
    std::string describe() const {
        std::string out;
        for (const auto& [key, entry] : snapshot()->by_name) {
            if (key != entry->name) continue;
            if (!out.empty()) out += ", ";
            out += entry->name;
            for (const auto& alias : entry->aliases)
                out += " or " + alias;
            out += " (" + entry->content_type + ")";
        }
        return out;
    }

  private:
    struct Tables {
        std::map<std::string, SerializerPtr, std::less<>> by_name;  // names and aliases
        std::map<std::string, SerializerPtr, std::less<>> by_type;
    };

    std::shared_ptr<const Tables> snapshot() const {
        std::lock_guard lock(snapshot_mutex_);
        return tables_;
    }

    void install_builtins();

    std::mutex write_mutex_;  // one registration at a time
    mutable std::mutex snapshot_mutex_;
    std::shared_ptr<const Tables> tables_ = std::make_shared<const Tables>();
};

void Registry::install_builtins() {
    add({.name = "json",
         .aliases = {},
         .content_type = "application/json",
         .content_encoding = "utf-8",
         .encode = [](const Json& value) { return dump_json(value); },
         .decode = [](std::string_view body) { return parse_json(body); }});
    add({.name = "text",
         .aliases = {},
         .content_type = "text/plain",
         .content_encoding = "utf-8",
         .encode =
             [](const Json& value) {
                 if (!value.is_string()) {
                     throw Error(std::string("the text serializer writes a Json string, not ") +
                                 value.type_name() + "; use the json serializer for other values");
                 }
                 const auto& text = value.get_ref<const std::string&>();
                 if (const auto at = invalid_utf8_at(text); at != kNpos) {
                     throw Error("the text serializer needs UTF-8, and byte " + std::to_string(at) +
                                 " is not; send bytes with encode_bytes instead");
                 }
                 return text;
             },
         .decode = {}});
    add({.name = "raw",
         .aliases = {"bytes"},
         .content_type = std::string(kRawType),
         .content_encoding = "binary",
         .encode =
             [](const Json& value) {
                 if (value.is_binary()) {
                     const auto& bytes = value.get_binary();
                     return std::string(bytes.begin(), bytes.end());
                 }
                 if (value.is_string()) return value.get<std::string>();
                 throw Error(
                     std::string("the raw serializer writes a Json binary or string, not ") +
                     value.type_name() + "; use the json serializer for other values");
             },
         .decode = {}});
    add({.name = "msgpack",
         .aliases = {},
         .content_type = "application/x-msgpack",
         .content_encoding = "binary",
         .encode =
             [](const Json& value) {
                 if (value.is_discarded()) throw Error("cannot encode a discarded Json value");
                 std::string out;
                 Json::to_msgpack(value, out);
                 return out;
             },
         .decode = [](std::string_view body) { return Json::from_msgpack(body); }});
}

Registry& registry() {
    static Registry instance;
    return instance;
}

SerializerPtr require_serializer(std::string_view name_or_type) {
    if (auto found = registry().by_name_or_type(name_or_type)) return found;
    throw Error("unknown serializer \"" + std::string(name_or_type) + "\"; known: " +
                registry().describe() + ". Register others with kelp::register_serializer");
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

}  // namespace

// --- public API --------------------------------------------------------------------

Json parse_json(std::string_view text) {
    const char* const begin = text.data();
    const char* const end = begin + text.size();
    // nlohmann's parser treats a NUL byte as the end of its input, so
    // "{...}\0junk" would pass; JSON has no place for a raw NUL anywhere.
    if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
        throw DecodeError("invalid JSON: a raw NUL byte at offset " + std::to_string(nul) +
                          " (JSON text escapes it as \\u0000); " + std::to_string(text.size()) +
                          " bytes starting " + preview(text));
    }
    // Standard JSON, by far the common case, needs one plain parse.
    Json value = Json::parse(begin, end, nullptr, /*allow_exceptions=*/false);
    if (!value.is_discarded()) return value;

    Rewrite rewrite = rewrite_python_json(text);
    if (!rewrite.changed) {
        try {
            [[maybe_unused]] const Json reparsed = Json::parse(begin, end);
        } catch (const Json::exception& error) {
            throw_json_error(text, error);
        }
        throw DecodeError("invalid JSON; " + std::to_string(text.size()) + " bytes starting " +
                          preview(text));
    }
    std::size_t next = 0;
    const auto restore = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
        if (event != Json::parse_event_t::value || !parsed.is_null()) return true;
        if (next < rewrite.literals.size()) {
            switch (rewrite.literals[next]) {
                case Literal::null:
                    break;
                case Literal::nan:
                    parsed = std::numeric_limits<double>::quiet_NaN();
                    break;
                case Literal::pos_inf:
                    parsed = std::numeric_limits<double>::infinity();
                    break;
                case Literal::neg_inf:
                    parsed = -std::numeric_limits<double>::infinity();
                    break;
            }
        }
        ++next;
        return true;
    };
    try {
        return Json::parse(rewrite.text.data(), rewrite.text.data() + rewrite.text.size(), restore);
    } catch (const Json::exception& error) {
        throw_json_error(text, error);
    }
}

std::string dump_json(const Json& value) {
    std::string out;
    write_json(out, value);
    return out;
}

void register_serializer(Serializer serializer) {
    registry().add(std::move(serializer));
}

std::shared_ptr<const Serializer> find_serializer(std::string_view name_or_content_type) {
    return require_serializer(name_or_content_type);
}

std::vector<std::string> serializer_names() {
    return registry().names();
}

AcceptList::AcceptList() = default;

AcceptList::AcceptList(std::initializer_list<std::string_view> names_or_types)
    : mode_(Mode::listed) {
    for (const auto item : names_or_types)
        add(item);
}

AcceptList::AcceptList(const std::vector<std::string>& names_or_types) : mode_(Mode::listed) {
    for (const auto& item : names_or_types)
        add(item);
}

AcceptList AcceptList::defaults() {
    return AcceptList();
}

AcceptList AcceptList::all() {
    return AcceptList(Mode::all);
}

void AcceptList::add(std::string_view name_or_type) {
    std::string type;
    if (name_or_type.find('/') != std::string_view::npos) {
        type = std::string(name_or_type);
    } else if (const auto found = registry().by_name(name_or_type)) {
        type = found->content_type;
    } else {
        throw Error("accept list: unknown serializer name \"" + std::string(name_or_type) +
                    "\"; known: " + registry().describe() +
                    ". Use a MIME type (with a '/') to accept a type kelp has no serializer for");
    }
    const auto at = std::lower_bound(types_.begin(), types_.end(), type);
    if (at == types_.end() || *at != type) types_.insert(at, std::move(type));
}

bool AcceptList::allows(std::string_view content_type) const {
    if (content_type.empty()) content_type = kRawType;
    switch (mode_) {
        case Mode::all:
            return true;
        case Mode::defaults:
            return std::find(std::begin(kTrusted), std::end(kTrusted), content_type) !=
                       std::end(kTrusted) ||
                   std::find(std::begin(kAcceptedByDefault), std::end(kAcceptedByDefault),
                             content_type) != std::end(kAcceptedByDefault);
        case Mode::listed:
            return std::find(std::begin(kTrusted), std::end(kTrusted), content_type) !=
                       std::end(kTrusted) ||
                   std::binary_search(types_.begin(), types_.end(), content_type);
    }
    return false;
}

void AcceptList::check(std::string_view content_type) const {
    if (allows(content_type)) return;
    const std::string type(content_type);
    if (mode_ == Mode::defaults) {
        throw ContentDisallowed("refusing to decode content of type \"" + type +
                                "\": by default a consumer accepts only " + describe() +
                                ". To accept it, list it in the consumer's accept list, e.g. "
                                "AcceptList{\"json\", \"" +
                                type + "\"}");
    }
    throw ContentDisallowed("refusing to decode content of type \"" + type +
                            "\": the accept list allows " + describe() + ". To accept it, add \"" +
                            type + "\" to the consumer's accept list (or use AcceptList::all())");
}

std::string AcceptList::describe() const {
    switch (mode_) {
        case Mode::all:
            return "anything";
        case Mode::defaults: {
            std::string out;
            for (const auto type : kAcceptedByDefault) {
                out += type;
                out += ", ";
            }
            return out + "application/data, application/text (JSON, text and raw bytes)";
        }
        case Mode::listed:
            break;
    }
    std::string listed = join(types_);
    return (listed.empty() ? std::string("only ") : listed + " (and ") +
           "application/data, application/text" +
           (listed.empty() ? ", which are always trusted" : ", always trusted)");
}

Encoded encode(const Json& value, std::string_view serializer) {
    const auto found = require_serializer(serializer);
    try {
        return {found->encode(value), found->content_type, found->content_encoding};
    } catch (const Error&) {
        throw;
    } catch (const std::exception& error) {
        throw Error("cannot encode with the " + found->name + " serializer: " + error.what());
    }
}

Encoded encode_bytes(std::string body, std::string_view content_type,
                     std::string_view content_encoding) {
    Encoded out{std::move(body), std::string(content_type), std::string(content_encoding)};
    if (out.content_type.empty()) out.content_type = kRawType;
    if (out.content_encoding.empty()) {
        const auto found = registry().by_type(out.content_type);
        out.content_encoding = found ? found->content_encoding : "binary";
    }
    return out;
}

Json decode(std::string_view body, std::string_view content_type, std::string_view content_encoding,
            const AcceptList& accept) {
    if (content_type.empty()) content_type = kRawType;
    accept.check(content_type);
    if (!body.empty()) {
        if (const auto found = registry().by_type(content_type); found && found->decode) {
            try {
                return found->decode(body);
            } catch (const DecodeError&) {
                throw;
            } catch (const std::exception& error) {
                throw DecodeError("cannot decode a " + std::string(content_type) +
                                  " body with the " + found->name + " serializer (" + error.what() +
                                  "); " + std::to_string(body.size()) + " bytes starting " +
                                  preview(body));
            }
        }
    }
    return decode_text(body, content_type, content_encoding);
}

std::string printable_preview(std::string_view bytes, std::size_t max) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < std::min(bytes.size(), max); ++i) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c >= 0x20 && c < 0x7F) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
        }
    }
    out += bytes.size() > max ? "\"..." : "\"";
    return out;
}

}  // namespace kelp
