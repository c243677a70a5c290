// How a kelp message travels in a Kafka record: the body is the value; the
// application headers whose value is a string are Kafka headers of the same
// name (what any Kafka client reads), the others go together as a JSON
// object in the header "kelp.headers"; each property that is set is a
// "kelp.<name>" header (text), except the content type and encoding of raw
// bytes ("application/data", "binary"), which travel as the absence of
// kelp.content_type / kelp.content_encoding: a record without them reads as
// raw bytes, as a record of any other Kafka client should, and an empty or
// other value is written as it is; the header "kafka_key", when a string, is the
// record's key instead of a header. The exchange and routing key a message
// was published with ride along when they differ from the defaults
// (default exchange, routing key = topic). See docs/transports/kafka.md.
//
// Thread rules: pure functions.
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>
#include <string_view>

#include "kelp/message.hpp"

namespace kelp::kafka {

// The record's key taken from the envelope's "kafka_key" header, if any.
std::string_view record_key(const Envelope& envelope);

// Kafka headers for `envelope` (nullptr when there are none); the caller
// owns them until a produce call takes them.
rd_kafka_headers_t* encode_headers(const Envelope& envelope, std::string_view exchange,
                                   std::string_view routing_key, std::string_view topic,
                                   bool redelivered);

// What a record says besides its envelope.
struct RecordRoute {
    std::string exchange;
    std::string routing_key;   // empty: the topic's name
    bool redelivered = false;  // republished by a requeue
};

// Fills `envelope` (a recycled one: every field is assigned, capacity kept;
// its headers must be null) from a consumed record. Never throws for odd
// headers: a header it cannot read stays a plain string header.
RecordRoute decode_record(const rd_kafka_message_t& record, Envelope& envelope);

}  // namespace kelp::kafka
