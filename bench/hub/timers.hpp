// (b) Timer harness, shared by kelp's code in timers.cpp and the anchors'
// code in anchor_*.cpp: every implementation schedules through
// Tracker::schedule_all and reports each fire to Tracker::fire.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "common.hpp"

namespace kelp_bench {

// The "scheduled at" time is read once per batch rather than per timer: a
// clock read per timer would add the same ~30 ns to everyone's schedule cost
// and blur the ratio. Lateness is then measured against the batch start, which
// is never later than the true scheduling time, so "early" stays conservative.
constexpr long kBatch = 256;

// Sent from the child to the parent through a pipe, so trivially copyable.
struct FireResult {
    double schedule_cpu_ns = 0;   // per timer, CPU time
    double schedule_wall_ns = 0;  // per timer
    double cpu_ns = 0;            // per timer, schedule + fire, process CPU time
    double wall_s = 0;            // start of scheduling until the last fire
    double mean_late_ms = 0;
    double max_late_ms = 0;
    long early = 0;  // fired before scheduled-at + timeout
    long max_rss_kb = 0;
};

// Per timer: schedule + cancel + one non-blocking iteration (so that work a
// loop defers past the cancel call is counted too).
struct CancelResult {
    double cpu_ns = 0;
    double wall_ns = 0;
    long max_rss_kb = 0;

    static CancelResult per_timer(const Elapsed& elapsed, std::size_t timers) {
        const auto n = static_cast<double>(timers);
        return {static_cast<double>(elapsed.cpu_ns) / n, static_cast<double>(elapsed.wall_ns) / n};
    }
};

// The anchors' per-timer storage (uv_timer_t[], ev_timer[], struct event[]).
// It is allocated inside the timed section and left untouched until
// scheduling writes it, just as kelp's Hub grows its own slot storage while
// scheduling: otherwise the anchors' page faults would be paid off the clock.
template <class T>
class TimerArray {
  public:
    void allocate(std::size_t n) {
        items_ = std::make_unique_for_overwrite<T[]>(n);
        size_ = n;
    }
    T* data() { return items_.get(); }
    T& operator[](std::size_t i) { return items_[i]; }
    T* begin() { return items_.get(); }
    T* end() { return items_.get() + size_; }

  private:
    std::unique_ptr<T[]> items_;
    std::size_t size_ = 0;
};

// Single-threaded children: process CPU time is the loop's CPU time.
struct ClockStamps {
    std::int64_t wall_start = wall_ns();
    std::int64_t cpu_start = cpu_ns();
    std::int64_t wall_scheduled = 0;
    std::int64_t cpu_scheduled = 0;

    void mark_scheduled() {
        wall_scheduled = wall_ns();
        cpu_scheduled = cpu_ns();
    }
};

class Tracker {
  public:
    explicit Tracker(const std::vector<std::uint32_t>& timeout_ms)
        : timeout_ms_(timeout_ms),
          batch_start_(timeout_ms.size() / kBatch + 1),
          seen_(timeout_ms.size(), 0) {}

    long size() const { return static_cast<long>(timeout_ms_.size()); }
    std::uint32_t timeout_ms(long i) const { return timeout_ms_[static_cast<std::size_t>(i)]; }

    // Calls schedule(i) for every timer, recording batch start times.
    template <class Schedule>
    void schedule_all(Schedule&& schedule) {
        const long n = size();
        for (long i = 0; i < n; ++i) {
            if (i % kBatch == 0) batch_start_[static_cast<std::size_t>(i / kBatch)] = wall_ns();
            schedule(i);
        }
    }

    // Returns true once every timer has fired.
    bool fire(long i) {
        const std::int64_t now = wall_ns();
        const auto index = static_cast<std::size_t>(i);
        if (i < 0 || i >= size()) fail("timers: callback for unknown timer %ld", i);
        if (seen_[index] != 0) fail("timers: timer %ld fired twice", i);
        seen_[index] = 1;
        const std::int64_t due = batch_start_[index / kBatch] +
                                 static_cast<std::int64_t>(timeout_ms_[index]) * 1'000'000;
        const std::int64_t late = now - due;
        if (late < 0) ++early_;
        late_sum_ += static_cast<double>(late);
        max_late_ = std::max(max_late_, late);
        last_fire_ = now;
        return ++fired_ == size();
    }

    long fired() const { return fired_; }

    FireResult result(const ClockStamps& clocks, std::int64_t cpu_end) const {
        const auto n = static_cast<double>(size());
        FireResult r;
        r.schedule_cpu_ns = static_cast<double>(clocks.cpu_scheduled - clocks.cpu_start) / n;
        r.schedule_wall_ns = static_cast<double>(clocks.wall_scheduled - clocks.wall_start) / n;
        r.cpu_ns = static_cast<double>(cpu_end - clocks.cpu_start) / n;
        r.wall_s = static_cast<double>(last_fire_ - clocks.wall_start) / 1e9;
        r.mean_late_ms = late_sum_ / n / 1e6;
        r.max_late_ms = static_cast<double>(max_late_) / 1e6;
        r.early = early_;
        return r;
    }

    void check(const char* impl) const {
        KB_CHECK(fired_ == size(), "timers %s: %ld of %ld timers fired", impl, fired_, size());
    }

  private:
    const std::vector<std::uint32_t>& timeout_ms_;
    std::vector<std::int64_t> batch_start_;
    std::vector<std::uint8_t> seen_;
    long fired_ = 0;
    long early_ = 0;
    double late_sum_ = 0;
    std::int64_t max_late_ = 0;
    std::int64_t last_fire_ = 0;
};

// Each takes the timeouts in ms and runs on a fresh epoll loop in the calling
// (child) process; a failed check exits.
FireResult libuv_timers_fire(const std::vector<std::uint32_t>& timeouts);
CancelResult libuv_timers_cancel(const std::vector<std::uint32_t>& timeouts);
FireResult libev_timers_fire(const std::vector<std::uint32_t>& timeouts);
CancelResult libev_timers_cancel(const std::vector<std::uint32_t>& timeouts);
FireResult libevent_timers_fire(const std::vector<std::uint32_t>& timeouts);
CancelResult libevent_timers_cancel(const std::vector<std::uint32_t>& timeouts);

}  // namespace kelp_bench
