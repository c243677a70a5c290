// Reading canonical envelopes without a JSON tree.
#include "wire/canonical_envelope.hpp"

#include <algorithm>
#include <cstdint>

#include "kelp/errors.hpp"
#include "wire/base64.hpp"

namespace kelp::redis {
namespace {

// Walks the text left to right; every reader returns false or nullopt, and
// leaves the position anywhere, when the text is not what it reads.
class Cursor {
  public:
    explicit Cursor(std::string_view text) : text_(text) {}

    bool literal(std::string_view expected) {
        if (text_.substr(at_, expected.size()) != expected) return false;
        at_ += expected.size();
        return true;
    }

    // A string of printable ASCII without escapes: its characters.
    std::optional<std::string_view> plain_string() {
        if (at_ >= text_.size() || text_[at_] != '"') return std::nullopt;
        const std::size_t start = at_ + 1;
        for (std::size_t i = start; i < text_.size(); ++i) {
            const auto c = static_cast<unsigned char>(text_[i]);
            if (c == '"') {
                at_ = i + 1;
                return text_.substr(start, i - start);
            }
            if (c < 0x20 || c >= 0x7F || c == '\\') return std::nullopt;
        }
        return std::nullopt;
    }

    // A plain string, or null (read as "").
    std::optional<std::string_view> plain_string_or_null() {
        if (literal("null")) return std::string_view();
        return plain_string();
    }

    // An integer of at most 18 digits in JSON's form (no leading zero, no
    // "-0"), followed by neither a fraction nor an exponent.
    std::optional<std::int64_t> integer() {
        const bool negative = at_ < text_.size() && text_[at_] == '-';
        std::size_t i = at_ + (negative ? 1 : 0);
        const std::size_t first = i;
        std::int64_t value = 0;
        while (i < text_.size() && text_[i] >= '0' && text_[i] <= '9') {
            // A 19th digit could overflow: such numbers take the full parser.
            if (i - first == 18) return std::nullopt;
            value = value * 10 + (text_[i] - '0');
            ++i;
        }
        const std::size_t digits = i - first;
        if (digits == 0) return std::nullopt;
        if (text_[first] == '0' && (digits > 1 || negative)) return std::nullopt;
        if (i < text_.size() && (text_[i] == '.' || text_[i] == 'e' || text_[i] == 'E')) {
            return std::nullopt;
        }
        at_ = i;
        return negative ? -value : value;
    }

    bool at_end() const { return at_ == text_.size(); }

  private:
    std::string_view text_;
    std::size_t at_ = 0;
};

// The properties a canonical envelope may hold, each at most once.
enum Seen : unsigned {
    seen_delivery_info = 1u << 0,
    seen_priority = 1u << 1,
    seen_body_encoding = 1u << 2,
    seen_delivery_tag = 1u << 3,
    seen_delivery_mode = 1u << 4,
    seen_timestamp = 1u << 5,
    seen_expiration = 1u << 6,
    seen_correlation_id = 1u << 7,
    seen_reply_to = 1u << 8,
    seen_message_id = 1u << 9,
    seen_type = 1u << 10,
    seen_app_id = 1u << 11,
    seen_user_id = 1u << 12,
};

struct StringField {
    std::string_view name;
    Seen seen;
    std::string Properties::*field;
};

constexpr StringField kStringFields[] = {
    {"correlation_id", seen_correlation_id, &Properties::correlation_id},
    {"reply_to", seen_reply_to, &Properties::reply_to},
    {"message_id", seen_message_id, &Properties::message_id},
    {"type", seen_type, &Properties::type},
    {"app_id", seen_app_id, &Properties::app_id},
    {"user_id", seen_user_id, &Properties::user_id},
};

// Reads one property's value into `m`; false when it is not canonical.
bool read_property(Cursor& in, std::string_view name, unsigned& seen, DecodedMessage& m,
                   bool& base64_body) {
    auto once = [&seen](Seen flag) {
        if ((seen & flag) != 0) return false;
        seen |= flag;
        return true;
    };
    Properties& p = m.envelope.properties;
    DeliveryFields& d = m.delivery;
    if (name == "delivery_info") {
        if (!once(seen_delivery_info) || !in.literal("{\"exchange\": ")) return false;
        const auto exchange = in.plain_string();
        if (!exchange || !in.literal(", \"routing_key\": ")) return false;
        const auto routing_key = in.plain_string();
        if (!routing_key) return false;
        d.exchange = *exchange;
        d.routing_key = *routing_key;
        if (in.literal(", \"redelivered\": true")) {
            d.redelivered = true;
        } else if (in.literal(", \"redelivered\": false")) {
            d.redelivered = false;
        }
        return in.literal("}");
    }
    if (name == "priority") {
        const auto priority = in.integer();
        if (!once(seen_priority) || !priority) return false;
        // Kombu's rule: int() clamped to 0..9.
        d.priority = static_cast<int>(std::clamp<std::int64_t>(*priority, 0, 9));
        p.priority = static_cast<std::uint8_t>(d.priority);
        return true;
    }
    if (name == "body_encoding") {
        if (!once(seen_body_encoding)) return false;
        if (in.literal("null")) return true;
        const auto encoding = in.plain_string();
        if (!encoding || *encoding != "base64") return false;
        base64_body = true;
        return true;
    }
    if (name == "delivery_tag") {
        const auto tag = in.plain_string();
        if (!once(seen_delivery_tag) || !tag) return false;
        d.delivery_tag = *tag;
        return true;
    }
    if (name == "delivery_mode") {
        const auto mode = in.integer();
        if (!once(seen_delivery_mode) || !mode || (*mode != 1 && *mode != 2)) return false;
        p.delivery_mode = *mode == 1 ? DeliveryMode::transient : DeliveryMode::persistent;
        return true;
    }
    if (name == "timestamp") {
        const auto timestamp = in.integer();
        if (!once(seen_timestamp) || !timestamp) return false;
        p.timestamp = *timestamp;
        return true;
    }
    if (name == "expiration") {
        const auto text = in.plain_string();
        if (!once(seen_expiration) || !text || text->empty() || text->size() > 18) return false;
        std::int64_t ms = 0;
        for (const char c : *text) {
            if (c < '0' || c > '9') return false;
            ms = ms * 10 + (c - '0');
        }
        p.expiration = std::chrono::milliseconds(ms);
        return true;
    }
    for (const StringField& field : kStringFields) {
        if (name != field.name) continue;
        const auto value = in.plain_string();
        // An empty one is an extra property on the general path.
        if (!once(field.seen) || !value || value->empty()) return false;
        p.*field.field = *value;
        return true;
    }
    return false;  // an extra property
}

}  // namespace

std::optional<DecodedMessage> decode_canonical_message(std::string_view payload) {
    Cursor in(payload);
    DecodedMessage m;
    if (!in.literal("{\"body\": ")) return std::nullopt;
    const auto body = in.plain_string();
    if (!body || !in.literal(", \"content-encoding\": ")) return std::nullopt;
    const auto content_encoding = in.plain_string_or_null();
    if (!content_encoding || !in.literal(", \"content-type\": ")) return std::nullopt;
    const auto content_type = in.plain_string_or_null();
    if (!content_type || !in.literal(", \"headers\": {}, \"properties\": {")) return std::nullopt;

    unsigned seen = 0;
    bool base64_body = false;
    do {
        const auto name = in.plain_string();
        if (!name || !in.literal(": ") || !read_property(in, *name, seen, m, base64_body)) {
            return std::nullopt;
        }
    } while (in.literal(", "));
    if (!in.literal("}}") || !in.at_end()) return std::nullopt;
    if ((seen & seen_delivery_info) == 0 || (seen & seen_delivery_tag) == 0) return std::nullopt;

    m.envelope.properties.content_encoding = *content_encoding;
    m.envelope.properties.content_type = *content_type;
    if (!body->empty()) {
        if (!base64_body) {
            m.envelope.body = *body;
        } else {
            try {
                m.envelope.body = base64_decode(*body);
            } catch (const DecodeError&) {
                return std::nullopt;
            }
        }
    }
    return m;
}

}  // namespace kelp::redis
