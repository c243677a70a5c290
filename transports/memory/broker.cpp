#include "broker.hpp"

#include <algorithm>
#include <random>

#include "kelp/errors.hpp"
#include "kelp/hub.hpp"

namespace kelp::memory {

// --- Waker -------------------------------------------------------------------

void Waker::set_hub(Hub* hub) {
    {
        std::lock_guard lock(mutex_);
        hub_ = hub;
    }
    // A wake-up queued on the previous Hub may never run: start afresh.
    pending_.store(false);
    notify();
}

void Waker::notify() {
    // A plain load first: while a wake-up is pending (the common case under
    // load) publishers only read the flag, so its cache line is not bounced
    // between the publishing and the consuming thread on every message.
    if (pending_.load(std::memory_order_relaxed)) return;
    if (pending_.exchange(true)) return;
    std::lock_guard lock(mutex_);
    if (hub_ == nullptr) {
        pending_.store(false);
        return;
    }
    // The lambda keeps the Waker alive; a disarmed Waker's fire() does nothing.
    hub_->call_soon_threadsafe([self = shared_from_this()] { self->fire(); });
}

void Waker::fire() {
    pending_.store(false);
    if (on_wake_) on_wake_();
}

void Waker::disarm() {
    std::lock_guard lock(mutex_);
    hub_ = nullptr;
    on_wake_ = nullptr;
}

// --- QueueState --------------------------------------------------------------

namespace {

template <class T>
std::optional<T> argument(const Table& args, const char* key) {
    if (!args.is_object()) return std::nullopt;
    auto it = args.find(key);
    if (it == args.end() || it->is_null()) return std::nullopt;
    try {
        return it->get<T>();
    } catch (const Json::exception&) {
        throw ChannelError(std::string("PRECONDITION_FAILED - invalid arg '") + key +
                           "': " + it->dump());
    }
}

}  // namespace

QueueState::QueueState(Queue definition_)
    : definition(std::move(definition_)), arguments(definition.declare_arguments()) {
    max_priority = argument<std::uint8_t>(arguments, "x-max-priority").value_or(0);
    if (auto ttl = argument<std::int64_t>(arguments, "x-message-ttl")) {
        message_ttl = std::chrono::milliseconds(*ttl);
    }
    max_length = argument<std::int64_t>(arguments, "x-max-length");
    max_length_bytes = argument<std::int64_t>(arguments, "x-max-length-bytes");
    dead_letter_exchange = argument<std::string>(arguments, "x-dead-letter-exchange");
    dead_letter_routing_key = argument<std::string>(arguments, "x-dead-letter-routing-key");
    levels.resize(static_cast<std::size_t>(max_priority) + 1);
}

// --- MemoryBroker --------------------------------------------------------------

// Spare nodes the broker keeps: enough for a deep pipeline of small
// messages, bounded so a burst does not pin its memory for good.
constexpr std::size_t max_free_nodes = 4096;

std::shared_ptr<MemoryBroker> MemoryBroker::named(const std::string& name) {
    static std::mutex mutex;
    static std::unordered_map<std::string, std::shared_ptr<MemoryBroker>> brokers;
    std::lock_guard lock(mutex);
    auto& broker = brokers[name];
    if (!broker) broker = std::make_shared<MemoryBroker>();
    return broker;
}

QueueState* MemoryBroker::find_queue(const std::string& name) {
    auto it = queues_.find(name);
    return it == queues_.end() ? nullptr : it->second.get();
}

void MemoryBroker::exchange_declare(const Exchange& exchange, bool passive) {
    std::lock_guard lock(mutex_);
    if (passive) {
        if (!exchange.is_default() && !exchanges_.exists(exchange.name)) {
            throw NotFound("NOT_FOUND - no exchange '" + exchange.name +
                           "' in this memory broker; declare it first");
        }
        return;
    }
    exchanges_.declare(exchange.name, exchange.type, exchange.durable, exchange.auto_delete,
                       exchange.arguments);
    topology_changed();
}

void MemoryBroker::exchange_delete(const std::string& name, bool if_unused) {
    std::lock_guard lock(mutex_);
    exchanges_.remove(name, if_unused);
    topology_changed();
}

QueueDeclareOk MemoryBroker::queue_declare(const Queue& queue, bool passive) {
    std::lock_guard lock(mutex_);
    std::string name = queue.name;
    if (name.empty()) {
        if (passive) throw NotFound("NOT_FOUND - a passive declare needs a queue name");
        // Server-named queue, as AMQP brokers do.
        static std::mt19937_64 rng{std::random_device{}()};
        do {
            name = "amq.gen-" + std::to_string(rng());
        } while (queues_.count(name) != 0);
    }
    QueueState* state = find_queue(name);
    if (passive) {
        if (state == nullptr) {
            throw NotFound("NOT_FOUND - no queue '" + name +
                           "' in this memory broker; declare it first");
        }
        return {name, state->size, state->consumers};
    }
    if (state != nullptr) {
        Queue wanted = queue;
        wanted.name = name;
        const Table args = wanted.declare_arguments();
        if (args != state->arguments ||
            wanted.options.durable != state->definition.options.durable) {
            throw ChannelError("PRECONDITION_FAILED - inequivalent arguments for queue '" + name +
                               "': declared with " + state->arguments.dump() + ", now " +
                               args.dump() + "; delete the queue or declare it the same way");
        }
        return {name, state->size, state->consumers};
    }
    Queue definition = queue;
    definition.name = name;
    auto created = std::make_shared<QueueState>(std::move(definition));
    const QueueDeclareOk ok{name, 0, 0};
    queues_.emplace(name, std::move(created));
    topology_changed();
    return ok;
}

void MemoryBroker::queue_bind(const std::string& queue, const std::string& exchange,
                              const std::string& routing_key, const Table& arguments) {
    std::lock_guard lock(mutex_);
    if (find_queue(queue) == nullptr) {
        throw NotFound("NOT_FOUND - no queue '" + queue + "' to bind; declare it first");
    }
    if (exchange.empty()) {
        throw ChannelError(
            "ACCESS_REFUSED - every queue is bound to the default exchange by "
            "its name; bind to a named exchange");
    }
    exchanges_.bind(exchange, queue, routing_key, arguments);
    topology_changed();
}

void MemoryBroker::queue_unbind(const std::string& queue, const std::string& exchange,
                                const std::string& routing_key, const Table& arguments) {
    std::lock_guard lock(mutex_);
    exchanges_.unbind(exchange, queue, routing_key, arguments);
    topology_changed();
}

std::uint64_t MemoryBroker::queue_purge(const std::string& queue) {
    std::lock_guard lock(mutex_);
    QueueState* state = find_queue(queue);
    if (state == nullptr) throw NotFound("NOT_FOUND - no queue '" + queue + "' to purge");
    const std::uint64_t count = state->size;
    for (auto& level : state->levels) {
        for (Node& node : level)
            recycle_locked(std::move(node));
        level.clear();
    }
    state->size = 0;
    state->bytes = 0;
    return count;
}

std::uint64_t MemoryBroker::queue_delete(const std::string& queue, bool if_unused, bool if_empty) {
    std::lock_guard lock(mutex_);
    auto it = queues_.find(queue);
    if (it == queues_.end()) return 0;  // AMQP: deleting a missing queue is fine
    QueueState& state = *it->second;
    if (if_unused && state.consumers > 0) {
        throw ChannelError("PRECONDITION_FAILED - queue '" + queue + "' in use by " +
                           std::to_string(state.consumers) + " consumer(s)");
    }
    if (if_empty && state.size > 0) {
        throw ChannelError("PRECONDITION_FAILED - queue '" + queue + "' not empty (" +
                           std::to_string(state.size) + " messages)");
    }
    const std::uint64_t count = state.size;
    state.deleted = true;
    for (auto& level : state.levels) {
        for (Node& node : level)
            recycle_locked(std::move(node));
        level.clear();
    }
    state.size = 0;
    state.bytes = 0;
    exchanges_.remove_queue(queue);
    // Consumers notice the deletion on their next delivery pass.
    for (auto& listener : state.listeners)
        listener->notify();
    queues_.erase(it);
    topology_changed();
    return count;
}

void MemoryBroker::route_locked(const std::string& exchange, const std::string& routing_key,
                                const Table& headers, std::vector<QueueState*>& out) {
    out.clear();
    if (exchange.empty()) {
        if (QueueState* queue = find_queue(routing_key)) out.push_back(queue);
        return;
    }
    std::vector<std::string>& names = route_buffer_;
    names.clear();
    exchanges_.route(exchange, routing_key, headers, names);
    for (const auto& name : names) {
        if (QueueState* queue = find_queue(name)) out.push_back(queue);
    }
}

const std::vector<QueueState*>& MemoryBroker::route_cached(const std::string& exchange,
                                                           const std::string& routing_key,
                                                           const Table& headers,
                                                           RouteCache& route) {
    if (route.topology == topology_ && route.exchange == exchange &&
        route.routing_key == routing_key) {
        return route.targets;
    }
    // A headers exchange routes on each message's headers: nothing to keep.
    if (!exchange.empty() && exchanges_.type_of(exchange) == ExchangeType::headers) {
        route_locked(exchange, routing_key, headers, target_buffer_);
        return target_buffer_;
    }
    route.topology = 0;  // stays empty if routing throws (no such exchange)
    route_locked(exchange, routing_key, headers, route.targets);
    route.topology = topology_;
    route.exchange = exchange;
    route.routing_key = routing_key;
    return route.targets;
}

Node MemoryBroker::new_node_locked() {
    if (free_nodes_.empty()) return std::make_unique<QueuedMessage>();
    Node node = std::move(free_nodes_.back());
    free_nodes_.pop_back();
    return node;
}

void MemoryBroker::recycle_locked(Node node) {
    node->stored.envelope.reset();
    if (free_nodes_.size() < max_free_nodes) free_nodes_.push_back(std::move(node));
}

bool MemoryBroker::publish(std::shared_ptr<const Envelope>&& envelope, const std::string& exchange,
                           const std::string& routing_key, RouteCache& route) {
    std::lock_guard lock(mutex_);
    ++stats_.published;
    const std::vector<QueueState*>& targets =
        route_cached(exchange, routing_key, envelope->headers, route);
    if (targets.empty()) {
        ++stats_.unroutable;
        return false;
    }
    // One node per queue; the last takes the caller's reference.
    const std::size_t count = targets.size();
    for (std::size_t i = 0; i < count; ++i) {
        Node node = new_node_locked();
        virt::StoredMessage& stored = node->stored;
        if (i + 1 < count) {
            stored.envelope = envelope;
        } else {
            stored.envelope = std::move(envelope);
        }
        // Assigned, not constructed: a reused node's strings keep their room.
        stored.exchange = exchange;
        stored.routing_key = routing_key;
        stored.redelivered = false;
        store(*targets[i], std::move(node));
    }
    return true;
}

void MemoryBroker::store(QueueState& queue, Node node) {
    virt::StoredMessage& message = node->stored;
    const Properties& properties = message.envelope->properties;
    std::optional<std::chrono::milliseconds> ttl = queue.message_ttl;
    if (properties.expiration && (!ttl || *properties.expiration < *ttl)) {
        ttl = properties.expiration;
    }
    // The clock is read only for messages that can expire.
    message.expires_at = ttl ? std::optional(Clock::now() + *ttl) : std::nullopt;
    if (ttl) queue.may_expire = true;
    std::size_t level = 0;
    if (queue.max_priority > 0) {
        level = std::min<std::size_t>(properties.priority.value_or(0), queue.max_priority);
    }
    node->body_size = message.envelope->body.size();
    if (queue.max_length_bytes) queue.bytes += node->body_size;
    queue.levels[level].push_back(std::move(node));
    ++queue.size;
    // Overflow drops from the head, as RabbitMQ's default drop-head does.
    while ((queue.max_length && queue.size > static_cast<std::size_t>(*queue.max_length)) ||
           (queue.max_length_bytes &&
            queue.bytes > static_cast<std::size_t>(*queue.max_length_bytes))) {
        auto lowest = std::find_if(queue.levels.begin(), queue.levels.end(),
                                   [](const auto& l) { return !l.empty(); });
        if (lowest == queue.levels.end()) break;
        Node dropped = std::move(lowest->front());
        lowest->pop_front();
        count_out(queue, *dropped);
        ++stats_.dropped_overflow;
        dead_letter_locked(queue, std::move(dropped), "maxlen");
    }
    for (auto& listener : queue.listeners)
        listener->notify();
}

void MemoryBroker::count_out(QueueState& queue, const QueuedMessage& node) {
    --queue.size;
    if (queue.max_length_bytes) queue.bytes -= node.body_size;
}

std::shared_ptr<QueueState> MemoryBroker::attach_consumer(const std::string& queue,
                                                          std::shared_ptr<Waker> waker) {
    std::lock_guard lock(mutex_);
    auto it = queues_.find(queue);
    if (it == queues_.end()) {
        throw NotFound("NOT_FOUND - no queue '" + queue + "' to consume from; declare it first");
    }
    QueueState& state = *it->second;
    ++state.consumers;
    state.listeners.push_back(std::move(waker));
    return it->second;
}

void MemoryBroker::detach_consumer(const std::shared_ptr<QueueState>& queue,
                                   const std::shared_ptr<Waker>& waker) {
    std::lock_guard lock(mutex_);
    if (queue->consumers > 0) --queue->consumers;
    auto it = std::find(queue->listeners.begin(), queue->listeners.end(), waker);
    if (it != queue->listeners.end()) queue->listeners.erase(it);
}

std::size_t MemoryBroker::pop_locked(QueueState& queue, std::size_t max, NodeQueue& out) {
    if (queue.deleted || queue.size == 0) return 0;
    // Nodes are looked at only when the queue needs it (expiry, a byte
    // limit): the rest is moving pointers.
    const bool look = queue.may_expire || queue.max_length_bytes.has_value();
    std::optional<Clock::time_point> now;  // read once, and only if needed
    std::size_t taken = 0;
    // Highest priority level first; FIFO within a level.
    for (auto level = queue.levels.rbegin(); level != queue.levels.rend() && taken < max; ++level) {
        while (!level->empty() && taken < max) {
            Node node = std::move(level->front());
            level->pop_front();
            if (!look) {
                --queue.size;
                out.push_back(std::move(node));
                ++taken;
                continue;
            }
            count_out(queue, *node);
            const virt::StoredMessage& message = node->stored;
            if (message.expires_at && message.expired(now ? *now : *(now = Clock::now()))) {
                ++stats_.expired;
                dead_letter_locked(queue, std::move(node), "expired");
                continue;
            }
            out.push_back(std::move(node));
            ++taken;
        }
    }
    return taken;
}

std::size_t MemoryBroker::pop(QueueState& queue, std::size_t max, NodeQueue& out,
                              std::vector<Node>& spent) {
    std::lock_guard lock(mutex_);
    for (Node& node : spent) {
        if (free_nodes_.size() == max_free_nodes) break;
        free_nodes_.push_back(std::move(node));
    }
    spent.clear();
    return pop_locked(queue, max, out);
}

Node MemoryBroker::pop_one(const std::string& name) {
    std::lock_guard lock(mutex_);
    QueueState* queue = find_queue(name);
    if (queue == nullptr) {
        throw NotFound("NOT_FOUND - no queue '" + name + "' to get from; declare it first");
    }
    NodeQueue one;
    if (pop_locked(*queue, 1, one) == 0) return nullptr;
    return std::move(one.front());
}

void MemoryBroker::restore(const std::string& name, NodeQueue messages, bool redelivered) {
    std::lock_guard lock(mutex_);
    QueueState* queue = find_queue(name);
    if (queue == nullptr) {
        // Deleted meanwhile: AMQP drops them too.
        for (Node& node : messages)
            recycle_locked(std::move(node));
        return;
    }
    // Last first, each to the head of its level: the first ends up first.
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
        Node& node = *it;
        virt::StoredMessage& message = node->stored;
        message.redelivered = message.redelivered || redelivered;
        if (message.expires_at) queue->may_expire = true;
        if (queue->max_length_bytes) queue->bytes += node->body_size;
        ++queue->size;
        std::size_t level = 0;
        if (queue->max_priority > 0) {
            level = std::min<std::size_t>(message.envelope->properties.priority.value_or(0),
                                          queue->max_priority);
        }
        queue->levels[level].push_front(std::move(node));
    }
    for (auto& listener : queue->listeners)
        listener->notify();
}

void MemoryBroker::dead_letter(const std::string& name, Node message, const char* reason) {
    std::lock_guard lock(mutex_);
    QueueState* queue = find_queue(name);
    if (queue == nullptr) {
        recycle_locked(std::move(message));
        return;
    }
    dead_letter_locked(*queue, std::move(message), reason);
}

void MemoryBroker::dead_letter_locked(QueueState& queue, Node node, const char* reason) {
    if (!queue.dead_letter_exchange) {
        // No DLX: dropped, as in AMQP.
        recycle_locked(std::move(node));
        return;
    }
    const virt::StoredMessage& message = node->stored;
    const std::string routing_key = queue.dead_letter_routing_key.value_or(message.routing_key);
    // Envelopes are shared: dead-lettering changes a copy.
    auto envelope = std::make_shared<Envelope>(*message.envelope);
    Table& headers = envelope->headers;
    if (!headers.is_object()) headers = Table::object();
    // x-death as RabbitMQ writes it, newest first, counting repeats.
    Table& deaths = headers["x-death"];
    if (!deaths.is_array()) deaths = Table::array();
    bool counted = false;
    for (auto& death : deaths) {
        if (death.value("queue", "") == queue.definition.name &&
            death.value("reason", "") == reason) {
            death["count"] = death.value("count", 0) + 1;
            counted = true;
        }
    }
    if (!counted) {
        deaths.insert(deaths.begin(), Table{{"queue", queue.definition.name},
                                            {"reason", reason},
                                            {"exchange", message.exchange},
                                            {"routing-keys", Table::array({message.routing_key})},
                                            {"count", 1}});
    }
    envelope->properties.expiration.reset();
    recycle_locked(std::move(node));
    const std::shared_ptr<const Envelope> shared = std::move(envelope);

    std::vector<QueueState*> targets;
    const std::string& dlx = *queue.dead_letter_exchange;
    if (dlx.empty()) {
        if (QueueState* target = find_queue(routing_key)) targets.push_back(target);
    } else if (exchanges_.exists(dlx)) {
        std::vector<std::string> names;
        exchanges_.route(dlx, routing_key, shared->headers, names);
        for (const auto& target_name : names) {
            if (QueueState* target = find_queue(target_name)) targets.push_back(target);
        }
    }
    for (QueueState* target : targets) {
        // A queue dead-lettering into itself would loop: RabbitMQ drops those.
        if (target == &queue && std::string_view(reason) != "rejected") continue;
        ++stats_.dead_lettered;
        Node copy = new_node_locked();
        copy->stored.envelope = shared;
        copy->stored.exchange = dlx;
        copy->stored.routing_key = routing_key;
        copy->stored.redelivered = false;
        store(*target, std::move(copy));
    }
}

BrokerStats MemoryBroker::stats() {
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace kelp::memory
