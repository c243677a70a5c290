#include "kelp/virtual/qos.hpp"

#include "kelp/errors.hpp"

namespace kelp::virt {

std::uint64_t QoS::append(Unacked unacked) {
    window_.push_back(Slot{std::move(unacked)});
    ++pending_;
    return next_tag_++;
}

std::uint64_t QoS::untracked_tag() {
    // Nothing to keep: if the window is empty it simply moves on.
    if (window_.empty()) {
        first_tag_ = next_tag_ + 1;
    } else {
        window_.push_back(Slot{});
    }
    return next_tag_++;
}

QoS::Unacked* QoS::find(std::uint64_t tag) {
    if (tag < first_tag_ || tag >= first_tag_ + window_.size()) return nullptr;
    auto& slot = window_[tag - first_tag_];
    return slot.unacked ? &*slot.unacked : nullptr;
}

QoS::Unacked QoS::take(std::uint64_t tag) {
    Unacked* found = find(tag);
    if (found == nullptr) {
        throw ChannelError("PRECONDITION_FAILED - unknown delivery tag " + std::to_string(tag) +
                           ": it was never delivered on this channel or is already settled");
    }
    Unacked out = std::move(*found);
    window_[tag - first_tag_].unacked.reset();
    --pending_;
    trim();
    return out;
}

std::vector<QoS::Unacked> QoS::take_through(std::uint64_t tag) {
    std::vector<Unacked> out;
    const std::uint64_t last = std::min<std::uint64_t>(tag + 1, first_tag_ + window_.size());
    for (std::uint64_t t = first_tag_; t < last; ++t) {
        auto& slot = window_[t - first_tag_];
        if (!slot.unacked) continue;
        out.push_back(std::move(*slot.unacked));
        slot.unacked.reset();
        --pending_;
    }
    trim();
    return out;
}

std::vector<QoS::Unacked> QoS::take_all() {
    std::vector<Unacked> out;
    out.reserve(pending_);
    for (auto& slot : window_) {
        if (slot.unacked) out.push_back(std::move(*slot.unacked));
    }
    first_tag_ = next_tag_;
    window_.clear();
    pending_ = 0;
    return out;
}

void QoS::trim() {
    while (!window_.empty() && !window_.front().unacked) {
        window_.pop_front();
        ++first_tag_;
    }
}

}  // namespace kelp::virt
