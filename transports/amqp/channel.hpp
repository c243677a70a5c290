// AmqpChannel: one AMQP channel of an AmqpTransport, behind kelp::Channel.
//
// Delivery tags handed to Messages are kelp's: the broker's tag plus an
// offset that grows at each reconnection, so a tag from before a
// reconnection (or before basic_recover) is recognised as stale and never
// sent to the broker.
//
// Thread rules: belongs to its Connection's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "kelp/channel.hpp"
#include "rabbitmq.hpp"

namespace kelp::amqp {

class AmqpTransport;

class AmqpChannel final : public Channel {
  public:
    AmqpChannel(AmqpTransport& transport, std::uint16_t number);
    ~AmqpChannel() override;

    void exchange_declare(const Exchange& exchange, bool passive = false) override;
    void exchange_delete(const std::string& name, bool if_unused = false) override;
    QueueDeclareOk queue_declare(const Queue& queue, bool passive = false) override;
    void queue_bind(const std::string& queue, const std::string& exchange,
                    const std::string& routing_key, const Table& arguments = {}) override;
    void queue_unbind(const std::string& queue, const std::string& exchange,
                      const std::string& routing_key, const Table& arguments = {}) override;
    std::uint64_t queue_purge(const std::string& queue) override;
    std::uint64_t queue_delete(const std::string& queue, bool if_unused = false,
                               bool if_empty = false) override;
    using Channel::basic_publish;
    void basic_publish(std::shared_ptr<const Envelope> envelope, const std::string& exchange,
                       const std::string& routing_key, PublishFlags flags = {}) override;
    std::string basic_consume(const std::string& queue, bool no_ack, DeliveryCallback callback,
                              const std::string& consumer_tag = {}) override;
    void basic_cancel(const std::string& consumer_tag) override;
    std::optional<Message> basic_get(const std::string& queue, bool no_ack = false) override;
    void basic_ack(std::uint64_t delivery_tag, bool multiple = false) override;
    void basic_reject(std::uint64_t delivery_tag, bool requeue) override;
    void basic_qos(std::uint32_t prefetch_count, bool global = false) override;
    void basic_recover(bool requeue = true) override;
    void on_return(ReturnCallback callback) override { on_return_ = std::move(callback); }
    void close() override;
    bool is_open() const override { return open_ && transport_ != nullptr; }

    // AMQP only: exchange-to-exchange bindings (RabbitMQ's extension).
    void exchange_bind(const std::string& destination, const std::string& source,
                       const std::string& routing_key, const Table& arguments = {});
    void exchange_unbind(const std::string& destination, const std::string& source,
                         const std::string& routing_key, const Table& arguments = {});
    // With confirm_publish: publishes not confirmed yet, and a wait until
    // none are (throws ChannelError if the broker nacked one meanwhile).
    std::size_t unconfirmed() const { return unconfirmed_.size(); }
    void wait_for_confirms();
    // Where the broker's nacks go when a publish does not wait for its own
    // confirm (confirm_window > 1); without one they reach the Hub's error
    // handler as ChannelError.
    void on_nack(std::function<void(std::uint64_t count)> callback) {
        on_nack_ = std::move(callback);
    }

    // --- for the transport ---
    std::uint16_t number() const { return number_; }
    void open_on_link();       // channel.open, qos, confirm.select
    void restart_consumers();  // after reconnecting
    void republish_unconfirmed();
    void on_frame(const amqp_frame_t& frame);
    void link_lost();
    void transport_closed();
    // Hands held deliveries (at most `budget`) and returns to their
    // callbacks; returns what is left of the budget.
    std::size_t deliver_pending(std::size_t budget);
    bool has_pending() const { return !pending_.empty() || !returns_.empty(); }

  private:
    struct Reply {
        amqp_method_number_t id = 0;
        std::string queue;
        std::uint64_t message_count = 0;
        std::uint32_t consumer_count = 0;
    };
    struct Delivery {
        std::shared_ptr<Envelope> envelope;
        std::string exchange;
        std::string routing_key;
        std::string consumer_tag;
        std::uint64_t delivery_tag = 0;  // kelp's
        std::uint64_t message_count = 0;
        bool redelivered = false;
    };
    struct ConsumerEntry {
        std::string queue;
        bool no_ack = false;
        DeliveryCallback callback;
    };
    struct Unconfirmed {
        std::shared_ptr<const Envelope> envelope;
        std::string exchange;
        std::string routing_key;
        bool mandatory = false;
    };
    enum class Content : std::uint8_t { none, deliver, get, returned };

    void check_usable(const char* what) const;
    // Sends a method and waits for its reply (or the channel's closing).
    Reply rpc(amqp_method_number_t id, void* decoded, const char* what);
    void raise_closed(const char* what) const;
    void publish_raw(const Envelope& envelope, const std::string& exchange,
                     const std::string& routing_key, bool mandatory);
    void content_complete();
    void on_confirm(std::uint64_t tag, bool multiple, bool ack);
    std::string next_consumer_tag();
    // Deliveries held for consumers of `queue`, not handed out yet.
    std::uint64_t held_for(const std::string& queue) const;
    bool consumes(const std::string& queue) const;

    AmqpTransport* transport_;
    std::uint16_t number_;
    bool open_ = false;
    bool closing_ = false;
    bool waiting_ = false;  // a method of this channel waits for its reply
    std::optional<Reply> reply_;
    std::string close_reason_;
    std::uint16_t close_code_ = 0;
    std::map<std::string, ConsumerEntry> consumers_;
    std::deque<Delivery> pending_;
    std::deque<ReturnedMessage> returns_;
    ReturnCallback on_return_;
    std::function<void(std::uint64_t)> on_nack_;
    // A message being assembled from method, header and body frames.
    Content content_ = Content::none;
    Delivery incoming_;
    ReturnedMessage incoming_return_;
    std::uint64_t body_size_ = 0;
    std::optional<Delivery> got_;
    bool get_empty_ = false;
    // Delivery tags: kelp's = broker's + tag_base_; those <= stale_upto_
    // belong to an earlier link or were recovered.
    std::uint64_t tag_base_ = 0;
    std::uint64_t last_tag_ = 0;
    std::uint64_t stale_upto_ = 0;
    // Settings re-applied on every (re)open.
    std::uint32_t prefetch_ = 0;
    bool prefetch_global_ = false;
    bool confirming_ = false;
    std::uint64_t publish_seq_ = 0;
    std::map<std::uint64_t, Unconfirmed> unconfirmed_;
    std::set<std::uint64_t> nacked_;
    std::uint64_t consumer_seq_ = 0;
};

}  // namespace kelp::amqp
