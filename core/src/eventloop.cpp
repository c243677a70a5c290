#include "kelp/eventloop.hpp"

#include "kelp/connection.hpp"
#include "kelp/errors.hpp"

namespace kelp {

bool EventLoop::step() {
    if (options_.limit && done_ >= *options_.limit) return false;
    ++done_;
    timed_out_ = false;
    try {
        connection_.drain_events(options_.timeout);
    } catch (const TimeoutError&) {
        if (!options_.ignore_timeouts) throw;
        timed_out_ = true;
    }
    return true;
}

void EventLoop::iterator::advance() {
    if (loop_ != nullptr && !loop_->step()) loop_ = nullptr;
}

}  // namespace kelp
