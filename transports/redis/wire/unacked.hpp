// The record Kombu keeps for each delivered, not yet acked message: the value
// of field <delivery_tag> in the unacked hash, the JSON array
// [<envelope>, "<exchange>", "<routing_key>"] with the envelope embedded as
// an object. Kombu's restore (requeue, shutdown, visibility timeout) reads it
// back, so kelp writes it the same way and reads Kombu's.
//
// Thread rules: pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace kelp::redis {

struct UnackedRecord {
    std::string payload;  // the envelope's JSON text, as embedded
    std::string exchange;
    std::string routing_key;
    bool operator==(const UnackedRecord&) const = default;
};

// `payload` is the envelope exactly as it was popped (one decode_message
// accepted); it is embedded as is, so restoring it loses nothing, except for
// whitespace and a byte-order mark around it, which would break the array.
std::string encode_unacked(std::string_view payload, std::string_view exchange,
                           std::string_view routing_key);

// Throws kelp::DecodeError unless `record` is such an array (the envelope
// inside is not checked: decode_message does that when it is restored).
UnackedRecord decode_unacked(std::string_view record);

}  // namespace kelp::redis
