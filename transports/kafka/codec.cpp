#include "codec.hpp"

#include <charconv>
#include <cstring>

#include "kelp/serialization.hpp"

namespace kelp::kafka {
namespace {

constexpr std::string_view key_header = "kafka_key";
constexpr std::string_view prefix = "kelp.";
// What a record without kelp.content_type / kelp.content_encoding means: raw
// bytes, which is also the right reading of a record from any other client.
constexpr std::string_view default_content_type = raw_content_type;
constexpr std::string_view default_content_encoding = "binary";

void add(rd_kafka_headers_t* headers, std::string_view name, std::string_view value) {
    rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                        static_cast<ssize_t>(value.size()));
}

template <class Int>
std::optional<Int> to_int(std::string_view text) {
    Int value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

}  // namespace

std::string_view record_key(const Envelope& envelope) {
    if (!envelope.headers.is_object()) return {};
    auto found = envelope.headers.find(key_header);
    if (found == envelope.headers.end() || !found->is_string()) return {};
    return found->get_ref<const std::string&>();
}

rd_kafka_headers_t* encode_headers(const Envelope& envelope, std::string_view exchange,
                                   std::string_view routing_key, std::string_view topic,
                                   bool redelivered) {
    const Properties& p = envelope.properties;
    rd_kafka_headers_t* headers = nullptr;
    auto out = [&]() {
        if (headers == nullptr) headers = rd_kafka_headers_new(8);
        return headers;
    };
    if (envelope.headers.is_object() && !envelope.headers.empty()) {
        Json typed = Json::object();
        for (auto it = envelope.headers.begin(); it != envelope.headers.end(); ++it) {
            if (it.key() == key_header && it.value().is_string()) continue;
            if (it.value().is_string() && !it.key().starts_with(prefix)) {
                add(out(), it.key(), it.value().get_ref<const std::string&>());
            } else {
                typed[it.key()] = it.value();
            }
        }
        if (!typed.empty()) add(out(), "kelp.headers", typed.dump());
    }
    // The defaults travel as the absence of the header (librdkafka produces
    // a record with headers at less than half its rate without); anything
    // else, empty included, is written as it is.
    if (p.content_type != default_content_type) add(out(), "kelp.content_type", p.content_type);
    if (p.content_encoding != default_content_encoding)
        add(out(), "kelp.content_encoding", p.content_encoding);
    if (p.priority) add(out(), "kelp.priority", std::to_string(*p.priority));
    if (p.delivery_mode != DeliveryMode::persistent) add(out(), "kelp.delivery_mode", "1");
    if (!p.correlation_id.empty()) add(out(), "kelp.correlation_id", p.correlation_id);
    if (!p.reply_to.empty()) add(out(), "kelp.reply_to", p.reply_to);
    if (p.expiration) add(out(), "kelp.expiration", std::to_string(p.expiration->count()));
    if (!p.message_id.empty()) add(out(), "kelp.message_id", p.message_id);
    if (p.timestamp) add(out(), "kelp.timestamp", std::to_string(*p.timestamp));
    if (!p.type.empty()) add(out(), "kelp.type", p.type);
    if (!p.user_id.empty()) add(out(), "kelp.user_id", p.user_id);
    if (!p.app_id.empty()) add(out(), "kelp.app_id", p.app_id);
    if (!exchange.empty()) add(out(), "kelp.exchange", exchange);
    if (routing_key != topic) add(out(), "kelp.routing_key", routing_key);
    if (redelivered) add(out(), "kelp.redelivered", "1");
    return headers;
}

RecordRoute decode_record(const rd_kafka_message_t& record, Envelope& envelope) {
    RecordRoute out;
    if (record.payload != nullptr) {
        envelope.body.assign(static_cast<const char*>(record.payload), record.len);
    } else {
        envelope.body.clear();
    }
    Properties& p = envelope.properties;
    // Cleared field by field: the strings keep their capacity.
    p.content_type.assign(default_content_type);
    p.content_encoding.assign(default_content_encoding);
    p.priority.reset();
    p.delivery_mode = DeliveryMode::persistent;
    p.correlation_id.clear();
    p.reply_to.clear();
    p.expiration.reset();
    p.message_id.clear();
    p.timestamp.reset();
    p.type.clear();
    p.user_id.clear();
    p.app_id.clear();
    if (record.key != nullptr && record.key_len > 0) {
        envelope.headers[std::string(key_header)] =
            std::string(static_cast<const char*>(record.key), record.key_len);
    }
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(&record, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        headers == nullptr) {
        return out;
    }
    const char* name = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
        const std::string_view key(name);
        const std::string_view text(value == nullptr ? "" : static_cast<const char*>(value),
                                    value == nullptr ? 0 : size);
        if (!key.starts_with(prefix)) {
            envelope.headers[std::string(key)] = std::string(text);
            continue;
        }
        const std::string_view field = key.substr(prefix.size());
        if (field == "headers") {
            Json typed = Json::parse(text, nullptr, false);
            if (typed.is_object()) {
                for (auto it = typed.begin(); it != typed.end(); ++it)
                    envelope.headers[it.key()] = it.value();
                continue;
            }
        } else if (field == "content_type") {
            p.content_type = text;
            continue;
        } else if (field == "content_encoding") {
            p.content_encoding = text;
            continue;
        } else if (field == "priority") {
            if (auto v = to_int<unsigned>(text); v && *v <= 255) {
                p.priority = static_cast<std::uint8_t>(*v);
                continue;
            }
        } else if (field == "delivery_mode") {
            p.delivery_mode = text == "1" ? DeliveryMode::transient : DeliveryMode::persistent;
            continue;
        } else if (field == "correlation_id") {
            p.correlation_id = text;
            continue;
        } else if (field == "reply_to") {
            p.reply_to = text;
            continue;
        } else if (field == "expiration") {
            if (auto v = to_int<std::int64_t>(text)) {
                p.expiration = std::chrono::milliseconds(*v);
                continue;
            }
        } else if (field == "message_id") {
            p.message_id = text;
            continue;
        } else if (field == "timestamp") {
            if (auto v = to_int<std::int64_t>(text)) {
                p.timestamp = *v;
                continue;
            }
        } else if (field == "type") {
            p.type = text;
            continue;
        } else if (field == "user_id") {
            p.user_id = text;
            continue;
        } else if (field == "app_id") {
            p.app_id = text;
            continue;
        } else if (field == "exchange") {
            out.exchange = text;
            continue;
        } else if (field == "routing_key") {
            out.routing_key = text;
            continue;
        } else if (field == "redelivered") {
            out.redelivered = text == "1";
            continue;
        }
        // Unreadable: kept as a plain header, never an error.
        envelope.headers[std::string(key)] = std::string(text);
    }
    return out;
}

}  // namespace kelp::kafka
