// (c) bench.c harness, shared by kelp's code in pipes.cpp and the anchors'
// code in anchor_*.cpp: each implementation wraps its loop in a Loop and
// forwards every read callback to Bench::on_read.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp_bench {

// Loop-internal fds (epoll fd, wake-up eventfd or pipe, ...) sit above the
// socket pairs' fds; this much headroom keeps select honest.
constexpr int kInternalFdHeadroom = 16;
// Beyond the socket pairs' 2N fds: stdio plus every live loop's own fds.
constexpr long kFdHeadroom = 64;

struct Bench {
    std::vector<FdPair> pairs;
    long active = 0;
    long writes = 0;
    // per run
    long count = 0;  // bytes read
    long fired = 0;  // bytes written (seeds included)
    long writes_left = 0;

    long size() const { return static_cast<long>(pairs.size()); }
    int read_fd(long i) const { return pairs[static_cast<std::size_t>(i)].read_end; }

    void on_read(long i) {
        read_byte(read_fd(i));
        ++count;
        if (writes_left > 0) {
            const long next = i + 1 == size() ? 0 : i + 1;
            write_byte(pairs[static_cast<std::size_t>(next)].write_end);
            --writes_left;
            ++fired;
        }
    }

    void seed() {
        count = 0;
        fired = 0;
        writes_left = writes;
        const long space = size() / active;
        for (long k = 0; k < active; ++k, ++fired)
            write_byte(pairs[static_cast<std::size_t>(k * space)].write_end);
    }

    int max_fd() const {
        int m = 0;
        for (const FdPair& p : pairs)
            m = std::max({m, p.read_end, p.write_end});
        return m;
    }
};

// The same four operations for every implementation; a virtual call per
// iteration is noise next to the poll syscall it wraps.
class Loop {
  public:
    virtual ~Loop() = default;
    virtual void register_all() = 0;
    virtual void reregister_all() = 0;  // remove and add every watcher again
    virtual void run_nonblocking() = 0;
};

// A loop on exactly `backend`, or nullptr with the reason in `why` when the
// library cannot provide it here (libuv has only epoll on Linux).
std::unique_ptr<Loop> make_libuv_loop(Bench& bench, const std::string& backend, std::string& why);
std::unique_ptr<Loop> make_libev_loop(Bench& bench, const std::string& backend, std::string& why);
std::unique_ptr<Loop> make_libevent_loop(Bench& bench, const std::string& backend,
                                         std::string& why);

}  // namespace kelp_bench
