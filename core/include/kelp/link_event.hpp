// LinkEvent: what happened to a Connection's link to its broker. Transports
// that reconnect by themselves (redis://, amqp://) report here instead of
// throwing from drain_events: a dropped link that comes back is an event for
// the application's log and metrics, not an error that tears down its loop.
// Only giving up (the reconnect policy exhausted) is also thrown, because
// the consumers are no longer served after that.
//
//   conn.on_link_event([](const kelp::LinkEvent& e) {
//       log("{} {}: {}", e.transport, kelp::to_string(e.kind), e.detail);
//   });
//
// Thread rules: handlers run on the thread that runs the Connection's Hub.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace kelp {

struct LinkEvent {
    enum class Kind {
        lost,         // the link dropped; reconnecting has started
        reconnected,  // the link is back, consumers resumed
        gave_up,      // the reconnect policy is exhausted; nothing is consumed now
    };
    Kind kind = Kind::lost;
    std::string transport;  // "redis", "amqp"
    std::string detail;     // why it was lost, or where it reconnected
    int attempt = 0;        // reconnect attempts it took (reconnected, gave_up)
};

using LinkEventHandler = std::function<void(const LinkEvent&)>;

std::string_view to_string(LinkEvent::Kind kind);

// The line kelp prints to stderr when no handler is set.
std::string describe(const LinkEvent& event);

}  // namespace kelp
