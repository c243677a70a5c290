// Exchange, Queue and Binding: the broker topology, as plain value types.
//
// They describe what to declare; declaring happens through a Channel or
// `maybe_declare`, which caches on the whole definition (two queues with one
// name but different arguments are two declarations).
//
// Thread rules: value types; copy freely between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kelp/exchange_type.hpp"
#include "kelp/json.hpp"

namespace kelp {

struct ExchangeOptions {
    bool durable = true;
    bool auto_delete = false;
    Table arguments;
};

struct Exchange {
    std::string name;  // "" is the default exchange
    ExchangeType type = ExchangeType::direct;
    bool durable = true;
    bool auto_delete = false;
    Table arguments;

    Exchange() = default;
    Exchange(std::string name_, ExchangeType type_ = ExchangeType::direct,
             ExchangeOptions options = {})
        : name(std::move(name_)),
          type(type_),
          durable(options.durable),
          auto_delete(options.auto_delete),
          arguments(std::move(options.arguments)) {}

    bool is_default() const { return name.empty(); }
    bool operator==(const Exchange&) const = default;
};

// A binding of a queue to an exchange (beyond the queue's own exchange).
struct Binding {
    std::string exchange;
    std::string routing_key;
    Table arguments;  // headers exchanges match on these
    bool operator==(const Binding&) const = default;
};

// Queue options: the common AMQP arguments as typed fields. A transport that
// cannot honour a field that is set rejects the declaration.
struct QueueOptions {
    bool durable = true;
    bool exclusive = false;
    bool auto_delete = false;
    std::optional<std::chrono::milliseconds> message_ttl;  // x-message-ttl
    std::optional<std::chrono::milliseconds> expires;      // x-expires
    std::optional<std::int64_t> max_length;                // x-max-length
    std::optional<std::int64_t> max_length_bytes;          // x-max-length-bytes
    std::optional<std::uint8_t> max_priority;              // x-max-priority
    std::optional<std::string> dead_letter_exchange;       // x-dead-letter-exchange
    std::optional<std::string> dead_letter_routing_key;    // x-dead-letter-routing-key
    Table arguments;                                       // any other x- argument
    std::vector<Binding> bindings;                         // extra bindings
    // Transport-specific hints (e.g. Kafka partitions); ignored by others.
    std::optional<std::int32_t> partitions;
    std::optional<std::int16_t> replication_factor;
    bool operator==(const QueueOptions&) const = default;
};

struct Queue {
    std::string name;
    std::optional<Exchange> exchange;  // bound with routing_key when declared
    std::string routing_key;
    QueueOptions options;

    Queue() = default;
    // A queue on the default exchange: routed to by its own name.
    Queue(std::string name_, QueueOptions options_ = {})
        : name(std::move(name_)), options(std::move(options_)) {}
    Queue(std::string name_, Exchange exchange_, std::string routing_key_,
          QueueOptions options_ = {})
        : name(std::move(name_)),
          exchange(std::move(exchange_)),
          routing_key(std::move(routing_key_)),
          options(std::move(options_)) {}

    // The x- arguments of the declaration: typed fields merged over `arguments`.
    Table declare_arguments() const;
    bool operator==(const Queue&) const = default;
};

}  // namespace kelp
