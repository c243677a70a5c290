// Shared pieces of bench_redis: options, clocks, the message body, the
// exactly-once tally, subprocesses and the result of one measured run.
//
// Every kelp and Kombu run moves JSON bodies of 100 bytes through one queue
// on the redis-server run.sh started. Each body carries its sequence number,
// and every run checks that each number arrived exactly once: a fast wrong
// answer must never reach the table.
#pragma once

#include "support.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kelp_bench {

inline constexpr std::size_t body_size = 100;
inline constexpr std::uint32_t prefetch = 100;

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;                             // required: run.sh's redis-server
    std::uint64_t messages = 200'000;         // kelp publish and consume+ack
    std::uint64_t confirm_messages = 20'000;  // kelp publish waiting for each reply
    std::uint64_t kombu_messages = 5'000;
    std::uint64_t pipelined_requests = 1'000'000;  // redis-benchmark -P 16
    std::uint64_t single_requests = 50'000;        // redis-benchmark -c 1
    int repeat = 3;  // rounds; the best rate of each measurement counts
    bool run_kombu = true;
    bool run_ceilings = true;
    std::string python;        // empty: /usr/bin/python3 if present, else python3
    std::string kombu_script;  // empty: the one next to the sources
    std::string redis_benchmark = "redis-benchmark";
    std::string redis_cli = "redis-cli";

    // The bench server's URL, with `query` ("ack_emulation=false") if given.
    std::string url(const std::string& query = {}) const {
        return "redis://" + host + ":" + std::to_string(port) + "/0" +
               (query.empty() ? "" : "?" + query);
    }
};

// --- clocks ---------------------------------------------------------------------

// --- bodies and the tally ----------------------------------------------------------
// The body of message `seq`: JSON text padded to exactly body_size bytes, the
// same text kombu_redis.py publishes:
//   {"seq": 42, "task": "bench.process", "args": [1, 2, 3], "pad": "xxx..."}
class JsonBody {
  public:
    const std::string& with_seq(std::uint64_t seq);

  private:
    std::string text_;
};

// Counts deliveries by sequence number and remembers the first few problems
// (a callback must not throw through the transport, so errors are collected).
class Tally {
  public:
    explicit Tally(std::uint64_t total) : seen_(total, 0) {}

    void record(std::int64_t seq);
    std::uint64_t count() const { return count_; }
    bool complete() const { return count_ >= seen_.size(); }
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
    std::int64_t cpu_ns = 0;  // the client's (this process or the Kombu one); 0: not measured

    double wall_rate() const { return wall_ns > 0 ? 1e9 * double(messages) / double(wall_ns) : 0; }
};

// A failed count or invariant: print and exit nonzero at once.
[[noreturn]] void fail(const std::string& what);
// Exits nonzero unless the tally saw each of its messages exactly once.
void check_tally(const Tally& tally, const std::string& run_name);

// One redis-cli command on the bench server; its output without the newline.
// Fails the run when redis-cli does.
std::string redis_cli(const Options& options, const std::vector<std::string>& command);
std::uint64_t redis_cli_number(const Options& options, const std::vector<std::string>& command);

// --- the workloads -------------------------------------------------------------------
// kelp: Producer::publish of `options.messages` bodies to `queue`, pipelined,
// timed until every reply is in; the queue must then hold exactly that many.
// `batch` > 0: in a PublishBatch flushed every `batch` publishes.
Run kelp_publish(const Options& options, const std::string& queue, std::size_t batch = 0);
// kelp: one publish at a time, each waiting for its reply.
Run kelp_publish_confirmed(const Options& options, const std::string& queue);
// kelp: a Consumer with prefetch 100 acking each of the `count` messages a
// publish run left in `queue`, timed until every ack's reply is in; checks
// each message came once and nothing is left behind. `ack_emulation` off:
// no unacked records (Kombu's ack_emulation=False), to show what they cost.
Run kelp_consume(const Options& options, const std::string& queue, std::uint64_t count,
                 bool ack_emulation = true);

// Python Kombu's Redis transport in a subprocess (kombu_redis.py).
struct KombuRun {
    bool available = false;
    std::string why_not;  // when not available
    std::string version;  // "kombu 5.2.4, Python 3.11.2"
    Run run;
};
KombuRun kombu_run(const Options& options, const char* step, const std::string& queue);

// Raw hiredis, the publish loop's like-for-like: `count` LPUSHes of
// `value_size` bytes to `queue`, each written to the socket on its own (as
// a publish that leaves nothing waiting in the process must be), replies
// read every 1,024 commands, timed until the last reply is in.
Run hiredis_lpush_one_write_each(const Options& options, const std::string& queue,
                                 std::uint64_t count, std::size_t value_size);

// redis-benchmark on the same server: the ceilings.
struct Ceiling {
    std::string command_line;
    Run run;
};
Ceiling redis_benchmark(const Options& options, const char* test, std::uint64_t requests,
                        int clients, int pipeline, std::size_t value_size);

}  // namespace kelp_bench
