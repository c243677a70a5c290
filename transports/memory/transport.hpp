// The memory:// transport: channels over a MemoryBroker, consumption driven
// by the Connection's Hub.
//
// Thread rules: a MemoryTransport and its channels belong to their
// Connection's thread; the broker they share is thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "broker.hpp"
#include "kelp/hub.hpp"
#include "kelp/transport.hpp"
#include "kelp/virtual/qos.hpp"
#include "kelp/virtual/unroutable.hpp"

namespace kelp::memory {

class MemoryChannel;

class MemoryTransport final : public Transport {
  public:
    explicit MemoryTransport(std::string broker_name);
    ~MemoryTransport() override;

    static const Capabilities& static_capabilities();

    std::string_view name() const override { return "memory"; }
    const Capabilities& capabilities() const override { return static_capabilities(); }
    void connect(Clock::time_point deadline) override;
    bool connected() const override { return connected_; }
    void close() noexcept override;
    void register_with_event_loop(Hub& hub) override;
    std::shared_ptr<Channel> create_channel() override;
    std::uint64_t deliveries() const override { return deliveries_; }

    // Used by channels.
    MemoryBroker& broker() { return *broker_; }
    const std::shared_ptr<Waker>& waker() const { return waker_; }
    void schedule_delivery();
    void count_delivery() { ++deliveries_; }

  private:
    void deliver();
    // Cancels what this transport scheduled on its Hub, which is alive.
    void leave_hub();
    // The Hub is closing: never touch it again.
    void forget_hub();

    std::string broker_name_;
    std::shared_ptr<MemoryBroker> broker_;
    std::shared_ptr<Waker> waker_;
    Hub* hub_ = nullptr;
    Handle delivery_;
    Handle hub_closing_;  // our on_close callback on hub_
    std::vector<std::weak_ptr<MemoryChannel>> channels_;
    std::uint64_t deliveries_ = 0;
    bool connected_ = false;
};

class MemoryChannel final : public Channel {
  public:
    explicit MemoryChannel(MemoryTransport& transport);
    ~MemoryChannel() override;

    void exchange_declare(const Exchange& exchange, bool passive) override;
    void exchange_delete(const std::string& name, bool if_unused) override;
    QueueDeclareOk queue_declare(const Queue& queue, bool passive) override;
    void queue_bind(const std::string& queue, const std::string& exchange,
                    const std::string& routing_key, const Table& arguments) override;
    void queue_unbind(const std::string& queue, const std::string& exchange,
                      const std::string& routing_key, const Table& arguments) override;
    std::uint64_t queue_purge(const std::string& queue) override;
    std::uint64_t queue_delete(const std::string& queue, bool if_unused, bool if_empty) override;
    using Channel::basic_publish;
    void basic_publish(std::shared_ptr<const Envelope> envelope, const std::string& exchange,
                       const std::string& routing_key, PublishFlags flags) override;
    std::string basic_consume(const std::string& queue, bool no_ack, DeliveryCallback callback,
                              const std::string& consumer_tag) override;
    void basic_cancel(const std::string& consumer_tag) override;
    std::optional<Message> basic_get(const std::string& queue, bool no_ack) override;
    void basic_ack(std::uint64_t delivery_tag, bool multiple) override;
    void basic_reject(std::uint64_t delivery_tag, bool requeue) override;
    void basic_qos(std::uint32_t prefetch_count, bool global) override;
    void basic_recover(bool requeue) override;
    void on_return(ReturnCallback callback) override { on_return_ = std::move(callback); }
    std::optional<std::uint64_t> unroutable_dropped() const override {
        return unroutable_.dropped();
    }
    void close() override;
    bool is_open() const override { return open_; }

    // Hands ready messages to consumers, at most `budget`; returns how many.
    // `more` is set when messages may remain for this channel.
    std::size_t deliver(std::size_t budget, bool& more);
    bool has_consumers() const { return !consumers_.empty(); }

  private:
    struct ConsumerEntry {
        std::string tag;
        std::string queue;
        std::shared_ptr<QueueState> state;
        bool no_ack;
        DeliveryCallback callback;
        bool cancelled = false;
    };

    void check_open() const;
    Message make_message(Node node, const std::string& queue, const std::string& consumer_tag,
                         bool no_ack);
    // A settled message: its envelope is released now, its node goes back
    // to the broker's pool with the next pop.
    void recycle(Node node);
    void restore_unacked(std::vector<Node> unacked);
    void remove_cancelled();
    void return_undelivered();

    MemoryTransport& transport_;
    virt::QoS<Node> qos_;

    // unique_ptr: a callback that runs may add or cancel consumers, and its
    // own entry must stay put until it returns (removal waits for that).
    std::vector<std::unique_ptr<ConsumerEntry>> consumers_;
    bool delivering_ = false;
    std::size_t next_consumer_ = 0;  // round-robin position
    std::uint64_t tag_counter_ = 0;

    // The rest of the batch being handed out, from the queue *batch_queue_.
    NodeQueue batch_;
    const std::string* batch_queue_ = nullptr;
    // Settled nodes (envelopes released), back to the broker's pool with
    // the next pop.
    std::vector<Node> spent_;
    RouteCache route_;  // where this channel's last publish went
    ReturnCallback on_return_;
    virt::Unroutable unroutable_{"queue", "declare and bind a queue"};
    bool open_ = true;
};

}  // namespace kelp::memory
