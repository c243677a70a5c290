// Kombu's JSON envelope, written and read.
#include "wire/envelope.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>

#include "kelp/errors.hpp"
#include "kelp/serialization.hpp"
#include "wire/base64.hpp"
#include "wire/canonical_envelope.hpp"
#include "wire/json_text.hpp"

namespace kelp::redis {
namespace {

using kelp::Json;

// Properties the transport writes itself; they are never extra properties.
constexpr std::array<std::string_view, 4> kTransportProperties = {"delivery_info", "priority",
                                                                  "body_encoding", "delivery_tag"};

struct StringProperty {
    std::string_view name;
    std::string kelp::Properties::*field;
};

// The typed string properties, in the order they are written (timestamp goes
// between message_id and type, see write_properties).
constexpr StringProperty kCorrelationId{"correlation_id", &kelp::Properties::correlation_id};
constexpr StringProperty kReplyTo{"reply_to", &kelp::Properties::reply_to};
constexpr StringProperty kMessageId{"message_id", &kelp::Properties::message_id};
constexpr StringProperty kType{"type", &kelp::Properties::type};
constexpr StringProperty kAppId{"app_id", &kelp::Properties::app_id};
constexpr StringProperty kUserId{"user_id", &kelp::Properties::user_id};
constexpr std::array<StringProperty, 6> kStringProperties = {kCorrelationId, kReplyTo, kMessageId,
                                                             kType,          kAppId,   kUserId};

// Properties with a typed field: an extra property of one of these names is
// written in the field's place, not with the other extras.
constexpr std::array<std::string_view, 9> kTypedProperties = {
    "correlation_id", "reply_to", "message_id",    "timestamp", "type",
    "app_id",         "user_id",  "delivery_mode", "expiration"};

bool is_one_of(std::string_view name, std::span<const std::string_view> names) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// --- writing -----------------------------------------------------------------------

class PropertiesWriter {
  public:
    PropertiesWriter(std::string& out, const Json& extras) : out_(out), extras_(extras) {}

    void key(std::string_view name) {
        if (!first_) out_ += ", ";
        first_ = false;
        append_json_string(out_, name);
        out_ += ": ";
    }

    // An extra property of this name, written in its place, wins.
    bool put_extra(std::string_view name) {
        if (!extras_.is_object()) return false;
        const auto found = extras_.find(name);
        if (found == extras_.end()) return false;
        key(name);
        out_ += kelp::dump_json(*found);
        return true;
    }

    void put_string(const StringProperty& property, const kelp::Properties& properties) {
        if (put_extra(property.name)) return;
        const std::string& value = properties.*property.field;
        if (value.empty()) return;
        key(property.name);
        append_json_string(out_, value);
    }

    void put_other_extras() {
        if (!extras_.is_object()) return;
        for (const auto& [name, value] : extras_.items()) {
            if (is_one_of(name, kTypedProperties)) continue;
            key(name);
            out_ += kelp::dump_json(value);
        }
    }

  private:
    std::string& out_;
    const Json& extras_;
    bool first_ = true;
};

void check_extras(const Json& extras) {
    if (extras.is_null()) return;
    if (!extras.is_object())
        throw kelp::Error("DeliveryFields::extra_properties must be a JSON object or null, not " +
                          std::string(extras.type_name()));
    for (const auto name : kTransportProperties)
        if (extras.contains(name))
            throw kelp::Error("DeliveryFields::extra_properties holds \"" + std::string(name) +
                              "\", which the transport writes itself; set the DeliveryFields "
                              "member instead");
}

// Kombu's order: the publisher's own properties first, then delivery_mode,
// expiration, delivery_info, priority, body_encoding and delivery_tag.
void write_properties(std::string& out, const kelp::Properties& p, const DeliveryFields& d,
                      BodyEncoding body_encoding) {
    check_extras(d.extra_properties);
    PropertiesWriter w(out, d.extra_properties);
    out += '{';
    w.put_string(kCorrelationId, p);
    w.put_string(kReplyTo, p);
    w.put_string(kMessageId, p);
    if (!w.put_extra("timestamp") && p.timestamp) {
        w.key("timestamp");
        out += std::to_string(*p.timestamp);
    }
    w.put_string(kType, p);
    w.put_string(kAppId, p);
    w.put_string(kUserId, p);
    w.put_other_extras();
    if (!w.put_extra("delivery_mode")) {
        w.key("delivery_mode");
        out += std::to_string(static_cast<int>(p.delivery_mode));
    }
    if (!w.put_extra("expiration") && p.expiration) {
        if (p.expiration->count() < 0)
            throw kelp::Error("expiration is negative (" + std::to_string(p.expiration->count()) +
                              " ms); give a TTL of 0 or more");
        w.key("expiration");
        // Kombu writes str(int(seconds * 1000)).
        out += '"';
        out += std::to_string(p.expiration->count());
        out += '"';
    }
    w.key("delivery_info");
    out += "{\"exchange\": ";
    append_json_string(out, d.exchange);
    out += ", \"routing_key\": ";
    append_json_string(out, d.routing_key);
    if (d.redelivered) out += ", \"redelivered\": true";
    out += '}';
    w.key("priority");
    out += std::to_string(d.priority);
    w.key("body_encoding");
    out += body_encoding == BodyEncoding::base64 ? "\"base64\"" : "null";
    w.key("delivery_tag");
    append_json_string(out, d.delivery_tag);
    out += '}';
}

void write_headers(std::string& out, const kelp::Table& headers, bool redelivered) {
    if (!headers.is_null() && !headers.is_object())
        throw kelp::Error("message headers must be a JSON object (or null), not " +
                          std::string(headers.type_name()));
    // Kombu's restore sets headers["redelivered"] = True. It lands in sorted
    // position like every header, so a message re-encodes to the same bytes.
    if (redelivered && !(headers.is_object() && headers.contains("redelivered"))) {
        kelp::Table marked = headers.is_null() ? kelp::Table::object() : headers;
        marked["redelivered"] = true;
        out += kelp::dump_json(marked);
        return;
    }
    out += headers.is_null() ? "{}" : kelp::dump_json(headers);
}

void write_optional_string(std::string& out, const std::string& value) {
    if (value.empty())
        out += "null";
    else
        append_json_string(out, value);
}

// --- reading -----------------------------------------------------------------------

constexpr std::string_view kEnvelopeShape =
    "A producer must write Kombu's JSON envelope: {\"body\": ..., \"content-encoding\": ..., "
    "\"content-type\": ..., \"headers\": {...}, \"properties\": {\"delivery_tag\": \"<uuid4>\", "
    "\"delivery_info\": {\"exchange\": \"...\", \"routing_key\": \"...\"}, ...}} (see "
    "docs/transports/redis.md, Wire format)";

[[noreturn]] void reject(std::string_view payload, const std::string& problem) {
    throw DecodeError("cannot read a Redis message: " + problem + ". " +
                      std::string(kEnvelopeShape) + "; " + std::to_string(payload.size()) +
                      " bytes starting " + preview(payload));
}

std::string type_of(const Json& value) {
    if (value.is_null()) return "null";
    if (value.is_number()) return "a number";
    if (value.is_array() || value.is_object()) return std::string("an ") + value.type_name();
    return std::string("a ") + value.type_name();
}

// The member `name` of `object` as a string: absent or null is "".
std::string optional_string(std::string_view payload, Json& object, std::string_view name,
                            std::string_view where) {
    const auto found = object.find(name);
    if (found == object.end() || found->is_null()) return {};
    if (!found->is_string())
        reject(payload, std::string(where) + std::string(name) + " is " + type_of(*found) +
                            ", not a string");
    return std::move(found->get_ref<std::string&>());
}

std::string required_string(std::string_view payload, Json& object, std::string_view name,
                            std::string_view where) {
    const auto found = object.find(name);
    if (found == object.end())
        reject(payload, std::string(where) + std::string(name) + " is missing");
    if (!found->is_string())
        reject(payload, std::string(where) + std::string(name) + " is " + type_of(*found) +
                            ", not a string");
    return std::move(found->get_ref<std::string&>());
}

// Python's int() of a string: blanks around, a sign, digits with single '_'
// between them. Huge values only need to clamp, so they saturate.
std::optional<std::int64_t> python_int(std::string_view text) {
    const auto blank = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
    };
    while (!text.empty() && blank(text.front()))
        text.remove_prefix(1);
    while (!text.empty() && blank(text.back()))
        text.remove_suffix(1);
    bool negative = false;
    if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    if (text.empty() || text.front() == '_' || text.back() == '_') return std::nullopt;
    std::int64_t value = 0;
    char previous = 0;
    for (const char c : text) {
        if (c == '_') {
            if (previous == '_') return std::nullopt;
        } else if (c >= '0' && c <= '9') {
            value = std::min<std::int64_t>(value * 10 + (c - '0'), 1'000'000);
        } else {
            return std::nullopt;
        }
        previous = c;
    }
    return negative ? -value : value;
}

// Kombu's _get_message_priority: int(value) clamped to 0..9; 0 when int()
// fails. (int() of an infinite float raises an error Kombu does not catch;
// kelp reads it as 0 too.)
int kombu_priority(const Json& value) {
    std::int64_t n = 0;
    if (value.is_boolean()) {
        n = value.get<bool>() ? 1 : 0;
    } else if (value.is_number_unsigned()) {
        n = value.get<std::uint64_t>() > 9 ? 9
                                           : static_cast<std::int64_t>(value.get<std::uint64_t>());
    } else if (value.is_number_integer()) {
        n = value.get<std::int64_t>();
    } else if (value.is_number_float()) {
        const double d = value.get<double>();
        if (!std::isfinite(d)) return 0;
        n = d >= 9.0 ? 9 : d <= 0.0 ? 0 : static_cast<std::int64_t>(d);
    } else if (value.is_string()) {
        n = python_int(value.get_ref<const std::string&>()).value_or(0);
    }
    return static_cast<int>(std::clamp<std::int64_t>(n, 0, 9));
}

// Python's truth value, for delivery_info.redelivered.
bool truthy(const Json& value) {
    if (value.is_boolean()) return value.get<bool>();
    if (value.is_number_float()) return value.get<double>() != 0.0;
    if (value.is_number_unsigned()) return value.get<std::uint64_t>() != 0;
    if (value.is_number_integer()) return value.get<std::int64_t>() != 0;
    if (value.is_string()) return !value.get_ref<const std::string&>().empty();
    if (value.is_null()) return false;
    return !value.empty();  // arrays, objects
}

std::optional<std::chrono::milliseconds> expiration_of(const Json& value) {
    if (!value.is_string()) return std::nullopt;
    const auto& text = value.get_ref<const std::string&>();
    if (text.empty() || text.size() > 18) return std::nullopt;
    std::int64_t ms = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        ms = ms * 10 + (c - '0');
    }
    return std::chrono::milliseconds(ms);
}

std::optional<std::int64_t> integer_of(const Json& value) {
    if (value.is_number_unsigned()) {
        const auto u = value.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return std::nullopt;
        return static_cast<std::int64_t>(u);
    }
    if (value.is_number_integer()) return value.get<std::int64_t>();
    return std::nullopt;
}

// A property goes to its typed field when the value fits it exactly (so it
// re-encodes the same), and to extra_properties otherwise.
bool read_typed_property(std::string_view name, const Json& value, kelp::Properties& p) {
    for (const auto& property : kStringProperties) {
        if (name != property.name) continue;
        if (!value.is_string() || value.get_ref<const std::string&>().empty()) return false;
        p.*property.field = value.get<std::string>();
        return true;
    }
    if (name == "timestamp") {
        const auto timestamp = integer_of(value);
        if (timestamp) p.timestamp = timestamp;
        return timestamp.has_value();
    }
    if (name == "expiration") {
        const auto expiration = expiration_of(value);
        if (expiration) p.expiration = expiration;
        return expiration.has_value();
    }
    if (name == "delivery_mode") {
        const auto mode = integer_of(value);
        if (mode != 1 && mode != 2) return false;
        p.delivery_mode =
            *mode == 1 ? kelp::DeliveryMode::transient : kelp::DeliveryMode::persistent;
        return true;
    }
    return false;
}

void read_delivery_info(std::string_view payload, Json& properties, DeliveryFields& d) {
    const auto info = properties.find("delivery_info");
    if (info == properties.end())
        reject(payload,
               "properties.delivery_info is missing (a consumer that acks needs its "
               "exchange and routing_key)");
    if (!info->is_object())
        reject(payload, "properties.delivery_info is " + type_of(*info) + ", not an object");
    d.exchange = required_string(payload, *info, "exchange", "properties.delivery_info.");
    d.routing_key = required_string(payload, *info, "routing_key", "properties.delivery_info.");
    if (const auto redelivered = info->find("redelivered"); redelivered != info->end())
        d.redelivered = truthy(*redelivered);
}

std::string read_body(std::string_view payload, Json& message, const Json& properties) {
    const auto body = message.find("body");
    if (body == message.end() || body->is_null()) return {};
    if (!body->is_string()) reject(payload, "body is " + type_of(*body) + ", not a string");
    std::string& text = body->get_ref<std::string&>();
    // Kombu passes an empty body through without looking at body_encoding.
    if (text.empty()) return {};
    const auto encoding = properties.find("body_encoding");
    if (encoding == properties.end() || encoding->is_null()) return std::move(text);
    if (!encoding->is_string() || encoding->get_ref<const std::string&>() != "base64")
        reject(payload, "properties.body_encoding is " +
                            (encoding->is_string() ? "\"" + encoding->get<std::string>() + "\""
                                                   : type_of(*encoding)) +
                            "; Kombu knows only \"base64\" (or none, for a plain-text body)");
    try {
        return base64_decode(text);
    } catch (const DecodeError& error) {
        // The base64 message already says what a producer must write.
        throw DecodeError("cannot read a Redis message: " + std::string(error.what()) + "; " +
                          std::to_string(payload.size()) + " bytes starting " + preview(payload));
    }
}

}  // namespace

std::string encode_message(const kelp::Envelope& envelope, const DeliveryFields& delivery,
                           BodyEncoding body_encoding) {
    const kelp::Properties& p = envelope.properties;
    std::string out;
    out.reserve(envelope.body.size() * 4 / 3 + 320);
    out += "{\"body\": ";
    if (body_encoding == BodyEncoding::base64) {
        out += '"';
        base64_append(out, envelope.body);
        out += '"';
    } else {
        try {
            append_json_string(out, envelope.body);
        } catch (const kelp::Error&) {
            throw kelp::Error(
                "the body is not UTF-8 text, so body_encoding=none cannot carry it; use "
                "body_encoding=base64 (the default)");
        }
    }
    out += ", \"content-encoding\": ";
    write_optional_string(out, p.content_encoding);
    out += ", \"content-type\": ";
    write_optional_string(out, p.content_type);
    out += ", \"headers\": ";
    write_headers(out, envelope.headers, delivery.redelivered);
    out += ", \"properties\": ";
    write_properties(out, p, delivery, body_encoding);
    out += '}';
    return out;
}

DecodedMessage decode_message(std::string_view payload) {
    if (auto canonical = decode_canonical_message(payload)) return std::move(*canonical);
    return decode_message_parsed(payload);
}

DecodedMessage decode_message_parsed(std::string_view payload) {
    Json message = parse_kombu_json(payload, "a Redis message").value;
    if (!message.is_object())
        reject(payload, "it is JSON but " + type_of(message) + ", not an object");

    const auto properties_at = message.find("properties");
    if (properties_at == message.end()) reject(payload, "properties is missing");
    if (!properties_at->is_object())
        reject(payload, "properties is " + type_of(*properties_at) + ", not an object");
    Json& properties = *properties_at;

    DecodedMessage decoded;
    DeliveryFields& d = decoded.delivery;
    kelp::Envelope& e = decoded.envelope;
    d.delivery_tag = required_string(payload, properties, "delivery_tag", "properties.");
    read_delivery_info(payload, properties, d);
    e.body = read_body(payload, message, properties);
    e.properties.content_type = optional_string(payload, message, "content-type", "");
    e.properties.content_encoding = optional_string(payload, message, "content-encoding", "");

    if (const auto headers = message.find("headers"); headers != message.end()) {
        if (!headers->is_null() && !headers->is_object())
            reject(payload, "headers is " + type_of(*headers) + ", not an object");
        if (headers->is_object() && !headers->empty()) e.headers = std::move(*headers);
    }

    if (const auto priority = properties.find("priority"); priority != properties.end()) {
        d.priority = kombu_priority(*priority);
        e.properties.priority = static_cast<std::uint8_t>(d.priority);
    }
    for (auto it = properties.begin(); it != properties.end(); ++it) {
        const std::string& name = it.key();
        if (is_one_of(name, kTransportProperties)) continue;
        if (read_typed_property(name, it.value(), e.properties)) continue;
        if (d.extra_properties.is_null()) d.extra_properties = Json::object();
        d.extra_properties[name] = std::move(it.value());
    }
    return decoded;
}

}  // namespace kelp::redis
