// The redis:// option table and the settings built from a URL.
#include "wire/options.hpp"

#include <algorithm>
#include <iterator>
#include <string_view>
#include <utility>

#include "kelp/errors.hpp"

namespace kelp::redis {
namespace {

using kelp::OptionSpec;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr std::uint16_t kDefaultPort = 6379;

const char* const kSslOptions[] = {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
                                   "ssl_check_hostname"};

// Every cross-check error has the shape of validate_options' own messages.
[[noreturn]] void fail(const kelp::Url& url, std::string_view option, std::string_view value,
                       std::string_view problem) {
    throw kelp::UrlError("option '" + std::string(option) + "' for redis:// has value '" +
                         std::string(value) + "': " + std::string(problem) +
                         " (URL: " + url.redacted() + ")");
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
        text.remove_suffix(1);
    return text;
}

// "0,3,6,9", or Python's "[0, 3, 6, 9]" as Celery's documentation writes it.
std::vector<int> parse_priority_steps(const kelp::Url& url, const std::string& text) {
    constexpr std::string_view kExpected =
        "; expected comma-separated priorities from 0 to 9 starting at 0, such as 0,3,6,9";
    std::string_view list = trim(text);
    if (list.size() >= 2 && ((list.front() == '[' && list.back() == ']') ||
                             (list.front() == '(' && list.back() == ')')))
        list = list.substr(1, list.size() - 2);
    std::vector<int> steps;
    while (!trim(list).empty()) {
        const std::size_t comma = list.find(',');
        const std::string_view item = trim(list.substr(0, comma));
        const auto value = kelp::parse_integer(item);
        if (!value || *value < 0 || *value > 9)
            fail(url, "priority_steps", text,
                 "'" + std::string(item) + "' is not a priority step" + std::string(kExpected));
        steps.push_back(static_cast<int>(*value));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
        if (trim(list).empty())
            fail(url, "priority_steps", text, "it ends with a comma" + std::string(kExpected));
    }
    if (const std::string problem = check_priority_steps(steps); !problem.empty())
        fail(url, "priority_steps", text, problem + std::string(kExpected));
    return steps;
}

// Kombu's fanout_prefix is True, False or a prefix string.
std::variant<bool, std::string> parse_fanout_prefix(const kelp::Url& url, const std::string& text) {
    if (text.empty()) return false;  // Python's "" is false, as Kombu reads it
    if (const auto flag = kelp::parse_bool(text)) return *flag;
    std::string without_db = text;
    for (std::size_t at = without_db.find("{db}"); at != std::string::npos;
         at = without_db.find("{db}", at))
        without_db.erase(at, 4);
    const bool shaped = text.front() == '/' && text.back() == '.' &&
                        std::count(text.begin(), text.end(), '.') == 1 &&
                        without_db.find_first_of("{}") == std::string::npos;
    if (!shaped)
        fail(url, "fanout_prefix", text,
             "a custom prefix must start with '/', end with its only '.', and use no field but "
             "{db}, since Kombu's receiver strips everything up to the first '.'; expected "
             "true, false or a prefix such as /{db}.app.");
    return text;
}

CertReqs parse_cert_reqs(const std::string& text) {
    if (text == "none" || text == "CERT_NONE") return CertReqs::none;
    if (text == "optional" || text == "CERT_OPTIONAL") return CertReqs::optional;
    return CertReqs::required;
}

std::optional<milliseconds> optional_duration(const kelp::Options& options, std::string_view name) {
    if (!options.has_value(name)) return std::nullopt;
    return duration_cast<milliseconds>(options.get_duration(name));
}

milliseconds duration(const kelp::Options& options, std::string_view name) {
    return duration_cast<milliseconds>(options.get_duration(name));
}

void read_endpoint(const kelp::Url& url, const kelp::Options& options, RedisSettings& s) {
    if (url.scheme == "sentinel")
        throw kelp::UrlError(
            "sentinel:// is not supported by kelp::redis yet; connect to the master with "
            "redis://host:port/db (URL: " +
            url.redacted() + ")");
    s.username = url.user;
    s.password = url.password;
    s.tls = url.tls();
    if (url.scheme == "redis+socket") {
        s.socket_path = url.path;
        s.host.clear();
        s.port = 0;
        s.db = options.get_int("db");
        return;
    }
    if (options.has("db"))
        fail(url, "db", std::to_string(options.get_int("db")),
             "the database of a " + url.scheme + ":// URL is its path; expected " + url.scheme +
                 "://host:port/" + std::to_string(options.get_int("db")));
    s.host = url.host_or("localhost");
    s.port = url.port_or(kDefaultPort);
    // The URL parser has checked the path is at most 9 digits.
    s.db = url.path.empty() ? 0 : std::stoll(url.path);
}

void read_tls(const kelp::Url& url, const kelp::Options& options, RedisSettings& s) {
    for (const char* name : kSslOptions)
        if (options.has(name) && !s.tls)
            throw kelp::UrlError("option '" + std::string(name) +
                                 "' for redis:// applies to TLS connections only; use a "
                                 "rediss:// URL, or remove the option (URL: " +
                                 url.redacted() + ")");
    s.ssl.ca_certs = options.get_string("ssl_ca_certs");
    s.ssl.certfile = options.get_string("ssl_certfile");
    s.ssl.keyfile = options.get_string("ssl_keyfile");
    s.ssl.cert_reqs = parse_cert_reqs(options.get_string("ssl_cert_reqs"));
    if (!s.ssl.keyfile.empty() && s.ssl.certfile.empty())
        fail(url, "ssl_keyfile", s.ssl.keyfile,
             "a client key needs its certificate; give ssl_certfile too");
    const bool hostname_given = options.has("ssl_check_hostname");
    const bool check_hostname = options.get_bool("ssl_check_hostname");
    if (s.ssl.cert_reqs == CertReqs::none && hostname_given && check_hostname)
        fail(url, "ssl_check_hostname", "true",
             "the host name cannot be checked when ssl_cert_reqs=none skips the certificate; "
             "drop one of the two");
    // Without a certificate check there is no name to check.
    s.ssl.check_hostname = s.ssl.cert_reqs == CertReqs::none ? false : check_hostname;
}

void read_wire(const kelp::Url& url, const kelp::Options& options, RedisSettings& s) {
    s.sep = options.get_string("sep");
    if (s.sep.empty())
        fail(url, "sep", s.sep,
             "the separator cannot be empty; expected the same sep as every other process, "
             "Kombu's default is %06%16 (bytes 0x06 0x16)");
    s.priority_steps = parse_priority_steps(url, options.get_string("priority_steps"));
    s.global_keyprefix = options.get_string("global_keyprefix");
    s.fanout_prefix = parse_fanout_prefix(url, options.get_string("fanout_prefix"));
    s.fanout_patterns = options.get_bool("fanout_patterns");
    s.unacked_key = options.get_string("unacked_key");
    s.unacked_index_key = options.get_string("unacked_index_key");
    s.unacked_mutex_key = options.get_string("unacked_mutex_key");
    const std::pair<const char*, const std::string*> keys[] = {
        {"unacked_key", &s.unacked_key},
        {"unacked_index_key", &s.unacked_index_key},
        {"unacked_mutex_key", &s.unacked_mutex_key}};
    for (std::size_t i = 0; i < std::size(keys); ++i) {
        if (keys[i].second->empty()) fail(url, keys[i].first, "", "a key name cannot be empty");
        for (std::size_t j = i + 1; j < std::size(keys); ++j) {
            if (*keys[i].second != *keys[j].second) continue;
            // Blame the option the URL gave, not the default it collides with.
            const auto& [blamed, other] = options.has(keys[j].first)
                                              ? std::pair(keys[j].first, keys[i].first)
                                              : std::pair(keys[i].first, keys[j].first);
            fail(url, blamed, *keys[i].second,
                 std::string("it is also ") + other +
                     "; the unacked hash, index and mutex need three different keys");
        }
    }
    s.body_encoding =
        options.get_string("body_encoding") == "none" ? BodyEncoding::none : BodyEncoding::base64;
}

void read_behaviour(const kelp::Url& url, const kelp::Options& options, RedisSettings& s) {
    s.ack_emulation = options.get_bool("ack_emulation");
    s.visibility_timeout = duration(options, "visibility_timeout");
    s.unacked_mutex_expire = duration(options, "unacked_mutex_expire");
    if (options.has_value("unacked_restore_limit"))
        s.unacked_restore_limit = options.get_int("unacked_restore_limit");
    const std::string& order = options.get_string("queue_order_strategy");
    s.queue_order_strategy = order == "priority" ? QueueOrderStrategy::priority
                             : order == "sorted" ? QueueOrderStrategy::sorted
                                                 : QueueOrderStrategy::round_robin;
    if (const std::string& dlq = options.get_string("deadletter_queue"); !dlq.empty())
        s.deadletter_queue = dlq;
    s.health_check_interval = duration(options, "health_check_interval");
    s.socket_timeout = optional_duration(options, "socket_timeout");
    s.socket_connect_timeout = optional_duration(options, "socket_connect_timeout");

    s.restore_interval = duration(options, "restore_interval");
    s.priority_order = options.get_string("priority_order") == "lower_first"
                           ? PriorityOrder::lower_first
                           : PriorityOrder::higher_first;
    s.reconnect.max_retries = static_cast<int>(options.get_int("max_retries"));
    s.reconnect.interval_start = duration(options, "interval_start");
    s.reconnect.interval_step = duration(options, "interval_step");
    s.reconnect.interval_max = duration(options, "interval_max");
    if (s.reconnect.interval_start > s.reconnect.interval_max)
        fail(url, "interval_start", std::to_string(s.reconnect.interval_start.count()) + "ms",
             "the first wait is longer than interval_max (" +
                 std::to_string(s.reconnect.interval_max.count()) +
                 "ms); raise interval_max or lower interval_start");
}

}  // namespace

std::string check_priority_steps(std::span<const int> steps) {
    if (steps.empty()) return "there are no steps";
    if (steps.front() != 0)
        return "the first step is " + std::to_string(steps.front()) +
               ", not 0 (Kombu would put lower priorities into the last bucket)";
    for (std::size_t i = 0; i < steps.size(); ++i) {
        if (steps[i] < 0 || steps[i] > 9)
            return "step " + std::to_string(steps[i]) + " is outside 0..9";
        if (i > 0 && steps[i] <= steps[i - 1])
            return "the steps are not in strictly increasing order (" +
                   std::to_string(steps[i - 1]) + " then " + std::to_string(steps[i]) + ")";
    }
    return {};
}

std::vector<kelp::OptionSpec> redis_option_specs() {
    return {
        // Kombu's options: names, defaults and meaning as in Kombu 5.2.4.
        OptionSpec::string("sep", "\x06\x16",
                           "separator in priority queue keys and binding members (%06%16)"),
        OptionSpec::string("priority_steps", "0,3,6,9",
                           "priority buckets: ascending steps from 0, each 0..9"),
        OptionSpec::string("global_keyprefix", "", "prefix for every key and fanout channel"),
        OptionSpec::string("fanout_prefix", "true",
                           "true: /{db}. before fanout channels; false: none; or a prefix"),
        OptionSpec::boolean("fanout_patterns", true,
                            "append /<routing_key> to fanout channels (topic-like fanout)"),
        OptionSpec::string("unacked_key", "unacked", "hash of unacked messages"),
        OptionSpec::string("unacked_index_key", "unacked_index",
                           "sorted set of unacked delivery times"),
        OptionSpec::string("unacked_mutex_key", "unacked_mutex", "lock of the restore sweep"),
        OptionSpec::enumeration("body_encoding", {"base64", "none"}, "base64",
                                "how bodies are written (reading takes both)"),
        OptionSpec::boolean("ack_emulation", true,
                            "record unacked messages in Redis, so a crashed consumer's come back"),
        OptionSpec::duration("visibility_timeout", "1h", "1s", "",
                             "age after which an unacked message is restored"),
        OptionSpec::duration("unacked_mutex_expire", "5min", "1s", "",
                             "lifetime of the restore sweep's lock"),
        OptionSpec::integer("unacked_restore_limit", "", "1", "",
                            "most messages restored per sweep; none: all"),
        OptionSpec::enumeration("queue_order_strategy", {"round_robin", "priority", "sorted"},
                                "round_robin", "order of queues in BRPOP"),
        OptionSpec::string("deadletter_queue", "",
                           "queue for unroutable and undecodable messages; none: drop"),
        OptionSpec::duration("health_check_interval", "25s", "0", "",
                             "PING an idle connection this often; 0: never"),
        OptionSpec::duration("socket_timeout", "", "1ms", "",
                             "longest wait for a reply; none: no limit"),
        OptionSpec::duration("socket_connect_timeout", "", "1ms", "",
                             "longest connect; none: the Connection's connect timeout"),
        OptionSpec::integer("max_retries", "-1", "-1", "",
                            "reconnect attempts after the link drops; -1: for ever"),
        OptionSpec::duration("interval_start", "0", "0", "", "wait before the first reconnect"),
        OptionSpec::duration("interval_step", "200ms", "0", "", "added to the wait each time"),
        OptionSpec::duration("interval_max", "1s", "0", "", "longest wait between reconnects"),
        OptionSpec::integer("db", "0", "0", "999999999",
                            "database number, for redis+socket:// only (others: the path)"),
        OptionSpec::string("ssl_ca_certs", "", "CA bundle (PEM) for rediss://; none: system's"),
        OptionSpec::string("ssl_certfile", "", "client certificate (PEM) for rediss://"),
        OptionSpec::string("ssl_keyfile", "", "client key (PEM) for rediss://"),
        OptionSpec::enumeration(
            "ssl_cert_reqs",
            {"required", "optional", "none", "CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE"},
            "required", "server certificate check for rediss://"),
        OptionSpec::boolean("ssl_check_hostname", true,
                            "check the server certificate names the host (rediss://)"),
        // kelp's own.
        OptionSpec::duration("restore_interval", "10s", "10ms", "",
                             "how often the unacked restore sweep runs"),
        OptionSpec::enumeration("priority_order", {"higher_first", "lower_first"}, "higher_first",
                                "bucket served first: higher_first (kelp) or lower_first (Kombu)"),
    };
}

RedisSettings redis_settings_from(const kelp::Url& url, const kelp::Options& options) {
    if (url.transport != "redis")
        throw kelp::UrlError("redis_settings_from needs a redis URL, not " + url.redacted());
    RedisSettings settings;
    read_endpoint(url, options, settings);
    read_tls(url, options, settings);
    read_wire(url, options, settings);
    read_behaviour(url, options, settings);
    return settings;
}

}  // namespace kelp::redis
