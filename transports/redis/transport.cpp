#include "transport.hpp"

#include <algorithm>
#include <cstdio>

#include "channel.hpp"
#include "kelp/errors.hpp"
#include "restorer.hpp"

namespace kelp::redis {
namespace {

using namespace std::chrono_literals;

// How often consumers look at their lists when no notice came: a safety net
// under client-side tracking, and the only way when the server refuses it.
constexpr auto safety_poll = 1s;
constexpr auto fallback_poll = 50ms;
// How long close() waits for the replies of commands still in flight
// (publishes, acks), when no socket_timeout is set.
constexpr auto close_grace = 10s;
// How long connecting the pub/sub link may take, without socket_connect_timeout.
constexpr auto subscriber_connect_timeout = 5s;

std::string what_of(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

// The unique part of this transport's record fields: two random UUIDs.
// That makes every field longer than 64 bytes, so Redis keeps the unacked
// index as a skip list and the unacked hash as a hash table (with its
// default *-max-listpack-value 64). In a flat listpack each record added or
// removed scans the records before it: with a short queue name, consume+ack
// ran at 52,000 msg/s instead of 106,000, ZADD being most of Redis's time.
std::string record_nonce() {
    return new_delivery_tag() + "-" + new_delivery_tag();
}

RedisSettings with_every_level(RedisSettings settings) {
    settings.priority_steps = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    return settings;
}

QueueInfo parse_queue_info(std::string_view record) {
    QueueInfo info;
    const Json parsed = Json::parse(record, nullptr, false);
    if (!parsed.is_object()) return info;
    const Json arguments = parsed.value("arguments", Json::object());
    if (!arguments.is_object()) return info;
    if (auto it = arguments.find("x-max-priority");
        it != arguments.end() && it->is_number_integer()) {
        info.max_priority = it->get<int>();
    }
    if (auto it = arguments.find("x-dead-letter-exchange");
        it != arguments.end() && it->is_string()) {
        info.dead_letter_exchange = it->get<std::string>();
    }
    if (auto it = arguments.find("x-dead-letter-routing-key");
        it != arguments.end() && it->is_string()) {
        info.dead_letter_routing_key = it->get<std::string>();
    }
    return info;
}

}  // namespace

RedisTransport::RedisTransport(RedisSettings settings, FanoutMode fanout_mode)
    : settings_(std::move(settings)),
      keys_(settings_),
      level_keys_(with_every_level(settings_)),
      route_(settings_, keys_),
      fanout_mode_(fanout_mode),
      restorer_(std::make_unique<Restorer>(*this)),
      transport_id_(record_nonce()) {}

RedisTransport::~RedisTransport() {
    close();
    if (hub_ != nullptr) hub_closing_.cancel();
}

const Capabilities& RedisTransport::static_capabilities() {
    static const Capabilities capabilities{
        .exchange_direct = true,
        .exchange_topic = true,
        .exchange_fanout = true,
        .exchange_headers = true,
        .priorities = true,
        .message_ttl = false,  // lists have no per-message or per-queue TTL
        .max_length = false,
        .dead_letter = true,  // on reject; there is no TTL to expire into it
        .per_message_requeue = true,
        .heartbeats = false,
        // Publishes are pipelined; a failure comes back later, to the Hub.
        .publisher_confirms = false,
        .network = true,
    };
    return capabilities;
}

// --- connecting ----------------------------------------------------------------------

Endpoint RedisTransport::endpoint() const {
    return Endpoint{.host = settings_.host,
                    .port = settings_.port,
                    .socket_path = settings_.socket_path,
                    .tls = settings_.tls,
                    .tls_settings = settings_.ssl};
}

Handshake RedisTransport::handshake(std::string_view role) const {
    return Handshake{.username = settings_.username,
                     .password = settings_.password,
                     .db = settings_.db,
                     .client_name = std::string(role)};
}

void RedisTransport::connect(Clock::time_point deadline) {
    if (connected()) {
        if (resume_pending_) resume_consumers();
        return;
    }
    if (settings_.socket_connect_timeout) {
        deadline = std::min(deadline, Clock::now() + *settings_.socket_connect_timeout);
    }
    subscriber_.reset();
    write_cork_.reset();  // before the client it holds goes
    command_.reset();
    tracked_prefixes_.clear();
    auto client = RespClient::connect(endpoint(), handshake("kelp"), deadline);
    load_scripts(*client, deadline);
    client->set_broken_handler([this](std::exception_ptr error) { on_broken(error); });
    client->set_send_timeout(settings_.socket_timeout);
    command_ = std::move(client);
    command_->attach(hub_);
    connected_ = true;
    closing_ = false;
    start_timers();
    if (has_connected_) resume_pending_ = true;
    has_connected_ = true;
    if (resume_pending_) resume_consumers();
    if (link_lost_) {
        link_lost_ = false;
        subscription_lost_ = false;
        emit_link_event({.kind = LinkEvent::Kind::reconnected,
                         .detail = endpoint().describe(),
                         .attempt = reconnect_attempt_});
        reconnect_attempt_ = 0;
    }
}

void RedisTransport::resume_consumers() {
    // Connected again (by the timers or through Connection::connect): no
    // timer attempt is needed any more.
    reconnect_timer_.cancel();
    if (!consumed_queues_.empty()) consumers_changed();
    resume_pending_ = false;
    wake_consumers();
}

bool RedisTransport::connected() const {
    return connected_ && command_ && !command_->broken();
}

void RedisTransport::close() noexcept {
    closing_ = true;
    reconnect_timer_.cancel();
    for (const auto& channel : live_channels())
        channel->close_for_transport();
    channels_.clear();
    // Held publishes go out with the rest before the link does.
    write_cork_.reset();
    writes_held_ = 0;
    stop_timers();
    if (connected()) {
        try {
            for (const auto& queue : exclusive_queues_) {
                auto temporary = std::make_shared<RedisChannel>(*this);
                temporary->queue_delete(queue, false, false);
            }
            // Publishes and acks still in flight reach Redis before the link goes.
            command_->drain(settings_.socket_timeout ? call_deadline()
                                                     : Clock::now() + close_grace);
        } catch (const Error& error) {
            std::fprintf(stderr, "kelp redis: closing the connection: %s\n", error.what());
        }
    }
    exclusive_queues_.clear();
    if (subscriber_) subscriber_->close();
    if (command_) command_->close();
    subscriber_.reset();
    write_cork_.reset();  // before the client it holds goes
    command_.reset();
    connected_ = false;
}

void RedisTransport::register_with_event_loop(Hub& hub) {
    if (hub_ == &hub) return;
    stop_timers();
    const bool reconnecting = reconnect_timer_.active();
    reconnect_timer_.cancel();
    if (hub_ != nullptr) hub_closing_.cancel();
    hub_ = &hub;
    hub_closing_ = hub.on_close([this] { forget_hub(); });
    if (reconnecting) schedule_reconnect(1);
    if (command_) command_->attach(hub_);
    if (subscriber_) subscriber_->attach(hub_);
    for (const auto& channel : live_channels())
        channel->rehome();
    start_timers();
}

void RedisTransport::forget_hub() {
    stop_timers();
    reconnect_timer_.cancel();
    if (command_) command_->attach(nullptr);
    if (subscriber_) subscriber_->attach(nullptr);
    for (const auto& channel : live_channels())
        channel->forget_hub();
    // Cancelled handles still name the Hub: emptied, so nothing touches it
    // once it is gone.
    for (Handle* handle : {&poll_timer_, &restore_timer_, &health_timer_, &reconnect_timer_,
                           &resubscribe_timer_, &hub_closing_}) {
        *handle = Handle();
    }
    hub_ = nullptr;
}

std::shared_ptr<Channel> RedisTransport::create_channel() {
    command();  // throws when not connected
    auto channel = std::make_shared<RedisChannel>(*this);
    std::erase_if(channels_, [](const auto& weak) { return weak.expired(); });
    channels_.push_back(channel);
    return channel;
}

std::vector<std::shared_ptr<RedisChannel>> RedisTransport::live_channels() {
    std::vector<std::shared_ptr<RedisChannel>> live;
    for (const auto& weak : channels_) {
        if (auto channel = weak.lock()) live.push_back(std::move(channel));
    }
    return live;
}

// --- commands --------------------------------------------------------------------------

RespClient& RedisTransport::command() {
    if (!command_ || command_->broken()) {
        throw ConnectionError("redis: not connected to " + endpoint().describe() +
                              "; connect again (Connection::ensure_connection)");
    }
    return *command_;
}

Clock::time_point RedisTransport::call_deadline() const {
    return settings_.socket_timeout ? Clock::now() + *settings_.socket_timeout
                                    : Clock::time_point::max();
}

std::string RedisTransport::next_field_prefix() {
    return "kelp/" + transport_id_ + ":" + std::to_string(++pops_) + ".";
}

Reply RedisTransport::run_script(ScriptId id, std::span<const std::string_view> keys,
                                 std::span<const std::string_view> arguments) {
    RespClient& client = command();
    std::string key_count;
    Reply reply = client.call(eval_args(id, keys, arguments, false, key_count), call_deadline());
    if (is_noscript(reply.view())) {
        // The server lost its script cache (SCRIPT FLUSH): send the body.
        reply = client.call(eval_args(id, keys, arguments, true, key_count), call_deadline());
    }
    if (reply.view().is_error()) {
        throw ChannelError("redis: the '" + std::string(script(id).name) +
                           "' script failed: " + std::string(reply.view().text()));
    }
    return reply;
}

Reply RedisTransport::run_script(const ScriptCall& call) {
    const std::vector<std::string_view> keys(call.keys.begin(), call.keys.end());
    const std::vector<std::string_view> arguments(call.args.begin(), call.args.end());
    return run_script(call.id, keys, arguments);
}

void RedisTransport::send_script(std::shared_ptr<const ScriptCall> call,
                                 RespClient::ReplyCallback callback) {
    RespClient& client = command();
    const std::vector<std::string_view> keys(call->keys.begin(), call->keys.end());
    const std::vector<std::string_view> arguments(call->args.begin(), call->args.end());
    std::string key_count;
    auto on_reply = [this, call, callback = std::move(callback)](Reply reply) mutable {
        if (reply.ok() && is_noscript(reply.view())) {
            // Sent again with the body, after commands queued meanwhile: the
            // one case where pipelined order is not kept (SCRIPT FLUSH).
            try {
                const std::vector<std::string_view> again_keys(call->keys.begin(),
                                                               call->keys.end());
                const std::vector<std::string_view> again_args(call->args.begin(),
                                                               call->args.end());
                std::string again_count;
                command().send(eval_args(call->id, again_keys, again_args, true, again_count),
                               std::move(callback));
            } catch (const Error&) {
                callback(Reply(std::current_exception()));
            }
            return;
        }
        callback(std::move(reply));
    };
    client.send(eval_args(call->id, keys, arguments, false, key_count), std::move(on_reply));
}

// --- consumption -----------------------------------------------------------------------

void RedisTransport::consumers_changed() {
    std::set<std::string> queues;
    for (const auto& channel : live_channels()) {
        for (const auto& queue : channel->consumed_queues())
            queues.insert(queue);
    }
    // auto_delete queues go when their last consumer here is cancelled.
    std::vector<std::string> finished;
    for (const auto& queue : consumed_queues_) {
        if (queues.count(queue) == 0 && auto_delete_queues_.count(queue) != 0) {
            finished.push_back(queue);
        }
    }
    consumed_queues_ = queues;
    for (const auto& queue : finished) {
        auto_delete_queues_.erase(queue);
        auto temporary = std::make_shared<RedisChannel>(*this);
        temporary->queue_delete(queue, false, false);
    }
    if (queues.empty()) {
        if (subscriber_ && !subscriber_->broken()) {
            subscriber_->set_patterns({}, Clock::now() + settings_.socket_connect_timeout.value_or(
                                                             subscriber_connect_timeout));
        }
        if (!tracked_prefixes_.empty() && connected()) {
            command_->send(args({"CLIENT", "TRACKING", "off"}));
        }
        tracked_prefixes_.clear();
        poll_timer_.cancel();
        return;
    }
    ensure_subscriber();
    update_tracking();
    // Subscribed before consume() returns: a publish right after is seen.
    subscriber_->set_patterns(
        fanout_patterns(),
        Clock::now() + settings_.socket_connect_timeout.value_or(subscriber_connect_timeout));
    start_timers();
}

void RedisTransport::bound_to_fanout(const std::string& queue, const std::string& exchange,
                                     const std::string& routing_key, bool bound) {
    if (bound) {
        fanout_bindings_[queue].emplace(exchange, routing_key);
        return;
    }
    auto it = fanout_bindings_.find(queue);
    if (it == fanout_bindings_.end()) return;
    it->second.erase({exchange, routing_key});
    if (it->second.empty()) fanout_bindings_.erase(it);
}

bool RedisTransport::consumed_by_subscription(const std::string& queue) const {
    return fanout_mode_ == FanoutMode::pubsub && fanout_bindings_.count(queue) != 0;
}

std::set<std::string> RedisTransport::fanout_patterns() const {
    std::set<std::string> patterns;
    for (const auto& queue : consumed_queues_) {
        auto it = fanout_bindings_.find(queue);
        if (it == fanout_bindings_.end() || fanout_mode_ != FanoutMode::pubsub) continue;
        for (const auto& [exchange, routing_key] : it->second)
            patterns.insert(keys_.fanout_pattern(exchange, routing_key));
    }
    return patterns;
}

void RedisTransport::on_broadcast(std::string_view pattern, std::string_view payload) {
    // Every consumed queue that subscribed with this pattern gets a copy, on
    // one of the channels consuming it (as a queue's messages go to one
    // consumer).
    for (const auto& [queue, bindings] : fanout_bindings_) {
        if (consumed_queues_.count(queue) == 0) continue;
        const bool subscribed = std::any_of(bindings.begin(), bindings.end(), [&](const auto& b) {
            return keys_.fanout_pattern(b.first, b.second) == pattern;
        });
        if (!subscribed) continue;
        for (const auto& channel : live_channels()) {
            if (channel->consumers_of(queue) != 0) {
                channel->deliver_broadcast(queue, payload);
                break;
            }
        }
    }
}

void RedisTransport::ensure_subscriber() {
    if (subscriber_ && !subscriber_->broken()) return;
    subscriber_.reset();
    health_timer_.cancel();
    tracked_prefixes_.clear();  // the redirect target is a new connection
    const auto deadline =
        Clock::now() + settings_.socket_connect_timeout.value_or(subscriber_connect_timeout);
    subscriber_ = std::make_unique<Subscriber>(
        endpoint(), handshake("kelp-sub"), deadline,
        [this](const std::vector<std::string_view>& keys) { on_keys_changed(keys); },
        [this](std::string_view pattern, std::string_view, std::string_view payload) {
            on_broadcast(pattern, payload);
        });
    subscriber_->set_broken_handler(
        [this](std::exception_ptr error) { on_subscriber_broken(error); });
    subscriber_->attach(hub_);
}

void RedisTransport::update_tracking() {
    std::vector<std::string> keys;
    for (const auto& queue : consumed_queues_)
        keys.push_back(keys_.global_keyprefix() + queue);
    std::vector<std::string> prefixes = tracking_prefixes(std::move(keys));
    if (prefixes == tracked_prefixes_) return;
    const std::string redirect = std::to_string(subscriber_->client_id());
    std::vector<std::string_view> tracking_on{"CLIENT", "TRACKING", "on",    "REDIRECT",
                                              redirect, "BCAST",    "NOLOOP"};
    for (const auto& prefix : prefixes) {
        tracking_on.push_back("PREFIX");
        tracking_on.push_back(prefix);
    }
    Pipeline batch(command());
    // Off first: prefixes can only be added while on, never removed.
    batch.add(args({"CLIENT", "TRACKING", "off"}));
    batch.add(tracking_on);
    batch.run(call_deadline());
    const ReplyView result = batch.reply(1).view();
    if (result.is_error()) {
        if (!tracking_failed_) {
            std::fprintf(stderr,
                         "kelp redis: CLIENT TRACKING failed on %s (%s); consumers poll their "
                         "lists every %lld ms instead (Redis 6 or newer wakes them at once)\n",
                         command_->peer().c_str(), result.describe().c_str(),
                         static_cast<long long>(fallback_poll.count()));
        }
        set_tracking_failed(true);
    } else {
        set_tracking_failed(false);
    }
    tracked_prefixes_ = std::move(prefixes);
    // A push that came between "off" and "on" told no one: look now.
    wake_consumers();
}

void RedisTransport::set_tracking_failed(bool failed) {
    if (tracking_failed_ == failed) return;
    tracking_failed_ = failed;
    // The poll interval depends on it.
    poll_timer_.cancel();
    start_timers();
}

void RedisTransport::on_keys_changed(const std::vector<std::string_view>& keys) {
    if (keys.empty()) {
        wake_consumers();
        return;
    }
    std::set<std::string, std::less<>> queues;
    for (std::string_view key : keys) {
        if (auto parsed = level_keys_.parse_queue_key(key)) queues.insert(parsed->queue);
    }
    for (const auto& channel : live_channels()) {
        for (const auto& queue : channel->consumed_queues()) {
            if (queues.count(queue) != 0) {
                channel->wake();
                break;
            }
        }
    }
}

void RedisTransport::wake_consumers() {
    for (const auto& channel : live_channels()) {
        if (!channel->consumed_queues().empty()) channel->wake();
    }
}

void RedisTransport::note_publish() {
    if (!consumed_queues_.empty()) wake_consumers();
}

std::uint32_t RedisTransport::local_consumers(const std::string& queue) const {
    std::uint32_t count = 0;
    for (const auto& weak : channels_) {
        if (auto channel = weak.lock()) count += channel->consumers_of(queue);
    }
    return count;
}

void RedisTransport::queue_deleted(const std::string& queue) {
    queue_infos_.erase(queue);
    fanout_bindings_.erase(queue);
    exclusive_queues_.erase(queue);
    auto_delete_queues_.erase(queue);
    for (const auto& channel : live_channels())
        channel->cancel_queue(queue);
}

void RedisTransport::note_declared(const std::string& queue, const QueueOptions& options) {
    if (options.exclusive) exclusive_queues_.insert(queue);
    if (options.auto_delete) auto_delete_queues_.insert(queue);
}

// --- timers and failures --------------------------------------------------------------

void RedisTransport::start_timers() {
    if (hub_ == nullptr || !connected()) return;
    if (settings_.ack_emulation && !restore_timer_.active()) {
        restore_timer_ =
            hub_->call_repeatedly(settings_.restore_interval, [this] { restorer_->run(); });
    }
    if (!consumed_queues_.empty() && !poll_timer_.active()) {
        poll_timer_ = hub_->call_repeatedly(
            tracking_failed_ ? Clock::duration(fallback_poll) : Clock::duration(safety_poll),
            [this] { wake_consumers(); });
    }
    if (subscriber_ && settings_.health_check_interval.count() > 0 && !health_timer_.active()) {
        health_timer_ = hub_->call_repeatedly(settings_.health_check_interval, [this] {
            if (subscriber_ && !subscriber_->broken()) subscriber_->ping();
        });
    }
}

void RedisTransport::stop_timers() {
    poll_timer_.cancel();
    restore_timer_.cancel();
    health_timer_.cancel();
    resubscribe_timer_.cancel();
}

void RedisTransport::on_broken(std::exception_ptr error) {
    connected_ = false;
    stop_timers();
    if (closing_) return;
    // An event, not an error: the transport reconnects by itself and the
    // consumers resume; publishes the link took down report themselves.
    link_lost_ = true;
    emit_link_event({.kind = LinkEvent::Kind::lost, .detail = what_of(error)});
    schedule_reconnect(1);
}

void RedisTransport::schedule_reconnect(int attempt) {
    const RetryPolicy& policy = settings_.reconnect;
    if (hub_ == nullptr) return;
    reconnect_attempt_ = attempt;
    if (policy.max_retries >= 0 && attempt > policy.max_retries) {
        emit_link_event({.kind = LinkEvent::Kind::gave_up,
                         .detail = endpoint().describe(),
                         .attempt = attempt - 1});
        raise(std::make_exception_ptr(ConnectionError(
            "redis: gave up reconnecting to " + endpoint().describe() + " after " +
            std::to_string(attempt - 1) +
            " attempts (max_retries); connect again with Connection::ensure_connection")));
        return;
    }
    // The broken client is dropped from a timer, never inside its own callback.
    reconnect_timer_ =
        hub_->call_later(policy.interval(attempt), [this, attempt] { try_reconnect(attempt); });
}

void RedisTransport::try_reconnect(int attempt) {
    try {
        const auto timeout = settings_.socket_connect_timeout.value_or(subscriber_connect_timeout);
        // Resumes the consumers too (a new subscription and tracking).
        connect(Clock::now() + timeout);
    } catch (const ConnectionError&) {
        schedule_reconnect(attempt + 1);
    }
}

void RedisTransport::on_subscriber_broken(std::exception_ptr error) {
    if (closing_) return;
    // Consumers poll until the subscription is back.
    set_tracking_failed(true);
    if (connected()) {
        // The command link is up: only the subscription link dropped (when
        // both go, the command link's event says so).
        subscription_lost_ = true;
        emit_link_event({.kind = LinkEvent::Kind::lost,
                         .detail = "the subscription link: " + what_of(error) +
                                   " (consumers poll their queues until it is back)"});
    }
    schedule_resubscribe();
}

void RedisTransport::schedule_resubscribe() {
    if (hub_ == nullptr || resubscribe_timer_.active()) return;
    resubscribe_timer_ = hub_->call_later(safety_poll, [this] {
        if (!connected() || consumed_queues_.empty()) return;
        try {
            ensure_subscriber();
            update_tracking();
            if (subscription_lost_) {
                subscription_lost_ = false;
                emit_link_event({.kind = LinkEvent::Kind::reconnected,
                                 .detail = "the subscription link to " + endpoint().describe()});
            }
        } catch (const ConnectionError&) {
            schedule_resubscribe();
        }
    });
}

void RedisTransport::hold_writes() {
    if (writes_held_++ == 0 && command_) write_cork_.emplace(*command_);
}

void RedisTransport::release_writes() noexcept {
    if (writes_held_ == 0) return;
    if (--writes_held_ == 0) write_cork_.reset();
}

void RedisTransport::report(std::exception_ptr error) {
    // A client fails its outstanding replies before it calls its broken
    // handler: a broken command client is a dropped link already.
    const bool link_down = !connected_ || (command_ && command_->broken());
    if (link_down && !closing_) {
        try {
            std::rethrow_exception(error);
        } catch (const ConnectionError&) {
            return;
        } catch (...) {
        }
    }
    raise(error);
}

void RedisTransport::raise(std::exception_ptr error) {
    if (hub_ != nullptr) {
        hub_->call_soon([error] { std::rethrow_exception(error); });
        return;
    }
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kelp redis: %s\n", e.what());
    }
}

void RedisTransport::defer(Hub::Callback callback) {
    if (hub_ != nullptr) hub_->call_soon(std::move(callback));
}

// --- what kelp knows of exchanges and queues -------------------------------------------

std::optional<ExchangeType> RedisTransport::known_exchange_type(const std::string& exchange) const {
    auto it = exchange_types_.find(exchange);
    return it == exchange_types_.end() ? std::nullopt : it->second;
}

std::optional<ExchangeType> RedisTransport::exchange_type(const std::string& exchange) {
    if (auto known = known_exchange_type(exchange)) return known;
    const Reply reply =
        command().call(args({"HGET", route_.exchanges_key(), exchange}), call_deadline());
    const ReplyView record = reply.view();
    if (record.is_nil() || record.is_error()) return std::nullopt;
    const Json parsed = Json::parse(record.text(), nullptr, false);
    if (!parsed.is_object() || !parsed.value("type", Json()).is_string()) return std::nullopt;
    const ExchangeType type = parse_exchange_type(parsed["type"].get<std::string>());
    exchange_types_[exchange] = type;
    return type;
}

void RedisTransport::remember_exchange(const std::string& exchange,
                                       std::optional<ExchangeType> type) {
    if (type) {
        exchange_types_[exchange] = type;
    } else {
        exchange_types_.erase(exchange);
    }
}

QueueInfo RedisTransport::queue_info(const std::string& queue) {
    if (auto it = queue_infos_.find(queue); it != queue_infos_.end()) return it->second;
    const Reply reply = command().call(args({"HGET", route_.queues_key(), queue}), call_deadline());
    const ReplyView record = reply.view();
    // Not cached when missing: another process may declare it later.
    if (record.is_nil() || record.is_error()) return {};
    QueueInfo info = parse_queue_info(record.text());
    queue_infos_[queue] = info;
    return info;
}

void RedisTransport::remember_queue(const std::string& queue, const std::string& record) {
    if (!record.empty()) queue_infos_[queue] = parse_queue_info(record);
}

}  // namespace kelp::redis
