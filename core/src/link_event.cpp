#include "kelp/link_event.hpp"

#include <cstdio>

#include "kelp/transport.hpp"

namespace kelp {

std::string_view to_string(LinkEvent::Kind kind) {
    switch (kind) {
        case LinkEvent::Kind::lost:
            return "lost the link";
        case LinkEvent::Kind::reconnected:
            return "reconnected";
        case LinkEvent::Kind::gave_up:
            return "gave up reconnecting";
    }
    return "unknown link event";
}

std::string describe(const LinkEvent& event) {
    std::string line = "kelp " + event.transport + ": " + std::string(to_string(event.kind));
    if (event.kind != LinkEvent::Kind::lost && event.attempt > 0)
        line += " after " + std::to_string(event.attempt) + " attempt" +
                (event.attempt == 1 ? "" : "s");
    if (!event.detail.empty()) line += ": " + event.detail;
    return line;
}

void Transport::emit_link_event(LinkEvent event) {
    event.transport = std::string(name());
    if (link_handler_) {
        link_handler_(event);
        return;
    }
    std::fprintf(stderr, "%s\n", describe(event).c_str());
}

}  // namespace kelp
