// Helpers for the interop tests: kelp against Python Kombu 5.2.4 and Celery
// 5.2.6 (Debian's python3-kombu and python3-celery, run by /usr/bin/python3)
// on the test redis-server (fixture redis_server, tests/support).
//
// Every test works in its own Redis database (interop_db), which it empties
// first, so it meets neither the other suites nor a previous test's leftovers.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kelp/kelp.hpp>

struct redisContext;  // hiredis

namespace interop {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The database the interop tests use; no other suite touches it.
inline constexpr int interop_db = 11;

// Debian's interpreter, where python3-kombu and python3-celery live (a
// pyenv python first on PATH has neither).
inline constexpr const char* python = "/usr/bin/python3";
// The Kombu peer (see its docstring), read from the source tree.
inline constexpr const char* kombu_peer = KELP_INTEROP_DIR "/kombu_peer.py";

// $KELP_TEST_REDIS_PORT, set by ctest from the redis_server fixture; throws
// when missing.
std::uint16_t redis_port();
// redis://127.0.0.1:<port>/<interop_db>[?<query>]: the same text is a kelp
// URL and a Kombu one (Kombu gets its options as transport_options).
std::string redis_url(std::string_view query = {});

// $KELP_TEST_AMQP_PORT, set by ctest from the rabbitmq_server fixture;
// throws when missing.
std::uint16_t amqp_port();
// amqp://guest:guest@127.0.0.1:<port>//[?<query>]: a kelp URL and a Kombu
// (py-amqp) one without the query.
std::string amqp_url(std::string_view query = {});

// A scratch directory, removed with everything in it.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::filesystem::path file(std::string_view name) const { return path_ / name; }
    void write(std::string_view name, std::string_view data) const;
    std::string read(std::string_view name) const;

  private:
    std::filesystem::path path_;
};

// A plain synchronous connection to the test server (hiredis), to look at
// Redis directly instead of through the code under test.
class RedisProbe {
  public:
    RedisProbe();  // connects and selects interop_db
    ~RedisProbe();
    RedisProbe(const RedisProbe&) = delete;
    RedisProbe& operator=(const RedisProbe&) = delete;

    // One command; the reply as Json (string, integer, array, null). An
    // error reply throws kelp::Error.
    kelp::Json command(const std::vector<std::string>& args);
    // Empties interop_db.
    void flush();

  private:
    redisContext* context_;
};

// A child process; its stdout comes back through a pipe, line by line, its
// stderr goes to a file (shown when a test fails). Killed and reaped by the
// destructor if still running.
class Child {
  public:
    // Runs argv[0] (a path) with the environment plus `extra_env`.
    Child(const std::vector<std::string>& argv, const std::filesystem::path& stderr_file,
          const std::vector<std::string>& extra_env = {},
          const std::filesystem::path& working_dir = {});
    // Runs `body` in a forked copy of this process, writing to `out` (its
    // stdout pipe); the child exits 0 when `body` returns, 1 when it throws.
    explicit Child(const std::function<void(int out)>& body);
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    // The next line of stdout (without the newline); nullopt on timeout or
    // end of output.
    std::optional<std::string> read_line(Clock::duration timeout);
    // Everything left on stdout until the child closes it.
    std::string read_rest(Clock::duration timeout);
    void kill(int signal);
    // The exit status (as waitpid's), or nullopt when still running after
    // `timeout`.
    std::optional<int> wait(Clock::duration timeout);

  private:
    int pid_ = -1;
    int out_ = -1;
    std::string buffer_;
    bool reaped_ = false;
};

// "exited with 3" / "killed by signal 9".
std::string describe_status(int status);

// --- kombu_peer.py ---------------------------------------------------------------------

// Runs `kombu_peer.py publish` on the spec and requires success.
void kombu_publish(const kelp::Json& spec);

// `kombu_peer.py consume`, started in the background: Kombu consumes the
// spec's queues; ready() once its subscriptions are in place.
class KombuConsumer {
  public:
    explicit KombuConsumer(const kelp::Json& spec);
    // Waits for "ready" (fanout subscriptions in place); false on failure.
    bool ready(Clock::duration timeout = 15s);
    // Waits for the script to finish; the messages Kombu received, in order
    // (see report_of in kombu_peer.py). Fails the test, with the script's
    // stderr, when it did not finish well.
    kelp::Json report(Clock::duration timeout = 30s);

  private:
    TempDir dir_;
    std::optional<Child> child_;
};

// Consumes the spec's messages with Kombu in one go (KombuConsumer, then
// report()).
kelp::Json kombu_consume(const kelp::Json& spec);

// --- kelp's side ---------------------------------------------------------------------------

// A message a kelp consumer received, copied out of the callback.
struct Received {
    std::string queue;
    kelp::Envelope envelope;
    kelp::Json payload;  // Message::payload(): decompressed and decoded
    std::string exchange;
    std::string routing_key;
    bool redelivered = false;
};

// A kelp consumer of `queues` that keeps (and acks) what it receives. It
// consumes from construction on, so a Kombu publisher can follow at once
// (fanout messages reach only consumers already subscribed).
class KelpConsumer {
  public:
    KelpConsumer(kelp::Connection& connection, std::vector<kelp::Queue> queues,
                 kelp::ConsumerOptions options = {});
    KelpConsumer(const KelpConsumer&) = delete;
    KelpConsumer& operator=(const KelpConsumer&) = delete;

    // Drains until `count` messages came in all or `timeout` passed, then
    // for `linger` more to catch any that should not come; everything
    // received so far, in order.
    const std::vector<Received>& collect(std::size_t count, Clock::duration timeout = 10s,
                                         Clock::duration linger = 0ms);

  private:
    void keep(kelp::Message& message, kelp::Json payload);
    void drain_until(Clock::time_point end, std::size_t count);

    kelp::Connection& connection_;
    std::vector<Received> received_;
    kelp::Consumer consumer_;
};

// An integer beyond 64 bits, which kelp::Json cannot hold, in a spec for
// kombu_peer.py: {"$int": "<digits>"}, which the script turns into a Python int.
kelp::Json big_int(std::string_view digits);

}  // namespace interop
