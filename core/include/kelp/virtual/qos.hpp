// QoS: one channel's delivery tags, prefetch window and unacked messages, for
// transports that emulate AMQP acknowledgements (memory, Redis).
//
// Tags are handed out in order, so the unacked set is a window indexed by
// tag - first tag: O(1) settle without hashing, and the restore order on close
// is the delivery order. `Record` is what the transport keeps per unacked
// message (the memory transport: a pointer to its queued node, so settling
// moves one pointer); it must be movable.
//
// Thread rules: belongs to its channel's thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "kelp/errors.hpp"

namespace kelp::virt {

template <class Record>
class QoS {
  public:
    void set_prefetch(std::uint32_t count) { prefetch_ = count; }
    std::uint32_t prefetch() const { return prefetch_; }

    // How many more messages may be delivered now.
    std::size_t capacity() const {
        if (prefetch_ == 0) return std::numeric_limits<std::size_t>::max();
        return pending_ >= prefetch_ ? 0 : prefetch_ - pending_;
    }
    bool can_consume() const { return capacity() > 0; }

    // Tracks a message until it is settled; returns its delivery tag.
    std::uint64_t append(Record record) {
        window_.emplace_back(std::move(record));
        ++pending_;
        return next_tag_++;
    }
    // A tag for a no_ack delivery: counted, never tracked.
    std::uint64_t untracked_tag() {
        // Nothing to keep: if the window is empty it simply moves on.
        if (window_.empty()) {
            first_tag_ = next_tag_ + 1;
        } else {
            window_.emplace_back();
        }
        return next_tag_++;
    }
    Record* find(std::uint64_t tag) {
        if (tag < first_tag_ || tag >= first_tag_ + window_.size()) return nullptr;
        auto& slot = window_[tag - first_tag_];
        return slot ? &*slot : nullptr;
    }

    // Removes and returns the message; throws ChannelError for an unknown or
    // already settled tag (AMQP's PRECONDITION_FAILED).
    Record take(std::uint64_t tag) {
        Record* found = find(tag);
        if (found == nullptr) {
            throw ChannelError("PRECONDITION_FAILED - unknown delivery tag " + std::to_string(tag) +
                               ": it was never delivered on this channel or is already settled");
        }
        Record out = std::move(*found);
        window_[tag - first_tag_].reset();
        --pending_;
        trim();
        return out;
    }
    // Every unsettled message with a tag up to and including `tag`.
    std::vector<Record> take_through(std::uint64_t tag) {
        std::vector<Record> out;
        const std::uint64_t last = std::min<std::uint64_t>(tag + 1, first_tag_ + window_.size());
        for (std::uint64_t t = first_tag_; t < last; ++t) {
            auto& slot = window_[t - first_tag_];
            if (!slot) continue;
            out.push_back(std::move(*slot));
            slot.reset();
            --pending_;
        }
        trim();
        return out;
    }
    // Every unsettled message, in delivery order.
    std::vector<Record> take_all() {
        std::vector<Record> out;
        out.reserve(pending_);
        for (auto& slot : window_) {
            if (slot) out.push_back(std::move(*slot));
        }
        first_tag_ = next_tag_;
        window_.clear();
        pending_ = 0;
        return out;
    }

    std::size_t unacked_count() const { return pending_; }

  private:
    // Drops settled slots from the front, so the window spans only the
    // oldest unsettled tag onwards.
    void trim() {
        while (!window_.empty() && !window_.front()) {
            window_.pop_front();
            ++first_tag_;
        }
    }

    std::deque<std::optional<Record>> window_;  // empty once settled (or untracked)
    std::uint64_t first_tag_ = 1;               // tag of window_.front()
    std::uint64_t next_tag_ = 1;
    std::size_t pending_ = 0;
    std::uint32_t prefetch_ = 0;
};

}  // namespace kelp::virt
