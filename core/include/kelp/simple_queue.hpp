// SimpleQueue: a queue as a FIFO container, for scripts and tests.
//
//   kelp::SimpleQueue queue{conn, "tasks"};
//   queue.put("hello");
//   if (auto message = queue.get(1s)) { ...; message->ack(); }
//
// Thread rules: belongs to its Connection's thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "kelp/consumer.hpp"
#include "kelp/entities.hpp"
#include "kelp/producer.hpp"

namespace kelp {

struct SimpleQueueOptions {
    bool no_ack = false;
    // How many messages the queue takes from the broker ahead of get(): a
    // bound on the memory a long queue costs here (0: no bound). Messages
    // taken ahead count in qsize() and go back to the broker on close().
    std::uint32_t prefetch_count = 10;
    std::string serializer = "json";
    std::string compression;
    AcceptList accept = AcceptList::defaults();
};

class SimpleQueue {
  public:
    SimpleQueue(Connection& connection, Queue queue, SimpleQueueOptions options = {});
    SimpleQueue(Connection& connection, std::string name, SimpleQueueOptions options = {});
    ~SimpleQueue();

    template <class Body>
    requires(std::convertible_to<const Body&, std::string_view> &&
             !std::same_as<std::remove_cvref_t<Body>, Json>) void put(const Body& body,
                                                                      PublishOptions options = {}) {
        producer_.publish(body, with_queue(std::move(options)));
    }
    void put(const Json& value, PublishOptions options = {});

    // The next message, waiting up to `timeout` (none: forever); empty
    // optional when none came in time.
    std::optional<Message> get(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
    std::optional<Message> get_nowait();
    // Messages waiting: in the broker's queue plus those this SimpleQueue has
    // received but get() has not returned yet.
    std::uint64_t qsize();
    // Removes every waiting message, both in the broker and received but not
    // yet returned by get() (those are acked, so they are gone for good);
    // returns how many.
    std::uint64_t clear();
    void close();

  private:
    PublishOptions with_queue(PublishOptions options) const;

    Connection& connection_;
    Queue queue_;
    std::shared_ptr<Channel> channel_;
    Producer producer_;
    std::deque<Message> buffer_;
    std::unique_ptr<Consumer> consumer_;
};

}  // namespace kelp
