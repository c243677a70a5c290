// The amqp:// transport: native AMQP 0-9-1 through rabbitmq-c, on the Hub.
//
// One AMQP connection per transport; each kelp Channel is an AMQP channel.
// rabbitmq-c encodes and decodes frames; kelp reads them from the Hub
// without blocking (draining what rabbitmq-c has buffered after every
// synchronous method), sends heartbeats and watches the broker's on a Hub
// timer (a broker silent for two heartbeat intervals is taken as dead), and
// reconnects by itself with backoff when the link drops: it re-declares the
// topology it declared, reopens its channels with their prefetch and
// confirm mode, restarts their consumers and (with confirm_publish) sends
// unconfirmed messages again. Messages delivered before the drop are
// redelivered by the broker; settling one of them afterwards does nothing
// (its delivery tag belongs to the old channel), so nothing is acked twice
// and no stale tag reaches the new channel.
//
// Synchronous methods wait for their reply (rpc_timeout) by reading frames
// in place; deliveries that arrive meanwhile are held and handed to
// consumers from the Hub, never inside another call. Publishing writes
// each message's frames with one system call (FrameWriter; through
// rabbitmq-c with TLS) and blocks while the socket is full; acks made while
// a batch of deliveries is handed out go out together after the batch.
//
// Thread rules: an AmqpTransport and its channels belong to their
// Connection's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frame_writer.hpp"
#include "kelp/entities.hpp"
#include "kelp/hub.hpp"
#include "kelp/transport.hpp"
#include "rabbitmq.hpp"
#include "settings.hpp"

namespace kelp::amqp {

class AmqpChannel;

class AmqpTransport final : public Transport {
  public:
    explicit AmqpTransport(AmqpSettings settings);
    ~AmqpTransport() override;

    static const Capabilities& static_capabilities();

    std::string_view name() const override { return "amqp"; }
    const Capabilities& capabilities() const override { return static_capabilities(); }
    void connect(Clock::time_point deadline) override;
    // True from a successful connect until close() or until reconnecting
    // gives up: while the transport is reconnecting by itself it stays
    // "connected", so the Connection keeps it (and its consumers).
    bool connected() const override;
    // While it has not been closed or given up: Connection::ensure then keeps
    // this transport (its channels and consumers) and the next call brings
    // the link back in place.
    bool reconnects_in_place() const override { return opened_ && !closed_; }
    void close() noexcept override;
    void register_with_event_loop(Hub& hub) override;
    std::shared_ptr<Channel> create_channel() override;
    std::uint64_t deliveries() const override { return deliveries_; }

    // The link is up at this moment (false while reconnecting).
    bool link_up() const { return state_ != nullptr; }
    // Times the link was re-established.
    std::uint64_t reconnections() const { return reconnections_; }
    // The broker sent connection.blocked (a resource alarm) and no unblocked since.
    bool blocked() const { return blocked_; }
    // Drops the link as a failure would (for tests and for callers that know
    // the link is bad): the transport reconnects as after any failure.
    void drop_link(const std::string& reason);

    // --- for channels ---
    const AmqpSettings& settings() const { return settings_; }
    // The live connection state; reconnects at once when the link is down
    // and throws ConnectionError when that fails. Held acks are written
    // first, so whatever the caller writes next cannot overtake them.
    amqp_connection_state_t state();
    // Sends a method frame; a failure drops the link and throws ConnectionError.
    void send_method(std::uint16_t channel, amqp_method_number_t id, void* decoded);
    // Writes one basic.publish (reconnecting first if the link is down);
    // returns a rabbitmq-c status for check_write. On plain TCP the frames
    // go out in one system call (FrameWriter), through TLS by
    // amqp_basic_publish.
    int publish(std::uint16_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                bool mandatory, const amqp_basic_properties_t& properties, amqp_bytes_t body);
    // Sends a basic.ack; while consumers are handed a batch of deliveries
    // (flush) it is held and written with the batch's other acks in one
    // system call when the batch ends, or before anything else is written
    // (state() writes held acks first). Returns a rabbitmq-c status.
    int ack(std::uint16_t channel, std::uint64_t delivery_tag, bool multiple);
    // A rabbitmq-c status of a write: not OK drops the link and throws.
    void check_write(int status, const char* what);
    // Reads and dispatches frames until done() or rpc_timeout.
    void wait_until(const std::function<bool()>& done, std::string_view what);
    void schedule_flush();
    void count_delivery() { ++deliveries_; }
    void report(std::exception_ptr error);
    void release_channel(std::uint16_t number);
    std::uint64_t generation() const { return generation_; }

    // The topology to declare again after reconnecting.
    void remember_exchange(const Exchange& exchange);
    void remember_queue(const Queue& queue);
    void remember_binding(bool exchange_binding, const std::string& destination,
                          const std::string& source, const std::string& routing_key,
                          const Table& arguments, bool bound);
    void forget_exchange(const std::string& name);
    void forget_queue(const std::string& name);

  private:
    struct TopologyEntry {
        enum class Kind { exchange, queue, queue_binding, exchange_binding } kind;
        Exchange exchange;
        Queue queue;
        std::string destination, source, routing_key;
        Table arguments;
    };

    void open_link(Clock::time_point deadline);
    void restore_after_reconnect();
    void link_failed(const std::string& reason);
    void schedule_reconnect(int attempt);
    void try_reconnect(int attempt);
    void on_readable();
    void process_available();
    void dispatch(const amqp_frame_t& frame);
    void flush();
    // Writes held acks; a failed write drops the link (the broker requeues).
    void write_held();
    void on_heartbeat_timer();
    void attach_fd();
    void detach_fd();
    void forget_hub();
    void emit(LinkEvent event);
    std::vector<std::shared_ptr<AmqpChannel>> live_channels();

    AmqpSettings settings_;
    amqp_connection_state_t state_ = nullptr;
    int fd_ = -1;
    Hub* hub_ = nullptr;
    Hub* fd_hub_ = nullptr;                // the Hub the fd is registered on
    std::vector<AmqpChannel*> by_number_;  // index = channel number
    std::vector<TopologyEntry> topology_;
    FrameWriter frame_writer_;
    Handle heartbeat_timer_;
    Handle reconnect_timer_;
    Handle flush_handle_;
    Handle hub_closing_;
    Clock::time_point last_received_{};
    std::uint64_t deliveries_ = 0;
    std::uint64_t generation_ = 0;
    std::uint64_t reconnections_ = 0;
    std::string last_failure_;
    int depth_ = 0;    // > 0 while a synchronous method waits
    int holding_ = 0;  // > 0 while flush() hands out deliveries: acks wait
    int reconnect_attempt_ = 0;
    bool opened_ = false;  // connect() succeeded once
    bool closed_ = false;  // close() called or reconnecting gave up
    bool flush_scheduled_ = false;
    bool blocked_ = false;
    bool restoring_ = false;
};

}  // namespace kelp::amqp
