// (d) Cross-thread harness, shared by kelp's code in wakeup.cpp and the
// anchors' code in anchor_*.cpp: every implementation plays the same Rally.
#pragma once

#include <atomic>
#include <cstdint>

#include "common.hpp"

namespace kelp_bench {

// The shared game. Hops strictly alternate, so only one thread touches a side
// at a time; the atomics are there for the hand-over, not for contention.
struct Rally {
    long hops = 0;
    std::atomic<long> counter{0};
    std::atomic<bool> done{false};
    long handled[2] = {0, 0};  // written only by that side's thread

    // Called on side `side`'s thread. Returns true if the other side must be
    // woken (with the next hop, or to let it see `done` and leave).
    bool hit(int side) {
        ++handled[side];
        if (counter.fetch_add(1, std::memory_order_acq_rel) + 1 >= hops)
            done.store(true, std::memory_order_release);
        return true;
    }
    bool finished() const { return done.load(std::memory_order_acquire); }

    void check(const char* impl) const {
        const long count = counter.load();
        KB_CHECK(count == hops, "wakeup %s: counter %ld, expected %ld", impl, count, hops);
        KB_CHECK(handled[0] + handled[1] == hops && handled[0] - handled[1] >= 0 &&
                     handled[0] - handled[1] <= 1,
                 "wakeup %s: sides handled %ld and %ld hops", impl, handled[0], handled[1]);
    }
};

// Two threads with one epoll loop each pass the counter `hops` times; returns
// the elapsed ns after checking the counts.
std::int64_t libuv_rally(long hops);
std::int64_t libev_rally(long hops);
std::int64_t libevent_rally(long hops);
// evthread_use_pthreads: must run before the first libevent base of the
// cross-thread benchmark (and turns on locking for every later base).
void libevent_enable_threads();

}  // namespace kelp_bench
