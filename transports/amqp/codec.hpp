// Between kelp's values and rabbitmq-c's: field tables (Json objects) and
// the basic properties of a message, written as Kombu/py-amqp write them.
//
// Integers that do not fit in 32 bits are written as 'L' in message headers
// (py-amqp's choice, which py-amqp reads back as signed) and as 'l' in
// declaration arguments (RabbitMQ's own signed 64-bit type, which it checks
// x-arguments against). Both are read as signed 64-bit.
//
// Thread rules: an encoder is used by one thread; decoding is pure.
#pragma once

#include <list>
#include <string>
#include <vector>

#include "kelp/json.hpp"
#include "kelp/message.hpp"
#include "rabbitmq.hpp"

namespace kelp::amqp {

inline amqp_bytes_t bytes_of(std::string_view text) {
    return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}
inline std::string string_of(amqp_bytes_t bytes) {
    return bytes.len == 0 ? std::string()
                          : std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

// Builds amqp_table_t values that point into the Json given (which must
// outlive the table) and into the encoder's own storage.
class TableEncoder {
  public:
    enum class Wide { kombu_headers, rabbit_arguments };
    explicit TableEncoder(Wide wide = Wide::rabbit_arguments) : wide_(wide) {}
    TableEncoder(const TableEncoder&) = delete;
    TableEncoder& operator=(const TableEncoder&) = delete;

    // `object` is a Json object or null (an empty table). Throws
    // std::invalid_argument for anything else.
    amqp_table_t table(const Json& object);

  private:
    amqp_field_value_t value(const Json& v);

    Wide wide_;
    // Lists: what a table points to stays put while nested ones are added,
    // and an encoder that encodes nothing (a message without headers)
    // allocates nothing, unlike a deque.
    std::list<std::vector<amqp_table_entry_t>> entries_;
    std::list<std::vector<amqp_field_value_t>> values_;
};

Json decode_table(const amqp_table_t& table);

// The basic properties of an envelope, as Kombu sends them: content type
// and encoding, headers (always, {} when empty) and delivery mode always;
// the others when set.
class PropertiesEncoder {
  public:
    explicit PropertiesEncoder(const Envelope& envelope);
    const amqp_basic_properties_t* get() const { return &properties_; }

  private:
    TableEncoder headers_{TableEncoder::Wide::kombu_headers};
    std::string expiration_;
    amqp_basic_properties_t properties_{};
};

// An envelope from received properties and body.
Envelope decode_envelope(const amqp_basic_properties_t& properties, std::string body);

}  // namespace kelp::amqp
