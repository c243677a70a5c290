// AmqpSettings: an amqp:// URL and its query options, typed and checked.
//
// Kombu's rules for the URL: `amqp://user:pass@host:port/vhost`, where an
// empty path or "/" is the vhost "/" and "/foo" is "foo" (so "//" is "/").
// Defaults as py-amqp's: guest/guest, localhost, 5672 (5671 for amqps).
//
// Thread rules: plain values; the functions are pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "kelp/options.hpp"
#include "kelp/retry.hpp"
#include "kelp/url.hpp"

namespace kelp::amqp {

struct AmqpTls {
    std::string ca_certs;  // PEM bundle; empty: the system's
    std::string certfile;  // client certificate (PEM)
    std::string keyfile;   // its key
    bool verify_peer = true;
    bool verify_hostname = true;
};

struct AmqpSettings {
    std::string host = "localhost";
    std::uint16_t port = 5672;
    std::string vhost = "/";
    std::string user = "guest";
    std::string password = "guest";
    bool tls = false;
    AmqpTls ssl;
    std::chrono::milliseconds connect_timeout{5000};
    // 0: no heartbeats. Whole seconds on the wire.
    std::chrono::seconds heartbeat{60};
    std::uint32_t frame_max = 131072;
    std::uint16_t channel_max = 2047;
    // A publish waits for the broker's confirm (window 1) or goes on while
    // fewer than `confirm_window` are unconfirmed.
    bool confirm_publish = false;
    std::uint32_t confirm_window = 1;
    // Unconfirmed publishes are sent again after a reconnection.
    bool republish_unconfirmed = true;
    // How long a synchronous method (declare, get, consume, ...) waits.
    std::chrono::milliseconds rpc_timeout{30000};
    // Reconnecting after the link dropped (on Hub timers).
    RetryPolicy reconnect{.max_retries = -1};
    std::string client_name = "kelp";

    // "host:port/vhost" for messages (no credentials).
    std::string describe() const;
};

std::vector<OptionSpec> amqp_option_specs();
// Throws UrlError naming the option or part of the URL that is wrong.
AmqpSettings amqp_settings_from(const Url& url, const Options& options);

}  // namespace kelp::amqp
