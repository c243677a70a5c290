// Url: a parsed broker URL (`scheme://user:pass@host:port/path?opt=v`) and the
// table of scheme names the transport registry resolves against.
//
// Parsing is strict where a mistake would otherwise be silent (unknown scheme,
// bad port, bad percent escape, unencoded '#') and every failure is a
// `kelp::UrlError` that quotes the input with its password masked. Defaults
// (host, port, vhost) are not baked in: each transport applies its own through
// `host_or`, `port_or` and `path_or`. See docs/urls.md for the grammar.
//
// Thread rules: `Url` is a plain value type; the free functions are pure and
// the scheme table is immutable, so all of it may be used from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kelp {

struct Url {
    // The scheme as written, lower-cased: "amqps", "redis+socket", ... Kept next
    // to `transport` so TLS and socket variants stay distinguishable.
    std::string scheme;
    // The canonical transport after aliases: "amqp", "redis", "kafka", "memory".
    std::string transport;
    // Percent-decoded; empty means "not given" (as in Kombu).
    std::string user;
    std::string password;
    // Percent-decoded, case kept; an IPv6 literal without its brackets. For
    // memory:// it is the broker name.
    std::string host;
    std::optional<std::uint16_t> port;
    // Percent-decoded text after the '/' that ends the authority (that '/' is
    // not part of it): the vhost for amqp, the db number for redis. For
    // redis+socket it is the absolute socket path, leading '/' included.
    std::string path;
    // Percent-decoded, in URL order, duplicates kept ('+' stays a '+').
    std::vector<std::pair<std::string, std::string>> query;

    // Throws UrlError naming what is wrong and the expected form.
    static Url parse(std::string_view text);

    // True for the schemes that mean TLS: amqps, rediss.
    bool tls() const;

    std::string host_or(std::string_view default_host) const;
    std::uint16_t port_or(std::uint16_t default_port) const;
    std::string path_or(std::string_view default_path) const;

    // The value of the last query pair named `key`, if any.
    std::optional<std::string> query_value(std::string_view key) const;

    // A normalised URL that parses back to an equal Url.
    std::string to_string() const;
    // As to_string, with the password and secret-looking query values (keys
    // containing "password", "secret" or "token") replaced by "**": for logs.
    std::string redacted() const;

    friend bool operator==(const Url&, const Url&) = default;
};

// Splits a ';'-separated failover list ("redis://a;redis://b"), trimming
// spaces. Empty entries and lists that mix transports are UrlErrors.
std::vector<Url> parse_url_list(std::string_view text);

// Masks the password (and secret-looking query values) of a URL that may not
// parse; for quoting user input in error messages and logs.
std::string redact_url_text(std::string_view text);

struct SchemeInfo {
    std::string_view scheme;     // as written in URLs, lower case
    std::string_view transport;  // canonical transport name
    bool tls;
};

// Every scheme kelp knows, aliases included, in documentation order.
std::span<const SchemeInfo> known_schemes();

// The canonical transport for a scheme (case-insensitive), if known.
std::optional<std::string_view> canonical_transport(std::string_view scheme);

struct TransportModule {
    std::string_view module;        // "redis"
    std::string_view cmake_target;  // "kelp::redis"
    std::string_view cmake_option;  // "KELP_WITH_REDIS"; empty when always built
};

// Which module implements a scheme, so the registry can name the CMake target a
// program must link. Only a name table: core links no transport.
std::optional<TransportModule> transport_module_for(std::string_view scheme);

// The message for TransportNotLinked: names the scheme, the target to link and
// the CMake option to turn on.
std::string transport_not_linked_message(std::string_view scheme);

// The candidate nearest to `word` by edit distance (adjacent transpositions
// count as one edit, case ignored), if it is near enough to be a likely typo.
std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates);

}  // namespace kelp
