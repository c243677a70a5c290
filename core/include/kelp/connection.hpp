// Connection: the entry point. A URL (or a `;`-separated failover list)
// chooses the transport; the connection is made lazily on first use.
//
//   kelp::Connection conn{"memory://"};
//   kelp::Producer producer{conn};
//   ...
//   conn.drain_events(1s);
//
// Consumption runs on a Hub: the Connection's private one for drain_events,
// or the application's after register_with_event_loop(hub).
//
// Thread rules: a Connection and everything made from it (channels,
// producers, consumers, messages) belong to one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "kelp/channel.hpp"
#include "kelp/link_event.hpp"
#include "kelp/retry.hpp"
#include "kelp/transport.hpp"
#include "kelp/url.hpp"

namespace kelp {

class Hub;

struct ConnectionOptions {
    // Per-attempt connect timeout.
    std::chrono::milliseconds connect_timeout{5000};
    // Used by connect() and ensure_connection() when none is given.
    RetryPolicy retry{};
};

class Connection {
  public:
    using Clock = std::chrono::steady_clock;

    // Parses and validates the URL(s) and options at once (UrlError,
    // TransportNotLinked); connects later, on first use.
    explicit Connection(std::string_view url, ConnectionOptions options = {});
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Connects with the default policy if not connected.
    void connect();
    // Connects, retrying per `policy` and failing over to the next URL in
    // turn; throws the last ConnectionError when the policy is exhausted.
    void ensure_connection(const RetryPolicy& policy);
    bool connected() const;
    // Closes channels (their unacked messages return to the queues) and the
    // link. The Connection can connect again afterwards.
    void close();

    // Where the transport reports its link dropping, coming back by itself
    // and being given up (see link_event.hpp). Without a handler each event
    // is one line on stderr. Kept across reconnections and failover.
    void on_link_event(LinkEventHandler handler);

    // Runs `operation`; on ConnectionError reconnects per `policy` and runs it
    // again.
    void ensure(const std::function<void()>& operation, const RetryPolicy& policy);

    std::shared_ptr<Channel> channel();
    // One shared channel for producers and consumers made without their own.
    Channel& default_channel();

    // Runs the Hub until at least one message was delivered to a consumer
    // callback, or `timeout` passes (TimeoutError). No timeout waits forever.
    // An exception thrown by a consumer callback propagates from here. While
    // the transport reconnects by itself, this runs its Hub timers and does
    // not throw for the dropped link (see on_link_event).
    void drain_events(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

    // Moves the transport onto `hub`; consumption then runs in hub.run_*().
    void register_with_event_loop(Hub& hub);
    Hub& hub();

    // Declares `queue` (its exchange and bindings too) unless this exact
    // definition was declared on this connection before.
    bool maybe_declare(const Queue& queue);
    bool maybe_declare(const Exchange& exchange);

    const Url& url() const;  // the URL in use (or the first one)
    const std::vector<Url>& urls() const { return urls_; }
    std::string_view transport_name() const;
    const Capabilities& capabilities() const;
    Transport& transport();

  private:
    Transport& connected_transport();
    // One try at one URL; the connect timeout is cut short by `deadline`.
    void connect_once(std::size_t url_index, Clock::time_point deadline);
    // One try at the current URL; on failure the next try goes to the next.
    void connect_or_fail_over(Clock::time_point deadline);
    void drop_transport() noexcept;

    std::vector<Url> urls_;
    std::vector<const TransportFactory*> factories_;
    std::vector<Options> options_;
    ConnectionOptions connection_options_;
    std::size_t current_ = 0;
    std::size_t transport_index_ = 0;  // the URL transport_ was made for
    std::unique_ptr<Hub> private_hub_;
    Hub* hub_ = nullptr;
    std::unique_ptr<Transport> transport_;
    std::shared_ptr<Channel> default_channel_;
    std::unordered_set<std::string> declared_;
    LinkEventHandler link_handler_;
};

}  // namespace kelp
