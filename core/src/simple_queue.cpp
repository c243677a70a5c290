#include "kelp/simple_queue.hpp"

#include "kelp/connection.hpp"
#include "kelp/errors.hpp"
#include "kelp/hub.hpp"

namespace kelp {

SimpleQueue::SimpleQueue(Connection& connection, std::string name, SimpleQueueOptions options)
    : SimpleQueue(connection, Queue{std::move(name)}, std::move(options)) {}

SimpleQueue::SimpleQueue(Connection& connection, Queue queue, SimpleQueueOptions options)
    : connection_(connection),
      queue_(std::move(queue)),
      channel_(connection.channel()),
      producer_(
          connection, channel_,
          ProducerOptions{.serializer = options.serializer, .compression = options.compression}) {
    connection_.maybe_declare(queue_);
    consumer_ = std::make_unique<Consumer>(
        connection_, channel_, std::vector<Queue>{queue_},
        [this](Message& message) { buffer_.push_back(std::move(message)); },
        ConsumerOptions{.no_ack = options.no_ack,
                        .prefetch_count = options.prefetch_count,
                        .accept = std::move(options.accept),
                        .auto_declare = false});
    consumer_->consume();
}

SimpleQueue::~SimpleQueue() {
    try {
        close();
    } catch (...) {
    }
}

PublishOptions SimpleQueue::with_queue(PublishOptions options) const {
    if (!options.exchange) options.exchange = queue_.exchange.value_or(Exchange{});
    if (!options.routing_key) {
        options.routing_key = queue_.exchange ? queue_.routing_key : queue_.name;
    }
    return options;
}

void SimpleQueue::put(const Json& value, PublishOptions options) {
    producer_.publish(value, with_queue(std::move(options)));
}

std::optional<Message> SimpleQueue::get(std::optional<std::chrono::nanoseconds> timeout) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = timeout ? std::optional(Clock::now() + *timeout) : std::nullopt;
    while (buffer_.empty()) {
        auto remaining =
            deadline ? std::optional(std::max(*deadline - Clock::now(), Clock::duration::zero()))
                     : std::nullopt;
        try {
            connection_.drain_events(remaining);
        } catch (const TimeoutError&) {
            return std::nullopt;
        }
    }
    Message message = std::move(buffer_.front());
    buffer_.pop_front();
    return message;
}

std::optional<Message> SimpleQueue::get_nowait() {
    return get(std::chrono::nanoseconds::zero());
}

std::uint64_t SimpleQueue::qsize() {
    // The consumer may have taken messages ahead of get(); the broker counts
    // them as delivered, but for the caller they are still waiting.
    return channel_->queue_declare(queue_, /*passive=*/true).message_count + buffer_.size();
}

std::uint64_t SimpleQueue::clear() {
    std::uint64_t removed = channel_->queue_purge(queue_.name);
    // A purge does not touch delivered messages: settle the buffered ones
    // here, or they would come back when the channel closes.
    for (Message& message : buffer_) {
        message.ack();
        ++removed;
    }
    buffer_.clear();
    return removed;
}

void SimpleQueue::close() {
    if (consumer_) {
        consumer_.reset();
        // Buffered messages were never handed out: closing the channel
        // returns them (and any unacked ones) to the queue.
        buffer_.clear();
        channel_->close();
    }
}

}  // namespace kelp
