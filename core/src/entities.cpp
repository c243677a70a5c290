#include "kelp/entities.hpp"

#include "kelp/transport.hpp"

namespace kelp {

Table Queue::declare_arguments() const {
    Table args = options.arguments.is_object() ? options.arguments : Table::object();
    if (options.message_ttl) args["x-message-ttl"] = options.message_ttl->count();
    if (options.expires) args["x-expires"] = options.expires->count();
    if (options.max_length) args["x-max-length"] = *options.max_length;
    if (options.max_length_bytes) args["x-max-length-bytes"] = *options.max_length_bytes;
    if (options.max_priority) args["x-max-priority"] = *options.max_priority;
    if (options.dead_letter_exchange)
        args["x-dead-letter-exchange"] = *options.dead_letter_exchange;
    if (options.dead_letter_routing_key) {
        args["x-dead-letter-routing-key"] = *options.dead_letter_routing_key;
    }
    return args;
}

bool Capabilities::supports(ExchangeType type) const {
    switch (type) {
        case ExchangeType::direct:
            return exchange_direct;
        case ExchangeType::topic:
            return exchange_topic;
        case ExchangeType::fanout:
            return exchange_fanout;
        case ExchangeType::headers:
            return exchange_headers;
    }
    return false;
}

}  // namespace kelp
