// Serialization: turning values into message bodies and back, by content type,
// with Kombu's rules so that kelp and Python Kombu/Celery read each other's
// messages.
//
//   auto encoded = kelp::encode(kelp::Json{{"file", "a.mp4"}});      // application/json
//   kelp::Json value = kelp::decode(encoded.body, encoded.content_type,
//                                   encoded.content_encoding, kelp::AcceptList{"json"});
//
// Bodies are always bytes (std::string). A registry maps serializer names and
// MIME types to encoders and decoders; built in are "json" (application/json,
// utf-8), "text" (text/plain, utf-8), "raw"/"bytes" (application/data, binary)
// and "msgpack" (application/x-msgpack, binary).
//
// Decoding follows Kombu's `loads`: the accept list is checked first; a type
// with a decoder (json, msgpack) is decoded by it; any other type is text when
// its content encoding names a text encoding and raw bytes (a Json binary) when
// it is "binary" or "ascii-8bit". See docs in decode() for the details.
//
// JSON is Python's dialect in both directions: NaN, Infinity and -Infinity are
// read and written as bare literals (as Python's json module does), surrogate
// pairs are understood, and the output uses json.dumps' default layout
// (", " and ": " separators, non-ASCII escaped as \uXXXX) so kelp's bodies are
// what Kombu would have written for the same value, object keys aside: a Json
// object keeps its keys sorted, while Python keeps insertion order.
//
// Thread rules: every function here may be called from any thread. Lookups
// read an immutable snapshot of the registry and run concurrently;
// registration (rare, usually at start-up) publishes a new snapshot and never
// waits for readers to drain. A Serializer found in the registry stays valid
// while you hold it, even if it is replaced. AcceptList is a plain value type.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kelp/json.hpp"

namespace kelp {

// Kombu's content type for raw bytes (sent with content_encoding "binary").
inline constexpr std::string_view raw_content_type = "application/data";

// A body with the content type and encoding that describe it, ready to publish.
struct Encoded {
    std::string body;
    std::string content_type;
    std::string content_encoding;
    bool operator==(const Encoded&) const = default;
};

struct Serializer {
    std::string name;                  // "json"
    std::vector<std::string> aliases;  // other names it is found by
    std::string content_type;          // "application/json"
    std::string content_encoding;      // "utf-8" or "binary"
    // Throws kelp::Error when the value cannot be written in this format.
    std::function<std::string(const Json&)> encode;
    // Throws anything on malformed input (decode() turns it into DecodeError).
    // Leave empty for formats whose bodies are just text or bytes (text, raw):
    // decode() then applies the content-encoding rule, as Kombu does for types
    // it has no decoder for.
    std::function<Json(std::string_view)> decode;
};

// Adds a serializer, or replaces the one with the same name (its aliases and
// content type go with it). A content type belongs to the serializer that
// registered it last. Throws kelp::Error when the name, content type (a MIME
// type, with a '/') or encoder is missing.
void register_serializer(Serializer serializer);

// By name, alias or content type; throws kelp::Error listing the known ones.
std::shared_ptr<const Serializer> find_serializer(std::string_view name_or_content_type);

// The registered serializer names, sorted.
std::vector<std::string> serializer_names();

// Which content types a consumer agrees to decode (Kombu's `accept`).
//
// - AcceptList::defaults() (also the default constructor): JSON, text and raw
//   bytes (application/json, text/plain, application/data, application/text).
//   Like Celery's accept_content=['json']: pickle and yaml (which can run
//   code) and msgpack must be asked for. (Kombu's own accept=None is looser:
//   everything but pickle, yaml and msgpack; AcceptList::all() minus those
//   three is not offered, name what you accept instead.)
// - AcceptList{"json", "application/x-msgpack"}: exactly these, by serializer
//   name (resolved through the registry now; an unknown name throws
//   kelp::Error) or by MIME type (anything with a '/', taken as is). As in
//   Kombu, application/data and application/text are always trusted, so an
//   explicit list still lets raw bytes through. AcceptList{"json"} is
//   Celery's default (accept_content=['json']).
// - AcceptList::all(): anything.
//
// Content types are compared exactly, as Kombu does ("application/json;
// charset=utf-8" is not "application/json").
class AcceptList {
  public:
    AcceptList();
    AcceptList(std::initializer_list<std::string_view> names_or_types);
    explicit AcceptList(const std::vector<std::string>& names_or_types);

    static AcceptList defaults();
    static AcceptList all();

    bool allows(std::string_view content_type) const;
    // Throws ContentDisallowed naming the type, what is accepted and how to
    // allow it. An empty content type counts as application/data.
    void check(std::string_view content_type) const;
    // "application/json, text/plain (and ...)", or "anything".
    std::string describe() const;

  private:
    enum class Mode { defaults, listed, all };
    explicit AcceptList(Mode mode) : mode_(mode) {}
    void add(std::string_view name_or_type);

    Mode mode_ = Mode::defaults;
    std::vector<std::string> types_;  // sorted; only for Mode::listed
};

// Encodes a value with a serializer (by name or content type).
// - json: Python's json.dumps layout (see above); a Json binary cannot be
//   written as JSON and throws kelp::Error, as Kombu refuses bytes.
// - text: the value must be a Json string (valid UTF-8); its bytes are the body.
// - raw/bytes: a Json binary or string, written as is.
// - msgpack: nlohmann's MessagePack (a Json binary becomes a bin value, as
//   Python's msgpack with use_bin_type=True).
// Unknown serializer: kelp::Error listing the known ones.
Encoded encode(const Json& value, std::string_view serializer = "json");

// A body that is already bytes. With no content type it is application/data,
// encoding "binary" (Kombu's rule for bytes). With a content type and no
// encoding, the encoding is that of the serializer registered for the type
// ("utf-8" for application/json and text/plain), else "binary". Given values
// are kept as they are.
Encoded encode_bytes(std::string body, std::string_view content_type = {},
                     std::string_view content_encoding = {});

// Decodes a received body with Kombu's rules:
// 1. An empty content type means application/data. The accept list is
//    checked (ContentDisallowed when refused).
// 2. A type with a decoder (json, msgpack, or one you registered) is decoded
//    by it; any failure is a DecodeError that quotes the start of the body.
// 3. Any other type is decided by the content encoding: "binary" or
//    "ascii-8bit" give the bytes (a Json binary); a text encoding gives a Json
//    string: utf-8 (validated), ascii (validated) or latin-1 (converted to
//    UTF-8), names compared as Python does (case and '-'/'_' ignored). Other
//    encodings are a DecodeError.
// Where kelp differs, on purpose:
// - No content encoding at all: Kombu decodes as UTF-8 and fails on bytes
//   that are not; kelp returns them as bytes instead.
// - An empty body is never passed to a decoder (Kombu passes it through
//   undecoded too): it is "" for a text encoding, else empty bytes.
// JSON in particular: NaN and +/-Infinity come back as double NaN and
// infinities; integers beyond 64 bits come back as (rounded) doubles; lone
// surrogate escapes (which Python accepts) become U+FFFD since they cannot be
// UTF-8. Invalid UTF-8 inside JSON strings is a DecodeError, as in Kombu.
Json decode(std::string_view body, std::string_view content_type, std::string_view content_encoding,
            const AcceptList& accept = AcceptList::defaults());

// Python-dialect JSON, for code that builds JSON itself (e.g. the Redis
// envelope). parse_json throws DecodeError; dump_json throws kelp::Error on a
// Json binary or a string that is not valid UTF-8.
Json parse_json(std::string_view text);

// The first `max` bytes of `bytes`, quoted and printable whatever they hold
// (\xNN for the rest), with "..." when cut: for error messages that show
// what arrived.
std::string printable_preview(std::string_view bytes, std::size_t max = 48);
std::string dump_json(const Json& value);

}  // namespace kelp
