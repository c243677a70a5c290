// Transport: one broker connection's implementation behind a Connection, and
// the registry that maps URL schemes to transport modules.
//
// A transport module (kelp::memory, kelp::redis, ...) registers a factory for
// its schemes when it is linked; core never includes a transport. A program
// links only the modules it wants.
//
// Thread rules: a Transport belongs to its Connection's thread. The registry
// is safe to use from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kelp/channel.hpp"
#include "kelp/link_event.hpp"
#include "kelp/options.hpp"
#include "kelp/url.hpp"

namespace kelp {

class Hub;

// What a transport can do. A publish or declaration that needs a missing
// capability is an error (never silently ignored).
struct Capabilities {
    bool exchange_direct = true;
    bool exchange_topic = false;
    bool exchange_fanout = false;
    bool exchange_headers = false;
    bool priorities = false;
    bool message_ttl = false;  // per-message expiration and queue TTL
    bool max_length = false;
    bool dead_letter = false;
    bool per_message_requeue = true;  // reject(requeue) puts it back in place
    bool heartbeats = false;
    bool publisher_confirms = false;
    bool network = true;  // false for in-process brokers (no connect timeout)
    // The largest message the broker takes (body and headers, about); 0: no
    // limit kelp knows of. Kafka brokers refuse records above message.max.bytes.
    std::uint64_t max_message_bytes = 0;
    bool supports(ExchangeType type) const;
};

class Transport {
  public:
    using Clock = std::chrono::steady_clock;
    virtual ~Transport() = default;

    virtual std::string_view name() const = 0;
    virtual const Capabilities& capabilities() const = 0;

    // Connects before `deadline` or throws ConnectionError.
    virtual void connect(Clock::time_point deadline) = 0;
    virtual bool connected() const = 0;
    // Closes every channel (restoring their unacked messages) and the link.
    virtual void close() noexcept = 0;

    // Moves the transport's fds and timers onto `hub` (from the Hub it was
    // on before, if any). Called with the Connection's private Hub at first.
    virtual void register_with_event_loop(Hub& hub) = 0;

    virtual std::shared_ptr<Channel> create_channel() = 0;

    // Messages handed to consumers so far: drain_events returns once this
    // moves.
    virtual std::uint64_t deliveries() const = 0;

    // True when connect(), after the link dropped, brings the link back with
    // the transport's channels and consumers as they were (the Redis
    // transport, which also reconnects by itself on Hub timers). Connection
    // then reconnects such a transport in place instead of replacing it:
    // a new transport would have dropped every consumer made on the old one.
    virtual bool reconnects_in_place() const { return false; }
    // True while the link is down and the transport is bringing it back by
    // itself on Hub timers: drain_events then runs the Hub (which is what
    // reconnects it) instead of trying to connect and throwing.
    virtual bool reconnecting() const { return false; }

    // Where the transport reports its link dropping, coming back and being
    // given up (see link_event.hpp); without a handler, a line on stderr.
    void on_link_event(LinkEventHandler handler) { link_handler_ = std::move(handler); }

  protected:
    // Fills in the transport's name and calls the handler; an exception
    // from the handler propagates to the caller.
    void emit_link_event(LinkEvent event);

  private:
    LinkEventHandler link_handler_;
};

// How a Connection builds a transport for a URL.
struct TransportFactory {
    std::string module;        // "memory"
    std::string cmake_target;  // "kelp::memory"
    std::vector<std::string> schemes;
    std::vector<OptionSpec> options;  // the URL query options it accepts
    Capabilities capabilities;        // what every instance can do
    std::function<std::unique_ptr<Transport>(const Url&, const Options&)> create;
};

// Registers a factory for its schemes; returns true so it can initialise a
// static in the module's registration file.
bool register_transport(TransportFactory factory);

// The factory for a scheme. Throws TransportNotLinked naming the CMake target
// when the scheme is known but its module is not linked, UrlError when the
// scheme is unknown.
const TransportFactory& find_transport(std::string_view scheme);

// The schemes whose modules are linked into this program.
std::vector<std::string> linked_schemes();

}  // namespace kelp
