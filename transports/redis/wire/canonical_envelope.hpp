// The fast path of decode_message: the envelopes kelp and Kombu write for
// plain messages, read straight from the text without building a JSON tree.
//
// "Canonical" is Python's json.dumps layout of Kombu's dict, which kelp's
// encoder writes too: the five top-level keys in Kombu's order, ", " and
// ": " between items, empty headers, and properties that are strings of
// printable ASCII without escapes, small integers and null. Anything else
// (escapes, non-ASCII, headers, extra or repeated properties, another
// layout, a value of another type) is not canonical and goes to the JSON
// parser, which gives the same result for canonical text (the tests compare
// the two on every shape kelp writes).
//
// Thread rules: a pure function; safe from any thread.
#pragma once

#include <optional>
#include <string_view>

#include "wire/envelope.hpp"

namespace kelp::redis {

// The message, or nullopt when the text is not canonical (or canonical but
// not a message decode_message accepts, such as one without a delivery_tag
// or with a bad base64 body: the general path says what is wrong).
std::optional<DecodedMessage> decode_canonical_message(std::string_view payload);

}  // namespace kelp::redis
