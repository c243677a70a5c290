// Shared pieces of bench_amqp: options, the message body, the exactly-once
// tally and the result of one measured run.
//
// Every run moves JSON bodies of 100 bytes (transient, content type
// application/json) through one non-durable queue on the rabbitmq-server
// run.sh started; every consume run checks each sequence number arrived once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support.hpp"

namespace kelp_bench {

inline constexpr std::size_t body_size = 100;
inline constexpr std::uint16_t prefetch = 100;
inline constexpr std::size_t confirm_window = 100;

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;                             // required: run.sh's rabbitmq-server
    std::uint64_t messages = 100'000;         // publish and consume+ack
    std::uint64_t confirm_messages = 50'000;  // publish with confirms, window 100
    std::uint64_t kombu_messages = 10'000;
    int repeat = 3;
    bool run_kombu = true;
    std::string python;
    std::string kombu_script;

    std::string url(const std::string& query = {}) const {
        return "amqp://guest:guest@" + host + ":" + std::to_string(port) + "//" +
               (query.empty() ? "" : "?" + query);
    }
};

// The body of message `seq`, padded to body_size bytes; kombu_amqp.py sends
// the same text.
class JsonBody {
  public:
    const std::string& with_seq(std::uint64_t seq);

  private:
    std::string text_;
};

// The sequence number at the front of a body; -1 when it is not one of ours.
std::int64_t seq_of(const char* data, std::size_t size);

class Tally {
  public:
    explicit Tally(std::uint64_t total) : seen_(total, 0) {}
    void record(std::int64_t seq);
    std::uint64_t count() const { return count_; }
    bool complete() const { return count_ >= seen_.size(); }
    std::vector<std::string> verify() const;

  private:
    std::vector<std::uint8_t> seen_;
    std::uint64_t count_ = 0;
    std::vector<std::string> errors_;
};

struct Run {
    std::uint64_t messages = 0;
    std::int64_t wall_ns = 0;
    std::int64_t cpu_ns = 0;
    // Publish without confirms: from the first publish until the queue held
    // every message (the loop's wall_ns ends with the last write, when up to
    // the socket buffers' worth may still be on the way). 0 otherwise.
    std::int64_t stored_ns = 0;
    double wall_rate() const { return wall_ns > 0 ? 1e9 * double(messages) / double(wall_ns) : 0; }
};

[[noreturn]] void fail(const std::string& what);
void check_tally(const Tally& tally, const std::string& run_name);

// kelp (kelp_runs.cpp): the public API as an application uses it.
Run kelp_publish(const Options& options, const std::string& queue, bool confirms);
Run kelp_consume(const Options& options, const std::string& queue, std::uint64_t count);

// The ceiling (raw_runs.cpp): rabbitmq-c used directly, the same work.
Run raw_publish(const Options& options, const std::string& queue, bool confirms);
Run raw_consume(const Options& options, const std::string& queue, std::uint64_t count);
// Messages in `queue` (passive declare, every 5 ms), waiting up to 30 s for
// `expected`.
std::uint64_t raw_queue_depth(const Options& options, const std::string& queue,
                              std::uint64_t expected);
void raw_queue_delete(const Options& options, const std::string& queue);

}  // namespace kelp_bench
