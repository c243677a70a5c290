// ExchangeType: the four AMQP 0-9-1 exchange kinds, and their wire names.
//
// The names are the ones AMQP brokers and Kombu use ("direct", "topic",
// "fanout", "headers"); parsing is case-sensitive, as it is on RabbitMQ.
//
// Thread rules: plain values and pure functions; use from any thread.
#pragma once

#include <string>
#include <string_view>

#include "kelp/errors.hpp"

namespace kelp {

enum class ExchangeType { direct, topic, fanout, headers };

constexpr std::string_view to_string(ExchangeType type) noexcept {
    switch (type) {
        case ExchangeType::direct:
            return "direct";
        case ExchangeType::topic:
            return "topic";
        case ExchangeType::fanout:
            return "fanout";
        case ExchangeType::headers:
            return "headers";
    }
    return "unknown";
}

// Throws kelp::Error for anything but the four names, so a typo in a
// configuration fails at declaration time rather than routing nothing.
inline ExchangeType parse_exchange_type(std::string_view name) {
    for (ExchangeType type :
         {ExchangeType::direct, ExchangeType::topic, ExchangeType::fanout, ExchangeType::headers}) {
        if (name == to_string(type)) return type;
    }
    throw Error("unknown exchange type '" + std::string(name) +
                "': use one of direct, topic, fanout, headers");
}

}  // namespace kelp
