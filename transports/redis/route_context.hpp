// RouteContext: the first arguments of every Lua script that routes (see
// scripts.cpp), and the names of kelp's own keys beside Kombu's.
//
// kelp keeps AMQP declarations, which Kombu holds only in each process's
// memory, in two hashes that Kombu never reads:
//   <prefix>_kelp.exchanges   exchange name -> {"type", "durable", "auto_delete", ...}
//   <prefix>_kelp.queues      queue name    -> {"durable", ..., "arguments"}
// so that every kelp process agrees on exchange types, redeclarations are
// checked, and x-max-priority / x-dead-letter-exchange reach publishers and
// consumers in other processes.
//
// Thread rules: immutable after construction; share freely.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wire/keys.hpp"
#include "wire/options.hpp"

namespace kelp::redis {

class RouteContext {
  public:
    RouteContext(const RedisSettings& settings, const KeySchema& keys);

    // The seven leading script arguments, in order.
    const std::vector<std::string_view>& args() const { return views_; }

    const std::string& exchanges_key() const { return exchanges_key_; }
    const std::string& queues_key() const { return queues_key_; }
    // Every binding set starts with this ("<prefix>_kombu.binding.").
    const std::string& binding_prefix() const { return binding_prefix_; }
    // publish_to_queue's arguments after the queue: global_keyprefix, sep,
    // the binding set prefix and Kombu's deadletter_queue.
    std::span<const std::string_view> queue_publish_args() const {
        return std::span<const std::string_view>(queue_publish_views_);
    }

  private:
    std::string prefix_;
    std::string sep_;
    std::string steps_;
    std::string exchanges_key_;
    std::string queues_key_;
    std::string binding_prefix_;
    std::string deadletter_queue_;
    std::vector<std::string_view> views_;
    std::array<std::string_view, 4> queue_publish_views_;
};

}  // namespace kelp::redis
