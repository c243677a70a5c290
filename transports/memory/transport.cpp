#include "transport.hpp"

#include <algorithm>
#include <map>

#include "kelp/errors.hpp"

namespace kelp::memory {

// One Hub callback hands out at most this many messages, and stops early
// once it has run for `delivery_slice`, so timers and other fds get their
// turn however slow the consumer callbacks are.
constexpr std::size_t delivery_budget = 1024;
constexpr auto delivery_slice = std::chrono::milliseconds(2);
// Messages taken from a queue under one lock, per consumer turn.
constexpr std::size_t delivery_batch = 32;
// Settled nodes a channel holds for the broker's pool; past that, freed.
constexpr std::size_t max_spent_nodes = 1024;

// --- MemoryTransport -----------------------------------------------------------

MemoryTransport::MemoryTransport(std::string broker_name)
    : broker_name_(std::move(broker_name)),
      waker_(std::make_shared<Waker>([this] { schedule_delivery(); })) {}

MemoryTransport::~MemoryTransport() {
    close();
    leave_hub();
}

const Capabilities& MemoryTransport::static_capabilities() {
    static const Capabilities capabilities{
        .exchange_direct = true,
        .exchange_topic = true,
        .exchange_fanout = true,
        .exchange_headers = true,
        .priorities = true,
        .message_ttl = true,
        .max_length = true,
        .dead_letter = true,
        .per_message_requeue = true,
        .heartbeats = false,
        .publisher_confirms = true,  // a publish that returns is stored
        .network = false,
    };
    return capabilities;
}

void MemoryTransport::connect(Clock::time_point) {
    broker_ = MemoryBroker::named(broker_name_);
    connected_ = true;
}

void MemoryTransport::close() noexcept {
    if (!connected_) return;
    for (auto& weak : channels_) {
        if (auto channel = weak.lock()) {
            try {
                channel->close();
            } catch (...) {
                // Closing restores messages in memory; nothing here can fail
                // in a way the caller could act on.
            }
        }
    }
    channels_.clear();
    delivery_.cancel();
    waker_->disarm();
    connected_ = false;
}

void MemoryTransport::register_with_event_loop(Hub& hub) {
    if (hub_ == &hub) return;
    const bool was_scheduled = delivery_.active();
    leave_hub();
    hub_ = &hub;
    // A Hub closed or destroyed before this transport lets go of it first,
    // so nothing here (nor a publishing thread's wake-up) reaches a dead Hub.
    hub_closing_ = hub.on_close([this] { forget_hub(); });
    waker_->set_hub(&hub);
    if (was_scheduled) schedule_delivery();
}

void MemoryTransport::leave_hub() {
    if (hub_ == nullptr) return;
    delivery_.cancel();
    hub_closing_.cancel();
    hub_ = nullptr;
}

void MemoryTransport::forget_hub() {
    // Its callbacks go with it: the handles are dropped, not cancelled.
    delivery_ = Handle{};
    hub_closing_ = Handle{};
    hub_ = nullptr;
    waker_->set_hub(nullptr);
}

std::shared_ptr<Channel> MemoryTransport::create_channel() {
    if (!connected_) throw ConnectionError("memory transport: not connected");
    auto channel = std::make_shared<MemoryChannel>(*this);
    std::erase_if(channels_, [](const auto& weak) { return weak.expired(); });
    channels_.push_back(channel);
    return channel;
}

void MemoryTransport::schedule_delivery() {
    if (hub_ == nullptr || delivery_.active()) return;
    delivery_ = hub_->call_soon([this] { deliver(); });
}

void MemoryTransport::deliver() {
    std::size_t budget = delivery_budget;
    bool more = false;
    // Index loop: a consumer callback may create channels.
    for (std::size_t i = 0; i < channels_.size() && budget > 0; ++i) {
        auto channel = channels_[i].lock();
        if (!channel || !channel->is_open() || !channel->has_consumers()) continue;
        bool channel_more = false;
        budget -= channel->deliver(budget, channel_more);
        more = more || channel_more;
    }
    if (more || budget == 0) schedule_delivery();
}

// --- MemoryChannel ---------------------------------------------------------------

MemoryChannel::MemoryChannel(MemoryTransport& transport) : transport_(transport) {}

MemoryChannel::~MemoryChannel() {
    try {
        close();
    } catch (...) {
    }
}

void MemoryChannel::check_open() const {
    if (!open_) {
        throw ChannelError("memory channel is closed; open a new one with Connection::channel()");
    }
}

void MemoryChannel::exchange_declare(const Exchange& exchange, bool passive) {
    check_open();
    transport_.broker().exchange_declare(exchange, passive);
}

void MemoryChannel::exchange_delete(const std::string& name, bool if_unused) {
    check_open();
    transport_.broker().exchange_delete(name, if_unused);
}

QueueDeclareOk MemoryChannel::queue_declare(const Queue& queue, bool passive) {
    check_open();
    return transport_.broker().queue_declare(queue, passive);
}

void MemoryChannel::queue_bind(const std::string& queue, const std::string& exchange,
                               const std::string& routing_key, const Table& arguments) {
    check_open();
    transport_.broker().queue_bind(queue, exchange, routing_key, arguments);
}

void MemoryChannel::queue_unbind(const std::string& queue, const std::string& exchange,
                                 const std::string& routing_key, const Table& arguments) {
    check_open();
    transport_.broker().queue_unbind(queue, exchange, routing_key, arguments);
}

std::uint64_t MemoryChannel::queue_purge(const std::string& queue) {
    check_open();
    return transport_.broker().queue_purge(queue);
}

std::uint64_t MemoryChannel::queue_delete(const std::string& queue, bool if_unused, bool if_empty) {
    check_open();
    return transport_.broker().queue_delete(queue, if_unused, if_empty);
}

void MemoryChannel::basic_publish(std::shared_ptr<const Envelope> shared,
                                  const std::string& exchange, const std::string& routing_key,
                                  PublishFlags flags) {
    check_open();
    // publish() leaves `shared` as it was when it returns false.
    if (transport_.broker().publish(std::move(shared), exchange, routing_key, route_)) return;
    unroutable_.settle(*shared, exchange, routing_key, flags, on_return_);
}

std::string MemoryChannel::basic_consume(const std::string& queue, bool no_ack,
                                         DeliveryCallback callback,
                                         const std::string& consumer_tag) {
    check_open();
    std::string tag =
        consumer_tag.empty() ? "ctag-" + std::to_string(++tag_counter_) : consumer_tag;
    for (const auto& consumer : consumers_) {
        if (!consumer->cancelled && consumer->tag == tag) {
            throw ChannelError("NOT_ALLOWED - consumer tag '" + tag + "' is already in use");
        }
    }
    auto state = transport_.broker().attach_consumer(queue, transport_.waker());
    consumers_.push_back(std::make_unique<ConsumerEntry>(
        ConsumerEntry{tag, queue, std::move(state), no_ack, std::move(callback)}));
    transport_.schedule_delivery();
    return tag;
}

void MemoryChannel::basic_cancel(const std::string& consumer_tag) {
    for (auto& consumer : consumers_) {
        if (consumer->cancelled || consumer->tag != consumer_tag) continue;
        consumer->cancelled = true;
        transport_.broker().detach_consumer(consumer->state, transport_.waker());
    }
    if (!delivering_) remove_cancelled();
}

void MemoryChannel::remove_cancelled() {
    std::erase_if(consumers_, [](const auto& consumer) { return consumer->cancelled; });
}

Message MemoryChannel::make_message(Node node, const std::string& queue,
                                    const std::string& consumer_tag, bool no_ack) {
    virt::StoredMessage& stored = node->stored;
    // Views into the node: it must outlive the Message's construction.
    DeliveryInfoView info{.exchange = stored.exchange,
                          .routing_key = stored.routing_key,
                          .consumer_tag = consumer_tag,
                          .queue = queue,
                          .redelivered = stored.redelivered};
    if (no_ack) {
        info.delivery_tag = qos_.untracked_tag();
        Message message(std::move(stored.envelope), info, *this, true);
        recycle(std::move(node));
        return message;
    }
    // The window keeps the node, with a reference to the envelope, until the
    // message is settled, so the channel can put it back if it closes first.
    node->queue = queue;
    const std::shared_ptr<const Envelope>& envelope = stored.envelope;
    info.delivery_tag = qos_.append(std::move(node));
    return Message(envelope, info, *this, false);
}

void MemoryChannel::recycle(Node node) {
    node->stored.envelope.reset();
    if (spent_.size() < max_spent_nodes) spent_.push_back(std::move(node));
}

std::size_t MemoryChannel::deliver(std::size_t budget, bool& more) {
    const auto slice_end = std::chrono::steady_clock::now() + delivery_slice;
    std::size_t delivered = 0;
    std::size_t idle = 0;  // consumers in a row that had nothing
    delivering_ = true;
    struct EndDelivery {
        MemoryChannel& channel;
        ~EndDelivery() {
            // Also on a throwing callback: what was popped and not handed
            // out goes back to the head of its queue, so nothing is lost.
            channel.return_undelivered();
            channel.delivering_ = false;
            channel.remove_cancelled();
        }
    } end_delivery{*this};
    while (open_ && delivered < budget && !consumers_.empty() && qos_.can_consume() &&
           idle < consumers_.size()) {
        next_consumer_ %= consumers_.size();
        ConsumerEntry& consumer = *consumers_[next_consumer_];
        // Next time the next consumer starts: a few messages each in turn,
        // so no queue starves another.
        ++next_consumer_;
        if (consumer.cancelled) {
            ++idle;
            continue;
        }
        if (consumer.state->deleted) {
            basic_cancel(consumer.tag);
            ++idle;
            continue;
        }
        // One lock for a small batch instead of one per message; never more
        // than the prefetch window allows.
        const std::size_t want = std::min({qos_.capacity(), budget - delivered, delivery_batch});
        if (transport_.broker().pop(*consumer.state, want, batch_, spent_) == 0) {
            ++idle;
            continue;
        }
        batch_queue_ = &consumer.queue;
        idle = 0;
        // A callback may cancel, close, recover, requeue or shrink the
        // prefetch window; each of those returns the rest of the batch
        // first (return_undelivered), which ends this loop.
        while (!batch_.empty() && open_ && !consumer.cancelled && qos_.can_consume()) {
            Node node = std::move(batch_.front());
            batch_.pop_front();
            Message message =
                make_message(std::move(node), consumer.queue, consumer.tag, consumer.no_ack);
            transport_.count_delivery();
            ++delivered;
            consumer.callback(message);
            // The clock is read every 16 messages: cheap, and fine-grained enough.
            if (delivered % 16 == 0 && std::chrono::steady_clock::now() >= slice_end) {
                more = true;
                return delivered;
            }
        }
        return_undelivered();
    }
    more = open_ && !consumers_.empty() && qos_.can_consume() && idle < consumers_.size();
    return delivered;
}

void MemoryChannel::return_undelivered() {
    if (batch_.empty()) return;
    NodeQueue rest;
    rest.swap(batch_);
    transport_.broker().restore(*batch_queue_, std::move(rest), false);
}

std::optional<Message> MemoryChannel::basic_get(const std::string& queue, bool no_ack) {
    check_open();
    Node node = transport_.broker().pop_one(queue);
    if (!node) return std::nullopt;
    return make_message(std::move(node), queue, "", no_ack);
}

void MemoryChannel::basic_ack(std::uint64_t delivery_tag, bool multiple) {
    check_open();
    const bool was_full = !qos_.can_consume();
    if (multiple) {
        for (Node& node : qos_.take_through(delivery_tag))
            recycle(std::move(node));
    } else {
        recycle(qos_.take(delivery_tag));
    }
    if (was_full && !consumers_.empty()) transport_.schedule_delivery();
}

void MemoryChannel::basic_reject(std::uint64_t delivery_tag, bool requeue) {
    check_open();
    Node node = qos_.take(delivery_tag);
    const std::string queue = node->queue;
    if (requeue) {
        // The rest of a batch being delivered came after this message: it
        // goes back first, so this one ends up ahead of it.
        return_undelivered();
        NodeQueue one;
        one.push_back(std::move(node));
        transport_.broker().restore(queue, std::move(one), true);
    } else {
        transport_.broker().dead_letter(queue, std::move(node), "rejected");
    }
    if (!consumers_.empty()) transport_.schedule_delivery();
}

void MemoryChannel::basic_qos(std::uint32_t prefetch_count, bool) {
    check_open();
    qos_.set_prefetch(prefetch_count);
    if (!consumers_.empty()) transport_.schedule_delivery();
}

void MemoryChannel::restore_unacked(std::vector<Node> unacked) {
    // Group by queue, keeping delivery order within each queue.
    std::map<std::string, NodeQueue> by_queue;
    for (Node& node : unacked) {
        NodeQueue& list = by_queue[node->queue];
        list.push_back(std::move(node));
    }
    for (auto& [queue, messages] : by_queue) {
        transport_.broker().restore(queue, std::move(messages), true);
    }
}

void MemoryChannel::basic_recover(bool) {
    check_open();
    // Both forms requeue: a memory channel has no per-consumer redelivery.
    return_undelivered();
    restore_unacked(qos_.take_all());
    if (!consumers_.empty()) transport_.schedule_delivery();
}

void MemoryChannel::close() {
    if (!open_) return;
    open_ = false;
    for (auto& consumer : consumers_) {
        if (consumer->cancelled) continue;
        consumer->cancelled = true;
        transport_.broker().detach_consumer(consumer->state, transport_.waker());
    }
    if (!delivering_) consumers_.clear();
    // Head-first restores: the undelivered rest of a batch first, so the
    // unacked messages (delivered earlier) end up ahead of it.
    return_undelivered();
    restore_unacked(qos_.take_all());
}

}  // namespace kelp::memory
