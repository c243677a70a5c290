// eventloop: Kombu's `eventloop(conn, limit, timeout, ignore_timeouts)`, a
// range whose every step is one successful drain_events.
//
//   for (auto _ : kelp::eventloop(conn, {.limit = 10, .timeout = 1s})) {}
//
// A step that times out throws TimeoutError, unless ignore_timeouts is set:
// then the step ends quietly and the loop goes on (still counting towards
// the limit).
//
// Thread rules: run it on the Connection's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <optional>

namespace kelp {

class Connection;

struct EventLoopOptions {
    std::optional<std::uint64_t> limit;               // steps; none: forever
    std::optional<std::chrono::nanoseconds> timeout;  // per step; none: wait forever
    bool ignore_timeouts = false;
};

class EventLoop {
  public:
    // What each iteration yields: the 1-based number of the step, and whether
    // it ended by timeout (only with ignore_timeouts).
    struct Step {
        std::uint64_t number = 0;
        bool timed_out = false;
        // User-provided, so `for (auto _ : eventloop(conn))` compiles without
        // an unused-variable warning.
        ~Step() {}
    };

    class iterator {
      public:
        using value_type = Step;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(EventLoop* loop) : loop_(loop) { advance(); }
        Step operator*() const { return Step{loop_->done_, loop_->timed_out_}; }
        iterator& operator++() {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        bool operator==(std::default_sentinel_t) const { return loop_ == nullptr; }

      private:
        void advance();
        EventLoop* loop_ = nullptr;
    };

    EventLoop(Connection& connection, EventLoopOptions options)
        : connection_(connection), options_(options) {}
    iterator begin() { return iterator{this}; }
    std::default_sentinel_t end() { return {}; }

    // Drains once; false when the limit is reached.
    bool step();

  private:
    Connection& connection_;
    EventLoopOptions options_;
    std::uint64_t done_ = 0;
    bool timed_out_ = false;
};

inline EventLoop eventloop(Connection& connection, EventLoopOptions options = {}) {
    return EventLoop{connection, options};
}

}  // namespace kelp
