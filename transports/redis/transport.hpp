// The redis:// transport: channels over a Redis server, wire-compatible with
// Kombu's Redis transport (keys, binding sets, JSON envelope, unacked hash and
// index), consumed through the Connection's Hub.
//
// Connections per transport: one command connection (publish, declare, pop,
// ack, restore: pipelined, in order) and, once something consumes, one
// pub/sub connection that wakes consumers (see subscriber.hpp).
//
// When a link drops, the transport reports a LinkEvent (lost, then
// reconnected; gave_up, also thrown, when max_retries runs out) and
// reconnects by itself on Hub timers (the URL's max_retries and interval_*
// options); consumers go on afterwards. Commands made meanwhile throw
// ConnectionError, and publishes the drop cut short are reported as errors.
//
// Thread rules: a RedisTransport and its channels belong to their
// Connection's thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "client.hpp"
#include "kelp/hub.hpp"
#include "kelp/transport.hpp"
#include "route_context.hpp"
#include "scripts.hpp"
#include "subscriber.hpp"
#include "wire/keys.hpp"
#include "wire/options.hpp"

namespace kelp::redis {

class RedisChannel;
class Restorer;

// How a fanout exchange reaches the queues bound to it.
enum class FanoutMode : std::uint8_t {
    // Durable, as AMQP: the message is pushed to the list of every queue kelp
    // bound, and PUBLISHed on Kombu's channel too, for Kombu's subscribers.
    // kelp consumers read the lists; a Kombu publisher's fanout (PUBLISH
    // only) does not reach them.
    lists,
    // Kombu's: consumers of fanout-bound queues PSUBSCRIBE to Kombu's channel
    // (before consume() returns) and get what is published while they are
    // subscribed, by Kombu or kelp; nothing waits for an absent consumer.
    pubsub,
};

// What kelp knows of a queue's declaration: what publishers and rejects need.
struct QueueInfo {
    std::optional<int> max_priority;
    std::optional<std::string> dead_letter_exchange;
    std::optional<std::string> dead_letter_routing_key;
};

class RedisTransport final : public Transport {
  public:
    explicit RedisTransport(RedisSettings settings, FanoutMode fanout_mode = FanoutMode::lists);
    ~RedisTransport() override;

    static const Capabilities& static_capabilities();

    std::string_view name() const override { return "redis"; }
    const Capabilities& capabilities() const override { return static_capabilities(); }
    void connect(Clock::time_point deadline) override;
    bool connected() const override;
    void close() noexcept override;
    void register_with_event_loop(Hub& hub) override;
    std::shared_ptr<Channel> create_channel() override;
    std::uint64_t deliveries() const override { return deliveries_; }
    // Once connected, connect() after the link dropped resumes the channels
    // and consumers as they were (their unacked records stay valid).
    bool reconnects_in_place() const override { return has_connected_ && !closing_; }
    bool reconnecting() const override { return !connected_ && reconnect_timer_.active(); }

    // --- for channels and the restorer ---
    const RedisSettings& settings() const { return settings_; }
    // Kombu's keys, with the configured priority steps: where publishes go.
    const KeySchema& keys() const { return keys_; }
    // One bucket per priority level 0..9 (a superset of any steps' buckets):
    // what consumers pop and what purge/delete/count cover.
    const KeySchema& level_keys() const { return level_keys_; }
    const RouteContext& route() const { return route_; }
    FanoutMode fanout_mode() const { return fanout_mode_; }
    // The command connection; ConnectionError when there is none.
    RespClient& command();
    // Holds the command connection's writes back (PublishBatch); nests. A
    // new link after a reconnect is not held.
    void hold_writes();
    void release_writes() noexcept;
    Hub* hub() const { return hub_; }
    // When a synchronous call must have its reply (socket_timeout).
    Clock::time_point call_deadline() const;
    // A fresh prefix for the unacked fields of one pop (see Delivery::field).
    std::string next_field_prefix();
    void count_delivery() { ++deliveries_; }

    // The consumed queues changed: updates tracking, the subscriber, timers.
    void consumers_changed();
    // Consumers of `queue` on this connection (channels of this transport).
    std::uint32_t local_consumers(const std::string& queue) const;
    // A message was published here: local consumers may have work now (the
    // tracking notice of our own push may come later than the next drain).
    void note_publish();
    // Cancels this connection's consumers of a deleted queue.
    void queue_deleted(const std::string& queue);

    // Runs a script and waits for its reply (retrying by body when the
    // server lost its script cache). Throws ChannelError for an error reply.
    Reply run_script(ScriptId id, std::span<const std::string_view> keys,
                     std::span<const std::string_view> args);
    Reply run_script(const ScriptCall& call);
    // Pipelines a script; `callback` gets its reply (or the failure).
    void send_script(std::shared_ptr<const ScriptCall> call, RespClient::ReplyCallback callback);

    // fanout_mode=pubsub: this connection's fanout bindings, which its
    // consumers of those queues PSUBSCRIBE to.
    void bound_to_fanout(const std::string& queue, const std::string& exchange,
                         const std::string& routing_key, bool bound);
    // True for a queue consumed through pub/sub, never popped from its list.
    bool consumed_by_subscription(const std::string& queue) const;

    // exclusive queues are deleted when this connection closes, auto_delete
    // ones when their last consumer here is cancelled.
    void note_declared(const std::string& queue, const QueueOptions& options);

    // The exchange's type as this connection knows it, without asking Redis.
    std::optional<ExchangeType> known_exchange_type(const std::string& exchange) const;
    // The exchange's type, from this connection's declarations or kelp's
    // record in Redis; nullopt when neither knows it.
    std::optional<ExchangeType> exchange_type(const std::string& exchange);
    void remember_exchange(const std::string& exchange, std::optional<ExchangeType> type);
    // The queue's declaration as kelp recorded it (cached).
    QueueInfo queue_info(const std::string& queue);
    void remember_queue(const std::string& queue, const std::string& record);

    // Errors that happen after the call that caused them returned (a reply
    // to a pipelined command): raised from the Hub, like a callback's error.
    // While the link is down a ConnectionError is not raised: it is the drop
    // seen again by a command under way, and the LinkEvent said it already.
    void report(std::exception_ptr error);
    // Raised from the Hub (or printed when there is none), unfiltered.
    void raise(std::exception_ptr error);
    // Runs `callback` from the Hub (user callbacks never run inside reply
    // dispatching).
    void defer(Hub::Callback callback);

    // Every live channel, for the restorer.
    std::vector<std::shared_ptr<RedisChannel>> live_channels();

  private:
    Endpoint endpoint() const;
    Handshake handshake(std::string_view role) const;
    void ensure_subscriber();
    void update_tracking();
    void on_keys_changed(const std::vector<std::string_view>& keys);
    void on_broadcast(std::string_view pattern, std::string_view payload);
    std::set<std::string> fanout_patterns() const;
    void on_broken(std::exception_ptr error);
    void on_subscriber_broken(std::exception_ptr error);
    void set_tracking_failed(bool failed);
    // Reconnecting after the link dropped, on Hub timers, as the reconnect
    // policy (max_retries, interval_start/step/max) says; consumers resume
    // where they were: their unacked records stay valid across the gap.
    void schedule_reconnect(int attempt);
    void try_reconnect(int attempt);
    // After a reconnect (by the timers or by Connection::connect): the
    // consumers' subscription and tracking again, and a look at their lists.
    void resume_consumers();
    void schedule_resubscribe();
    // The Hub closes (or is destroyed) before this connection: everything
    // on it is dropped while it still exists, and the Hub is forgotten.
    void forget_hub();
    void start_timers();
    void stop_timers();
    void wake_consumers();

    RedisSettings settings_;
    KeySchema keys_;
    KeySchema level_keys_;
    RouteContext route_;
    FanoutMode fanout_mode_;
    // queue -> (exchange, binding key) of its fanout bindings made here.
    std::map<std::string, std::set<std::pair<std::string, std::string>>> fanout_bindings_;
    std::unique_ptr<RespClient> command_;
    int writes_held_ = 0;
    std::optional<RespClient::Cork> write_cork_;  // on command_, while writes are held
    std::unique_ptr<Subscriber> subscriber_;
    std::unique_ptr<Restorer> restorer_;
    Hub* hub_ = nullptr;
    std::vector<std::weak_ptr<RedisChannel>> channels_;
    std::vector<std::string> tracked_prefixes_;
    std::map<std::string, std::optional<ExchangeType>> exchange_types_;
    std::map<std::string, QueueInfo> queue_infos_;
    std::set<std::string> exclusive_queues_;
    std::set<std::string> auto_delete_queues_;
    std::set<std::string> consumed_queues_;  // as of the last consumers_changed
    Handle poll_timer_;
    Handle restore_timer_;
    Handle health_timer_;
    Handle reconnect_timer_;
    Handle resubscribe_timer_;
    Handle hub_closing_;
    std::string transport_id_;
    std::uint64_t pops_ = 0;
    std::uint64_t deliveries_ = 0;
    bool connected_ = false;
    bool has_connected_ = false;
    // Connected again, but consumers not resumed yet (resuming failed).
    bool resume_pending_ = false;
    bool tracking_failed_ = false;
    bool closing_ = false;
    // For the link events: lost and not reconnected yet, and by which try.
    bool link_lost_ = false;
    bool subscription_lost_ = false;
    int reconnect_attempt_ = 0;
};

}  // namespace kelp::redis
