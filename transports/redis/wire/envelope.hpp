// Kombu's Redis message envelope: the JSON text a message is stored as in a
// Redis list (and published on a fanout channel), written byte for byte as
// Kombu 5.2.4 writes it and read as Kombu reads it, so kelp and Python
// Kombu/Celery share queues both ways. See docs/transports/redis.md, "Wire
// format", and /work/shared/reference/kombu-wire-format.md §1.2.
//
//   std::string text = kelp::redis::encode_message(envelope, {.exchange = "media",
//       .routing_key = "video", .delivery_tag = kelp::redis::new_delivery_tag()});
//   kelp::redis::DecodedMessage m = kelp::redis::decode_message(text);
//
// Thread rules: pure functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kelp/json.hpp"
#include "kelp/message.hpp"
#include "wire/delivery_tag.hpp"

namespace kelp::redis {

// How the body is carried in the JSON (Kombu's body_encoding option).
enum class BodyEncoding : std::uint8_t {
    base64,  // any bytes; Kombu's default
    none,    // the body as a JSON string: smaller, but only for UTF-8 bodies
};

// What the envelope carries besides kelp::Envelope: where the message was
// published and its Kombu delivery tag.
struct DeliveryFields {
    std::string exchange;      // "" for the default exchange
    std::string routing_key;   // the queue name when the exchange is ""
    std::string delivery_tag;  // Kombu's uuid4 text (new_delivery_tag()); the unacked key
    // Written as properties.priority. Read back with Kombu's rule: an integer
    // clamped to 0..9, anything unusable is 0. The transport fills it from
    // Envelope::properties.priority (0 when unset), as Kombu's publisher does.
    int priority = 0;
    // A restored message: delivery_info.redelivered and headers.redelivered.
    bool redelivered = false;
    // Properties kelp has no typed field for (Celery's "origin", say), and
    // typed ones whose value did not fit the type (a float timestamp), kept as
    // they came so that re-encoding loses nothing. A key here wins over the
    // typed field of the same name. A JSON object, or null for none.
    kelp::Json extra_properties;
};

struct DecodedMessage {
    kelp::Envelope envelope;
    DeliveryFields delivery;
};

// The envelope as Kombu writes it: keys body, content-encoding, content-type,
// headers, properties; properties in Kombu's order (correlation_id, reply_to,
// message_id, timestamp, type, app_id, user_id, the extra properties, then
// delivery_mode, expiration, delivery_info, priority, body_encoding,
// delivery_tag); Python's json.dumps layout. Header keys come out sorted, since
// kelp::Json keeps object keys sorted (Kombu keeps insertion order; readers do
// not care). Throws kelp::Error when a string is not valid UTF-8 (JSON cannot
// carry it: publish such data as the body), when headers or
// extra_properties are not objects, when extra_properties names a field the
// transport writes itself, when the expiration is negative, or when
// BodyEncoding::none meets a body that is not UTF-8.
std::string encode_message(const kelp::Envelope& envelope, const DeliveryFields& delivery,
                           BodyEncoding body_encoding = BodyEncoding::base64);

// Reads an envelope as Kombu does (compact or reordered JSON, Python's NaN,
// Infinity and big integers, surrogate pairs, invalid UTF-8 replaced by U+FFFD,
// body with or without base64). Unknown top-level keys are ignored, as Kombu
// ignores them. Throws kelp::DecodeError, saying what is wrong and what a
// producer must write, for anything Kombu's consumer would crash on (not JSON,
// not an object, no properties, no delivery_tag, no delivery_info with
// exchange and routing_key, bad base64, ...) and for fields of the wrong type.
// Any other exception would be a bug. The envelopes kelp and Kombu write for
// plain messages are read without a JSON tree (canonical_envelope.hpp).
DecodedMessage decode_message(std::string_view payload);
// decode_message without that fast path: every envelope through the JSON
// parser. The same result; for tests that compare the two.
DecodedMessage decode_message_parsed(std::string_view payload);

}  // namespace kelp::redis
