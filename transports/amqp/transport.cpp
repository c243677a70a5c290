#include "transport.hpp"

#include <poll.h>

#include <algorithm>
#include <cstdio>

#include "channel.hpp"
#include "codec.hpp"
#include "kelp/errors.hpp"

namespace kelp::amqp {
namespace {

using namespace std::chrono_literals;

timeval to_timeval(std::chrono::steady_clock::duration left) {
    if (left < 0s) left = 0s;
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(left).count();
    return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

std::string describe_reply(const amqp_rpc_reply_t& reply) {
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            return "ok";
        case AMQP_RESPONSE_NONE:
            return "no reply";
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return amqp_error_string2(reply.library_error);
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
                const auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
                return std::to_string(close->reply_code) + " " + string_of(close->reply_text);
            }
            if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                const auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
                return std::to_string(close->reply_code) + " " + string_of(close->reply_text);
            }
            return "server exception";
    }
    return "unknown";
}

// What kelp tells the broker it understands: without these RabbitMQ sends
// no basic.nack, no consumer cancel notices and no connection.blocked.
struct ClientProperties {
    std::vector<amqp_table_entry_t> capabilities;
    std::vector<amqp_table_entry_t> entries;
    amqp_table_t table{};

    explicit ClientProperties(const std::string& name) {
        auto flag = [](const char* key) {
            amqp_table_entry_t e{};
            e.key = amqp_cstring_bytes(key);
            e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
            e.value.value.boolean = 1;
            return e;
        };
        for (const char* key :
             {"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
              "consumer_cancel_notify", "connection.blocked", "authentication_failure_close"})
            capabilities.push_back(flag(key));
        auto text = [](const char* key, std::string_view value) {
            amqp_table_entry_t e{};
            e.key = amqp_cstring_bytes(key);
            e.value.kind = AMQP_FIELD_KIND_UTF8;
            e.value.value.bytes = bytes_of(value);
            return e;
        };
        entries.push_back(text("product", "kelp"));
        entries.push_back(text("information", "kelp (C++ messaging) on rabbitmq-c"));
        entries.push_back(text("connection_name", name));
        amqp_table_entry_t caps{};
        caps.key = amqp_cstring_bytes("capabilities");
        caps.value.kind = AMQP_FIELD_KIND_TABLE;
        caps.value.value.table = {static_cast<int>(capabilities.size()), capabilities.data()};
        entries.push_back(caps);
        table = {static_cast<int>(entries.size()), entries.data()};
    }
};

}  // namespace

AmqpTransport::AmqpTransport(AmqpSettings settings) : settings_(std::move(settings)) {
    by_number_.assign(std::size_t{settings_.channel_max} + 1, nullptr);
}

AmqpTransport::~AmqpTransport() {
    close();
    if (hub_ != nullptr) hub_closing_.cancel();
}

const Capabilities& AmqpTransport::static_capabilities() {
    static const Capabilities capabilities{
        .exchange_direct = true,
        .exchange_topic = true,
        .exchange_fanout = true,
        .exchange_headers = true,
        .priorities = true,  // with x-max-priority on the queue
        .message_ttl = true,
        .max_length = true,
        .dead_letter = true,
        .per_message_requeue = true,
        .heartbeats = true,
        .publisher_confirms = true,
        .network = true,
    };
    return capabilities;
}

// --- the link ------------------------------------------------------------------------

void AmqpTransport::connect(Clock::time_point deadline) {
    if (state_ != nullptr) return;
    if (reconnects_in_place()) {
        // The link is down and the transport is reconnecting: bring it back
        // now, with its topology, channels and consumers.
        state();
        return;
    }
    closed_ = false;
    open_link(std::min(deadline, Clock::now() + settings_.connect_timeout));
    opened_ = true;
}

bool AmqpTransport::connected() const {
    return opened_ && !closed_;
}

void AmqpTransport::open_link(Clock::time_point deadline) {
    amqp_connection_state_t state = amqp_new_connection();
    auto fail = [&](const std::string& what) {
        amqp_destroy_connection(state);
        throw ConnectionError("amqp: " + what + " (" + settings_.describe() +
                              "); check that the broker runs there and the URL is right");
    };
    amqp_socket_t* socket = nullptr;
    if (settings_.tls) {
        socket = amqp_ssl_socket_new(state);
        if (socket == nullptr) fail("cannot make a TLS socket");
        if (!settings_.ssl.ca_certs.empty() &&
            amqp_ssl_socket_set_cacert(socket, settings_.ssl.ca_certs.c_str()) != AMQP_STATUS_OK)
            fail("cannot read ssl_ca_certs '" + settings_.ssl.ca_certs + "'");
        if (!settings_.ssl.certfile.empty() &&
            amqp_ssl_socket_set_key(socket, settings_.ssl.certfile.c_str(),
                                    settings_.ssl.keyfile.c_str()) != AMQP_STATUS_OK)
            fail("cannot read ssl_certfile/ssl_keyfile");
        amqp_ssl_socket_set_verify_peer(socket, settings_.ssl.verify_peer ? 1 : 0);
        amqp_ssl_socket_set_verify_hostname(socket, settings_.ssl.verify_hostname ? 1 : 0);
    } else {
        socket = amqp_tcp_socket_new(state);
        if (socket == nullptr) fail("cannot make a socket");
    }
    timeval tv = to_timeval(deadline - Clock::now());
    const int status =
        amqp_socket_open_noblock(socket, settings_.host.c_str(), settings_.port, &tv);
    if (status != AMQP_STATUS_OK)
        fail(std::string("cannot connect: ") + amqp_error_string2(status));
    tv = to_timeval(deadline - Clock::now());
    amqp_set_handshake_timeout(state, &tv);
    ClientProperties properties(settings_.client_name);
    const amqp_rpc_reply_t reply = amqp_login_with_properties(
        state, settings_.vhost.c_str(), settings_.channel_max,
        static_cast<int>(settings_.frame_max), static_cast<int>(settings_.heartbeat.count()),
        &properties.table, AMQP_SASL_METHOD_PLAIN, settings_.user.c_str(),
        settings_.password.c_str());
    if (reply.reply_type != AMQP_RESPONSE_NORMAL)
        fail("login as '" + settings_.user + "' to vhost '" + settings_.vhost +
             "' failed: " + describe_reply(reply));
    state_ = state;
    fd_ = amqp_get_sockfd(state_);
    ++generation_;
    blocked_ = false;
    last_received_ = Clock::now();
    attach_fd();
}

void AmqpTransport::attach_fd() {
    if (state_ == nullptr || hub_ == nullptr) return;
    detach_fd();
    hub_->add_reader(fd_, [this] { on_readable(); });
    fd_hub_ = hub_;
    if (settings_.heartbeat.count() > 0) {
        // Four looks per interval: a silent broker is noticed soon after two
        // intervals, and ours go out well before the broker's limit.
        heartbeat_timer_ = hub_->call_repeatedly(
            std::chrono::duration_cast<Clock::duration>(settings_.heartbeat) / 4,
            [this] { on_heartbeat_timer(); });
    }
}

void AmqpTransport::detach_fd() {
    heartbeat_timer_.cancel();
    if (fd_hub_ != nullptr && fd_ >= 0 && fd_hub_->has_reader(fd_)) fd_hub_->remove_reader(fd_);
    fd_hub_ = nullptr;
}

void AmqpTransport::close() noexcept {
    if (closed_ && state_ == nullptr) return;
    closed_ = true;
    reconnect_timer_.cancel();
    flush_handle_.cancel();
    flush_scheduled_ = false;
    for (auto* channel : by_number_) {
        if (channel != nullptr) channel->transport_closed();
    }
    std::fill(by_number_.begin(), by_number_.end(), nullptr);
    detach_fd();
    if (state_ != nullptr) {
        // Acks made before closing still count (best effort: a failed write
        // drops the link, and the broker requeues those messages).
        if (frame_writer_.holding() && frame_writer_.write_held(fd_) != AMQP_STATUS_OK)
            frame_writer_.drop_held();
    }
    if (state_ != nullptr) {
        // The broker requeues every unacked message of the connection.
        timeval tv{2, 0};
        amqp_set_rpc_timeout(state_, &tv);
        amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(state_);
        state_ = nullptr;
    }
    fd_ = -1;
}

void AmqpTransport::drop_link(const std::string& reason) {
    link_failed(reason);
}

void AmqpTransport::link_failed(const std::string& reason) {
    if (state_ == nullptr) return;
    // Acks of this link's tags: the broker requeues those messages now.
    frame_writer_.drop_held();
    detach_fd();
    amqp_destroy_connection(state_);
    state_ = nullptr;
    fd_ = -1;
    flush_handle_.cancel();
    flush_scheduled_ = false;
    last_failure_ = reason;
    for (auto* channel : by_number_) {
        if (channel != nullptr) channel->link_lost();
    }
    if (closed_) return;
    emit({.kind = LinkEvent::Kind::lost, .detail = reason});
    if (!restoring_) schedule_reconnect(1);
}

void AmqpTransport::schedule_reconnect(int attempt) {
    reconnect_attempt_ = attempt;
    if (hub_ == nullptr || closed_) return;
    const RetryPolicy& policy = settings_.reconnect;
    if (policy.max_retries >= 0 && attempt > policy.max_retries) {
        closed_ = true;
        emit({.kind = LinkEvent::Kind::gave_up, .detail = last_failure_, .attempt = attempt - 1});
        report(std::make_exception_ptr(ConnectionError(
            "amqp: gave up reconnecting to " + settings_.describe() + " after " +
            std::to_string(attempt - 1) + " attempts (max_retries; last error: " + last_failure_ +
            "); connect again with Connection::ensure_connection")));
        return;
    }
    reconnect_timer_ =
        hub_->call_later(policy.interval(attempt), [this, attempt] { try_reconnect(attempt); });
}

void AmqpTransport::try_reconnect(int attempt) {
    if (state_ != nullptr || closed_) return;
    try {
        open_link(Clock::now() + settings_.connect_timeout);
        restore_after_reconnect();
    } catch (const Error& error) {
        if (state_ != nullptr) link_failed(error.what());
        last_failure_ = error.what();
        schedule_reconnect(attempt + 1);
        return;
    }
    if (state_ == nullptr) {
        schedule_reconnect(attempt + 1);
        return;
    }
    ++reconnections_;
    emit(
        {.kind = LinkEvent::Kind::reconnected, .detail = settings_.describe(), .attempt = attempt});
}

void AmqpTransport::restore_after_reconnect() {
    restoring_ = true;
    struct Reset {
        bool& flag;
        ~Reset() { flag = false; }
    } reset{restoring_};
    // The topology first, on a channel of its own: a declaration the broker
    // refuses now (changed meanwhile) is reported, the rest goes on.
    const auto topology = topology_;
    std::shared_ptr<AmqpChannel> service;
    for (const auto& entry : topology) {
        if (state_ == nullptr) throw ConnectionError("amqp: link lost while restoring");
        if (!service || !service->is_open())
            service = std::static_pointer_cast<AmqpChannel>(create_channel());
        try {
            switch (entry.kind) {
                case TopologyEntry::Kind::exchange:
                    service->exchange_declare(entry.exchange);
                    break;
                case TopologyEntry::Kind::queue:
                    service->queue_declare(entry.queue);
                    break;
                case TopologyEntry::Kind::queue_binding:
                    service->queue_bind(entry.destination, entry.source, entry.routing_key,
                                        entry.arguments);
                    break;
                case TopologyEntry::Kind::exchange_binding:
                    service->exchange_bind(entry.destination, entry.source, entry.routing_key,
                                           entry.arguments);
                    break;
            }
        } catch (const ChannelError& error) {
            report(std::make_exception_ptr(ChannelError(
                std::string("amqp: re-declaring after reconnecting: ") + error.what())));
        }
    }
    if (service) service->close();
    for (const auto& channel : live_channels()) {
        if (state_ == nullptr) throw ConnectionError("amqp: link lost while restoring");
        if (channel->number() == 0 || !channel->is_open()) continue;
        channel->open_on_link();
        channel->restart_consumers();
        channel->republish_unconfirmed();
    }
}

void AmqpTransport::emit(LinkEvent event) {
    // Called deep inside link handling: a throwing handler must not leave
    // the link half torn down, so its exception goes to the Hub instead.
    try {
        emit_link_event(std::move(event));
    } catch (...) {
        report(std::current_exception());
    }
}

amqp_connection_state_t AmqpTransport::state() {
    if (frame_writer_.holding()) write_held();
    if (state_ == nullptr) {
        if (closed_) throw ConnectionError("amqp: the connection is closed; connect again");
        // Reconnect now rather than wait for the Hub's timer: a program that
        // only publishes may not be running the Hub.
        reconnect_timer_.cancel();
        try {
            open_link(Clock::now() + settings_.connect_timeout);
            restore_after_reconnect();
        } catch (const Error& error) {
            if (state_ != nullptr) link_failed(error.what());
            last_failure_ = error.what();
            schedule_reconnect(reconnect_attempt_ + 1);
            throw ConnectionError(std::string("amqp: the link is down and reconnecting failed: ") +
                                  error.what());
        }
        ++reconnections_;
        emit({.kind = LinkEvent::Kind::reconnected,
              .detail = settings_.describe(),
              .attempt = reconnect_attempt_});
    }
    return state_;
}

int AmqpTransport::publish(std::uint16_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                           bool mandatory, const amqp_basic_properties_t& properties,
                           amqp_bytes_t body) {
    amqp_connection_state_t link = state();
    if (!settings_.tls &&
        frame_writer_.encode(channel, exchange, routing_key, mandatory, properties, body,
                             static_cast<std::size_t>(amqp_get_frame_max(link))))
        return frame_writer_.write(fd_);
    return amqp_basic_publish(link, channel, exchange, routing_key, mandatory ? 1 : 0, 0,
                              &properties, body);
}

int AmqpTransport::ack(std::uint16_t channel, std::uint64_t delivery_tag, bool multiple) {
    if (holding_ > 0 && !settings_.tls && state_ != nullptr) {
        frame_writer_.hold_ack(channel, delivery_tag, multiple);
        return AMQP_STATUS_OK;
    }
    return amqp_basic_ack(state(), channel, delivery_tag, multiple ? 1 : 0);
}

void AmqpTransport::write_held() {
    if (state_ == nullptr) {
        frame_writer_.drop_held();
        return;
    }
    const int status = frame_writer_.write_held(fd_);
    if (status != AMQP_STATUS_OK)
        link_failed(std::string("writing acks: ") + amqp_error_string2(status));
}

void AmqpTransport::check_write(int status, const char* what) {
    if (status == AMQP_STATUS_OK) return;
    const std::string reason = std::string(what) + ": " + amqp_error_string2(status);
    link_failed(reason);
    throw ConnectionError("amqp: " + reason + "; the transport reconnects by itself, retry");
}

void AmqpTransport::send_method(std::uint16_t channel, amqp_method_number_t id, void* decoded) {
    check_write(amqp_send_method(state(), channel, id, decoded), "sending a method");
}

void AmqpTransport::wait_until(const std::function<bool()>& done, std::string_view what) {
    const auto deadline = Clock::now() + settings_.rpc_timeout;
    ++depth_;
    struct Depth {
        int& depth;
        ~Depth() { --depth; }
    } guard{depth_};
    while (!done()) {
        if (state_ == nullptr)
            throw ConnectionError("amqp: the link dropped while waiting for " + std::string(what) +
                                  " (" + last_failure_ + "); the transport reconnects by itself");
        const auto left = deadline - Clock::now();
        if (left <= 0s) {
            link_failed("no reply to " + std::string(what) + " within rpc_timeout");
            throw TimeoutError("amqp: no reply to " + std::string(what) + " within rpc_timeout (" +
                               std::to_string(settings_.rpc_timeout.count()) +
                               " ms); the link was reset");
        }
        timeval tv = to_timeval(left);
        amqp_frame_t frame;
        const int status = amqp_simple_wait_frame_noblock(state_, &frame, &tv);
        if (status == AMQP_STATUS_TIMEOUT) continue;
        if (status != AMQP_STATUS_OK) {
            link_failed(std::string("reading: ") + amqp_error_string2(status));
            continue;
        }
        dispatch(frame);
    }
    last_received_ = Clock::now();
    // The reply may have come with more frames in rabbitmq-c's buffer: the
    // socket will not signal them again.
    schedule_flush();
}

// --- the Hub -------------------------------------------------------------------------

void AmqpTransport::register_with_event_loop(Hub& hub) {
    if (hub_ == &hub) return;
    detach_fd();
    const bool reconnecting = reconnect_timer_.active();
    reconnect_timer_.cancel();
    flush_handle_.cancel();
    flush_scheduled_ = false;
    if (hub_ != nullptr) hub_closing_.cancel();
    hub_ = &hub;
    hub_closing_ = hub.on_close([this] { forget_hub(); });
    attach_fd();
    if (reconnecting) schedule_reconnect(reconnect_attempt_);
    schedule_flush();
}

void AmqpTransport::forget_hub() {
    detach_fd();
    reconnect_timer_.cancel();
    flush_handle_.cancel();
    for (Handle* handle : {&heartbeat_timer_, &reconnect_timer_, &flush_handle_, &hub_closing_})
        *handle = Handle();
    flush_scheduled_ = false;
    hub_ = nullptr;
}

void AmqpTransport::schedule_flush() {
    if (flush_scheduled_ || hub_ == nullptr) return;
    flush_scheduled_ = true;
    flush_handle_ = hub_->call_soon([this] {
        flush_scheduled_ = false;
        process_available();
        flush();
    });
}

void AmqpTransport::on_readable() {
    last_received_ = Clock::now();
    process_available();
    flush();
}

void AmqpTransport::process_available() {
    if (depth_ > 0) return;  // the waiting method reads them
    amqp_frame_t frame;
    // One read of the socket per call, then what rabbitmq-c holds already.
    // Reading on until the socket says EAGAIN would cost two more system
    // calls (recv, then poll) per wake-up; bytes left in the socket wake the
    // Hub again (its fds are level-triggered).
    bool first = true;
    while (state_ != nullptr) {
        if (!first && !amqp_data_in_buffer(state_) && !amqp_frames_enqueued(state_)) break;
        first = false;
        timeval zero{0, 0};
        const int status = amqp_simple_wait_frame_noblock(state_, &frame, &zero);
        if (status == AMQP_STATUS_TIMEOUT) break;
        if (status != AMQP_STATUS_OK) {
            link_failed(std::string("reading: ") + amqp_error_string2(status));
            return;
        }
        dispatch(frame);
    }
    if (state_ != nullptr) amqp_maybe_release_buffers(state_);
}

void AmqpTransport::dispatch(const amqp_frame_t& frame) {
    if (frame.channel == 0) {
        if (frame.frame_type != AMQP_FRAME_METHOD) return;
        switch (frame.payload.method.id) {
            case AMQP_CONNECTION_CLOSE_METHOD: {
                const auto* close =
                    static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
                const std::string reason =
                    "the broker closed the connection: " + std::to_string(close->reply_code) + " " +
                    string_of(close->reply_text);
                amqp_connection_close_ok_t ok{};
                amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
                link_failed(reason);
                return;
            }
            case AMQP_CONNECTION_BLOCKED_METHOD:
                blocked_ = true;
                return;
            case AMQP_CONNECTION_UNBLOCKED_METHOD:
                blocked_ = false;
                return;
            default:
                return;
        }
    }
    AmqpChannel* channel = frame.channel < by_number_.size() ? by_number_[frame.channel] : nullptr;
    if (channel != nullptr) {
        channel->on_frame(frame);
        return;
    }
    // A channel kelp no longer has: answer a close so the number is free.
    if (frame.frame_type == AMQP_FRAME_METHOD &&
        frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_ok_t ok{};
        amqp_send_method(state_, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    }
}

void AmqpTransport::flush() {
    if (depth_ > 0) return;
    // Acks the consumers make in this batch go out together when it ends.
    ++holding_;
    struct Holding {
        AmqpTransport& transport;
        ~Holding() {
            --transport.holding_;
            try {
                transport.write_held();
            } catch (...) {
                // A link event handler threw while the link was dropped.
                transport.report(std::current_exception());
            }
        }
    } holding{*this};
    // A bounded batch per turn of the loop, so timers and other fds get
    // their turn while a large prefetch drains.
    std::size_t budget = 64;
    for (const auto& channel : live_channels()) {
        if (!channel->has_pending()) continue;
        try {
            budget = channel->deliver_pending(budget);
        } catch (...) {
            // What is still held goes out on the next turn of the loop.
            schedule_flush();
            throw;
        }
        if (budget == 0) break;
    }
    if (budget == 0) schedule_flush();
}

void AmqpTransport::on_heartbeat_timer() {
    if (state_ == nullptr || depth_ > 0) return;
    const auto now = Clock::now();
    // Bytes waiting (the Hub has not read them yet) are life too.
    pollfd p{fd_, POLLIN, 0};
    if (amqp_data_in_buffer(state_) || ::poll(&p, 1, 0) > 0) last_received_ = now;
    if (now - last_received_ > 2 * settings_.heartbeat) {
        link_failed("no heartbeat from the broker for two intervals (" +
                    std::to_string(settings_.heartbeat.count()) + " s each)");
        return;
    }
    amqp_frame_t heartbeat{};
    heartbeat.frame_type = AMQP_FRAME_HEARTBEAT;
    heartbeat.channel = 0;
    const int status = amqp_send_frame(state_, &heartbeat);
    if (status != AMQP_STATUS_OK)
        link_failed(std::string("sending a heartbeat: ") + amqp_error_string2(status));
}

void AmqpTransport::report(std::exception_ptr error) {
    if (hub_ != nullptr) {
        hub_->call_soon([error] { std::rethrow_exception(error); });
        return;
    }
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kelp amqp: %s\n", e.what());
    }
}

// --- channels ------------------------------------------------------------------------

std::shared_ptr<Channel> AmqpTransport::create_channel() {
    state();  // throws when there is no link
    std::uint16_t number = 0;
    for (std::size_t i = 1; i < by_number_.size(); ++i) {
        if (by_number_[i] == nullptr) {
            number = static_cast<std::uint16_t>(i);
            break;
        }
    }
    if (number == 0)
        throw ChannelError("amqp: all " + std::to_string(settings_.channel_max) +
                           " channels are in use; close some or raise channel_max");
    auto channel = std::make_shared<AmqpChannel>(*this, number);
    by_number_[number] = channel.get();
    try {
        channel->open_on_link();
    } catch (...) {
        by_number_[number] = nullptr;
        channel->transport_closed();
        throw;
    }
    return channel;
}

void AmqpTransport::release_channel(std::uint16_t number) {
    if (number < by_number_.size()) by_number_[number] = nullptr;
}

std::vector<std::shared_ptr<AmqpChannel>> AmqpTransport::live_channels() {
    std::vector<std::shared_ptr<AmqpChannel>> live;
    for (auto* channel : by_number_) {
        if (channel == nullptr) continue;
        if (auto shared = std::static_pointer_cast<AmqpChannel>(channel->weak_from_this().lock()))
            live.push_back(std::move(shared));
    }
    return live;
}

// --- topology ------------------------------------------------------------------------

void AmqpTransport::remember_exchange(const Exchange& exchange) {
    if (restoring_) return;
    std::erase_if(topology_, [&](const TopologyEntry& e) {
        return e.kind == TopologyEntry::Kind::exchange && e.exchange.name == exchange.name;
    });
    topology_.push_back({TopologyEntry::Kind::exchange, exchange, {}, {}, {}, {}, {}});
}

void AmqpTransport::remember_queue(const Queue& queue) {
    if (restoring_) return;
    std::erase_if(topology_, [&](const TopologyEntry& e) {
        return e.kind == TopologyEntry::Kind::queue && e.queue.name == queue.name;
    });
    // Only the declaration: its bindings are remembered as they are made.
    Queue bare{queue.name, queue.options};
    bare.options.bindings.clear();
    topology_.push_back({TopologyEntry::Kind::queue, {}, std::move(bare), {}, {}, {}, {}});
}

void AmqpTransport::remember_binding(bool exchange_binding, const std::string& destination,
                                     const std::string& source, const std::string& routing_key,
                                     const Table& arguments, bool bound) {
    if (restoring_) return;
    const auto kind = exchange_binding ? TopologyEntry::Kind::exchange_binding
                                       : TopologyEntry::Kind::queue_binding;
    std::erase_if(topology_, [&](const TopologyEntry& e) {
        return e.kind == kind && e.destination == destination && e.source == source &&
               e.routing_key == routing_key && e.arguments == arguments;
    });
    if (bound) topology_.push_back({kind, {}, {}, destination, source, routing_key, arguments});
}

void AmqpTransport::forget_exchange(const std::string& name) {
    std::erase_if(topology_, [&](const TopologyEntry& e) {
        if (e.kind == TopologyEntry::Kind::exchange) return e.exchange.name == name;
        if (e.kind == TopologyEntry::Kind::queue) return false;
        return e.source == name ||
               (e.kind == TopologyEntry::Kind::exchange_binding && e.destination == name);
    });
}

void AmqpTransport::forget_queue(const std::string& name) {
    std::erase_if(topology_, [&](const TopologyEntry& e) {
        if (e.kind == TopologyEntry::Kind::queue) return e.queue.name == name;
        return e.kind == TopologyEntry::Kind::queue_binding && e.destination == name;
    });
}

}  // namespace kelp::amqp
