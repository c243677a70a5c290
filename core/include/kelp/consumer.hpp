// Consumer: receives messages from one or more queues and calls back.
//
//   kelp::Consumer consumer{conn, {video}, [](kelp::Message& m) { ...; m.ack(); }};
//   consumer.consume();
//   conn.drain_events(1s);  // or register the connection with a Hub
//
// Before the callback, the body is checked against the accept list and
// decoded into `Message::payload()`. A message that fails (ContentDisallowed,
// DecodeError) never reaches the callback: it goes to `on_decode_error`, or by
// default is rejected when its queue has a dead-letter exchange, otherwise
// acked and logged, so a poison message is never redelivered forever.
//
// Thread rules: belongs to its Connection's thread.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kelp/channel.hpp"
#include "kelp/entities.hpp"
#include "kelp/serialization.hpp"

namespace kelp {

class Connection;

using MessageCallback = std::function<void(Message&)>;
using DecodeErrorCallback = std::function<void(Message&, std::exception_ptr)>;

struct ConsumerOptions {
    bool no_ack = false;
    // Unacked messages allowed in flight on the consumer's channel; 0: no limit.
    std::uint32_t prefetch_count = 0;
    AcceptList accept = AcceptList::defaults();
    DecodeErrorCallback on_decode_error;
    // Declare the queues (and their exchanges and bindings) on consume().
    bool auto_declare = true;
    // Prefix of generated consumer tags.
    std::string tag_prefix = "kelp";
};

class Consumer {
  public:
    Consumer(Connection& connection, std::vector<Queue> queues, MessageCallback callback,
             ConsumerOptions options = {});
    // Consumes on the given channel instead of a channel of its own.
    Consumer(Connection& connection, std::shared_ptr<Channel> channel, std::vector<Queue> queues,
             MessageCallback callback, ConsumerOptions options = {});
    // Cancels its consumers; unacked messages stay with the channel.
    ~Consumer();
    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;

    // Starts consuming from every queue (declaring them first unless
    // auto_declare is off). Calling it again adds newly added queues.
    void consume();
    // Stops every queue's consumer; messages in flight stay unacked.
    void cancel();
    void add_queue(Queue queue);
    void cancel_by_queue(const std::string& queue);
    bool consuming_from(const std::string& queue) const;
    void qos(std::uint32_t prefetch_count);
    void recover(bool requeue = true);
    // Removes every message from the consumer's queues; returns the count.
    std::uint64_t purge();

    const std::vector<Queue>& queues() const { return queues_; }
    Channel& channel() { return *channel_; }

  private:
    void deliver(Message& message);
    void handle_decode_error(Message& message, std::exception_ptr error);
    std::string next_tag();

    Connection& connection_;
    std::shared_ptr<Channel> channel_;
    std::vector<Queue> queues_;
    MessageCallback callback_;
    ConsumerOptions options_;
    std::vector<std::pair<std::string, std::string>> active_;  // (queue, consumer tag)
    std::uint64_t tag_counter_ = 0;
    // The content type of the last message that passed the accept list.
    // Starts as "application/data", which every accept list allows.
    std::string accepted_type_{raw_content_type};
    bool accepted_type_is_structured_ = false;
};

}  // namespace kelp
