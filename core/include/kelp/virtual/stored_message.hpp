// StoredMessage: a message as a virtual broker keeps it in a queue: the
// envelope plus where it was published and when it expires.
//
// Thread rules: a value type; the broker that stores it locks around it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "kelp/message.hpp"

namespace kelp::virt {

struct StoredMessage {
    using Clock = std::chrono::steady_clock;
    // Shared, never modified in place: a change (dead-lettering adds x-death)
    // makes a new envelope.
    std::shared_ptr<const Envelope> envelope;
    std::string exchange;
    std::string routing_key;
    std::optional<Clock::time_point> expires_at;
    bool redelivered = false;

    bool expired(Clock::time_point now) const { return expires_at && *expires_at <= now; }
};

}  // namespace kelp::virt
