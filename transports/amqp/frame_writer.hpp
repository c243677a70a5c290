// FrameWriter: frames kelp writes to a plain TCP socket itself, fewer
// system calls than rabbitmq-c's one send() per frame.
//
// A publish: rabbitmq-c's amqp_basic_publish sends method, content header
// and each body frame with its own send() (three system calls for a small
// message). Here rabbitmq-c still encodes the method and the properties
// (amqp_encode_method, amqp_encode_properties); the writer lays out the
// frames around them and hands the kernel the whole message with one
// sendmsg(), the body by reference (no copy). The bytes on the wire are the
// same.
//
// Held acks: basic.ack frames collected while the transport hands a batch
// of deliveries to consumers, written together with one send() when the
// batch ends, or before anything else is written (so nothing overtakes them).
//
// Only for a plain TCP socket: with TLS the bytes must go through
// rabbitmq-c's SSL socket, and the transport uses rabbitmq-c's calls. Writes
// are whole frames, so they never interleave with rabbitmq-c's own frames.
//
// Thread rules: one writer per connection, used by its thread.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "rabbitmq.hpp"

namespace kelp::amqp {

class FrameWriter {
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

    // Adds a basic.ack to the held frames.
    void hold_ack(std::uint16_t channel, std::uint64_t delivery_tag, bool multiple);
    bool holding() const { return !held_.empty(); }
    // Writes the held frames (as write()) and forgets them either way.
    int write_held(int fd);
    // Forgets them unwritten (the link they belong to is gone).
    void drop_held() { held_.clear(); }

  private:
    int write_pieces(int fd, iovec* piece, std::size_t count);

    // Method and header frames, then a 7-byte header and the 1-byte end of
    // each body frame ("glue" between the body's pieces).
    std::vector<std::uint8_t> head_;
    std::vector<std::uint8_t> glue_;
    std::vector<iovec> pieces_;
    std::vector<std::uint8_t> held_;
};

}  // namespace kelp::amqp
