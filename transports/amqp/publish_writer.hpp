// PublishWriter: one basic.publish (method, content header and body frames)
// written to a plain TCP socket with one sendmsg() call.
//
// rabbitmq-c's amqp_basic_publish sends each frame with its own send() (three
// system calls for a small message, more for a body over several frames).
// Here rabbitmq-c still encodes the method and the properties
// (amqp_encode_method, amqp_encode_properties); the writer lays out the
// frames around them and hands the kernel the whole message at once, the
// body by reference (no copy). The bytes on the wire are the same.
//
// Only for a plain TCP socket: with TLS the bytes must go through
// rabbitmq-c's SSL socket, and the transport uses amqp_basic_publish.
// Writes are whole messages, so they never interleave with rabbitmq-c's own
// frames on the socket.
//
// Thread rules: one writer per connection, used by its thread.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "rabbitmq.hpp"

namespace kelp::amqp {

class PublishWriter {
  public:
    // Lays out the frames of one publish. False when the method or the
    // properties do not encode into one frame of `frame_max` bytes (nothing
    // is written then; amqp_basic_publish reports the same error).
    bool encode(std::uint16_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                bool mandatory, const amqp_basic_properties_t& properties, amqp_bytes_t body,
                std::size_t frame_max);
    // Writes what encode() laid out to `fd` (non-blocking), waiting in
    // poll() while the socket is full, as rabbitmq-c does. Returns a
    // rabbitmq-c status: AMQP_STATUS_OK, or AMQP_STATUS_SOCKET_ERROR with
    // the link then unusable.
    int write(int fd);

  private:
    // Method and header frames, then a 7-byte header and the 1-byte end of
    // each body frame ("glue" between the body's pieces).
    std::vector<std::uint8_t> head_;
    std::vector<std::uint8_t> glue_;
    std::vector<iovec> pieces_;
};

}  // namespace kelp::amqp
