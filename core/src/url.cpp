#include "kelp/url.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <numeric>

#include "ascii.hpp"
#include "kelp/errors.hpp"

namespace kelp {

namespace {

using ascii::is_alpha;
using ascii::is_digit;
using ascii::lower;
using ascii::to_lower;

constexpr std::string_view kForm =
    "scheme://[user[:password]@]host[:port][/path][?option=value&...]";

constexpr std::array<SchemeInfo, 11> kSchemes{{
    {"memory", "memory", false},
    {"redis", "redis", false},
    {"rediss", "redis", true},
    {"redis+socket", "redis", false},
    {"sentinel", "redis", false},
    {"amqp", "amqp", false},
    {"amqps", "amqp", true},
    {"pyamqp", "amqp", false},
    {"librabbitmq", "amqp", false},
    {"kafka", "kafka", false},
    {"confluentkafka", "kafka", false},
}};

constexpr std::array<TransportModule, 4> kModules{{
    {"memory", "kelp::memory", ""},
    {"redis", "kelp::redis", "KELP_WITH_REDIS"},
    {"amqp", "kelp::amqp", "KELP_WITH_AMQP"},
    {"kafka", "kelp::kafka", "KELP_WITH_KAFKA"},
}};

// Names people reach for that are not schemes and too far off for the edit
// distance to find.
constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kSchemeHints{{
    {"rabbitmq", "amqp"},
    {"rabbit", "amqp"},
    {"unix", "redis+socket"},
    {"redis-sentinel", "sentinel"},
}};

bool is_unreserved(char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool is_space_or_control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
}

int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

bool looks_secret(std::string_view key) {
    const std::string k = to_lower(key);
    return k.find("password") != std::string::npos || k.find("passwd") != std::string::npos ||
           k.find("secret") != std::string::npos || k.find("token") != std::string::npos;
}

std::string join(std::span<const std::string_view> items) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

std::string known_scheme_list() {
    std::vector<std::string_view> names;
    for (const auto& s : kSchemes)
        names.push_back(s.scheme);
    return join(names);
}

const SchemeInfo* find_scheme(std::string_view lowered) {
    for (const auto& s : kSchemes)
        if (s.scheme == lowered) return &s;
    return nullptr;
}

bool valid_scheme_syntax(std::string_view s) {
    if (s.empty() || !is_alpha(s.front())) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
    });
}

std::string redact_one(std::string_view text);

// Reports parse failures with the input quoted, password masked, so that one
// place decides how a URL error reads.
class Failer {
  public:
    explicit Failer(std::string_view input) : input_(input) {}

    [[noreturn]] void fail(std::string_view detail) const {
        throw UrlError("invalid URL '" + redact_one(input_) + "': " + std::string(detail));
    }

  private:
    std::string_view input_;
};

// `secret` keeps the escape itself out of the message: it would show part of
// the password.
std::string percent_decode(std::string_view raw, std::string_view what, bool secret,
                           const Failer& f) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const char c = raw[i];
        if (c != '%') {
            out += c;
            continue;
        }
        const int hi = i + 1 < raw.size() ? hex_value(raw[i + 1]) : -1;
        const int lo = i + 2 < raw.size() ? hex_value(raw[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            std::string detail = "bad percent escape";
            if (!secret) detail += " '" + std::string(raw.substr(i, 3)) + "'";
            detail += " in the " + std::string(what) +
                      ": '%' must be followed by two hex digits (write a literal '%' as %25)";
            f.fail(detail);
        }
        const char decoded = static_cast<char>(hi * 16 + lo);
        if (decoded == '\0')
            f.fail("the " + std::string(what) + " contains %00: NUL bytes are not allowed");
        out += decoded;
        i += 2;
    }
    return out;
}

std::string percent_encode(std::string_view s, std::string_view also_safe) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        if (is_unreserved(c) || also_safe.find(c) != std::string_view::npos) {
            out += c;
        } else {
            const auto u = static_cast<unsigned char>(c);
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 0x0f];
        }
    }
    return out;
}

std::uint16_t parse_port(std::string_view raw, const Failer& f) {
    if (raw.empty()) f.fail("empty port after ':'; remove the ':' or give a port from 1 to 65535");
    if (!std::all_of(raw.begin(), raw.end(), is_digit))
        f.fail("port '" + std::string(raw) + "' is not a number; expected a port from 1 to 65535");
    unsigned long value = 0;
    for (const char c : raw) {
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > 65535) break;
    }
    if (value < 1 || value > 65535)
        f.fail("port " + std::string(raw) + " is out of range; expected a port from 1 to 65535");
    return static_cast<std::uint16_t>(value);
}

void check_ipv6(std::string_view literal, const Failer& f) {
    const auto zone = literal.find('%');
    const std::string_view address = literal.substr(0, zone);
    const bool chars_ok = std::all_of(address.begin(), address.end(), [](char c) {
        return hex_value(c) >= 0 || c == ':' || c == '.';
    });
    if (address.find(':') == std::string_view::npos || !chars_ok)
        f.fail("'[" + std::string(literal) +
               "]' is not an IPv6 address; brackets are only for IPv6, e.g. amqp://[::1]:5672/");
    if (zone != std::string_view::npos && literal.substr(zone).size() <= 3)
        f.fail("empty IPv6 zone in '[" + std::string(literal) + "]'; write a zone as %25eth0");
}

void parse_host_port(std::string_view hostport, Url& url, const Failer& f) {
    if (!hostport.empty() && hostport.front() == '[') {
        const auto close = hostport.find(']');
        if (close == std::string_view::npos)
            f.fail("unterminated IPv6 address '" + std::string(hostport) +
                   "': expected ']' after the address, e.g. amqp://[::1]:5672/");
        const std::string_view literal = hostport.substr(1, close - 1);
        if (literal.empty()) f.fail("empty IPv6 address '[]'; e.g. amqp://[::1]:5672/");
        check_ipv6(literal, f);
        url.host = percent_decode(literal, "IPv6 zone", false, f);
        const std::string_view after = hostport.substr(close + 1);
        if (after.empty()) return;
        if (after.front() != ':')
            f.fail("unexpected '" + std::string(after) + "' after the IPv6 address '[" +
                   std::string(literal) + "]'; expected ':port' or the end of the host");
        url.port = parse_port(after.substr(1), f);
        return;
    }
    const auto colon = hostport.find(':');
    if (colon != std::string_view::npos && hostport.find(':', colon + 1) != std::string_view::npos)
        f.fail("host '" + std::string(hostport) +
               "' has more than one ':'; an IPv6 address goes in brackets, e.g. "
               "amqp://[::1]:5672/");
    const std::string_view raw_host = hostport.substr(0, colon);
    for (const char c : raw_host) {
        if (c == '[' || c == ']')
            f.fail("'" + std::string(1, c) + "' in the host '" + std::string(raw_host) +
                   "'; only an IPv6 address is bracketed, as the whole host: [::1]");
        if (c == '<' || c == '>' || c == '"' || c == '{' || c == '}' || c == '|' || c == '\\' ||
            c == '^' || c == '`')
            f.fail("character '" + std::string(1, c) + "' is not allowed in the host '" +
                   std::string(raw_host) + "'");
    }
    url.host = percent_decode(raw_host, "host", false, f);
    if (colon != std::string_view::npos) url.port = parse_port(hostport.substr(colon + 1), f);
}

void parse_query(std::string_view raw, Url& url, const Failer& f) {
    std::size_t start = 0;
    while (start <= raw.size()) {
        auto end = raw.find('&', start);
        if (end == std::string_view::npos) end = raw.size();
        const std::string_view pair = raw.substr(start, end - start);
        start = end + 1;
        if (pair.empty()) continue;  // "a=1&&b=2" and a trailing '&' are harmless
        const auto eq = pair.find('=');
        const std::string_view raw_key = pair.substr(0, eq);
        if (raw_key.empty())
            f.fail("query parameter '" + std::string(pair) +
                   "' has no name; expected ?option=value&option=value");
        std::string key = percent_decode(raw_key, "query", false, f);
        std::string value;
        if (eq != std::string_view::npos) {
            const std::string what = "value of query option '" + key + "'";
            value = percent_decode(pair.substr(eq + 1), what, looks_secret(key), f);
        }
        url.query.emplace_back(std::move(key), std::move(value));
    }
}

// Checks what a scheme gives the path to mean, so a db typo fails at parse time
// rather than at connect time.
void check_scheme_path(Url& url, std::string_view raw_path, const Failer& f) {
    if (url.scheme == "redis+socket") {
        if (!url.host.empty() || url.port)
            f.fail(
                "redis+socket URLs take a socket path, not a host or port; expected "
                "redis+socket:///path/to/redis.sock");
        if (raw_path.empty())
            f.fail("missing socket path; expected redis+socket:///path/to/redis.sock");
        url.path.insert(url.path.begin(), '/');
        return;
    }
    if (url.transport == "redis" && !url.path.empty()) {
        const bool digits = std::all_of(url.path.begin(), url.path.end(), is_digit);
        if (!digits || url.path.size() > 9)
            f.fail("redis database '" + url.path +
                   "' is not a number; expected redis://host[:port]/<db> with db 0, 1, 2, ...");
    }
}

// Optimal string alignment distance: like Levenshtein, plus an adjacent swap
// ("ampq" -> "amqp") costs one edit, which is the commonest typo.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t n = a.size();
    const std::size_t m = b.size();
    std::vector<std::size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
    std::iota(prev.begin(), prev.end(), std::size_t{0});
    for (std::size_t i = 1; i <= n; ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]))
                cur[j] = std::min(cur[j], prev2[j - 2] + 1);
        }
        prev2.swap(prev);
        prev.swap(cur);
    }
    return prev[m];
}

Url parse_one(std::string_view input) {
    const Failer f(input);
    const std::string_view text = trim(input);
    if (text.empty())
        f.fail("the URL is empty; expected " + std::string(kForm) +
               ", e.g. redis://localhost:6379/0");
    if (text.find('#') != std::string_view::npos)
        f.fail(
            "'#' is not allowed (kelp URLs have no fragment); inside a password or a value, "
            "percent-encode it as %23");
    if (std::any_of(text.begin(), text.end(), is_space_or_control))
        f.fail("the URL contains a space or control character; percent-encode it (a space is %20)");

    const auto sep = text.find("://");
    if (sep == std::string_view::npos) {
        const auto colon = text.find(':');
        const std::string lowered = to_lower(text.substr(0, colon));
        if (colon != std::string_view::npos && find_scheme(lowered) != nullptr)
            f.fail("expected '://' after the scheme '" + lowered + "'; expected " +
                   std::string(kForm));
        f.fail("missing scheme; expected " + std::string(kForm) +
               ", e.g. redis://localhost:6379/0 (known schemes: " + known_scheme_list() + ")");
    }
    const std::string_view raw_scheme = text.substr(0, sep);
    if (raw_scheme.empty())
        f.fail("missing scheme before '://'; expected " + std::string(kForm) +
               " (known schemes: " + known_scheme_list() + ")");
    Url url;
    url.scheme = to_lower(raw_scheme);
    if (!valid_scheme_syntax(url.scheme))
        f.fail("'" + std::string(raw_scheme) +
               "' is not a scheme (a letter, then letters, digits, '+', '-' or '.'); known "
               "schemes: " +
               known_scheme_list());
    const SchemeInfo* info = find_scheme(url.scheme);
    if (info == nullptr) {
        std::string detail = "unknown scheme '" + url.scheme + "'";
        std::vector<std::string_view> names;
        for (const auto& s : kSchemes)
            names.push_back(s.scheme);
        std::optional<std::string> suggestion = closest_match(url.scheme, names);
        for (const auto& [hint, target] : kSchemeHints)
            if (hint == url.scheme) suggestion = std::string(target);
        if (suggestion) detail += "; did you mean '" + *suggestion + "'?";
        detail += " known schemes: " + known_scheme_list();
        f.fail(detail);
    }
    url.transport = std::string(info->transport);

    const std::string_view rest = text.substr(sep + 3);
    const auto authority_end = rest.find_first_of("/?");
    const std::string_view authority = rest.substr(0, authority_end);
    const std::string_view after =
        authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);

    // An '@' past the authority usually means a password with an unencoded
    // '/' or '?' cut the authority short; a host or port error would then
    // quote a piece of that password, so say what is likely wrong instead.
    const bool suspect_credentials =
        authority.find('@') == std::string_view::npos && after.find('@') != std::string_view::npos;
    const auto at = authority.rfind('@');
    std::string_view hostport = authority;
    if (at != std::string_view::npos) {
        const std::string_view userinfo = authority.substr(0, at);
        hostport = authority.substr(at + 1);
        const auto colon = userinfo.find(':');
        url.user = percent_decode(userinfo.substr(0, colon), "user name", false, f);
        if (colon != std::string_view::npos)
            url.password = percent_decode(userinfo.substr(colon + 1), "password", true, f);
    }
    try {
        parse_host_port(hostport, url, f);
    } catch (const UrlError&) {
        if (!suspect_credentials) throw;
        f.fail(
            "cannot read the host and port; a user name or password seems to contain an "
            "unencoded '/' or '?': percent-encode them as %2F and %3F (and '@' as %40, ':' in a "
            "user name as %3A)");
    }

    std::string_view raw_path;
    std::string_view raw_query;
    if (!after.empty()) {
        const auto q = after.find('?');
        if (after.front() == '/') {
            raw_path =
                after.substr(1, q == std::string_view::npos ? std::string_view::npos : q - 1);
        }
        if (q != std::string_view::npos) raw_query = after.substr(q + 1);
    }
    // "amqp://user:1234/x@h" parses as host "user", port 1234 and a path
    // holding the rest of the password: refuse rather than connect elsewhere.
    if (suspect_credentials && raw_path.find('@') != std::string_view::npos)
        f.fail(
            "'@' in the path; if it ends a user name or password that contains '/', "
            "percent-encode that '/' as %2F; if it belongs to the path, write it as %40");
    url.path = percent_decode(raw_path, "path", false, f);
    check_scheme_path(url, raw_path, f);
    parse_query(raw_query, url, f);
    return url;
}

}  // namespace

Url Url::parse(std::string_view text) {
    return parse_one(text);
}

bool Url::tls() const {
    const SchemeInfo* info = find_scheme(scheme);
    return info != nullptr && info->tls;
}

std::string Url::host_or(std::string_view default_host) const {
    return host.empty() ? std::string(default_host) : host;
}

std::uint16_t Url::port_or(std::uint16_t default_port) const {
    return port.value_or(default_port);
}

std::string Url::path_or(std::string_view default_path) const {
    return path.empty() ? std::string(default_path) : path;
}

std::optional<std::string> Url::query_value(std::string_view key) const {
    std::optional<std::string> found;
    for (const auto& [k, v] : query)
        if (k == key) found = v;
    return found;
}

namespace {

std::string format_url(const Url& url, bool redact) {
    std::string out = url.scheme + "://";
    if (!url.user.empty() || !url.password.empty()) {
        out += percent_encode(url.user, "");
        if (!url.password.empty()) out += ":" + (redact ? "**" : percent_encode(url.password, ""));
        out += '@';
    }
    if (url.host.find(':') != std::string::npos) {
        // Appended piecewise: GCC 12 at -O3 raises a false -Wrestrict on the
        // concatenated form.
        out += '[';
        out += percent_encode(url.host, ":.");
        out += ']';
    } else
        out += percent_encode(url.host, "");
    if (url.port) out += ":" + std::to_string(*url.port);
    if (url.scheme == "redis+socket") {
        out += percent_encode(url.path, "/");  // absolute: carries its own '/'
    } else if (!url.path.empty()) {
        out += "/" + percent_encode(url.path, "/");
    }
    char joiner = '?';
    for (const auto& [key, value] : url.query) {
        out += joiner;
        joiner = '&';
        out += percent_encode(key, "");
        out += '=';
        out += (redact && looks_secret(key)) ? "**" : percent_encode(value, ":/,");
    }
    return out;
}

}  // namespace

std::string Url::to_string() const {
    return format_url(*this, false);
}

std::string Url::redacted() const {
    return format_url(*this, true);
}

std::vector<Url> parse_url_list(std::string_view text) {
    std::vector<std::string_view> entries;
    std::size_t start = 0;
    while (true) {
        const auto end = text.find(';', start);
        entries.push_back(
            trim(text.substr(start, end == std::string_view::npos ? end : end - start)));
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    const std::string where = "in the URL list '" + redact_url_text(text) + "': ";
    if (entries.size() == 1 && entries.front().empty())
        throw UrlError(where + "the list is empty; expected one URL or several separated by ';'");
    std::vector<Url> urls;
    urls.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const std::string position =
            "entry " + std::to_string(i + 1) + " of " + std::to_string(entries.size());
        if (entries[i].empty())
            throw UrlError(where + position +
                           " is empty; separate URLs with a single ';' and leave none blank");
        try {
            urls.push_back(Url::parse(entries[i]));
        } catch (const UrlError& e) {
            throw UrlError(where + position + ": " + e.what());
        }
        const Url& first = urls.front();
        const Url& current = urls.back();
        const bool sentinel_mix = (first.scheme == "sentinel") != (current.scheme == "sentinel");
        if (current.transport != first.transport || sentinel_mix)
            throw UrlError(where + "entry 1 (" + first.scheme + "://) and " + position + " (" +
                           current.scheme +
                           "://) use different transports; every URL of a failover list must "
                           "use the same one (and sentinel:// entries only go with sentinel://)");
    }
    return urls;
}

namespace {

std::string redact_one(std::string_view text) {
    std::string out(text);
    const auto sep = out.find("://");
    if (sep == std::string::npos) return out;
    const std::size_t begin = sep + 3;
    // The last '@' rather than the authority's: a password holding an unencoded
    // '/' or '?' must still be masked, even if that masks too much.
    const auto at = out.rfind('@');
    std::size_t query_from = begin;
    if (at != std::string::npos && at > begin) {
        const auto colon = out.find(':', begin);
        if (colon != std::string::npos && colon < at) {
            out.replace(colon + 1, at - colon - 1, "**");
            query_from = colon + 4;
        } else {
            query_from = at;
        }
    }
    auto q = out.find('?', query_from);
    while (q != std::string::npos) {
        const auto key_start = q + 1;
        const auto eq = out.find('=', key_start);
        const auto amp = out.find('&', key_start);
        if (eq == std::string::npos) break;
        if (amp != std::string::npos && amp < eq) {
            q = amp;
            continue;
        }
        const auto value_end = out.find('&', eq + 1);
        if (looks_secret(std::string_view(out).substr(key_start, eq - key_start))) {
            const auto end = value_end == std::string::npos ? out.size() : value_end;
            out.replace(eq + 1, end - eq - 1, "**");
            q = out.find('&', eq + 1);
        } else {
            q = value_end;
        }
    }
    return out;
}

}  // namespace

std::string redact_url_text(std::string_view text) {
    // Entry by entry, so every URL of a failover list is masked.
    std::string out;
    std::size_t start = 0;
    while (true) {
        const auto end = text.find(';', start);
        out += redact_one(text.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos) break;
        out += ';';
        start = end + 1;
    }
    return out;
}

std::span<const SchemeInfo> known_schemes() {
    return kSchemes;
}

std::optional<std::string_view> canonical_transport(std::string_view scheme) {
    const SchemeInfo* info = find_scheme(to_lower(scheme));
    if (info == nullptr) return std::nullopt;
    return info->transport;
}

std::optional<TransportModule> transport_module_for(std::string_view scheme) {
    const auto transport = canonical_transport(scheme);
    if (!transport) return std::nullopt;
    for (const auto& m : kModules)
        if (m.module == *transport) return m;
    return std::nullopt;
}

std::string transport_not_linked_message(std::string_view scheme) {
    const std::string lowered = to_lower(scheme);
    const auto module = transport_module_for(lowered);
    if (!module) {
        std::vector<std::string_view> names;
        for (const auto& s : kSchemes)
            names.push_back(s.scheme);
        std::string msg = "unknown scheme '" + lowered + "'";
        if (auto near = closest_match(lowered, names)) msg += "; did you mean '" + *near + "'?";
        return msg + " known schemes: " + known_scheme_list();
    }
    std::string msg = "no transport for " + lowered + ":// is linked into this program: link " +
                      std::string(module->cmake_target) +
                      " (target_link_libraries(your_app PRIVATE " +
                      std::string(module->cmake_target) + "))";
    if (!module->cmake_option.empty())
        msg += " and configure kelp with -D" + std::string(module->cmake_option) + "=ON";
    return msg;
}

std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates) {
    // A third of the word's length, at least one: "reddis" may become "redis",
    // but "kafka" never becomes "amqp".
    const std::size_t limit = std::max<std::size_t>(1, word.size() / 3);
    std::optional<std::string> best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (const auto& candidate : candidates) {
        const std::size_t d = edit_distance(word, candidate);
        if (d <= limit && d < best_distance) {
            best_distance = d;
            best = std::string(candidate);
        }
    }
    return best;
}

}  // namespace kelp
