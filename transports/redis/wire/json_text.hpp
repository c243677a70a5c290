// JSON helpers shared by the envelope and the unacked record: reading JSON as
// Kombu reads Redis values, and the pieces of Python's json.dumps layout the
// writers assemble by hand (Kombu's key order is not kelp::Json's sorted one).
//
// Thread rules: pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "kelp/json.hpp"

namespace kelp::redis {

// Python's json module gives up near 1000 levels; kelp refuses deeper values
// before parsing, so nothing downstream recurses without bound.
inline constexpr std::size_t kMaxJsonDepth = 1000;

struct ParsedJson {
    kelp::Json value;
    // The text that was parsed: the input, or a copy with invalid UTF-8
    // replaced (see parse_kombu_json). Offsets into it match `value`.
    std::string repaired;
    bool was_repaired = false;
};

// Reads a Redis value as Kombu does: bytes decoded as UTF-8 with invalid
// sequences replaced by U+FFFD (Python's errors="replace"), then Python-dialect
// JSON (kelp::parse_json). Throws kelp::DecodeError naming `what` ("the
// message", "the unacked record") for invalid JSON or nesting deeper than
// `max_depth`.
ParsedJson parse_kombu_json(std::string_view text, std::string_view what,
                            std::size_t max_depth = kMaxJsonDepth);

// `text` with every ill-formed UTF-8 sequence replaced by U+FFFD, one per
// maximal ill-formed subpart, as Python's decoder does.
std::string replace_invalid_utf8(std::string_view text);

// Appends `s` as a JSON string the way json.dumps writes it (ensure_ascii).
// Throws kelp::Error when `s` is not valid UTF-8.
void append_json_string(std::string& out, std::string_view s);

// The offset just past the JSON value that starts at `begin` in `text`, which
// must be valid JSON (it has been parsed).
std::size_t json_value_end(std::string_view text, std::size_t begin);

// The start of a value, printable whatever it holds, for error messages.
std::string preview(std::string_view text);

}  // namespace kelp::redis
