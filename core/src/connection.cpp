#include "kelp/connection.hpp"

#include <algorithm>

#include "kelp/errors.hpp"
#include "kelp/hub.hpp"

namespace kelp {
namespace {

// The identity of a declaration: every field, so a changed definition is
// declared again (Kombu caches on the name alone and misses such changes).
std::string declaration_key(const Exchange& exchange) {
    Json key{{"e", exchange.name},
             {"t", to_string(exchange.type)},
             {"d", exchange.durable},
             {"a", exchange.auto_delete},
             {"x", exchange.arguments}};
    return key.dump();
}

std::string declaration_key(const Queue& queue) {
    Json bindings = Json::array();
    for (const auto& binding : queue.options.bindings) {
        bindings.push_back({binding.exchange, binding.routing_key, binding.arguments});
    }
    Json key{{"q", queue.name},
             {"e", queue.exchange ? declaration_key(*queue.exchange) : ""},
             {"k", queue.routing_key},
             {"d", queue.options.durable},
             {"x", queue.options.exclusive},
             {"a", queue.options.auto_delete},
             {"args", queue.declare_arguments()},
             {"b", bindings}};
    return key.dump();
}

}  // namespace

Connection::Connection(std::string_view url, ConnectionOptions options)
    : urls_(parse_url_list(url)), connection_options_(std::move(options)) {
    for (const Url& parsed : urls_) {
        const TransportFactory& factory = find_transport(parsed.scheme);
        factories_.push_back(&factory);
        options_.push_back(validate_options(parsed, factory.options, factory.module));
    }
    private_hub_ = std::make_unique<Hub>();
    hub_ = private_hub_.get();
}

Connection::~Connection() {
    close();
}

void Connection::connect() {
    if (!connected()) ensure_connection(connection_options_.retry);
}

bool Connection::connected() const {
    return transport_ && transport_->connected();
}

void Connection::connect_once(std::size_t index, Clock::time_point deadline) {
    deadline = std::min(deadline, Clock::now() + connection_options_.connect_timeout);
    if (transport_ && index == transport_index_ && transport_->reconnects_in_place()) {
        // Its channels and consumers go on over the new link; a new
        // transport would have dropped them (and a consumer in a
        // drain_events loop would never get another message).
        transport_->connect(deadline);
        current_ = index;
        declared_.clear();
        return;
    }
    drop_transport();
    auto transport = factories_[index]->create(urls_[index], options_[index]);
    if (link_handler_) transport->on_link_event(link_handler_);
    transport->register_with_event_loop(*hub_);
    transport->connect(deadline);
    transport_ = std::move(transport);
    transport_index_ = index;
    current_ = index;
    // A new link may be to a broker that lost non-durable entities.
    declared_.clear();
}

void Connection::connect_or_fail_over(Clock::time_point deadline) {
    if (connected()) return;
    try {
        connect_once(current_, deadline);
    } catch (const ConnectionError&) {
        // The next attempt goes to the next URL of the list.
        current_ = (current_ + 1) % urls_.size();
        throw;
    }
}

void Connection::ensure_connection(const RetryPolicy& policy) {
    run_with_retries(policy,
                     [this](Clock::time_point deadline) { connect_or_fail_over(deadline); });
}

void Connection::ensure(const std::function<void()>& operation, const RetryPolicy& policy) {
    // One retry budget covers reconnecting and running the operation again.
    run_with_retries(
        policy,
        [&](Clock::time_point deadline) {
            connect_or_fail_over(deadline);
            operation();
        },
        [this] {
            // A transport that reconnects in place keeps its consumers.
            if (!transport_ || !transport_->reconnects_in_place()) drop_transport();
        });
}

void Connection::drop_transport() noexcept {
    default_channel_.reset();
    if (transport_) {
        transport_->close();
        transport_.reset();
    }
}

void Connection::on_link_event(LinkEventHandler handler) {
    link_handler_ = std::move(handler);
    if (transport_) transport_->on_link_event(link_handler_);
}

void Connection::close() {
    drop_transport();
}

Transport& Connection::connected_transport() {
    connect();
    return *transport_;
}

Transport& Connection::transport() {
    return connected_transport();
}

std::shared_ptr<Channel> Connection::channel() {
    return connected_transport().create_channel();
}

Channel& Connection::default_channel() {
    // Reconnecting replaces the transport, and with it this channel
    // (drop_transport), unless the transport reconnects in place: then the
    // channel goes on too.
    Transport& transport = connected_transport();
    if (!default_channel_ || !default_channel_->is_open()) {
        default_channel_ = transport.create_channel();
    }
    return *default_channel_;
}

void Connection::drain_events(std::optional<std::chrono::nanoseconds> timeout) {
    // A transport reconnecting by itself is left to its timers, which run in
    // the Hub below; a connect attempt here would only throw meanwhile.
    Transport& transport =
        transport_ && transport_->reconnecting() ? *transport_ : connected_transport();
    const std::uint64_t before = transport.deliveries();
    // time_point::max() stands for "no deadline".
    const Clock::time_point deadline = timeout ? Clock::now() + *timeout : Clock::time_point::max();

    // Exceptions from consumer callbacks surface here, as in Kombu.
    std::exception_ptr failure;
    const bool private_hub = hub_ == private_hub_.get();
    if (private_hub) hub_->set_error_handler([&failure](std::exception_ptr e) { failure = e; });
    struct Restore {
        Hub* hub;
        bool active;
        ~Restore() {
            if (active) hub->set_error_handler(nullptr);
        }
    } restore{hub_, private_hub};

    // A delivery made in the timer or call_soon phase must not be followed
    // by a blocking poll: a no-op call_soon makes the poll return at once.
    Handle watch = hub_->on_tick([this, &transport, before] {
        if (transport.deliveries() != before) hub_->call_soon([] {});
    });
    struct CancelWatch {
        Handle& handle;
        ~CancelWatch() { handle.cancel(); }
    } cancel_watch{watch};

    int grace = 0;
    while (true) {
        Clock::duration wait{-1};
        if (timeout) wait = std::max(deadline - Clock::now(), Clock::duration::zero());
        hub_->run_once(wait);
        if (failure) std::rethrow_exception(failure);
        if (transport.deliveries() != before) return;
        if (timeout && Clock::now() >= deadline) {
            // Work that is ready without waiting (a wake-up queued by a
            // publish on this thread) still belongs to this call, even with
            // a zero timeout; the cap keeps a busy loop from holding on.
            if (hub_->has_pending_callbacks() && ++grace < 64) continue;
            throw TimeoutError(
                "drain_events: no message arrived within " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count()) +
                " ms");
        }
    }
}

void Connection::register_with_event_loop(Hub& hub) {
    hub_ = &hub;
    if (transport_) transport_->register_with_event_loop(hub);
}

Hub& Connection::hub() {
    return *hub_;
}

bool Connection::maybe_declare(const Exchange& exchange) {
    if (exchange.is_default()) return false;
    Channel& channel = default_channel();
    if (!declared_.insert(declaration_key(exchange)).second) return false;
    try {
        channel.exchange_declare(exchange);
    } catch (...) {
        declared_.erase(declaration_key(exchange));
        throw;
    }
    return true;
}

bool Connection::maybe_declare(const Queue& queue) {
    Channel& channel = default_channel();
    const std::string key = declaration_key(queue);
    if (declared_.count(key) != 0) return false;
    if (queue.exchange) maybe_declare(*queue.exchange);
    channel.queue_declare(queue);
    if (queue.exchange && !queue.exchange->is_default()) {
        channel.queue_bind(queue.name, queue.exchange->name, queue.routing_key);
    }
    for (const auto& binding : queue.options.bindings) {
        channel.queue_bind(queue.name, binding.exchange, binding.routing_key, binding.arguments);
    }
    declared_.insert(key);
    return true;
}

const Url& Connection::url() const {
    return urls_[current_];
}

std::string_view Connection::transport_name() const {
    return factories_[current_]->module;
}

const Capabilities& Connection::capabilities() const {
    return transport_ ? transport_->capabilities() : factories_[current_]->capabilities;
}

}  // namespace kelp
