#include "kelp/consumer.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "kelp/connection.hpp"
#include "kelp/errors.hpp"

namespace kelp {

Consumer::Consumer(Connection& connection, std::vector<Queue> queues, MessageCallback callback,
                   ConsumerOptions options)
    : Consumer(connection, nullptr, std::move(queues), std::move(callback), std::move(options)) {}

Consumer::Consumer(Connection& connection, std::shared_ptr<Channel> channel,
                   std::vector<Queue> queues, MessageCallback callback, ConsumerOptions options)
    : connection_(connection),
      channel_(channel ? std::move(channel) : connection.channel()),
      queues_(std::move(queues)),
      callback_(std::move(callback)),
      options_(std::move(options)) {
    if (!callback_) throw Error("kelp::Consumer needs a callback");
    if (options_.prefetch_count != 0) channel_->basic_qos(options_.prefetch_count);
}

Consumer::~Consumer() {
    try {
        cancel();
    } catch (...) {
        // The connection may be gone already; its channels went with it.
    }
}

std::string Consumer::next_tag() {
    // Unique in the process, and short: the tag is copied into every
    // delivery, and a short string needs no allocation.
    static std::atomic<std::uint64_t> counter{0};
    ++tag_counter_;
    return options_.tag_prefix + "." + std::to_string(++counter);
}

void Consumer::consume() {
    for (const Queue& queue : queues_) {
        if (consuming_from(queue.name)) continue;
        if (options_.auto_declare) {
            // Declared on this consumer's channel: some brokers tie exclusive
            // queues to the declaring channel.
            if (queue.exchange && !queue.exchange->is_default()) {
                channel_->exchange_declare(*queue.exchange);
            }
            channel_->queue_declare(queue);
            if (queue.exchange && !queue.exchange->is_default()) {
                channel_->queue_bind(queue.name, queue.exchange->name, queue.routing_key);
            }
            for (const auto& binding : queue.options.bindings) {
                channel_->queue_bind(queue.name, binding.exchange, binding.routing_key,
                                     binding.arguments);
            }
        }
        const std::string tag = channel_->basic_consume(
            queue.name, options_.no_ack, [this](Message& message) { deliver(message); },
            next_tag());
        active_.emplace_back(queue.name, tag);
    }
}

void Consumer::cancel() {
    auto active = std::move(active_);
    active_.clear();
    for (const auto& [queue, tag] : active) {
        if (channel_->is_open()) channel_->basic_cancel(tag);
    }
}

void Consumer::add_queue(Queue queue) {
    auto same = [&](const Queue& q) { return q.name == queue.name; };
    if (std::find_if(queues_.begin(), queues_.end(), same) == queues_.end()) {
        queues_.push_back(std::move(queue));
    }
}

void Consumer::cancel_by_queue(const std::string& queue) {
    auto it = std::find_if(active_.begin(), active_.end(),
                           [&](const auto& entry) { return entry.first == queue; });
    if (it == active_.end()) return;
    const std::string tag = it->second;
    active_.erase(it);
    std::erase_if(queues_, [&](const Queue& q) { return q.name == queue; });
    channel_->basic_cancel(tag);
}

bool Consumer::consuming_from(const std::string& queue) const {
    return std::any_of(active_.begin(), active_.end(),
                       [&](const auto& entry) { return entry.first == queue; });
}

void Consumer::qos(std::uint32_t prefetch_count) {
    options_.prefetch_count = prefetch_count;
    channel_->basic_qos(prefetch_count);
}

void Consumer::recover(bool requeue) {
    channel_->basic_recover(requeue);
}

std::uint64_t Consumer::purge() {
    std::uint64_t total = 0;
    for (const Queue& queue : queues_)
        total += channel_->queue_purge(queue.name);
    return total;
}

void Consumer::deliver(Message& message) {
    try {
        const std::string& type = message.content_type();
        // A consumer mostly sees one content type over and over: the last
        // accepted one is remembered, and only another goes through the list.
        if (type != accepted_type_) {
            options_.accept.check(type);
            accepted_type_ = type;
            // Raw bytes and text decode lazily (nothing can fail that
            // matters); structured types are decoded now, so a bad one goes
            // to on_decode_error instead of the callback.
            accepted_type_is_structured_ =
                !(type.empty() || type == "application/data" || type == "text/plain");
        }
        // So are compressed bodies.
        const bool compressed =
            message.headers().is_object() && message.headers().contains("compression");
        if (compressed || accepted_type_is_structured_) (void)message.payload();
    } catch (const ContentDisallowed&) {
        handle_decode_error(message, std::current_exception());
        return;
    } catch (const DecodeError&) {
        handle_decode_error(message, std::current_exception());
        return;
    }
    callback_(message);
}

void Consumer::handle_decode_error(Message& message, std::exception_ptr error) {
    if (options_.on_decode_error) {
        options_.on_decode_error(message, error);
        return;
    }
    std::string what;
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        what = e.what();
    }
    if (message.settled()) return;  // no_ack: nothing more to do
    // Dead-letter when the queue has a DLX; otherwise ack and log, so the
    // poison message is neither lost silently nor redelivered forever.
    const auto& queue_name = message.delivery_info().queue;
    auto queue = std::find_if(queues_.begin(), queues_.end(),
                              [&](const Queue& q) { return q.name == queue_name; });
    const bool has_dlx = queue != queues_.end() && queue->options.dead_letter_exchange.has_value();
    std::fprintf(stderr, "kelp::Consumer: cannot decode message %llu from queue '%s': %s; %s\n",
                 static_cast<unsigned long long>(message.delivery_tag()), queue_name.c_str(),
                 what.c_str(),
                 has_dlx ? "rejected to the dead-letter exchange"
                         : "acked and dropped (set on_decode_error or a dead-letter exchange "
                           "to keep such messages)");
    if (has_dlx) {
        message.reject();
    } else {
        message.ack();
    }
}

}  // namespace kelp
