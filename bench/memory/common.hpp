// Shared pieces of bench_memory: options, clocks, the message body, the
// exactly-once tally and the result of one measured run.
//
// Every workload is publish + consume + ack of N messages of 100 bytes. Each
// body carries its sequence number, and every run checks that each number
// arrived exactly once: a fast wrong answer must never reach the table.
#pragma once

#include "support.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kelp_bench {

inline constexpr std::size_t body_size = 100;

struct Options {
    std::uint64_t messages = 1'000'000;
    std::uint64_t batch = 1'000;  // one-thread shape: publish this many, then drain
    std::uint64_t kombu_messages = 20'000;
    int repeat = 3;              // each measurement runs this often; the best counts
    std::string shapes = "all";  // all, one, two
    bool run_kelp = true;
    bool run_floor = true;
    bool run_kombu = true;
    std::string python;        // empty: /usr/bin/python3 if present, else python3
    std::string kombu_script;  // empty: the one next to the sources
    std::string kombu_api = "consumer";
};

// --- clocks ---------------------------------------------------------------------

// --- bodies and the tally ----------------------------------------------------------
// A 100-byte body whose first 8 bytes are the sequence number; the rest is
// filler. Rewritten in place, so making a body costs no allocation.
class Body {
  public:
    Body() : bytes_(body_size, 'k') {}
    const std::string& with_seq(std::uint64_t seq) {
        std::memcpy(bytes_.data(), &seq, sizeof seq);
        return bytes_;
    }

  private:
    std::string bytes_;
};

// Counts deliveries and remembers the first few problems (a callback must not
// throw through the transport, so errors are collected, not raised).
class Tally {
  public:
    explicit Tally(std::uint64_t total) : seen_(total, 0) {}

    void record(std::string_view body) {
        ++count_;
        if (body.size() != body_size) {
            error("a body of " + std::to_string(body.size()) + " bytes");
            return;
        }
        std::uint64_t seq = 0;
        std::memcpy(&seq, body.data(), sizeof seq);
        if (seq >= seen_.size()) {
            error("stray sequence number " + std::to_string(seq));
        } else if (seen_[seq] != 0) {
            error("message " + std::to_string(seq) + " consumed twice");
        } else {
            seen_[seq] = 1;
        }
    }
    std::uint64_t count() const { return count_; }
    // Empty when every message arrived exactly once.
    std::vector<std::string> verify() const;

  private:
    void error(std::string what) {
        if (errors_.size() < 10) errors_.push_back(std::move(what));
    }

    std::vector<std::uint8_t> seen_;
    std::uint64_t count_ = 0;
    std::vector<std::string> errors_;
};

// --- results -----------------------------------------------------------------------
struct Run {
    std::uint64_t messages = 0;
    std::int64_t wall_ns = 0;
    // One-thread shapes: that thread's CPU; two-thread shapes: the whole
    // process's (producer and consumer together).
    std::int64_t cpu_ns = 0;
    // Two threads, drain_events: the longest single call. Far above the
    // average means a call sat in its poll after delivering.
    std::int64_t longest_drain_ns = 0;

    double wall_rate() const { return wall_ns > 0 ? 1e9 * double(messages) / double(wall_ns) : 0; }
    double cpu_rate() const { return cpu_ns > 0 ? 1e9 * double(messages) / double(cpu_ns) : 0; }
};

// A failed count or invariant: print and exit nonzero at once.
[[noreturn]] void fail(const std::string& what);
// Exits nonzero unless the tally saw each of its messages exactly once.
void check_tally(const Tally& tally, const char* run_name);

// --- the workloads -----------------------------------------------------------------
// kelp over memory://: one thread (publish a batch, drain it), and two threads
// (a producer thread with its own Connection; the consumer on this thread,
// driven by drain_events or by a Hub).
Run kelp_one_thread(const Options& options, int round);
Run kelp_two_threads(const Options& options, int round, bool use_hub);

// The floor: 100-byte std::strings through a mutex-guarded std::deque.
// `swap`: the consumer takes the whole deque under one lock instead of one
// message per lock.
Run floor_one_thread(const Options& options, bool swap);
Run floor_two_threads(const Options& options, bool swap);

// Python Kombu's memory transport in a subprocess (kombu_memory.py).
struct KombuRun {
    bool available = false;
    std::string why_not;  // when not available
    std::string version;  // "kombu 5.2.4, Python 3.11.2"
    Run run;
};
KombuRun kombu_run(const Options& options, const char* shape);

}  // namespace kelp_bench
