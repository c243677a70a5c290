// Shared helpers for the Hub benchmarks: clocks, fd set-up, option parsing,
// result rows and the kelp/fastest-anchor summary.
//
// Every benchmark runs kelp's Hub and the anchors (libuv, libev, libevent) in
// one process run, so ratios are taken within one run on one machine state;
// absolute figures on a shared VM drift by 10-30 % between runs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kelp/hub.hpp"

namespace kelp_bench {

// A Hub on a forced back end. Spelled out rather than designated-initialized:
// g++ 12 warns (-Wmissing-field-initializers) about the on_error left out.
inline kelp::HubOptions hub_options(std::string poller) {
    kelp::HubOptions options;
    options.poller = std::move(poller);
    return options;
}

// Back ends compared per library, best first (libuv has only epoll on Linux).
inline const std::vector<std::string> kBackends{"epoll", "poll", "select"};

// --- clocks ---------------------------------------------------------------
std::int64_t wall_ns();        // CLOCK_MONOTONIC
std::int64_t cpu_ns();         // CLOCK_PROCESS_CPUTIME_ID: all threads of this process
std::int64_t thread_cpu_ns();  // CLOCK_THREAD_CPUTIME_ID

// Wall and CPU time of one measured section. Where the section never blocks,
// the ratios use CPU time: on a VM shared with other work, time spent
// preempted lands in wall time only and says nothing about the loop.
struct Elapsed {
    std::int64_t wall_ns = 0;
    std::int64_t cpu_ns = 0;
};

class Stopwatch {
  public:
    Stopwatch() : wall_start_(wall_ns()), cpu_start_(thread_cpu_ns()) {}
    Elapsed elapsed() const { return {wall_ns() - wall_start_, thread_cpu_ns() - cpu_start_}; }

  private:
    std::int64_t wall_start_;
    std::int64_t cpu_start_;
};

// --- failures ---------------------------------------------------------------
// A count or invariant did not hold: print and exit nonzero at once, so a fast
// wrong answer can never end up in a results table.
[[noreturn]] void fail(const char* format, ...) __attribute__((format(printf, 1, 2)));
#define KB_CHECK(cond, ...)                           \
    do {                                              \
        if (!(cond)) ::kelp_bench::fail(__VA_ARGS__); \
    } while (0)

// --- fds ----------------------------------------------------------------------
struct FdPair {
    int read_end = -1;
    int write_end = -1;
};
FdPair make_pipe();        // non-blocking, close-on-exec
FdPair make_socketpair();  // AF_UNIX stream, non-blocking, close-on-exec
void close_pair(FdPair& pair);
// True if the fd has no byte left to read (the benchmark drained everything).
bool fd_is_empty(int fd);
void write_byte(int fd);
void read_byte(int fd);
// Raises RLIMIT_NOFILE (soft, and hard when allowed) to at least `wanted`.
// Returns the soft limit now in effect; when that is below `wanted`,
// `why_not` says why (and the soft limit was raised as far as allowed).
std::uint64_t raise_fd_limit(std::uint64_t wanted, std::string& why_not);

// --- options ------------------------------------------------------------------
struct Options {
    long rounds = 1'000'000;                      // (a) ping-pong round trips
    long timers = 1'000'000;                      // (b)
    long repeat = 3;                              // (b): child runs per implementation
    std::vector<long> pairs{100, 1'000, 10'000};  // (c) socket pair counts
    long active = 100;                            // (c) active pairs
    long writes = -1;                             // (c) forwarded writes; -1: = pairs
    long runs = 25;                               // (c)
    long wakeups = 200'000;                       // (d)
    long slices = 5;                              // (a), (d): interleaved slices
    // Run only these implementations, "impl" or "impl:backend" (e.g. "kelp:epoll"
    // under callgrind); empty: all.
    std::vector<std::string> only;

    bool wants(const std::string& impl, const std::string& backend = "epoll") const;
};

// Median of the values (0 if none): robust to the odd preempted run.
double median(std::vector<double> values);

// --- results ------------------------------------------------------------------
enum class Role { kelp, anchor, reference };

struct Row {
    std::string impl;
    std::string backend;
    Role role = Role::anchor;
    double value = 0;  // the figure the summary compares
};

// Prints "summary <label>: kelp/fastest-anchor = R" for the kelp row whose
// backend matches `kelp_backend` against the best anchor row (of
// `anchor_backend` only, when given). `lower_is_better`
// says which direction is "fastest"; the printed ratio is always
// kelp_time / anchor_time, so below 1 means kelp is faster.
void print_summary(const std::string& label, const std::vector<Row>& rows,
                   const std::string& kelp_backend, const char* unit, bool lower_is_better,
                   double goal, const std::string& anchor_backend = {});

std::string role_tag(Role role);

}  // namespace kelp_bench
