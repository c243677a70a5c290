// RedisSettings: everything a redis:// URL configures, typed and checked.
//
// Kombu's Redis transport options keep Kombu's names, defaults and meaning
// (sep, priority_steps, visibility_timeout, unacked_*, fanout_prefix, ...) so
// that a kelp process and a Kombu/Celery process given the same options share
// the same keys; kelp's own options (restore_interval, priority_order,
// reconnect policy, TLS) come after them. docs/transports/redis.md lists them
// all with their defaults.
//
//   kelp::Url url = kelp::Url::parse("redis://h/2?visibility_timeout=30m");
//   auto specs = kelp::redis::redis_option_specs();
//   kelp::Options options = kelp::validate_options(url, specs, "redis");
//   kelp::redis::RedisSettings settings = kelp::redis::redis_settings_from(url, options);
//
// Thread rules: plain value types and pure functions; safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "kelp/options.hpp"
#include "kelp/retry.hpp"
#include "kelp/url.hpp"
#include "wire/envelope.hpp"

namespace kelp::redis {

// The order in which BRPOP lists a queue's queues (Kombu's queue_order_strategy).
enum class QueueOrderStrategy : std::uint8_t {
    round_robin,  // the queue just served moves to the end: no queue starves
    priority,     // declaration order, fixed: the first busy queue starves the rest
    sorted,       // alphabetical, fixed
};

// Which priority bucket a consumer empties first.
enum class PriorityOrder : std::uint8_t {
    higher_first,  // kelp's convention, as AMQP: priority 9 before 0
    lower_first,   // Kombu's Redis order: priority 0 before 9 (what Celery workers do)
};

// How the server certificate is checked on rediss:// (Python's ssl.CERT_*).
enum class CertReqs : std::uint8_t { required, optional, none };

struct TlsSettings {
    std::string ca_certs;  // CA bundle (PEM); empty: the system's default store
    std::string certfile;  // client certificate (PEM), may hold the key too
    std::string keyfile;   // client key (PEM), when not in certfile
    CertReqs cert_reqs = CertReqs::required;
    bool check_hostname = true;
};

struct RedisSettings {
    // --- where to connect (from the URL) ---
    std::string host = "localhost";
    std::uint16_t port = 6379;
    std::string socket_path;  // redis+socket://; host and port unused then
    std::int64_t db = 0;      // the URL path (redis://h/3), or ?db= for redis+socket
    std::string username;     // Redis 6 ACL user; empty: AUTH with the password only
    std::string password;     // empty: no AUTH
    bool tls = false;         // rediss://
    TlsSettings ssl;          // meaningful with tls only

    // --- Kombu's options that shape the keys and the envelope ---
    std::string sep = "\x06\x16";
    std::vector<int> priority_steps{0, 3, 6, 9};  // ascending, from 0, each 0..9
    std::string global_keyprefix;
    // true: "/{db}." as Kombu; false: no prefix; a string: that prefix ("{db}"
    // in it is replaced by the db number, as Kombu's str.format does).
    std::variant<bool, std::string> fanout_prefix = true;
    bool fanout_patterns = true;
    std::string unacked_key = "unacked";
    std::string unacked_index_key = "unacked_index";
    std::string unacked_mutex_key = "unacked_mutex";
    BodyEncoding body_encoding = BodyEncoding::base64;

    // --- Kombu's options that shape behaviour ---
    bool ack_emulation = true;
    std::chrono::milliseconds visibility_timeout{std::chrono::hours(1)};
    std::chrono::milliseconds unacked_mutex_expire{std::chrono::minutes(5)};
    std::optional<std::int64_t> unacked_restore_limit;  // none: every expired tag
    QueueOrderStrategy queue_order_strategy = QueueOrderStrategy::round_robin;
    // Where a message goes when it cannot be delivered: an unroutable publish
    // (Kombu's meaning) and a message that cannot be decoded (kelp's, see
    // DESIGN §6). None: unroutable messages are dropped, undecodable ones
    // acked and reported.
    std::optional<std::string> deadletter_queue;
    std::chrono::milliseconds health_check_interval{std::chrono::seconds(25)};  // 0: off
    std::optional<std::chrono::milliseconds> socket_timeout;  // none: no limit per reply
    // None: the Connection's connect timeout applies.
    std::optional<std::chrono::milliseconds> socket_connect_timeout;

    // --- kelp's own ---
    // How often the visibility-timeout restore runs, on a Hub timer, busy or
    // idle (Kombu runs it only when a poll comes back empty).
    std::chrono::milliseconds restore_interval{std::chrono::seconds(10)};
    PriorityOrder priority_order = PriorityOrder::higher_first;
    // Reconnecting after the link drops (Kombu's max_retries, interval_start,
    // interval_step, interval_max); max_retries -1 retries for ever.
    kelp::RetryPolicy reconnect{.max_retries = -1};
};

// The query options redis:// URLs accept, for TransportFactory::options and
// validate_options.
std::vector<kelp::OptionSpec> redis_option_specs();

// Builds the settings from a URL and the options validate_options returned for
// it (with redis_option_specs()). Checks what one option cannot check alone
// (priority_steps in order, ssl_* only on rediss://, ...) and throws
// kelp::UrlError naming the option, its value and the expected form.
RedisSettings redis_settings_from(const kelp::Url& url, const kelp::Options& options);

// Why `steps` cannot be priority_steps, or "" when it can: they must be
// non-empty, strictly ascending, start at 0 (Kombu would put priorities below
// the first step into the last bucket) and lie in 0..9 (priorities are
// clamped to 0..9, so a higher step would never be used).
std::string check_priority_steps(std::span<const int> steps);

}  // namespace kelp::redis
