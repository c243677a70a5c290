#include "frame_writer.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace kelp::amqp {
namespace {

// AMQP 0-9-1 framing: type, channel, payload size, payload, frame end.
constexpr std::size_t frame_header = 7;
constexpr std::uint8_t frame_end = 0xCE;

void put16(std::uint8_t* at, std::uint16_t value) {
    at[0] = static_cast<std::uint8_t>(value >> 8);
    at[1] = static_cast<std::uint8_t>(value);
}

void put32(std::uint8_t* at, std::uint32_t value) {
    put16(at, static_cast<std::uint16_t>(value >> 16));
    put16(at + 2, static_cast<std::uint16_t>(value));
}

void put64(std::uint8_t* at, std::uint64_t value) {
    put32(at, static_cast<std::uint32_t>(value >> 32));
    put32(at + 4, static_cast<std::uint32_t>(value));
}

void put_header(std::uint8_t* at, std::uint8_t type, std::uint16_t channel, std::size_t size) {
    at[0] = type;
    put16(at + 1, channel);
    put32(at + 3, static_cast<std::uint32_t>(size));
}

}  // namespace

bool FrameWriter::encode(std::uint16_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                         bool mandatory, const amqp_basic_properties_t& properties,
                         amqp_bytes_t body, std::size_t frame_max) {
    if (frame_max < AMQP_FRAME_MIN_SIZE) return false;
    // A payload fills a frame but for its header and end byte.
    const std::size_t max_payload = frame_max - frame_header - 1;
    // Room for the method and the header frame, each at most a whole frame,
    // and the first body frame's header. Sized once: later messages reuse it.
    if (head_.size() < 2 * frame_max + frame_header) head_.resize(2 * frame_max + frame_header);
    std::uint8_t* out = head_.data();

    // Method frame: the method's number, then its arguments.
    amqp_basic_publish_t method{};
    method.exchange = exchange;
    method.routing_key = routing_key;
    method.mandatory = mandatory ? 1 : 0;
    const int args = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &method,
                                        amqp_bytes_t{max_payload - 4, out + frame_header + 4});
    if (args < 0) return false;
    const std::size_t method_payload = 4 + static_cast<std::size_t>(args);
    put_header(out, AMQP_FRAME_METHOD, channel, method_payload);
    put32(out + frame_header, AMQP_BASIC_PUBLISH_METHOD);
    out += frame_header + method_payload;
    *out++ = frame_end;

    // Content header frame: class, weight 0, body size, then the properties.
    const int props =
        amqp_encode_properties(AMQP_BASIC_CLASS, const_cast<amqp_basic_properties_t*>(&properties),
                               amqp_bytes_t{max_payload - 12, out + frame_header + 12});
    if (props < 0) return false;
    const std::size_t header_payload = 12 + static_cast<std::size_t>(props);
    put_header(out, AMQP_FRAME_HEADER, channel, header_payload);
    put16(out + frame_header, AMQP_BASIC_CLASS);
    put16(out + frame_header + 2, 0);
    put64(out + frame_header + 4, body.len);
    out += frame_header + header_payload;
    *out++ = frame_end;

    // Body frames: the body's bytes stay where they are; between the pieces
    // go one frame's end and the next one's header.
    const std::size_t frames = (body.len + max_payload - 1) / max_payload;
    glue_.resize(frames * (1 + frame_header));
    pieces_.clear();
    auto* bytes = static_cast<std::uint8_t*>(body.bytes);
    for (std::size_t i = 0; i < frames; ++i) {
        const std::size_t offset = i * max_payload;
        const std::size_t size = std::min(max_payload, body.len - offset);
        // The first frame's header goes with the head; the others follow
        // the previous frame's end in the glue.
        std::uint8_t* header = i == 0 ? out : glue_.data() + (i - 1) * (1 + frame_header) + 1;
        put_header(header, AMQP_FRAME_BODY, channel, size);
        if (i == 0) {
            out += frame_header;
            pieces_.push_back({head_.data(), static_cast<std::size_t>(out - head_.data())});
        } else {
            std::uint8_t* end = header - 1;
            *end = frame_end;
            pieces_.push_back({end, 1 + frame_header});
        }
        pieces_.push_back({bytes + offset, size});
    }
    if (frames == 0) {
        pieces_.push_back({head_.data(), static_cast<std::size_t>(out - head_.data())});
    } else {
        std::uint8_t* last = glue_.data() + (frames - 1) * (1 + frame_header);
        *last = frame_end;
        pieces_.push_back({last, 1});
    }
    return true;
}

int FrameWriter::write(int fd) {
    return write_pieces(fd, pieces_.data(), pieces_.size());
}

void FrameWriter::hold_ack(std::uint16_t channel, std::uint64_t delivery_tag, bool multiple) {
    // Method number, delivery tag, the "multiple" bit.
    constexpr std::size_t payload = 4 + 8 + 1;
    const std::size_t at = held_.size();
    held_.resize(at + frame_header + payload + 1);
    std::uint8_t* out = held_.data() + at;
    put_header(out, AMQP_FRAME_METHOD, channel, payload);
    put32(out + frame_header, AMQP_BASIC_ACK_METHOD);
    put64(out + frame_header + 4, delivery_tag);
    out[frame_header + 12] = multiple ? 1 : 0;
    out[frame_header + payload] = frame_end;
}

int FrameWriter::write_held(int fd) {
    if (held_.empty()) return AMQP_STATUS_OK;
    iovec all{held_.data(), held_.size()};
    const int status = write_pieces(fd, &all, 1);
    held_.clear();
    return status;
}

int FrameWriter::write_pieces(int fd, iovec* piece, std::size_t left) {
    while (left > 0) {
        msghdr message{};
        message.msg_iov = piece;
        message.msg_iovlen = std::min<std::size_t>(left, IOV_MAX);
        const ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return AMQP_STATUS_SOCKET_ERROR;
            // The socket is full: wait until the broker reads, as
            // rabbitmq-c's own publish does.
            pollfd ready{fd, POLLOUT, 0};
            if (::poll(&ready, 1, -1) < 0 && errno != EINTR) return AMQP_STATUS_SOCKET_ERROR;
            continue;
        }
        // Skip what went out; a piece sent in part continues where it stopped.
        auto done = static_cast<std::size_t>(sent);
        while (left > 0 && done >= piece->iov_len) {
            done -= piece->iov_len;
            ++piece;
            --left;
        }
        if (left > 0) {
            piece->iov_base = static_cast<std::uint8_t*>(piece->iov_base) + done;
            piece->iov_len -= done;
        }
    }
    return AMQP_STATUS_OK;
}

}  // namespace kelp::amqp
