#include "kelp/message.hpp"

#include "kelp/channel.hpp"
#include "kelp/compression.hpp"
#include "kelp/errors.hpp"
#include "kelp/serialization.hpp"

namespace kelp {

Message::Message() {
    static const auto empty = std::make_shared<const Envelope>();
    envelope_ = empty;
}

Message::Message(std::shared_ptr<const Envelope> envelope, DeliveryInfo info,
                 std::weak_ptr<Channel> channel, bool no_ack)
    : envelope_(std::move(envelope)),
      info_(std::move(info)),
      channel_(std::move(channel)),
      channel_ptr_(channel_.lock().get()),
      state_(no_ack ? MessageState::auto_acked : MessageState::received) {}

Message::Message(std::shared_ptr<const Envelope> envelope, const DeliveryInfoView& info,
                 Channel& channel, bool no_ack)
    : envelope_(std::move(envelope)),
      info_{std::string(info.exchange),
            std::string(info.routing_key),
            std::string(info.consumer_tag),
            std::string(info.queue),
            info.delivery_tag,
            info.redelivered},
      channel_(channel.weak_from_this()),
      channel_ptr_(&channel),
      state_(no_ack ? MessageState::auto_acked : MessageState::received) {}

namespace {

const char* state_name(MessageState state) {
    switch (state) {
        case MessageState::received:
            return "received";
        case MessageState::acked:
            return "acked";
        case MessageState::rejected:
            return "rejected";
        case MessageState::requeued:
            return "requeued";
        case MessageState::auto_acked:
            return "auto-acknowledged (no_ack consumer)";
    }
    return "unknown";
}

}  // namespace

const Json& Message::payload() const {
    if (!payload_) {
        std::string decompressed;
        std::string_view body = envelope_->body;
        const Table& headers = envelope_->headers;
        if (headers.is_object()) {
            auto compression = headers.find("compression");
            if (compression != headers.end() && compression->is_string()) {
                decompressed = decompress(compression->get<std::string>(), body);
                body = decompressed;
            }
        }
        // The consumer checked its accept list already.
        payload_ = decode(body, content_type(), content_encoding(), AcceptList::all());
    }
    return *payload_;
}

void Message::settle(MessageState next, const char* verb) {
    if (state_ != MessageState::received) {
        throw MessageStateError(std::string("cannot ") + verb + " message " +
                                std::to_string(info_.delivery_tag) + ": it was already " +
                                state_name(state_) + "; a message is settled exactly once");
    }
    Channel* channel = channel_.expired() ? nullptr : channel_ptr_;
    if (channel == nullptr || !channel->is_open()) {
        throw ChannelError(std::string("cannot ") + verb + " message " +
                           std::to_string(info_.delivery_tag) +
                           ": its channel is closed, so the broker has already put it back for "
                           "redelivery; settle messages before closing their consumer");
    }
    if (next == MessageState::acked) {
        channel->basic_ack(info_.delivery_tag);
    } else {
        channel->basic_reject(info_.delivery_tag, next == MessageState::requeued);
    }
    state_ = next;
}

void Message::ack() {
    // Acking an auto-acknowledged message is what Kombu allows: nothing to do.
    if (state_ == MessageState::auto_acked) return;
    settle(MessageState::acked, "ack");
}

void Message::reject() {
    settle(MessageState::rejected, "reject");
}

void Message::requeue() {
    settle(MessageState::requeued, "requeue");
}

}  // namespace kelp
