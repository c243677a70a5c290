// Messages: what a producer sends (`Envelope`) and what a consumer receives
// (`Message`: an Envelope plus delivery information and settlement).
//
// A received Message must be settled once: `ack`, `reject` or `requeue`. A
// second settlement throws MessageStateError. Settling after the channel closed
// throws ChannelError: the broker has already put the message back.
//
// Thread rules: a Message belongs to the thread of its Connection; settle it
// there. Envelopes are plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kelp/json.hpp"

namespace kelp {

class Channel;

enum class DeliveryMode : std::uint8_t { transient = 1, persistent = 2 };

// The AMQP basic properties kelp carries on every transport.
struct Properties {
    std::string content_type;
    std::string content_encoding;
    std::optional<std::uint8_t> priority;
    DeliveryMode delivery_mode = DeliveryMode::persistent;
    std::string correlation_id;
    std::string reply_to;
    std::optional<std::chrono::milliseconds> expiration;  // per-message TTL
    std::string message_id;
    std::optional<std::int64_t> timestamp;  // seconds since the epoch
    std::string type;
    std::string user_id;
    std::string app_id;
    bool operator==(const Properties&) const = default;
};

// A message as published: body bytes, application headers, properties.
struct Envelope {
    std::string body;
    Table headers;  // a Json object, or null when there are none
    Properties properties;
    bool operator==(const Envelope&) const = default;
};

struct DeliveryInfo {
    std::string exchange;
    std::string routing_key;
    std::string consumer_tag;
    std::string queue;
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
};

// DeliveryInfo as a transport has it at hand, in its own records: a Message
// copies each string once into its DeliveryInfo.
struct DeliveryInfoView {
    std::string_view exchange;
    std::string_view routing_key;
    std::string_view consumer_tag;
    std::string_view queue;
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
};

enum class MessageState : std::uint8_t { received, acked, rejected, requeued, auto_acked };

class Message {
  public:
    Message();
    // The envelope is shared with the channel's unacked record, not copied:
    // a received message costs one allocation however often it is handed on.
    Message(std::shared_ptr<const Envelope> envelope, DeliveryInfo info,
            std::weak_ptr<Channel> channel, bool no_ack);
    // The same for a transport delivering on `channel` (owned by a
    // shared_ptr): the strings are copied in place, not built and moved, and
    // settling needs no lock of the weak reference. The cheap way for a
    // transport's delivery loop.
    Message(std::shared_ptr<const Envelope> envelope, const DeliveryInfoView& info,
            Channel& channel, bool no_ack);
    Message(Message&&) noexcept = default;
    Message& operator=(Message&&) noexcept = default;
    Message(const Message&) = delete;
    Message& operator=(const Message&) = delete;

    const std::string& body() const { return envelope_->body; }
    const Table& headers() const { return envelope_->headers; }
    const Properties& properties() const { return envelope_->properties; }
    const std::string& content_type() const { return envelope_->properties.content_type; }
    const std::string& content_encoding() const { return envelope_->properties.content_encoding; }
    const DeliveryInfo& delivery_info() const { return info_; }
    std::uint64_t delivery_tag() const { return info_.delivery_tag; }
    bool redelivered() const { return info_.redelivered; }
    const Envelope& envelope() const { return *envelope_; }

    // The body decompressed (when the `compression` header says so) and
    // decoded by its content type: a Json value for JSON and msgpack, a Json
    // string for text, Json binary for raw bytes. Decoded once, on first use
    // (a Consumer decodes JSON before its callback to catch bad messages).
    // Throws DecodeError.
    const Json& payload() const;

    void ack();
    // Drop the message (or dead-letter it where the queue has a DLX).
    void reject();
    // Give the message back to the queue, to be redelivered (redelivered=true).
    void requeue();

    MessageState state() const { return state_; }
    bool settled() const { return state_ != MessageState::received; }

  private:
    void settle(MessageState next, const char* verb);

    std::shared_ptr<const Envelope> envelope_;
    DeliveryInfo info_;
    mutable std::optional<Json> payload_;
    // The weak reference says whether the channel still exists; the plain
    // pointer reaches it without locking the weak one (a message and its
    // channel share a thread, so nothing can destroy the channel between
    // the check and the call).
    std::weak_ptr<Channel> channel_;
    Channel* channel_ptr_ = nullptr;
    MessageState state_ = MessageState::received;
};

}  // namespace kelp
