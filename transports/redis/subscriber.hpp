// Subscriber: the transport's pub/sub connection, which tells consumers when
// a list they consume from may have received a message.
//
// Consumers pop with a Lua script (atomic pop + unacked record), and a script
// cannot block the way BRPOP does. So instead of a blocking pop, the command
// connection turns on Redis's client-side tracking in broadcast mode for the
// consumed queues' key prefixes (CLIENT TRACKING on REDIRECT <this
// connection> BCAST PREFIX ...): whoever pushes to such a key, Kombu
// included, makes Redis send this connection the key's name on
// __redis__:invalidate, at once. Kombu publishers need no change.
//
// It also carries Kombu-style fanout subscriptions (PSUBSCRIBE) when
// fanout_mode is pubsub, and answers the health-check PING.
//
// Thread rules: belongs to its transport's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "client.hpp"

namespace kelp::redis {

class Subscriber {
  public:
    // Keys Redis reported as changed; an empty list means "every key" (the
    // server flushed a db, or tracking was reset).
    using KeysChanged = std::function<void(const std::vector<std::string_view>& keys)>;
    // A message on a channel matched by one of our PSUBSCRIBE patterns (once
    // per matching pattern, as Redis sends it).
    using Message = std::function<void(std::string_view pattern, std::string_view channel,
                                       std::string_view payload)>;

    // Connects and subscribes to the invalidation channel before `deadline`.
    Subscriber(const Endpoint& endpoint, const Handshake& handshake, Clock::time_point deadline,
               KeysChanged on_keys, Message on_message);

    void attach(Hub* hub) { client_->attach(hub); }
    // The id the command connection names in CLIENT TRACKING ... REDIRECT.
    std::int64_t client_id() const { return client_id_; }

    // Subscribes to exactly these patterns (adding and dropping as needed);
    // returns once Redis confirmed, so nothing published afterwards is missed.
    void set_patterns(const std::set<std::string>& patterns, Clock::time_point deadline);

    // A PING through the subscription, so idle proxies keep the link; a
    // dead link shows up as a broken connection.
    void ping();

    void set_broken_handler(RespClient::BrokenHandler handler) {
        client_->set_broken_handler(std::move(handler));
    }
    bool broken() const { return client_->broken(); }
    void close() noexcept { client_->close(); }

  private:
    void on_push(ReplyView push);

    std::unique_ptr<RespClient> client_;
    std::int64_t client_id_ = 0;
    std::set<std::string> patterns_;
    KeysChanged on_keys_;
    Message on_message_;
};

// The smallest set of prefixes covering every key in `keys` such that no
// prefix is a prefix of another, which CLIENT TRACKING BCAST refuses.
std::vector<std::string> tracking_prefixes(std::vector<std::string> keys);

}  // namespace kelp::redis
