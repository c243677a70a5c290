// Channel: the AMQP-shaped operations every transport implements. Producer,
// Consumer and SimpleQueue are built only on this interface, so they work the
// same on every broker.
//
// Synchronous methods (declare, purge, get, ...) complete before returning,
// driving the Connection's Hub if they must wait for the broker. Deliveries
// for basic_consume arrive from the Hub (or drain_events).
//
// Thread rules: a Channel belongs to its Connection's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kelp/entities.hpp"
#include "kelp/message.hpp"

namespace kelp {

struct QueueDeclareOk {
    std::string queue;
    std::uint64_t message_count = 0;
    std::uint32_t consumer_count = 0;
};

struct PublishFlags {
    bool mandatory = false;  // unroutable messages are returned, not dropped
};

// A message the broker could not route (mandatory publish), with the reason.
struct ReturnedMessage {
    Envelope envelope;
    std::string exchange;
    std::string routing_key;
    std::uint16_t reply_code = 312;  // AMQP NO_ROUTE
    std::string reply_text = "NO_ROUTE";
};

using DeliveryCallback = std::function<void(Message&)>;
using ReturnCallback = std::function<void(ReturnedMessage&)>;

class Channel : public std::enable_shared_from_this<Channel> {
  public:
    virtual ~Channel() = default;

    virtual void exchange_declare(const Exchange& exchange, bool passive = false) = 0;
    virtual void exchange_delete(const std::string& name, bool if_unused = false) = 0;
    virtual QueueDeclareOk queue_declare(const Queue& queue, bool passive = false) = 0;
    virtual void queue_bind(const std::string& queue, const std::string& exchange,
                            const std::string& routing_key, const Table& arguments = {}) = 0;
    virtual void queue_unbind(const std::string& queue, const std::string& exchange,
                              const std::string& routing_key, const Table& arguments = {}) = 0;
    // Returns the number of messages removed.
    virtual std::uint64_t queue_purge(const std::string& queue) = 0;
    virtual std::uint64_t queue_delete(const std::string& queue, bool if_unused = false,
                                       bool if_empty = false) = 0;

    // The envelope is shared, never modified: a transport may keep it (the
    // memory broker stores it as is) and a retry publishes the same one again.
    virtual void basic_publish(std::shared_ptr<const Envelope> envelope,
                               const std::string& exchange, const std::string& routing_key,
                               PublishFlags flags = {}) = 0;
    // Publishes between begin_batch() and end_batch() may be held back and
    // written together at end_batch() (see PublishBatch in producer.hpp).
    // Nests. A no-op where the transport batches its writes anyway.
    virtual void begin_batch() {}
    virtual void end_batch() noexcept {}
    // Convenience for a one-off envelope.
    void basic_publish(Envelope envelope, const std::string& exchange,
                       const std::string& routing_key, PublishFlags flags = {}) {
        basic_publish(std::make_shared<const Envelope>(std::move(envelope)), exchange, routing_key,
                      flags);
    }
    // Returns the consumer tag (the given one, or a generated one if empty).
    virtual std::string basic_consume(const std::string& queue, bool no_ack,
                                      DeliveryCallback callback,
                                      const std::string& consumer_tag = {}) = 0;
    // Stops deliveries for the tag; messages already delivered stay unacked
    // until settled or the channel closes.
    virtual void basic_cancel(const std::string& consumer_tag) = 0;
    virtual std::optional<Message> basic_get(const std::string& queue, bool no_ack = false) = 0;
    virtual void basic_ack(std::uint64_t delivery_tag, bool multiple = false) = 0;
    virtual void basic_reject(std::uint64_t delivery_tag, bool requeue) = 0;
    // prefetch_count 0 means no limit.
    virtual void basic_qos(std::uint32_t prefetch_count, bool global = false) = 0;
    // Redeliver every unacked message of this channel.
    virtual void basic_recover(bool requeue = true) = 0;

    // Where mandatory messages that could not be routed are reported. Without
    // a callback, such a publish throws ChannelError where the transport can
    // tell synchronously (memory, redis) or reports to the Hub's error handler.
    virtual void on_return(ReturnCallback callback) = 0;

    // How many non-mandatory messages published on this channel matched no
    // queue and were dropped, as AMQP drops them. Empty where the broker drops
    // them without telling the client (AMQP, Kafka): use mandatory there.
    virtual std::optional<std::uint64_t> unroutable_dropped() const { return std::nullopt; }

    // Unacked messages go back to their queues (head first, redelivered).
    virtual void close() = 0;
    virtual bool is_open() const = 0;
};

}  // namespace kelp
