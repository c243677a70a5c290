// Typed transport options: each transport declares the query options its URLs
// accept as a table of `OptionSpec`s, and `validate_options` turns a Url's
// query into typed values with defaults applied. An unknown, repeated or
// ill-typed option is a `kelp::UrlError` naming it (with the closest known name
// for a typo), never silently ignored. See docs/urls.md.
//
// Thread rules: `OptionSpec` and `Options` are plain value types; the parse
// helpers are pure. Safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "kelp/url.hpp"

namespace kelp {

enum class OptionType {
    boolean,      // true/false, 1/0, yes/no, on/off (any case)
    integer,      // decimal, optional sign; bounded by min/max
    duration,     // "250ms", "2s", "1.5" (seconds, as Kombu's floats), "1m", "1h"
    string,       // taken as is
    enumeration,  // one of `allowed` (matched ignoring case, stored as spelled there)
    size,         // bytes: "1024", "8KiB", "1MB" (KB/MB/GB/TB are powers of 1000)
};

std::string_view to_string(OptionType type);

// One option a transport accepts. A name ending in '*' ("rdkafka.*") accepts
// every key with that prefix as a string; see `Options::prefixed`.
//
// Bounds and the default are written as a URL would write a value ("0", "1s",
// "1MiB"), so a table reads like the documentation. An empty `default_value`
// means "no default" for every type but string (whose default is then "").
// Every member has an initialiser so designated initialisers may skip any.
struct OptionSpec {
    std::string name{};
    OptionType type = OptionType::string;
    std::string min{};                   // inclusive; integer, duration, size; empty: none
    std::string max{};                   // inclusive; empty: none
    std::vector<std::string> allowed{};  // enumeration only
    std::string default_value{};
    std::string help{};

    static OptionSpec boolean(std::string name, bool default_value, std::string help);
    static OptionSpec integer(std::string name, std::string default_value, std::string min,
                              std::string max, std::string help);
    static OptionSpec duration(std::string name, std::string default_value, std::string min,
                               std::string max, std::string help);
    static OptionSpec string(std::string name, std::string default_value, std::string help);
    static OptionSpec enumeration(std::string name, std::vector<std::string> allowed,
                                  std::string default_value, std::string help);
    static OptionSpec size(std::string name, std::string default_value, std::string min,
                           std::string max, std::string help);
    static OptionSpec prefix(std::string name_with_star, std::string help);
};

// The validated options of one URL. Getters name options as the spec does;
// asking for an option the specs do not declare, with the wrong type, or that
// has no value (not given, no default) is a programming error and throws
// std::logic_error.
class Options {
  public:
    using Value = std::variant<std::monostate, bool, std::int64_t, std::chrono::nanoseconds,
                               std::string, std::uint64_t>;

    // Given explicitly in the URL.
    bool has(std::string_view name) const;
    // Given or defaulted.
    bool has_value(std::string_view name) const;

    bool get_bool(std::string_view name) const;
    std::int64_t get_int(std::string_view name) const;
    std::chrono::nanoseconds get_duration(std::string_view name) const;
    // For string and enumeration options.
    const std::string& get_string(std::string_view name) const;
    std::uint64_t get_size(std::string_view name) const;

    // The options given under a prefix spec, in URL order, with the prefix
    // removed: for "?rdkafka.linger.ms=5", prefixed("rdkafka.") is
    // {{"linger.ms", "5"}}.
    std::vector<std::pair<std::string, std::string>> prefixed(std::string_view prefix) const;

  private:
    friend Options validate_options(const Url&, std::span<const OptionSpec>, std::string_view);

    struct Entry {
        std::string name;
        OptionType type;
        Value value;
        bool given = false;
    };
    const Entry& entry(std::string_view name, OptionType wanted) const;

    std::vector<Entry> entries_;
    std::vector<std::pair<std::string, std::string>> prefixed_;
};

// Checks `url.query` against `specs` and returns the typed values. Throws
// UrlError for an unknown option (with the closest known name), a repeated one
// or an ill-typed or out-of-range value; `transport_name` ("redis") is used in
// those messages. A malformed spec table throws std::invalid_argument.
Options validate_options(const Url& url, std::span<const OptionSpec> specs,
                         std::string_view transport_name);

// The value parsers behind validate_options, for other places that read the
// same notations (command-line flags, environment variables). Each returns
// nullopt when the text does not parse.
std::optional<bool> parse_bool(std::string_view text);
std::optional<std::int64_t> parse_integer(std::string_view text);
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace kelp
