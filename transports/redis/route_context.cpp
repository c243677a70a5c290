#include "route_context.hpp"

namespace kelp::redis {

RouteContext::RouteContext(const RedisSettings& settings, const KeySchema& keys)
    : prefix_(keys.global_keyprefix()),
      sep_(keys.sep()),
      exchanges_key_(keys.global_keyprefix() + "_kelp.exchanges"),
      queues_key_(keys.global_keyprefix() + "_kelp.queues"),
      binding_prefix_(keys.binding_key("")),
      deadletter_queue_(settings.deadletter_queue.value_or("")) {
    for (int step : keys.priority_steps()) {
        if (!steps_.empty()) steps_ += ',';
        steps_ += std::to_string(step);
    }
    views_ = {prefix_,          sep_, steps_, exchanges_key_, queues_key_, binding_prefix_,
              deadletter_queue_};
    queue_publish_views_ = {prefix_, sep_, binding_prefix_, deadletter_queue_};
}

}  // namespace kelp::redis
