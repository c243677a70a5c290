#include "kelp/options.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <stdexcept>

#include "ascii.hpp"
#include "kelp/errors.hpp"

namespace kelp {

namespace {

using ascii::is_digit;
using ascii::lower;
using ascii::to_lower;

// Exact arithmetic for "1.5GiB" and "0.1h": a fraction of up to 18 digits times
// a unit of up to 2^40 does not fit 64 bits. __extension__ keeps -Wpedantic quiet.
__extension__ typedef unsigned __int128 Wide;

bool looks_secret(std::string_view key) {
    const std::string k = to_lower(key);
    return k.find("password") != std::string::npos || k.find("passwd") != std::string::npos ||
           k.find("secret") != std::string::npos || k.find("token") != std::string::npos;
}

bool is_prefix_spec(const OptionSpec& spec) {
    return !spec.name.empty() && spec.name.back() == '*';
}

std::string_view spec_prefix(const OptionSpec& spec) {
    return std::string_view(spec.name).substr(0, spec.name.size() - 1);
}

// A decimal number with an optional fraction and a unit suffix, as in "1.5s"
// or "8 KiB". Signs are not accepted: no duration or size is negative.
struct Quantity {
    std::uint64_t whole = 0;
    std::uint64_t fraction = 0;        // the digits after '.', as an integer
    std::uint64_t fraction_scale = 1;  // 10^(number of those digits)
    std::string unit;                  // lower-cased, may be empty
};

std::optional<Quantity> parse_quantity(std::string_view text) {
    Quantity q;
    std::size_t i = 0;
    const std::size_t whole_start = i;
    while (i < text.size() && is_digit(text[i]))
        ++i;
    const std::string_view whole_digits = text.substr(whole_start, i - whole_start);
    std::string_view fraction_digits;
    if (i < text.size() && text[i] == '.') {
        const std::size_t start = ++i;
        while (i < text.size() && is_digit(text[i]))
            ++i;
        fraction_digits = text.substr(start, i - start);
    }
    if (whole_digits.empty() && fraction_digits.empty()) return std::nullopt;
    if (!whole_digits.empty()) {
        const auto [end, ec] = std::from_chars(whole_digits.data(),
                                               whole_digits.data() + whole_digits.size(), q.whole);
        if (ec != std::errc{} || end != whole_digits.data() + whole_digits.size())
            return std::nullopt;
    }
    // Digits past the 18th are below any unit's resolution here: dropped.
    for (std::size_t k = 0; k < fraction_digits.size() && k < 18; ++k) {
        q.fraction = q.fraction * 10 + static_cast<std::uint64_t>(fraction_digits[k] - '0');
        q.fraction_scale *= 10;
    }
    while (i < text.size() && text[i] == ' ')
        ++i;
    q.unit = to_lower(text.substr(i));
    return q;
}

// whole*unit + fraction*unit/scale, truncated; nullopt past `limit`.
std::optional<std::uint64_t> scale_quantity(const Quantity& q, std::uint64_t unit,
                                            std::uint64_t limit) {
    const Wide total =
        static_cast<Wide>(q.whole) * unit + static_cast<Wide>(q.fraction) * unit / q.fraction_scale;
    if (total > limit) return std::nullopt;
    return static_cast<std::uint64_t>(total);
}

std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
        if (!out.empty()) out += ", ";
        out += n;
    }
    return out;
}

std::string describe_type(const OptionSpec& spec) {
    switch (spec.type) {
        case OptionType::boolean:
            return "a boolean: true/false, 1/0, yes/no or on/off";
        case OptionType::integer:
            return "an integer";
        case OptionType::duration:
            return "a duration such as 250ms, 2s, 1.5 (seconds) or 1m (units ns, us, ms, s, m, "
                   "h)";
        case OptionType::string:
            return "a string";
        case OptionType::enumeration:
            return "one of: " + join_names(spec.allowed);
        case OptionType::size:
            return "a size in bytes such as 1024, 8KiB or 1MB (units B, KB, MB, GB, TB, KiB, MiB, "
                   "GiB, TiB)";
    }
    return "a value";
}

std::string describe_range(const OptionSpec& spec) {
    // The duration and size descriptions end in a parenthesis: a comma reads better.
    const std::string lead = spec.type == OptionType::integer ? " " : ", ";
    if (!spec.min.empty() && !spec.max.empty())
        return lead + "from " + spec.min + " to " + spec.max;
    if (!spec.min.empty()) return lead + "of at least " + spec.min;
    if (!spec.max.empty()) return lead + "of at most " + spec.max;
    return "";
}

template <typename T>
bool within(const OptionSpec& spec, T value, std::optional<T> (*parse)(std::string_view)) {
    if (!spec.min.empty() && value < *parse(spec.min)) return false;
    if (!spec.max.empty() && value > *parse(spec.max)) return false;
    return true;
}

// Parses `text` as `spec` says: monostate for a malformed value, and
// `in_range` false when it parses but breaks a bound.
Options::Value parse_typed(const OptionSpec& spec, std::string_view text, bool& in_range) {
    in_range = true;
    switch (spec.type) {
        case OptionType::boolean:
            if (auto b = parse_bool(text)) return *b;
            return std::monostate{};
        case OptionType::integer:
            if (auto v = parse_integer(text)) {
                in_range = within<std::int64_t>(spec, *v, &parse_integer);
                return *v;
            }
            return std::monostate{};
        case OptionType::duration:
            if (auto v = parse_duration(text)) {
                in_range = within<std::chrono::nanoseconds>(spec, *v, &parse_duration);
                return *v;
            }
            return std::monostate{};
        case OptionType::size:
            if (auto v = parse_size(text)) {
                in_range = within<std::uint64_t>(spec, *v, &parse_size);
                return *v;
            }
            return std::monostate{};
        case OptionType::string:
            return std::string(text);
        case OptionType::enumeration:
            for (const auto& allowed : spec.allowed)
                if (to_lower(allowed) == to_lower(text)) return allowed;
            return std::monostate{};
    }
    return std::monostate{};
}

bool parses_as(const OptionSpec& spec, const std::string& text) {
    switch (spec.type) {
        case OptionType::integer:
            return parse_integer(text).has_value();
        case OptionType::duration:
            return parse_duration(text).has_value();
        case OptionType::size:
            return parse_size(text).has_value();
        default:
            return false;
    }
}

// A broken table is the transport author's bug: say so before any URL is
// blamed for it.
void check_specs(std::span<const OptionSpec> specs, std::string_view transport_name) {
    const std::string where = "option table of " + std::string(transport_name) + "://: ";
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const OptionSpec& spec = specs[i];
        if (spec.name.empty() || spec.name == "*")
            throw std::invalid_argument(where + "an option has no name");
        if (spec.name.find('*') != std::string::npos && !is_prefix_spec(spec))
            throw std::invalid_argument(where + "'" + spec.name + "': '*' may only end a name");
        if (is_prefix_spec(spec) && spec.type != OptionType::string)
            throw std::invalid_argument(where + "'" + spec.name + "': prefix options are strings");
        for (std::size_t j = 0; j < i; ++j)
            if (specs[j].name == spec.name)
                throw std::invalid_argument(where + "'" + spec.name + "' is declared twice");
        const bool bounded = spec.type == OptionType::integer ||
                             spec.type == OptionType::duration || spec.type == OptionType::size;
        if (!bounded && (!spec.min.empty() || !spec.max.empty()))
            throw std::invalid_argument(where + "'" + spec.name +
                                        "': only integer, duration and "
                                        "size options take bounds");
        for (const std::string* bound : {&spec.min, &spec.max})
            if (!bound->empty() && !parses_as(spec, *bound))
                throw std::invalid_argument(where + "'" + spec.name + "': bound '" + *bound +
                                            "' is not " + describe_type(spec));
        if (spec.type == OptionType::enumeration && spec.allowed.empty())
            throw std::invalid_argument(where + "'" + spec.name + "' allows no value");
        if (!spec.default_value.empty()) {
            bool in_range = true;
            if (std::holds_alternative<std::monostate>(
                    parse_typed(spec, spec.default_value, in_range)) ||
                !in_range)
                throw std::invalid_argument(where + "'" + spec.name + "': default '" +
                                            spec.default_value + "' is not " + describe_type(spec) +
                                            describe_range(spec));
        }
    }
}

}  // namespace

std::string_view to_string(OptionType type) {
    switch (type) {
        case OptionType::boolean:
            return "boolean";
        case OptionType::integer:
            return "integer";
        case OptionType::duration:
            return "duration";
        case OptionType::string:
            return "string";
        case OptionType::enumeration:
            return "enumeration";
        case OptionType::size:
            return "size";
    }
    return "unknown";
}

OptionSpec OptionSpec::boolean(std::string name, bool default_value, std::string help) {
    return {std::move(name), OptionType::boolean, {}, {}, {}, default_value ? "true" : "false",
            std::move(help)};
}

OptionSpec OptionSpec::integer(std::string name, std::string default_value, std::string min,
                               std::string max, std::string help) {
    return {std::move(name),          OptionType::integer, std::move(min), std::move(max), {},
            std::move(default_value), std::move(help)};
}

OptionSpec OptionSpec::duration(std::string name, std::string default_value, std::string min,
                                std::string max, std::string help) {
    return {std::move(name),          OptionType::duration, std::move(min), std::move(max), {},
            std::move(default_value), std::move(help)};
}

OptionSpec OptionSpec::string(std::string name, std::string default_value, std::string help) {
    return {std::move(name),          OptionType::string, {}, {}, {},
            std::move(default_value), std::move(help)};
}

OptionSpec OptionSpec::enumeration(std::string name, std::vector<std::string> allowed,
                                   std::string default_value, std::string help) {
    return {std::move(name),          OptionType::enumeration, {}, {}, std::move(allowed),
            std::move(default_value), std::move(help)};
}

OptionSpec OptionSpec::size(std::string name, std::string default_value, std::string min,
                            std::string max, std::string help) {
    return {std::move(name),          OptionType::size, std::move(min), std::move(max), {},
            std::move(default_value), std::move(help)};
}

OptionSpec OptionSpec::prefix(std::string name_with_star, std::string help) {
    return {std::move(name_with_star), OptionType::string, {}, {}, {}, {}, std::move(help)};
}

std::optional<bool> parse_bool(std::string_view text) {
    const std::string t = to_lower(text);
    if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
    if (t == "false" || t == "0" || t == "no" || t == "off") return false;
    return std::nullopt;
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
    // from_chars takes '-' but not '+'; URLs from templates do write "+5".
    if (text.size() > 1 && text.front() == '+' && text[1] != '-') text.remove_prefix(1);
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    const auto q = parse_quantity(text);
    if (!q) return std::nullopt;
    std::uint64_t unit = 0;
    // A bare number is seconds, like Kombu's float-second options.
    if (q->unit.empty() || q->unit == "s" || q->unit == "sec")
        unit = 1'000'000'000;
    else if (q->unit == "ms")
        unit = 1'000'000;
    else if (q->unit == "us")
        unit = 1'000;
    else if (q->unit == "ns")
        unit = 1;
    else if (q->unit == "m" || q->unit == "min")
        unit = 60'000'000'000;
    else if (q->unit == "h")
        unit = 3'600'000'000'000;
    else
        return std::nullopt;
    const auto ns = scale_quantity(
        *q, unit, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    if (!ns) return std::nullopt;
    return std::chrono::nanoseconds(static_cast<std::int64_t>(*ns));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    const auto q = parse_quantity(text);
    if (!q) return std::nullopt;
    struct Unit {
        std::string_view name;
        std::uint64_t bytes;
    };
    static constexpr Unit kUnits[] = {
        {"", 1},
        {"b", 1},
        {"kb", 1'000},
        {"mb", 1'000'000},
        {"gb", 1'000'000'000},
        {"tb", 1'000'000'000'000},
        {"kib", std::uint64_t{1} << 10},
        {"mib", std::uint64_t{1} << 20},
        {"gib", std::uint64_t{1} << 30},
        {"tib", std::uint64_t{1} << 40},
    };
    for (const auto& unit : kUnits)
        if (unit.name == q->unit)
            return scale_quantity(*q, unit.bytes, std::numeric_limits<std::uint64_t>::max());
    return std::nullopt;
}

Options validate_options(const Url& url, std::span<const OptionSpec> specs,
                         std::string_view transport_name) {
    check_specs(specs, transport_name);
    const std::string transport = std::string(transport_name) + "://";
    const std::string in_url = " (URL: " + url.redacted() + ")";

    Options options;
    for (const auto& spec : specs) {
        if (is_prefix_spec(spec)) continue;
        Options::Value value;
        if (!spec.default_value.empty() || spec.type == OptionType::string) {
            bool in_range = true;
            value = parse_typed(spec, spec.default_value, in_range);
        }
        options.entries_.push_back({spec.name, spec.type, std::move(value), false});
    }

    std::vector<std::pair<std::string_view, std::string_view>> seen;
    for (const auto& pair : url.query) {
        // Named references, not a structured binding: clang 14 cannot capture those.
        const std::string& key = pair.first;
        const std::string& value = pair.second;
        const bool secret = looks_secret(key);
        const std::string shown = secret ? std::string("**") : "'" + value + "'";
        for (const auto& [seen_key, seen_value] : seen)
            if (seen_key == key)
                throw UrlError("option '" + key + "' for " + transport + " is given twice" +
                               (secret
                                    ? std::string()
                                    : " ('" + std::string(seen_value) + "' and '" + value + "')") +
                               "; give it once" + in_url);
        seen.emplace_back(key, value);

        const auto exact = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) {
            return !is_prefix_spec(s) && s.name == key;
        });
        if (exact == specs.end()) {
            const auto by_prefix =
                std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) {
                    return is_prefix_spec(s) && key.size() > s.name.size() - 1 &&
                           key.starts_with(spec_prefix(s));
                });
            if (by_prefix != specs.end()) {
                options.prefixed_.emplace_back(key, value);
                continue;
            }
            std::string message = "unknown option '" + key + "' for " + transport;
            std::vector<std::string_view> names;
            std::vector<std::string> listed;
            std::optional<std::string> suggestion;
            for (const auto& s : specs) {
                listed.push_back(s.name);
                if (!is_prefix_spec(s)) {
                    names.push_back(s.name);
                    continue;
                }
                // "rdkafk.linger.ms" is a typo of the prefix, not of a name.
                // Compare up to the prefix's own separator ("rdkafk." against
                // "rdkafka."), so a dropped letter does not shift the rest.
                const std::string_view prefix = spec_prefix(s);
                if (prefix.empty() || suggestion) continue;
                auto head_end = key.find(prefix.back());
                head_end = head_end == std::string::npos ? prefix.size() : head_end + 1;
                if (key.size() > head_end) {
                    const std::string_view head = std::string_view(key).substr(0, head_end);
                    const std::string_view candidates[] = {prefix};
                    if (closest_match(head, candidates))
                        suggestion = std::string(prefix) + key.substr(head_end);
                }
            }
            if (auto near = closest_match(key, names)) suggestion = near;
            message += suggestion ? "; did you mean '" + *suggestion + "'? " : std::string("; ");
            if (listed.empty())
                message += transport + " takes no options";
            else
                message += "known options: " + join_names(listed);
            throw UrlError(message + in_url);
        }

        const OptionSpec& spec = *exact;
        bool in_range = true;
        Options::Value parsed = parse_typed(spec, value, in_range);
        if (std::holds_alternative<std::monostate>(parsed)) {
            std::string message = "option '" + key + "' for " + transport + " has value " + shown +
                                  "; expected " + describe_type(spec) + describe_range(spec);
            if (spec.type == OptionType::enumeration) {
                std::vector<std::string_view> allowed(spec.allowed.begin(), spec.allowed.end());
                if (auto near = closest_match(value, allowed))
                    message += "; did you mean '" + *near + "'?";
            }
            throw UrlError(message + in_url);
        }
        if (!in_range)
            throw UrlError("option '" + key + "' for " + transport + " has value " + shown +
                           ", out of range; expected " + describe_type(spec) +
                           describe_range(spec) + in_url);
        for (auto& entry : options.entries_) {
            if (entry.name == key) {
                entry.value = std::move(parsed);
                entry.given = true;
            }
        }
    }
    return options;
}

const Options::Entry& Options::entry(std::string_view name, OptionType wanted) const {
    for (const auto& e : entries_) {
        if (e.name != name) continue;
        const bool type_ok =
            e.type == wanted || (wanted == OptionType::string && e.type == OptionType::enumeration);
        if (!type_ok)
            throw std::logic_error("option '" + e.name + "' is " + std::string(to_string(e.type)) +
                                   ", not " + std::string(to_string(wanted)));
        if (std::holds_alternative<std::monostate>(e.value))
            throw std::logic_error("option '" + e.name +
                                   "' has no value: not given and no default; check has_value()");
        return e;
    }
    throw std::logic_error("no option '" + std::string(name) + "' is declared");
}

bool Options::has(std::string_view name) const {
    for (const auto& e : entries_)
        if (e.name == name) return e.given;
    for (const auto& [key, value] : prefixed_)
        if (key == name) return true;
    return false;
}

bool Options::has_value(std::string_view name) const {
    for (const auto& e : entries_)
        if (e.name == name) return !std::holds_alternative<std::monostate>(e.value);
    return has(name);
}

bool Options::get_bool(std::string_view name) const {
    return std::get<bool>(entry(name, OptionType::boolean).value);
}

std::int64_t Options::get_int(std::string_view name) const {
    return std::get<std::int64_t>(entry(name, OptionType::integer).value);
}

std::chrono::nanoseconds Options::get_duration(std::string_view name) const {
    return std::get<std::chrono::nanoseconds>(entry(name, OptionType::duration).value);
}

const std::string& Options::get_string(std::string_view name) const {
    return std::get<std::string>(entry(name, OptionType::string).value);
}

std::uint64_t Options::get_size(std::string_view name) const {
    return std::get<std::uint64_t>(entry(name, OptionType::size).value);
}

std::vector<std::pair<std::string, std::string>> Options::prefixed(std::string_view prefix) const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [key, value] : prefixed_)
        if (key.size() > prefix.size() && std::string_view(key).starts_with(prefix))
            out.emplace_back(key.substr(prefix.size()), value);
    return out;
}

}  // namespace kelp
