// Unroutable: what a transport whose broker cannot return messages (memory,
// Redis, Kafka) does with a published message that reached no queue, the
// way AMQP does it: a plain publish is dropped (and counted, so
// Channel::unroutable_dropped can tell); a mandatory one goes to the
// channel's on_return callback, or without one is a NO_ROUTE ChannelError
// that says what to do.
//
// Thread rules: the Unroutable belongs to its channel's thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kelp/channel.hpp"
#include "kelp/errors.hpp"

namespace kelp::virt {

class Unroutable {
  public:
    // The error reads "... matched no <nothing_matched>; <remedy>, or set an
    // on_return callback ...": "queue", "declare and bind a queue".
    Unroutable(std::string_view nothing_matched, std::string_view remedy)
        : nothing_matched_(nothing_matched), remedy_(remedy) {}

    // Settles an unrouted message at once: counts a plain one, calls
    // `on_return` for a mandatory one, or throws the NO_ROUTE error.
    void settle(const Envelope& envelope, const std::string& exchange,
                const std::string& routing_key, PublishFlags flags,
                const ReturnCallback& on_return);

    // For transports that learn of it later, from a reply: the pieces.
    void count_dropped(std::uint64_t count = 1) { dropped_ += count; }
    static ReturnedMessage returned(const Envelope& envelope, const std::string& exchange,
                                    const std::string& routing_key);
    ChannelError no_route_error(const std::string& exchange, const std::string& routing_key) const;

    std::uint64_t dropped() const { return dropped_; }

  private:
    std::string_view nothing_matched_;
    std::string_view remedy_;
    std::uint64_t dropped_ = 0;
};

}  // namespace kelp::virt
