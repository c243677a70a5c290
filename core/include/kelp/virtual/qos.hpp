// QoS: one channel's delivery tags, prefetch window and unacked messages, for
// transports that emulate AMQP acknowledgements (memory, Redis).
//
// Tags are handed out in order, so the unacked set is a window indexed by
// tag - first tag: O(1) settle without hashing, and the restore order on close
// is the delivery order.
//
// Thread rules: belongs to its channel's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "kelp/virtual/stored_message.hpp"

namespace kelp::virt {

class QoS {
  public:
    struct Unacked {
        std::string queue;
        StoredMessage message;
        bool delivered = false;  // false while popped but not yet handed out
    };

    void set_prefetch(std::uint32_t count) { prefetch_ = count; }
    std::uint32_t prefetch() const { return prefetch_; }

    // How many more messages may be delivered now.
    std::size_t capacity() const {
        if (prefetch_ == 0) return std::numeric_limits<std::size_t>::max();
        return pending_ >= prefetch_ ? 0 : prefetch_ - pending_;
    }
    bool can_consume() const { return capacity() > 0; }

    // Tracks a message until it is settled; returns its delivery tag.
    std::uint64_t append(Unacked unacked);
    // A tag for a no_ack delivery: counted, never tracked.
    std::uint64_t untracked_tag();
    Unacked* find(std::uint64_t tag);

    // Removes and returns the message; throws ChannelError for an unknown or
    // already settled tag (AMQP's PRECONDITION_FAILED).
    Unacked take(std::uint64_t tag);
    // Every unsettled message with a tag up to and including `tag`.
    std::vector<Unacked> take_through(std::uint64_t tag);
    // Every unsettled message, in delivery order.
    std::vector<Unacked> take_all();

    std::size_t unacked_count() const { return pending_; }

  private:
    struct Slot {
        std::optional<Unacked> unacked;  // empty once settled (or untracked)
    };
    void trim();

    std::deque<Slot> window_;
    std::uint64_t first_tag_ = 1;  // tag of window_.front()
    std::uint64_t next_tag_ = 1;
    std::size_t pending_ = 0;
    std::uint32_t prefetch_ = 0;
};

}  // namespace kelp::virt
