// RedisChannel: the AMQP-shaped operations over Redis, and one channel's
// consumption (its consumers, prefetch window and unacked deliveries).
//
// Consuming, as Kombu's MultiChannelPoller does it but without its crash
// window: one `pop` script call covers every queue the channel consumes and
// every priority bucket (highest first), taking as many messages as the
// prefetch window has room for and recording each in Kombu's unacked hash
// and index in the same atomic step. The queue order rotates after each
// message (round robin), so no queue starves. When the lists are empty the
// channel waits for the Subscriber's notice that a consumed key changed (or
// the transport's safety poll), never in a blocking command.
//
// While a batch is handed out, the next pop is pipelined (one in flight):
// it goes out once half the window is free, so Redis pops and records while
// the batch before is handed out. With nothing to hand out, a pop waits.
// The records of messages acked inside consumer callbacks are removed
// together when the callbacks of that turn are done (one HDEL, one ZREM).
//
// Thread rules: belongs to its Connection's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kelp/channel.hpp"
#include "kelp/hub.hpp"
#include "kelp/virtual/unroutable.hpp"
#include "scripts.hpp"
#include "wire/envelope.hpp"

namespace kelp::redis {

class RedisTransport;

// A message taken off a list by this channel.
struct Delivery {
    std::string queue;
    std::string key;  // the list it came from: where it goes back (its bucket)
    // Its field in the unacked hash and member of the index; empty without a
    // record (no_ack). Unique per delivery ("kelp/<nonce>.<n>/<key>"), so an
    // ack that comes after the message was restored and delivered again
    // removes nothing of the newer delivery.
    std::string field;
    std::string payload;  // as popped
    std::shared_ptr<const Envelope> envelope;
    DeliveryFields fields;
    bool no_ack = false;
};

class RedisChannel final : public Channel {
  public:
    explicit RedisChannel(RedisTransport& transport);
    ~RedisChannel() override;

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
    void begin_batch() override;
    void end_batch() noexcept override;
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
    void on_return(ReturnCallback callback) override;
    std::optional<std::uint64_t> unroutable_dropped() const override;
    void close() override;
    bool is_open() const override { return open_; }

    // --- for the transport ---
    // The queues this channel consumes (not cancelled), in consume order.
    const std::vector<std::string>& consumed_queues() const { return queues_; }
    std::uint32_t consumers_of(const std::string& queue) const;
    // A consumed list may have messages: pop when the window has room.
    void wake();
    // A message published on a fanout channel this channel's queue is
    // subscribed to (fanout_mode=pubsub).
    void deliver_broadcast(const std::string& queue, std::string_view payload);
    // The Hub changed: pending work moves to the new one.
    void rehome();
    // The Hub is closing: drop the pending work scheduled on it.
    void forget_hub() {
        pump_handle_.cancel();
        pump_handle_ = Handle();  // names the Hub: emptied before it goes
    }
    // Cancels the consumers of a queue that was deleted.
    void cancel_queue(const std::string& queue);
    // Unacked fields held here (delivered and waiting), for the lease refresh.
    void collect_fields(std::vector<std::string>& out) const;
    // The transport closes: give everything back while the link is up.
    void close_for_transport() noexcept;

  private:
    struct Consumer {
        std::string tag;
        std::string queue;
        bool no_ack;
        DeliveryCallback callback;
        bool cancelled = false;
    };
    // State that replies to pipelined commands touch; shared so that a reply
    // arriving after the channel is gone touches nothing freed.
    struct Shared {
        virt::Unroutable unroutable{"queue", "declare and bind a queue"};
        ReturnCallback on_return;
    };

    void check_open() const;
    RedisTransport& transport() const;
    // Messages the prefetch window holds: prefetch_count, or pop_batch
    // without a limit.
    std::size_t window() const;
    // Free places in the window (a pop in flight counts as full).
    std::size_t room() const;
    bool can_pop() const;
    // How many pops may be in flight at once.
    std::size_t pop_depth() const;
    // Time to pop: there is room, and nothing waits or half the window is free.
    bool should_pop() const;
    void schedule();
    void pump();
    void deliver_pending();
    Consumer* consumer_for(const std::string& queue);
    void rebuild_pop_keys();
    struct Popped {
        std::vector<Delivery> deliveries;
        std::size_t taken = 0;  // popped, including any that could not be decoded
    };
    // One `pop` script call and what its reply refers to.
    struct PopRequest {
        ScriptCall call;
        std::vector<std::string> queues;
        std::vector<std::string> lists;  // the reply's key indexes point here
        std::size_t count = 0;
    };
    PopRequest pop_request(const std::vector<std::string>& queues, const std::vector<bool>& record,
                           std::size_t count, std::size_t rotation) const;
    // The deliveries in a pop reply; `rotation` gets the next first queue.
    Popped read_popped(const ReplyView& result, const PopRequest& request, std::size_t& rotation);
    // A pop that waits for its reply, when nothing else is to be done.
    void pop_now();
    // A pop ahead of need, pipelined: one at a time in flight, whose reply
    // fills `pending_` (on_popped). settle_pop waits for it.
    void start_pop();
    void on_popped(const Reply& reply, const PopRequest& request);
    void settle_pop();
    // One `pop` script call: up to `count` messages over `queues` (record[i]:
    // write unacked records for queue i), starting the round at `rotation`,
    // which is updated.
    Popped pop(const std::vector<std::string>& queues, const std::vector<bool>& record,
               std::size_t count, std::size_t& rotation);
    // Publishes that went out as one publish_to_queue call.
    struct PublishBatch {
        std::string queue;
        std::vector<std::string> payloads;  // kept for a NOSCRIPT retry, and counted
    };
    // A publish to the default exchange at priority 0, not mandatory: the
    // lean publish_to_queue script, pipelined, merged with the publishes
    // that follow while the connection is backed up.
    void publish_to_queue(const std::string& queue, std::string payload);
    // The reply to a batch: unroutable ones counted, errors reported.
    static void settle_publishes(const std::weak_ptr<Shared>& shared, RedisTransport* transport,
                                 const std::shared_ptr<PublishBatch>& batch, const Reply& reply,
                                 bool retry_noscript);
    void handle_undecodable(const Delivery& delivery, const std::string& why);
    Message make_message(Delivery delivery, const std::string& consumer_tag, bool no_ack);
    // The payload that goes back for a delivery: marked redelivered when it
    // was handed out, as popped when it never was.
    std::string returned_payload(const Delivery& delivery, bool delivered) const;
    // Pushes deliveries back to their lists, head or tail, in the given
    // order; synchronous when `wait`.
    void give_back(const std::vector<const Delivery*>& deliveries,
                   const std::vector<bool>& delivered, bool head, bool wait);
    void give_back_all(bool wait);
    // Removes the unacked records of settled deliveries; inside consumer
    // callbacks they are collected and removed once the turn ends, in one
    // HDEL and one ZREM.
    void forget_fields(std::vector<std::string> fields);
    void flush_forgotten() noexcept;
    void send_forget(const std::vector<std::string>& fields);
    void dead_letter(const Delivery& delivery, const std::string& exchange,
                     const std::string& routing_key);
    void remove_cancelled();
    // Closes without telling the transport (shared by close and
    // close_for_transport).
    void shut_down();

    RedisTransport* transport_;
    bool open_ = true;
    int batches_ = 0;  // PublishBatch holds on the transport's writes
    std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();

    std::vector<std::unique_ptr<Consumer>> consumers_;
    std::vector<std::string> queues_;      // consumed queues, in consume order
    std::vector<std::string> pop_queues_;  // those popped from their lists (not pub/sub)
    std::map<std::string, std::size_t> next_consumer_;  // round robin within a queue
    std::vector<bool> record_;  // per pop queue: records in unacked (not no_ack only)
    std::size_t rotation_ = 0;  // the pop script's first queue
    std::uint64_t consumer_counter_ = 0;
    bool delivering_ = false;

    std::uint32_t prefetch_ = 0;
    std::uint64_t next_tag_ = 1;
    std::map<std::uint64_t, Delivery> unacked_;  // handed out, not settled
    std::deque<Delivery> pending_;               // popped, not yet handed out
    bool more_ = true;                           // the lists may hold more than the last pop took
    std::vector<std::string> forgotten_;         // records of deliveries settled this turn
    std::weak_ptr<PublishBatch> open_batch_;     // the one the client's open command carries
    std::uint64_t publisher_id_ = 0;             // this channel, to RespClient::send_appending
    std::size_t pops_in_flight_ = 0;
    std::size_t pop_requested_ = 0;  // messages asked of the pops in flight
    bool last_pop_full_ = false;     // the last pop took all it asked for
    // Expires with the channel: a pop reply arriving later touches nothing.
    std::shared_ptr<char> life_ = std::make_shared<char>();
    Handle pump_handle_;
};

}  // namespace kelp::redis
