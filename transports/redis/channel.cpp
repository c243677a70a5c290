#include "channel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "kelp/errors.hpp"
#include "kelp/virtual/matching.hpp"
#include "restorer.hpp"
#include "scripts.hpp"
#include "transport.hpp"

namespace kelp::redis {
namespace {

// At most this many messages per pop (with no prefetch limit), and about this
// many bytes (at least one message), so a batch stays small in memory.
constexpr std::size_t pop_batch = 100;
constexpr std::size_t pop_bytes = 4u << 20;
// One Hub callback hands out messages for at most this long before yielding
// to timers and other fds (the clock is read every 16 messages).
constexpr auto delivery_slice = std::chrono::milliseconds(2);

// The queue arguments Redis can honour.
constexpr std::string_view supported_arguments[] = {"x-max-priority", "x-dead-letter-exchange",
                                                    "x-dead-letter-routing-key"};

int clamp_priority(std::optional<std::uint8_t> priority) {
    return priority ? std::min<int>(*priority, 9) : 0;
}

void check_queue_arguments(const std::string& queue, const Table& arguments) {
    if (!arguments.is_object()) return;
    for (const auto& [name, value] : arguments.items()) {
        const bool supported =
            std::find(std::begin(supported_arguments), std::end(supported_arguments), name) !=
            std::end(supported_arguments);
        if (!supported) {
            throw ChannelError("redis: queue '" + queue + "' asks for '" + name +
                               "', which Redis lists cannot honour (no TTL, length limit or "
                               "expiry); remove it, or use amqp:// for it");
        }
        if (name == "x-max-priority" && !value.is_number_integer()) {
            throw ChannelError("redis: queue '" + queue + "': x-max-priority must be an integer");
        }
        if (name != "x-max-priority" && !value.is_string()) {
            throw ChannelError("redis: queue '" + queue + "': " + name + " must be a string");
        }
    }
}

std::string binding_member(const KeySchema& keys, FanoutMode mode, ExchangeType type,
                           const std::string& queue, const std::string& routing_key,
                           const Table& arguments) {
    switch (type) {
        case ExchangeType::topic:
            return keys.encode_binding(routing_key, kombu_topic_pattern(routing_key), queue);
        case ExchangeType::fanout:
            // Pub/sub fanout is Kombu's binding exactly; list fanout is marked
            // so publishers push to this queue's list.
            return keys.encode_binding(
                routing_key, mode == FanoutMode::lists ? fanout_list_mark : std::string_view(),
                queue);
        case ExchangeType::headers: {
            const Json canonical = arguments.is_object() ? arguments : Json::object();
            virt::validate_headers_arguments(canonical);
            return keys.encode_binding(routing_key, std::string(headers_mark) + canonical.dump(),
                                       queue);
        }
        case ExchangeType::direct:
            break;
    }
    return keys.encode_binding(routing_key, "", queue);
}

// "*" and friends in a key name must not act as SCAN patterns.
std::string glob_escape(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

RedisChannel::RedisChannel(RedisTransport& transport) : transport_(&transport) {
    // Unique for the process's life, unlike an address a later channel may reuse.
    static std::atomic<std::uint64_t> next_publisher{0};
    publisher_id_ = ++next_publisher;
}

RedisChannel::~RedisChannel() {
    try {
        close();
    } catch (...) {
        // Destructors do not throw; the records stay in Redis and the
        // visibility-timeout restore returns the messages.
    }
}

void RedisChannel::check_open() const {
    if (!open_) {
        throw ChannelError("redis channel is closed; open a new one with Connection::channel()");
    }
}

RedisTransport& RedisChannel::transport() const {
    return *transport_;
}

// --- declarations ------------------------------------------------------------------

void RedisChannel::exchange_declare(const Exchange& exchange, bool passive) {
    check_open();
    if (exchange.name.empty()) {
        throw ChannelError(
            "ACCESS_REFUSED - the default exchange \"\" cannot be declared; it always exists");
    }
    if (!passive && exchange.arguments.is_object() && !exchange.arguments.empty()) {
        throw ChannelError("redis: exchange '" + exchange.name + "' has arguments (" +
                           exchange.arguments.dump() +
                           "), which the Redis transport cannot honour; remove them");
    }
    const Json record{{"type", to_string(exchange.type)},
                      {"durable", exchange.durable},
                      {"auto_delete", exchange.auto_delete}};
    const std::string text = record.dump();
    const std::string binding_key = transport().keys().binding_key(exchange.name);
    const std::string_view keys[] = {transport().route().exchanges_key(), binding_key};
    const std::string_view arguments[] = {exchange.name, text, passive ? "1" : "0"};
    const Reply reply = transport().run_script(ScriptId::declare_exchange, keys, arguments);
    const ReplyView result = reply.view();
    const std::int64_t status = result[0].integer();
    if (status == 0) {
        throw NotFound("NOT_FOUND - no exchange '" + exchange.name +
                       "' (kelp records exchanges in " + transport().route().exchanges_key() +
                       "; one Kombu declared is found while it has bindings)");
    }
    if (status < 0) {
        throw ChannelError("PRECONDITION_FAILED - exchange '" + exchange.name +
                           "' is declared as " + std::string(result[1].text()) + ", not " + text +
                           "; declare it as it is, or delete it first");
    }
    if (passive) {
        const std::string_view on_file = result[1].text();
        std::optional<ExchangeType> type;
        if (!on_file.empty()) {
            const Json parsed = Json::parse(on_file, nullptr, false);
            if (parsed.is_object() && parsed.value("type", Json()).is_string()) {
                type = parse_exchange_type(parsed["type"].get<std::string>());
            }
        }
        if (type) transport().remember_exchange(exchange.name, type);
    } else {
        transport().remember_exchange(exchange.name, exchange.type);
    }
}

void RedisChannel::exchange_delete(const std::string& name, bool if_unused) {
    check_open();
    if (name.empty() || name.starts_with("amq.")) {
        throw ChannelError("ACCESS_REFUSED - exchange '" + name + "' cannot be deleted");
    }
    const std::string binding_key = transport().keys().binding_key(name);
    const std::string_view keys[] = {transport().route().exchanges_key(), binding_key};
    const std::string_view arguments[] = {name, if_unused ? "1" : "0"};
    const Reply reply = transport().run_script(ScriptId::delete_exchange, keys, arguments);
    if (reply.view().integer() < 0) {
        throw ChannelError("PRECONDITION_FAILED - exchange '" + name +
                           "' still has bindings (if_unused)");
    }
    transport().remember_exchange(name, std::nullopt);
}

QueueDeclareOk RedisChannel::queue_declare(const Queue& queue, bool passive) {
    check_open();
    const std::string name = queue.name.empty() ? "amq.gen-" + new_delivery_tag() : queue.name;
    Table arguments = queue.declare_arguments();
    if (!arguments.is_object()) arguments = Table::object();
    if (!passive) check_queue_arguments(name, arguments);
    const Json record{{"durable", queue.options.durable},
                      {"exclusive", queue.options.exclusive},
                      {"auto_delete", queue.options.auto_delete},
                      {"arguments", arguments}};
    const std::string text = record.dump();
    std::vector<std::string> lists = transport().level_keys().queue_keys_in_pop_order(name);
    std::vector<std::string_view> keys{transport().route().queues_key()};
    keys.insert(keys.end(), lists.begin(), lists.end());
    const std::string_view script_args[] = {name, text, passive ? "1" : "0"};
    const Reply reply = transport().run_script(ScriptId::declare_queue, keys, script_args);
    const ReplyView result = reply.view();
    const std::int64_t status = result[0].integer();
    if (status == 0) {
        throw NotFound("NOT_FOUND - no queue '" + name +
                       "' (on Redis a queue exists once kelp declared it, or while it holds "
                       "messages)");
    }
    if (status < 0) {
        throw ChannelError("PRECONDITION_FAILED - queue '" + name + "' is declared as " +
                           std::string(result[2].text()) + ", not " + text +
                           "; declare it as it is, or delete it first");
    }
    transport().remember_queue(name, std::string(result[2].text()));
    if (!passive) transport().note_declared(name, queue.options);
    return {name, static_cast<std::uint64_t>(result[1].integer()),
            transport().local_consumers(name)};
}

void RedisChannel::queue_bind(const std::string& queue, const std::string& exchange,
                              const std::string& routing_key, const Table& arguments) {
    check_open();
    if (exchange.empty()) {
        throw ChannelError(
            "ACCESS_REFUSED - queues cannot be bound to the default exchange: every queue is "
            "reached through it by its own name");
    }
    const auto type = transport().exchange_type(exchange);
    if (!type) {
        throw NotFound("NOT_FOUND - no exchange '" + exchange +
                       "' known to kelp; declare it (with its type) before binding: Redis does "
                       "not store exchange types");
    }
    const std::string member = binding_member(transport().keys(), transport().fanout_mode(), *type,
                                              queue, routing_key, arguments);
    const Reply reply =
        transport().command().call(args({"SADD", transport().keys().binding_key(exchange), member}),
                                   transport().call_deadline());
    if (reply.view().is_error()) {
        throw ChannelError("redis: binding queue '" + queue +
                           "' failed: " + reply.view().describe());
    }
    if (*type == ExchangeType::fanout) {
        transport().bound_to_fanout(queue, exchange, routing_key, true);
    }
}

void RedisChannel::queue_unbind(const std::string& queue, const std::string& exchange,
                                const std::string& routing_key, const Table& arguments) {
    check_open();
    if (exchange.empty()) {
        throw ChannelError("ACCESS_REFUSED - queues cannot be unbound from the default exchange");
    }
    const auto type = transport().exchange_type(exchange);
    if (!type) throw NotFound("NOT_FOUND - no exchange '" + exchange + "' known to kelp");
    const std::string member = binding_member(transport().keys(), transport().fanout_mode(), *type,
                                              queue, routing_key, arguments);
    const Reply reply =
        transport().command().call(args({"SREM", transport().keys().binding_key(exchange), member}),
                                   transport().call_deadline());
    if (reply.view().is_error()) {
        throw ChannelError("redis: unbinding queue '" + queue +
                           "' failed: " + reply.view().describe());
    }
    if (*type == ExchangeType::fanout) {
        transport().bound_to_fanout(queue, exchange, routing_key, false);
    }
}

std::uint64_t RedisChannel::queue_purge(const std::string& queue) {
    check_open();
    const std::vector<std::string> lists = transport().level_keys().queue_keys_in_pop_order(queue);
    const std::vector<std::string_view> keys(lists.begin(), lists.end());
    const Reply reply = transport().run_script(ScriptId::purge, keys, {});
    return static_cast<std::uint64_t>(reply.view().integer());
}

std::uint64_t RedisChannel::queue_delete(const std::string& queue, bool if_unused, bool if_empty) {
    check_open();
    if (if_unused) {
        if (const std::uint32_t consumers = transport().local_consumers(queue)) {
            throw ChannelError("PRECONDITION_FAILED - queue '" + queue + "' has " +
                               std::to_string(consumers) +
                               " consumer(s) on this connection (if_unused; consumers in other "
                               "processes are not visible on Redis)");
        }
    }
    std::vector<std::string> lists = transport().level_keys().queue_keys_in_pop_order(queue);
    std::vector<std::string_view> keys{transport().route().queues_key()};
    keys.insert(keys.end(), lists.begin(), lists.end());
    const std::string_view arguments[] = {queue, if_empty ? "1" : "0"};
    const Reply reply = transport().run_script(ScriptId::delete_queue, keys, arguments);
    const std::int64_t count = reply.view().integer();
    if (count < 0) {
        throw ChannelError("PRECONDITION_FAILED - queue '" + queue + "' is not empty (if_empty)");
    }
    // Its bindings go too, as on an AMQP broker; Kombu leaves them behind.
    RespClient& client = transport().command();
    const std::string pattern = glob_escape(transport().route().binding_prefix()) + "*";
    std::string cursor = "0";
    std::vector<std::string> binding_sets;
    do {
        const Reply page = client.call(args({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}),
                                       transport().call_deadline());
        const ReplyView view = page.view();
        if (view.is_error()) throw ChannelError("redis: SCAN failed: " + view.describe());
        cursor = std::string(view[0].text());
        for (std::size_t i = 0; i < view[1].size(); ++i)
            binding_sets.emplace_back(view[1][i].text());
    } while (cursor != "0");
    constexpr std::size_t per_call = 500;
    for (std::size_t first = 0; first < binding_sets.size(); first += per_call) {
        const auto end = std::min(binding_sets.size(), first + per_call);
        const std::vector<std::string_view> sets(binding_sets.begin() + first,
                                                 binding_sets.begin() + end);
        const std::string_view unbind_args[] = {transport().keys().sep(), queue};
        transport().run_script(ScriptId::unbind_queue, sets, unbind_args);
    }
    transport().queue_deleted(queue);
    return static_cast<std::uint64_t>(count);
}

// --- publishing ----------------------------------------------------------------------

void RedisChannel::basic_publish(std::shared_ptr<const Envelope> envelope,
                                 const std::string& exchange, const std::string& routing_key,
                                 PublishFlags flags) {
    check_open();
    if (envelope->properties.expiration) {
        throw ChannelError(
            "redis: messages cannot expire on Redis (capability message_ttl is false; Kombu "
            "stores 'expiration' but ignores it); publish without expiration, or use amqp://");
    }
    RedisTransport& owner = transport();
    const int priority = clamp_priority(envelope->properties.priority);
    DeliveryFields fields{.exchange = exchange,
                          .routing_key = routing_key,
                          .delivery_tag = new_delivery_tag(),
                          .priority = priority};
    if (exchange.empty() && priority == 0 && !flags.mandatory) {
        publish_to_queue(routing_key,
                         encode_message(*envelope, fields, owner.settings().body_encoding));
        return;
    }
    const auto known_type = owner.known_exchange_type(exchange);
    const bool maybe_headers = !known_type || *known_type == ExchangeType::headers;
    const bool maybe_fanout =
        !exchange.empty() && (!known_type || *known_type == ExchangeType::fanout);

    auto call = std::make_shared<ScriptCall>();
    call->id = ScriptId::publish;
    call->keys = {};
    const auto& context = owner.route().args();
    call->args.assign(context.begin(), context.end());
    call->args.push_back(exchange);
    call->args.push_back(routing_key);
    call->args.push_back(known_type ? std::string(to_string(*known_type)) : std::string());
    call->args.push_back(std::to_string(priority));
    call->args.push_back(encode_message(*envelope, fields, owner.settings().body_encoding));
    call->args.push_back(maybe_headers && envelope->headers.is_object() &&
                                 !envelope->headers.empty()
                             ? envelope->headers.dump()
                             : std::string());
    call->args.push_back(maybe_fanout ? owner.keys().fanout_channel(exchange, routing_key)
                                      : std::string());

    std::weak_ptr<Shared> shared = shared_;
    RedisTransport* transport_ptr = &owner;
    owner.send_script(call, [shared, transport_ptr, envelope, exchange, routing_key,
                             mandatory = flags.mandatory](Reply reply) {
        // A broken link is reported by the transport itself.
        if (!reply.ok()) return;
        const ReplyView result = reply.view();
        if (result.is_error()) {
            transport_ptr->report(std::make_exception_ptr(
                ChannelError("redis: publish to exchange '" + exchange + "' with routing key '" +
                             routing_key + "' failed: " + result.describe())));
            return;
        }
        if (result[0].integer() + result[1].integer() > 0) return;
        auto state = shared.lock();
        if (!state) return;
        // Known only now, from the reply: settled on the Hub, not thrown
        // from the publish.
        if (!mandatory) {
            state->unroutable.count_dropped();
            return;
        }
        if (state->on_return) {
            transport_ptr->defer(
                [callback = state->on_return, returned = virt::Unroutable::returned(
                                                  *envelope, exchange, routing_key)]() mutable {
                    callback(returned);
                });
            return;
        }
        transport_ptr->report(
            std::make_exception_ptr(state->unroutable.no_route_error(exchange, routing_key)));
    });
    owner.note_publish();
}

void RedisChannel::begin_batch() {
    check_open();
    ++batches_;
    transport().hold_writes();
}

void RedisChannel::end_batch() noexcept {
    // A channel closed inside the batch gave its hold back already.
    if (batches_ == 0) return;
    --batches_;
    if (transport_ != nullptr) transport_->release_writes();
}

void RedisChannel::publish_to_queue(const std::string& queue, std::string payload) {
    RedisTransport& owner = transport();
    const std::string list_key = owner.keys().queue_key(queue, 0);
    const std::string_view keys[] = {list_key, owner.route().queues_key()};
    std::vector<std::string_view> arguments{queue};
    const auto context = owner.route().queue_publish_args();
    arguments.insert(arguments.end(), context.begin(), context.end());
    std::string key_count;
    const std::vector<std::string_view> head =
        eval_args(ScriptId::publish_to_queue, keys, arguments, /*by_body=*/false, key_count);
    std::shared_ptr<PublishBatch> batch;
    auto start_batch = [&] {
        batch = std::make_shared<PublishBatch>(PublishBatch{queue, {}});
        std::weak_ptr<Shared> shared = shared_;
        RedisTransport* transport_ptr = &owner;
        return RespClient::ReplyCallback([shared, transport_ptr, batch](Reply reply) {
            settle_publishes(shared, transport_ptr, batch, reply, /*retry_noscript=*/true);
        });
    };
    // While the connection is backed up, the publishes that follow join
    // this one's command: one script call pushes them all, in order.
    if (owner.command().send_appending(publisher_id_, head, payload, start_batch)) {
        open_batch_ = batch;
    } else {
        // Joined the open command, which only this channel's last call starts.
        batch = open_batch_.lock();
    }
    batch->payloads.push_back(std::move(payload));
    owner.note_publish();
}

void RedisChannel::settle_publishes(const std::weak_ptr<Shared>& shared, RedisTransport* transport,
                                    const std::shared_ptr<PublishBatch>& batch, const Reply& reply,
                                    bool retry_noscript) {
    // A broken link is reported by the transport itself.
    if (!reply.ok()) return;
    const ReplyView result = reply.view();
    if (retry_noscript && is_noscript(result)) {
        // Redis lost its scripts (SCRIPT FLUSH): again, by body if need be.
        auto call = std::make_shared<ScriptCall>();
        call->id = ScriptId::publish_to_queue;
        call->keys = {transport->keys().queue_key(batch->queue, 0),
                      transport->route().queues_key()};
        call->args.push_back(batch->queue);
        const auto context = transport->route().queue_publish_args();
        call->args.insert(call->args.end(), context.begin(), context.end());
        call->args.insert(call->args.end(), batch->payloads.begin(), batch->payloads.end());
        try {
            transport->send_script(call, [shared, transport, batch](Reply again) {
                settle_publishes(shared, transport, batch, again, /*retry_noscript=*/false);
            });
        } catch (const Error&) {
            transport->report(std::current_exception());
        }
        return;
    }
    if (result.is_error()) {
        transport->report(std::make_exception_ptr(
            ChannelError("redis: publish to queue '" + batch->queue +
                         "' (default exchange) failed: " + result.describe())));
        return;
    }
    if (result[0].integer() > 0) return;
    if (auto state = shared.lock()) state->unroutable.count_dropped(batch->payloads.size());
}

void RedisChannel::on_return(ReturnCallback callback) {
    shared_->on_return = std::move(callback);
}

std::optional<std::uint64_t> RedisChannel::unroutable_dropped() const {
    // Publishes are pipelined: their outcome is known once their replies are in.
    if (open_ && transport_->connected()) {
        transport_->command().drain(transport_->call_deadline());
    }
    return shared_->unroutable.dropped();
}

// --- consuming -------------------------------------------------------------------------

std::string RedisChannel::basic_consume(const std::string& queue, bool no_ack,
                                        DeliveryCallback callback,
                                        const std::string& consumer_tag) {
    check_open();
    const std::string tag =
        consumer_tag.empty() ? "ctag-" + std::to_string(++consumer_counter_) : consumer_tag;
    for (const auto& consumer : consumers_) {
        if (!consumer->cancelled && consumer->tag == tag) {
            throw ChannelError("NOT_ALLOWED - consumer tag '" + tag + "' is already in use");
        }
    }
    consumers_.push_back(
        std::make_unique<Consumer>(Consumer{tag, queue, no_ack, std::move(callback)}));
    rebuild_pop_keys();
    try {
        transport().consumers_changed();
    } catch (...) {
        consumers_.back()->cancelled = true;
        remove_cancelled();
        rebuild_pop_keys();
        throw;
    }
    wake();
    return tag;
}

void RedisChannel::basic_cancel(const std::string& consumer_tag) {
    bool found = false;
    for (auto& consumer : consumers_) {
        if (consumer->cancelled || consumer->tag != consumer_tag) continue;
        consumer->cancelled = true;
        found = true;
    }
    if (!found) return;
    if (!delivering_) remove_cancelled();
    rebuild_pop_keys();
    // Popped messages of a queue nobody here consumes now go back in front.
    std::vector<Delivery> orphans;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (consumers_of(it->queue) == 0) {
            orphans.push_back(std::move(*it));
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    if (open_ && !orphans.empty()) {
        std::vector<const Delivery*> list;
        for (const auto& delivery : orphans)
            list.push_back(&delivery);
        give_back(list, std::vector<bool>(list.size(), false), /*head=*/true, /*wait=*/true);
    }
    if (open_) transport().consumers_changed();
}

void RedisChannel::cancel_queue(const std::string& queue) {
    std::vector<std::string> tags;
    for (const auto& consumer : consumers_) {
        if (!consumer->cancelled && consumer->queue == queue) tags.push_back(consumer->tag);
    }
    for (auto it = pending_.begin(); it != pending_.end();) {
        it = it->queue == queue ? pending_.erase(it) : std::next(it);
    }
    for (const auto& tag : tags)
        basic_cancel(tag);
}

std::uint32_t RedisChannel::consumers_of(const std::string& queue) const {
    std::uint32_t count = 0;
    for (const auto& consumer : consumers_) {
        if (!consumer->cancelled && consumer->queue == queue) ++count;
    }
    return count;
}

void RedisChannel::remove_cancelled() {
    std::erase_if(consumers_, [](const auto& consumer) { return consumer->cancelled; });
}

void RedisChannel::rebuild_pop_keys() {
    std::vector<std::string> queues;
    std::vector<bool> record;
    for (const auto& consumer : consumers_) {
        if (consumer->cancelled) continue;
        auto it = std::find(queues.begin(), queues.end(), consumer->queue);
        const bool needs_record = transport().settings().ack_emulation && !consumer->no_ack;
        if (it == queues.end()) {
            queues.push_back(consumer->queue);
            record.push_back(needs_record);
        } else {
            const auto index = static_cast<std::size_t>(it - queues.begin());
            record[index] = record[index] || needs_record;
        }
    }
    if (transport().settings().queue_order_strategy == QueueOrderStrategy::sorted) {
        // Sorted together with their flags.
        std::vector<std::pair<std::string, bool>> pairs;
        for (std::size_t i = 0; i < queues.size(); ++i)
            pairs.emplace_back(queues[i], record[i]);
        std::sort(pairs.begin(), pairs.end());
        for (std::size_t i = 0; i < pairs.size(); ++i) {
            queues[i] = pairs[i].first;
            record[i] = pairs[i].second;
        }
    }
    queues_ = queues;
    // Queues consumed through pub/sub (fanout_mode=pubsub) are not popped.
    pop_queues_.clear();
    record_.clear();
    for (std::size_t i = 0; i < queues.size(); ++i) {
        if (transport().consumed_by_subscription(queues[i])) continue;
        pop_queues_.push_back(std::move(queues[i]));
        record_.push_back(record[i]);
    }
}

std::size_t RedisChannel::window() const {
    return prefetch_ == 0 ? pop_batch : prefetch_;
}

std::size_t RedisChannel::room() const {
    // A pop in flight has its messages counted already.
    const std::size_t in_flight = unacked_.size() + pending_.size() + pop_requested_;
    return in_flight >= window() ? 0 : window() - in_flight;
}

std::size_t RedisChannel::pop_depth() const {
    // Two pops in flight keep Redis busy through the round trip between one
    // pop's reply and the next request (Redis idled 18% of a consume+ack
    // run with one). Over several queues one at a time: each pop starts the
    // round robin where the last one ended.
    return pop_queues_.size() == 1 ? 2 : 1;
}

bool RedisChannel::can_pop() const {
    if (!open_ || pop_queues_.empty() || room() == 0 || !transport_->connected()) return false;
    if (pops_in_flight_ == 0) return more_;
    // Ahead of the one in flight only while the lists were still full.
    return pops_in_flight_ < pop_depth() && last_pop_full_;
}

bool RedisChannel::should_pop() const {
    // Ahead of need once half the window is free, so Redis pops the next
    // batch while this one is being handed out; at once when nothing waits.
    return can_pop() && (pending_.empty() || room() >= (window() + 1) / 2);
}

void RedisChannel::wake() {
    more_ = true;
    if (open_ && !pop_queues_.empty() && room() > 0) schedule();
}

void RedisChannel::deliver_broadcast(const std::string& queue, std::string_view payload) {
    if (!open_ || consumers_of(queue) == 0) return;
    Delivery delivery;
    delivery.queue = queue;  // no list and no record: pub/sub keeps nothing
    delivery.payload = std::string(payload);
    try {
        DecodedMessage decoded = decode_message(delivery.payload);
        if (decoded.envelope.properties.priority == 0) decoded.envelope.properties.priority.reset();
        delivery.fields = std::move(decoded.delivery);
        delivery.envelope = std::make_shared<const Envelope>(std::move(decoded.envelope));
    } catch (const DecodeError& error) {
        handle_undecodable(delivery, error.what());
        return;
    }
    pending_.push_back(std::move(delivery));
    schedule();
}

void RedisChannel::schedule() {
    Hub* hub = transport().hub();
    if (hub == nullptr || pump_handle_.active()) return;
    pump_handle_ = hub->call_soon([this] { pump(); });
}

void RedisChannel::rehome() {
    if (!pump_handle_.active()) return;
    pump_handle_.cancel();
    schedule();
}

void RedisChannel::pump() {
    if (!open_) return;
    if (should_pop()) {
        // Nothing to hand out meanwhile: pop and wait, so what is waiting
        // now is delivered in this turn (drain_events with no timeout left
        // relies on it). With messages to hand out, pop ahead instead.
        try {
            if (pending_.empty() && pops_in_flight_ == 0) {
                pop_now();
            } else {
                start_pop();
            }
        } catch (const ConnectionError&) {
            // The link dropped under the pop: a link event, not an error for
            // the application's loop (report() tells them apart); consuming
            // resumes once the transport has reconnected.
            transport().report(std::current_exception());
        }
    }
    deliver_pending();
}

void RedisChannel::pop_now() {
    const std::size_t want = std::min(room(), pop_batch);
    const bool round_robin =
        transport().settings().queue_order_strategy == QueueOrderStrategy::round_robin;
    std::size_t rotation = round_robin ? rotation_ : 0;
    Popped popped = pop(pop_queues_, record_, want, rotation);
    if (round_robin) rotation_ = rotation;
    more_ = popped.taken == want;
    last_pop_full_ = more_;
    for (auto& delivery : popped.deliveries)
        pending_.push_back(std::move(delivery));
}

void RedisChannel::start_pop() {
    const std::size_t want = std::min(room(), pop_batch);
    const bool round_robin =
        transport().settings().queue_order_strategy == QueueOrderStrategy::round_robin;
    auto request = std::make_shared<PopRequest>(
        pop_request(pop_queues_, record_, want, round_robin ? rotation_ : 0));
    ++pops_in_flight_;
    pop_requested_ += want;
    // A wake while the pop is in flight sets it again: the pop may have run
    // before the push that woke us.
    more_ = false;
    std::weak_ptr<char> alive = life_;
    try {
        // Aliased: the call lives as long as the request.
        transport().send_script(std::shared_ptr<const ScriptCall>(request, &request->call),
                                [this, alive, request](Reply reply) {
                                    // Gone: the records stay in Redis and the visibility-timeout
                                    // restore returns those messages (close waits for this reply,
                                    // so only a failed close gets here).
                                    if (alive.expired()) return;
                                    on_popped(reply, *request);
                                });
    } catch (...) {
        --pops_in_flight_;
        pop_requested_ -= want;
        throw;
    }
}

void RedisChannel::on_popped(const Reply& reply, const PopRequest& request) {
    --pops_in_flight_;
    pop_requested_ -= request.count;
    // A broken link is reported by the transport itself; what the script
    // popped stays recorded, and the restore returns it.
    if (!reply.ok()) return;
    if (reply.view().is_error()) {
        // The transport's poll wakes us again later.
        transport().report(std::make_exception_ptr(
            ChannelError("redis: the 'pop' script failed: " + reply.view().describe())));
        return;
    }
    std::size_t rotation = 0;
    Popped popped = read_popped(reply.view(), request, rotation);
    if (transport().settings().queue_order_strategy == QueueOrderStrategy::round_robin) {
        rotation_ = rotation;
    }
    last_pop_full_ = popped.taken == request.count;
    more_ = more_ || last_pop_full_;
    if (!open_) {
        // Closed while the pop was in flight and the close could not wait:
        // back in front, as close returns what it holds.
        std::vector<const Delivery*> list;
        for (const auto& delivery : popped.deliveries)
            list.push_back(&delivery);
        if (transport().connected()) {
            give_back(list, std::vector<bool>(list.size(), false), /*head=*/true, /*wait=*/false);
        }
        return;
    }
    for (auto& delivery : popped.deliveries)
        pending_.push_back(std::move(delivery));
    schedule();
}

void RedisChannel::settle_pop() {
    if (pops_in_flight_ > 0 && transport().connected()) {
        transport().command().drain(transport().call_deadline());
    }
}

RedisChannel::PopRequest RedisChannel::pop_request(const std::vector<std::string>& queues,
                                                   const std::vector<bool>& record,
                                                   std::size_t count, std::size_t rotation) const {
    RedisTransport& owner = transport();
    PopRequest request;
    request.queues = queues;
    request.count = count;
    request.lists = owner.level_keys().queue_keys_in_pop_order(queues);
    ScriptCall& call = request.call;
    call.id = ScriptId::pop;
    call.keys = {owner.keys().unacked_key(), owner.keys().unacked_index_key()};
    call.keys.insert(call.keys.end(), request.lists.begin(), request.lists.end());
    std::string flags;
    for (const bool flag : record)
        flags += flag ? '1' : '0';
    call.args = {std::to_string(queues.size()),
                 std::to_string(request.lists.size() / queues.size()),
                 std::to_string(rotation % queues.size()),
                 std::to_string(count),
                 std::to_string(pop_bytes),
                 index_score_text(std::chrono::system_clock::now()),
                 owner.next_field_prefix(),
                 std::move(flags)};
    return request;
}

RedisChannel::Popped RedisChannel::read_popped(const ReplyView& result, const PopRequest& request,
                                               std::size_t& rotation) {
    Popped popped;
    rotation = static_cast<std::size_t>(result[0].integer());
    for (std::size_t i = 1; i + 3 <= result.size(); i += 3) {
        ++popped.taken;
        const auto index = static_cast<std::size_t>(result[i + 1].integer()) - 1;
        Delivery delivery;
        delivery.field = std::string(result[i].text());
        delivery.key = request.lists.at(index);
        delivery.queue = request.queues.at(index % request.queues.size());
        delivery.payload = std::string(result[i + 2].text());
        try {
            DecodedMessage decoded = decode_message(delivery.payload);
            // Kombu writes a priority into every envelope, 0 when none was
            // given: 0 reads back as "not set", as it was published.
            if (decoded.envelope.properties.priority == 0) {
                decoded.envelope.properties.priority.reset();
            }
            delivery.fields = std::move(decoded.delivery);
            delivery.envelope = std::make_shared<const Envelope>(std::move(decoded.envelope));
        } catch (const DecodeError& error) {
            handle_undecodable(delivery, error.what());
            continue;
        }
        popped.deliveries.push_back(std::move(delivery));
    }
    return popped;
}

RedisChannel::Popped RedisChannel::pop(const std::vector<std::string>& queues,
                                       const std::vector<bool>& record, std::size_t count,
                                       std::size_t& rotation) {
    if (queues.empty() || count == 0) return {};
    const PopRequest request = pop_request(queues, record, count, rotation);
    const Reply reply = transport().run_script(request.call);
    return read_popped(reply.view(), request, rotation);
}

void RedisChannel::handle_undecodable(const Delivery& delivery, const std::string& why) {
    // Never redelivered for ever, never a crash (DESIGN §6): moved to
    // deadletter_queue when one is set, else dropped, and said so.
    const auto& dead_letter_queue = transport().settings().deadletter_queue;
    std::fprintf(stderr, "kelp redis: a message from %s cannot be decoded (%s); %s\n",
                 delivery.key.c_str(), why.c_str(),
                 dead_letter_queue
                     ? ("moved to deadletter_queue '" + *dead_letter_queue + "'").c_str()
                     : "dropped (set the deadletter_queue option to keep such messages)");
    if (dead_letter_queue) {
        Delivery moved = delivery;
        moved.key = transport().keys().queue_key(*dead_letter_queue, 0);
        give_back({&moved}, {false}, /*head=*/false, /*wait=*/false);
    } else if (!delivery.field.empty()) {
        forget_fields({delivery.field});
    }
}

RedisChannel::Consumer* RedisChannel::consumer_for(const std::string& queue) {
    std::size_t& next = next_consumer_[queue];
    const std::size_t count = consumers_.size();
    for (std::size_t step = 0; step < count; ++step) {
        const std::size_t index = (next + step) % count;
        Consumer& consumer = *consumers_[index];
        if (!consumer.cancelled && consumer.queue == queue) {
            next = index + 1;
            return &consumer;
        }
    }
    return nullptr;
}

Message RedisChannel::make_message(Delivery delivery, const std::string& consumer_tag,
                                   bool no_ack) {
    DeliveryInfo info{delivery.fields.exchange,
                      delivery.fields.routing_key,
                      consumer_tag,
                      delivery.queue,
                      next_tag_++,
                      delivery.fields.redelivered};
    std::shared_ptr<const Envelope> envelope = delivery.envelope;
    if (no_ack) {
        if (!delivery.field.empty()) forget_fields({delivery.field});
    } else {
        unacked_.emplace(info.delivery_tag, std::move(delivery));
    }
    return Message(std::move(envelope), std::move(info), weak_from_this(), no_ack);
}

void RedisChannel::deliver_pending() {
    const auto slice_end = std::chrono::steady_clock::now() + delivery_slice;
    std::size_t delivered = 0;
    delivering_ = true;
    struct EndDelivery {
        RedisChannel& channel;
        ~EndDelivery() {
            // Also when a callback threw: what waits is delivered on the next
            // turn of the Hub, without a new message having to wake us.
            channel.delivering_ = false;
            channel.flush_forgotten();
            channel.remove_cancelled();
            if (channel.open_ && (!channel.pending_.empty() || channel.can_pop())) {
                channel.schedule();
            }
        }
    } end_delivery{*this};
    while (open_ && !pending_.empty()) {
        Consumer* consumer = consumer_for(pending_.front().queue);
        if (consumer == nullptr) {
            // Its consumer went away while it waited: back in front.
            Delivery orphan = std::move(pending_.front());
            pending_.pop_front();
            give_back({&orphan}, {false}, /*head=*/true, /*wait=*/false);
            continue;
        }
        Delivery delivery = std::move(pending_.front());
        pending_.pop_front();
        Message message = make_message(std::move(delivery), consumer->tag, consumer->no_ack);
        transport().count_delivery();
        consumer->callback(message);
        if (!pending_.empty() && should_pop()) {
            // The acks so far go along: Redis works through both while the
            // rest of this batch is handed out.
            flush_forgotten();
            start_pop();
        }
        if (++delivered % 16 == 0 && std::chrono::steady_clock::now() >= slice_end) break;
    }
}

std::optional<Message> RedisChannel::basic_get(const std::string& queue, bool no_ack) {
    check_open();
    const bool record = transport().settings().ack_emulation && !no_ack;
    while (true) {
        std::size_t rotation = 0;
        Popped popped = pop({queue}, {record}, 1, rotation);
        if (!popped.deliveries.empty()) {
            return make_message(std::move(popped.deliveries.front()), "", no_ack);
        }
        // Nothing there, or only a message that could not be decoded (set
        // aside): try the next one.
        if (popped.taken == 0) return std::nullopt;
    }
}

// --- settling --------------------------------------------------------------------------

void RedisChannel::forget_fields(std::vector<std::string> fields) {
    if (delivering_) {
        // Settled inside a consumer callback: removed together with the
        // others of this turn once its callbacks are done (flush_forgotten).
        for (auto& field : fields) {
            if (!field.empty()) forgotten_.push_back(std::move(field));
        }
        return;
    }
    send_forget(fields);
}

void RedisChannel::flush_forgotten() noexcept {
    if (forgotten_.empty()) return;
    const std::vector<std::string> fields = std::move(forgotten_);
    forgotten_.clear();
    // Without a link the records stay in Redis and the visibility-timeout
    // restore returns those messages (the broken link is reported by the
    // transport itself).
    if (!transport().connected()) return;
    try {
        send_forget(fields);
    } catch (const Error&) {
        transport().report(std::current_exception());
    }
}

void RedisChannel::send_forget(const std::vector<std::string>& fields) {
    // Fields per command, so one command never grows without bound.
    constexpr std::size_t per_command = 1000;
    RespClient& client = transport().command();
    RespClient::Cork cork(client);
    RedisTransport* owner = &transport();
    auto on_reply = [owner](Reply reply) {
        if (reply.ok() && reply.view().is_error()) {
            owner->report(std::make_exception_ptr(ChannelError(
                "redis: removing an unacked record failed: " + reply.view().describe())));
        }
    };
    std::vector<std::string_view> hdel;
    std::vector<std::string_view> zrem;
    for (std::size_t first = 0; first < fields.size(); first += per_command) {
        hdel.assign({"HDEL", transport().keys().unacked_key()});
        zrem.assign({"ZREM", transport().keys().unacked_index_key()});
        const std::size_t end = std::min(fields.size(), first + per_command);
        for (std::size_t i = first; i < end; ++i) {
            if (fields[i].empty()) continue;
            hdel.push_back(fields[i]);
            zrem.push_back(fields[i]);
        }
        if (hdel.size() == 2) continue;
        // The record first: a crash between the two leaves an index member
        // without a record, which the next restore just drops.
        client.send(hdel, on_reply);
        client.send(zrem, on_reply);
    }
}

void RedisChannel::basic_ack(std::uint64_t delivery_tag, bool multiple) {
    check_open();
    std::vector<std::string> fields;
    if (multiple) {
        if (unacked_.count(delivery_tag) == 0) {
            throw ChannelError("PRECONDITION_FAILED - unknown delivery tag " +
                               std::to_string(delivery_tag));
        }
        const auto end = unacked_.upper_bound(delivery_tag);
        for (auto it = unacked_.begin(); it != end; ++it)
            fields.push_back(it->second.field);
        unacked_.erase(unacked_.begin(), end);
    } else {
        auto it = unacked_.find(delivery_tag);
        if (it == unacked_.end()) {
            throw ChannelError("PRECONDITION_FAILED - unknown delivery tag " +
                               std::to_string(delivery_tag));
        }
        fields.push_back(std::move(it->second.field));
        unacked_.erase(it);
    }
    forget_fields(std::move(fields));
    if (can_pop()) schedule();
}

void RedisChannel::basic_reject(std::uint64_t delivery_tag, bool requeue) {
    check_open();
    auto it = unacked_.find(delivery_tag);
    if (it == unacked_.end()) {
        throw ChannelError("PRECONDITION_FAILED - unknown delivery tag " +
                           std::to_string(delivery_tag));
    }
    Delivery delivery = std::move(it->second);
    unacked_.erase(it);
    if (requeue && delivery.key.empty()) {
        // A pub/sub delivery has no list to go back to: it is handed out again.
        delivery.fields.redelivered = true;
        pending_.push_front(std::move(delivery));
        schedule();
        return;
    }
    if (requeue) {
        // Back where it was, first in line: AMQP's requeue (Kombu puts it last).
        give_back({&delivery}, {true}, /*head=*/true, /*wait=*/false);
        wake();
        return;
    }
    const QueueInfo info = transport().queue_info(delivery.queue);
    if (info.dead_letter_exchange) {
        dead_letter(delivery, *info.dead_letter_exchange,
                    info.dead_letter_routing_key.value_or(delivery.fields.routing_key));
    } else {
        forget_fields({delivery.field});
    }
    if (can_pop()) schedule();
}

void RedisChannel::dead_letter(const Delivery& delivery, const std::string& exchange,
                               const std::string& routing_key) {
    RedisTransport& owner = transport();
    // A new message on the dead-letter exchange: its own tag, not redelivered.
    DeliveryFields fields = delivery.fields;
    fields.exchange = exchange;
    fields.routing_key = routing_key;
    fields.delivery_tag = new_delivery_tag();
    fields.redelivered = false;
    auto call = std::make_shared<ScriptCall>();
    call->id = ScriptId::dead_letter;
    call->keys = {owner.keys().unacked_key(), owner.keys().unacked_index_key()};
    const auto& context = owner.route().args();
    call->args.assign(context.begin(), context.end());
    call->args.push_back(delivery.field);
    call->args.push_back(
        encode_message(*delivery.envelope, fields, owner.settings().body_encoding));
    call->args.push_back(exchange);
    call->args.push_back(routing_key);
    call->args.push_back(std::to_string(fields.priority));
    const Table& headers = delivery.envelope->headers;
    call->args.push_back(headers.is_object() && !headers.empty() ? headers.dump() : std::string());
    RedisTransport* transport_ptr = &owner;
    owner.send_script(call, [transport_ptr, exchange](Reply reply) {
        if (reply.ok() && reply.view().is_error()) {
            transport_ptr->report(std::make_exception_ptr(
                ChannelError("redis: dead-lettering to exchange '" + exchange +
                             "' failed: " + reply.view().describe())));
        }
    });
}

std::string RedisChannel::returned_payload(const Delivery& delivery, bool delivered) const {
    if (!delivered || !delivery.envelope) return delivery.payload;
    DeliveryFields fields = delivery.fields;
    fields.redelivered = true;
    try {
        return encode_message(*delivery.envelope, fields, transport().settings().body_encoding);
    } catch (const Error&) {
        // What was popped can always go back as it was.
        return delivery.payload;
    }
}

void RedisChannel::give_back(const std::vector<const Delivery*>& deliveries,
                             const std::vector<bool>& delivered, bool head, bool wait) {
    RedisTransport& owner = transport();
    auto call = std::make_shared<ScriptCall>();
    call->id = ScriptId::give_back;
    call->keys = {owner.keys().unacked_key(), owner.keys().unacked_index_key()};
    call->args.reserve(1 + 3 * deliveries.size());
    call->args.push_back(head ? "head" : "tail");
    for (std::size_t i = 0; i < deliveries.size(); ++i) {
        // Pub/sub deliveries have no list: they cannot go back (Kombu's
        // pushes them to a list nobody reads).
        if (deliveries[i]->key.empty()) continue;
        call->args.push_back(deliveries[i]->field);
        call->args.push_back(deliveries[i]->key);
        call->args.push_back(returned_payload(*deliveries[i], delivered[i]));
    }
    if (call->args.size() == 1) return;
    if (wait) {
        owner.run_script(*call);
        return;
    }
    RedisTransport* transport_ptr = &owner;
    owner.send_script(call, [transport_ptr](Reply reply) {
        if (reply.ok() && reply.view().is_error()) {
            transport_ptr->report(std::make_exception_ptr(ChannelError(
                "redis: returning messages to their queue failed: " + reply.view().describe() +
                "; they stay recorded as unacked and the restore returns them")));
        }
    });
}

void RedisChannel::give_back_all(bool wait) {
    // What a pop in flight takes is held here too: waited for, not stranded.
    settle_pop();
    // Delivered ones first (they came out first), then the waiting ones.
    std::vector<const Delivery*> list;
    std::vector<bool> delivered;
    for (const auto& [tag, delivery] : unacked_) {
        list.push_back(&delivery);
        delivered.push_back(true);
    }
    for (const auto& delivery : pending_) {
        list.push_back(&delivery);
        delivered.push_back(false);
    }
    give_back(list, delivered, /*head=*/true, wait);
    unacked_.clear();
    pending_.clear();
}

void RedisChannel::basic_qos(std::uint32_t prefetch_count, bool) {
    check_open();
    prefetch_ = prefetch_count;
    if (!queues_.empty()) wake();
}

void RedisChannel::basic_recover(bool) {
    check_open();
    // Both forms requeue: there is no per-consumer redelivery on Redis.
    give_back_all(/*wait=*/true);
    wake();
}

void RedisChannel::collect_fields(std::vector<std::string>& out) const {
    for (const auto& [tag, delivery] : unacked_) {
        if (!delivery.field.empty()) out.push_back(delivery.field);
    }
    for (const auto& delivery : pending_) {
        if (!delivery.field.empty()) out.push_back(delivery.field);
    }
}

// --- closing ---------------------------------------------------------------------------

void RedisChannel::close() {
    if (!open_) return;
    const bool consumed = !queues_.empty();
    shut_down();
    if (consumed) transport().consumers_changed();
}

void RedisChannel::close_for_transport() noexcept {
    if (!open_) return;
    try {
        shut_down();
    } catch (...) {
        // The transport is closing; shut_down already left the records.
    }
}

void RedisChannel::shut_down() {
    // Acks made in the callback that closes us go first.
    flush_forgotten();
    open_ = false;
    // A batch still open gives its hold back now: the transport may be gone
    // by the time the batch ends.
    for (; batches_ > 0; --batches_)
        transport_->release_writes();
    pump_handle_.cancel();
    for (auto& consumer : consumers_)
        consumer->cancelled = true;
    if (!delivering_) consumers_.clear();
    queues_.clear();
    pop_queues_.clear();
    record_.clear();
    if (unacked_.empty() && pending_.empty() && pops_in_flight_ == 0) return;
    if (!transport().connected()) {
        // Without a link the records stay in Redis: the visibility-timeout
        // restore returns these messages.
        unacked_.clear();
        pending_.clear();
        return;
    }
    try {
        give_back_all(/*wait=*/true);
    } catch (const Error& error) {
        std::fprintf(stderr,
                     "kelp redis: returning unacked messages on close failed (%s); they stay "
                     "recorded in %s and the visibility-timeout restore returns them\n",
                     error.what(), transport().keys().unacked_key().c_str());
        unacked_.clear();
        pending_.clear();
    }
}

}  // namespace kelp::redis
