// Helpers for the conformance suite: the transport URL under test, unique
// entity names, clean-up, visible capability skips and bounded draining.
//
// Every test runs against the one URL in $KELP_TEST_URL, so it must not
// assume anything a real broker would not give: names are unique per run,
// entities are deleted at the end, and "nothing more arrives" is proved with a
// sentinel message published after the ones under test wherever possible,
// rather than with a fixed wait.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include <kelp/kelp.hpp>

namespace conformance {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// $KELP_TEST_URL, or memory://conformance.
const std::string& test_url();

// The name of the running doctest test case (kept by a listener).
std::string current_test_name();

// "kconf-<stem>-<random hex>": only [a-z0-9-], which every broker accepts
// (Kafka topic names are the strictest).
std::string unique_name(std::string_view stem);

// Records a visible skip (a MESSAGE now and a line in the end-of-run summary).
void report_skip(std::string_view what);

// Skips the rest of the test, visibly, when the connection's transport lacks
// a capability (a field of kelp::Capabilities).
#define KELP_REQUIRE_CAPABILITY(conn, field)                                                  \
    do {                                                                                      \
        if (!(conn).capabilities().field) {                                                   \
            ::conformance::report_skip("transport '" + std::string((conn).transport_name()) + \
                                       "' lacks capability '" #field "'");                    \
            return;                                                                           \
        }                                                                                     \
    } while (false)

// Owns the queues and exchanges a test creates and deletes them at the end of
// the test, on a connection of its own (the test's may be closed by then).
class Scope {
  public:
    Scope() = default;
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

    // A fresh queue name, deleted at the end.
    std::string queue_name(std::string_view stem);
    // A fresh exchange name, deleted at the end.
    std::string exchange_name(std::string_view stem);
    // A queue on the default exchange, with a fresh name.
    kelp::Queue queue(std::string_view stem, kelp::QueueOptions options = {});

  private:
    std::vector<std::string> queues_;
    std::vector<std::string> exchanges_;
};

// Runs the connection's Hub until `done()` or until `budget` passes; returns
// done(). Timeouts of single drains are expected here and swallowed; anything
// else (a callback's exception) propagates.
bool drain_until(kelp::Connection& conn, const std::function<bool()>& done,
                 Clock::duration budget = 10s);

// Runs the Hub for `window`, delivering whatever comes. For the few checks
// that something does NOT arrive and no sentinel can prove it (prefetch).
void drain_for(kelp::Connection& conn, Clock::duration window);

// basic_get, retried until a message comes or `budget` passes: a broker may
// take a moment to make a just-published message visible.
std::optional<kelp::Message> get_within(kelp::Channel& channel, const std::string& queue,
                                        Clock::duration budget = 5s);

// An envelope as Producer would make it for raw bytes.
kelp::Envelope bytes_envelope(std::string body);

// The end marker of collect(): published to each queue (through the default
// exchange) after the messages under test.
inline constexpr std::string_view sentinel = "kconf-sentinel";

// Publishes the sentinel to every queue (on `publish_on`, which must be the
// channel the messages under test went through, since only one channel's
// publishes are ordered; default: the connection's default channel, which
// Producer uses), then consumes (and acks) every queue
// until its sentinel arrives. Returns the bodies received per queue, sentinel
// excluded, in arrival order. Since a queue is FIFO, every message published
// before the sentinel has been seen once the sentinel arrives. Fails the test
// if a sentinel does not arrive within `budget`.
std::map<std::string, std::vector<std::string>> collect(kelp::Connection& conn,
                                                        const std::vector<std::string>& queues,
                                                        kelp::Channel* publish_on = nullptr,
                                                        Clock::duration budget = 10s);

// Waits until a passive declare reports `count` messages (brokers that
// publish asynchronously need a moment); returns the last count seen.
std::uint64_t wait_for_count(kelp::Channel& channel, const kelp::Queue& queue, std::uint64_t count,
                             Clock::duration budget = 5s);

// The message of an exception_ptr, for failure output.
std::string describe(std::exception_ptr error);

}  // namespace conformance
