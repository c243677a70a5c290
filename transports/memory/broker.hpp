// MemoryBroker: the in-process broker behind memory://name. One per name per
// process, alive for the whole process, shared by every Connection that names
// it, from any thread.
//
// It keeps queues and the exchange table under one mutex; consumers are woken
// through their Connection's Hub (a coalesced call_soon_threadsafe), so a
// waiting consumer sees a message at once, without a polling sleep.
//
// Thread rules: every public method is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kelp/channel.hpp"
#include "kelp/entities.hpp"
#include "kelp/virtual/exchange_table.hpp"
#include "queued_message.hpp"

namespace kelp {
class Hub;
}

namespace kelp::memory {

// Wakes one Connection's Hub when a queue it consumes from gets a message.
// Notifications coalesce: one wake-up is pending at most.
class Waker : public std::enable_shared_from_this<Waker> {
  public:
    explicit Waker(std::function<void()> on_wake) : on_wake_(std::move(on_wake)) {}
    void set_hub(Hub* hub);
    void notify();
    // Called on the Hub's thread when the wake-up runs.
    void fire();
    // Detaches the owner: later wake-ups do nothing.
    void disarm();

  private:
    std::mutex mutex_;
    Hub* hub_ = nullptr;
    std::atomic<bool> pending_{false};
    std::function<void()> on_wake_;  // touched only on the Hub's thread
};

struct QueueState {
    explicit QueueState(Queue definition_);

    Queue definition;
    Table arguments;  // declare_arguments(), for redeclare checks
    std::uint8_t max_priority = 0;
    std::optional<std::chrono::milliseconds> message_ttl;
    std::optional<std::int64_t> max_length;
    std::optional<std::int64_t> max_length_bytes;
    std::optional<std::string> dead_letter_exchange;
    std::optional<std::string> dead_letter_routing_key;

    // One FIFO per priority level (a single level without x-max-priority).
    std::vector<NodeQueue> levels;
    std::size_t size = 0;
    std::size_t bytes = 0;  // kept only with max_length_bytes
    // Set once a message with an expiry time was stored: until then taking
    // messages needs no look at them.
    bool may_expire = false;
    std::uint32_t consumers = 0;
    bool deleted = false;
    std::vector<std::shared_ptr<Waker>> listeners;
};

struct BrokerStats {
    std::uint64_t published = 0;
    std::uint64_t unroutable = 0;  // dropped: no queue matched
    std::uint64_t expired = 0;
    std::uint64_t dead_lettered = 0;
    std::uint64_t dropped_overflow = 0;
};

// The queues one (exchange, routing key) was routed to, kept by a publishing
// channel: publishing to the same place again routes without a lookup while
// the broker's topology (exchanges, queues, bindings) is unchanged.
struct RouteCache {
    std::uint64_t topology = 0;  // the broker's topology_ when filled; 0: empty
    std::string exchange;
    std::string routing_key;
    std::vector<QueueState*> targets;
};

class MemoryBroker {
  public:
    using Clock = std::chrono::steady_clock;

    MemoryBroker() = default;
    MemoryBroker(const MemoryBroker&) = delete;
    MemoryBroker& operator=(const MemoryBroker&) = delete;

    static std::shared_ptr<MemoryBroker> named(const std::string& name);

    void exchange_declare(const Exchange& exchange, bool passive);
    void exchange_delete(const std::string& name, bool if_unused);
    // Declares (or checks, if passive) and returns the queue's state.
    QueueDeclareOk queue_declare(const Queue& queue, bool passive);
    void queue_bind(const std::string& queue, const std::string& exchange,
                    const std::string& routing_key, const Table& arguments);
    void queue_unbind(const std::string& queue, const std::string& exchange,
                      const std::string& routing_key, const Table& arguments);
    std::uint64_t queue_purge(const std::string& queue);
    std::uint64_t queue_delete(const std::string& queue, bool if_unused, bool if_empty);

    // Routes and stores. Returns false when no queue took the message, and
    // only then leaves `envelope` as it was (for a mandatory return).
    bool publish(std::shared_ptr<const Envelope>&& envelope, const std::string& exchange,
                 const std::string& routing_key, RouteCache& route);

    // The live state of a queue for a consumer; NotFound if it does not exist.
    std::shared_ptr<QueueState> attach_consumer(const std::string& queue,
                                                std::shared_ptr<Waker> waker);
    void detach_consumer(const std::shared_ptr<QueueState>& queue,
                         const std::shared_ptr<Waker>& waker);

    // Moves up to `max` messages of `queue` to the back of `out`; returns how
    // many. Takes the caller's settled nodes (`spent`, envelopes released)
    // back into the pool under the same lock, and leaves `spent` empty.
    std::size_t pop(QueueState& queue, std::size_t max, NodeQueue& out, std::vector<Node>& spent);
    // One message of the named queue; null if the queue is empty.
    Node pop_one(const std::string& queue);
    // Puts messages back at the head of their queue in the given order (the
    // first ends up first); marked redelivered if `redelivered`.
    void restore(const std::string& queue, NodeQueue messages, bool redelivered);
    // A rejected message: to the queue's dead-letter exchange, or dropped.
    void dead_letter(const std::string& queue, Node message, const char* reason);

    BrokerStats stats();

  private:
    QueueState* find_queue(const std::string& name);
    // Every change that can alter where a message goes bumps topology_.
    void topology_changed() { ++topology_; }
    const std::vector<QueueState*>& route_cached(const std::string& exchange,
                                                 const std::string& routing_key,
                                                 const Table& headers, RouteCache& route);
    void route_locked(const std::string& exchange, const std::string& routing_key,
                      const Table& headers, std::vector<QueueState*>& out);
    // A node from the pool (or a new one), for one stored copy.
    Node new_node_locked();
    // Releases the message a node holds and keeps the node for reuse.
    void recycle_locked(Node node);
    std::size_t pop_locked(QueueState& queue, std::size_t max, NodeQueue& out);
    // Stores at the tail of the message's priority level.
    void store(QueueState& queue, Node node);
    // Takes a message out of the queue's accounting (size, bytes).
    static void count_out(QueueState& queue, const QueuedMessage& node);
    // The message goes to the queue's DLX, or is dropped.
    void dead_letter_locked(QueueState& queue, Node node, const char* reason);

    std::mutex mutex_;
    virt::ExchangeTable exchanges_;
    std::unordered_map<std::string, std::shared_ptr<QueueState>> queues_;
    std::uint64_t topology_ = 1;
    std::vector<std::string> route_buffer_;
    std::vector<QueueState*> target_buffer_;
    // Spare nodes: settled messages' nodes come back here and new messages
    // take them (the last back first), so a steady stream allocates no node.
    std::vector<Node> free_nodes_;
    BrokerStats stats_;
};

}  // namespace kelp::memory
