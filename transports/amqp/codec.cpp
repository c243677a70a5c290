#include "codec.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace kelp::amqp {

amqp_table_t TableEncoder::table(const Json& object) {
    if (object.is_null() || (object.is_object() && object.empty())) return amqp_table_t{0, nullptr};
    if (!object.is_object())
        throw std::invalid_argument(std::string("a field table must be a JSON object, not ") +
                                    object.type_name());
    auto& entries = entries_.emplace_back();
    entries.reserve(object.size());
    for (const auto& [key, item] : object.items()) {
        amqp_table_entry_t entry{};
        entry.key = bytes_of(key);
        entry.value = value(item);
        entries.push_back(entry);
    }
    return amqp_table_t{static_cast<int>(entries.size()), entries.data()};
}

amqp_field_value_t TableEncoder::value(const Json& v) {
    amqp_field_value_t out{};
    switch (v.type()) {
        case Json::value_t::null:
            out.kind = AMQP_FIELD_KIND_VOID;
            break;
        case Json::value_t::boolean:
            out.kind = AMQP_FIELD_KIND_BOOLEAN;
            out.value.boolean = v.get<bool>() ? 1 : 0;
            break;
        case Json::value_t::string: {
            const auto& text = v.get_ref<const std::string&>();
            out.kind = AMQP_FIELD_KIND_UTF8;
            out.value.bytes = bytes_of(text);
            break;
        }
        case Json::value_t::number_integer:
        case Json::value_t::number_unsigned: {
            const bool is_unsigned = v.is_number_unsigned();
            const std::uint64_t u = is_unsigned ? v.get<std::uint64_t>() : 0;
            const std::int64_t i =
                is_unsigned ? static_cast<std::int64_t>(u) : v.get<std::int64_t>();
            if ((!is_unsigned || u <= INT32_MAX) && i >= INT32_MIN && i <= INT32_MAX) {
                out.kind = AMQP_FIELD_KIND_I32;
                out.value.i32 = static_cast<std::int32_t>(i);
            } else if (wide_ == Wide::kombu_headers) {
                // 'L' with the signed value's bytes: py-amqp writes and reads it so.
                out.kind = AMQP_FIELD_KIND_U64;
                out.value.u64 = static_cast<std::uint64_t>(i);
            } else {
                out.kind = AMQP_FIELD_KIND_I64;
                out.value.i64 = i;
            }
            break;
        }
        case Json::value_t::number_float:
            out.kind = AMQP_FIELD_KIND_F64;
            out.value.f64 = v.get<double>();
            break;
        case Json::value_t::object:
            out.kind = AMQP_FIELD_KIND_TABLE;
            out.value.table = table(v);
            break;
        case Json::value_t::array: {
            auto& items = values_.emplace_back();
            items.reserve(v.size());
            for (const auto& item : v)
                items.push_back(value(item));
            out.kind = AMQP_FIELD_KIND_ARRAY;
            out.value.array = amqp_array_t{static_cast<int>(items.size()), items.data()};
            break;
        }
        case Json::value_t::binary: {
            const auto& bin = v.get_binary();
            out.kind = AMQP_FIELD_KIND_BYTES;
            out.value.bytes = amqp_bytes_t{bin.size(), const_cast<std::uint8_t*>(bin.data())};
            break;
        }
        case Json::value_t::discarded:
            out.kind = AMQP_FIELD_KIND_VOID;
            break;
    }
    return out;
}

namespace {

Json decode_value(const amqp_field_value_t& v) {
    switch (v.kind) {
        case AMQP_FIELD_KIND_BOOLEAN:
            return Json(v.value.boolean != 0);
        case AMQP_FIELD_KIND_I8:
            return Json(std::int64_t{v.value.i8});
        case AMQP_FIELD_KIND_U8:
            return Json(std::int64_t{v.value.u8});
        case AMQP_FIELD_KIND_I16:
            return Json(std::int64_t{v.value.i16});
        case AMQP_FIELD_KIND_U16:
            return Json(std::int64_t{v.value.u16});
        case AMQP_FIELD_KIND_I32:
            return Json(std::int64_t{v.value.i32});
        case AMQP_FIELD_KIND_U32:
            return Json(std::int64_t{v.value.u32});
        case AMQP_FIELD_KIND_I64:
            return Json(v.value.i64);
        // 'L': signed, as py-amqp writes it.
        case AMQP_FIELD_KIND_U64:
            return Json(static_cast<std::int64_t>(v.value.u64));
        case AMQP_FIELD_KIND_TIMESTAMP:
            return Json(static_cast<std::int64_t>(v.value.u64));
        case AMQP_FIELD_KIND_F32:
            return Json(static_cast<double>(v.value.f32));
        case AMQP_FIELD_KIND_F64:
            return Json(v.value.f64);
        case AMQP_FIELD_KIND_DECIMAL:
            return Json(static_cast<double>(v.value.decimal.value) /
                        std::pow(10.0, v.value.decimal.decimals));
        case AMQP_FIELD_KIND_UTF8:
            return Json(string_of(v.value.bytes));
        case AMQP_FIELD_KIND_BYTES: {
            const auto* data = static_cast<const std::uint8_t*>(v.value.bytes.bytes);
            return Json::binary(std::vector<std::uint8_t>(data, data + v.value.bytes.len));
        }
        case AMQP_FIELD_KIND_ARRAY: {
            Json array = Json::array();
            for (int i = 0; i < v.value.array.num_entries; ++i)
                array.push_back(decode_value(v.value.array.entries[i]));
            return array;
        }
        case AMQP_FIELD_KIND_TABLE:
            return decode_table(v.value.table);
        case AMQP_FIELD_KIND_VOID:
        default:
            return Json(nullptr);
    }
}

}  // namespace

Json decode_table(const amqp_table_t& table) {
    Json object = Json::object();
    for (int i = 0; i < table.num_entries; ++i) {
        object[string_of(table.entries[i].key)] = decode_value(table.entries[i].value);
    }
    return object;
}

PropertiesEncoder::PropertiesEncoder(const Envelope& envelope) {
    const Properties& p = envelope.properties;
    amqp_flags_t flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    properties_.headers = headers_.table(envelope.headers);
    properties_.delivery_mode = static_cast<std::uint8_t>(p.delivery_mode);
    auto text = [&](const std::string& value, amqp_bytes_t& field, amqp_flags_t flag) {
        if (value.empty()) return;
        field = bytes_of(value);
        flags |= flag;
    };
    text(p.content_type, properties_.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG);
    text(p.content_encoding, properties_.content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG);
    text(p.correlation_id, properties_.correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG);
    text(p.reply_to, properties_.reply_to, AMQP_BASIC_REPLY_TO_FLAG);
    text(p.message_id, properties_.message_id, AMQP_BASIC_MESSAGE_ID_FLAG);
    text(p.type, properties_.type, AMQP_BASIC_TYPE_FLAG);
    text(p.user_id, properties_.user_id, AMQP_BASIC_USER_ID_FLAG);
    text(p.app_id, properties_.app_id, AMQP_BASIC_APP_ID_FLAG);
    if (p.priority) {
        properties_.priority = *p.priority;
        flags |= AMQP_BASIC_PRIORITY_FLAG;
    }
    if (p.expiration) {
        expiration_ = std::to_string(p.expiration->count());
        properties_.expiration = bytes_of(expiration_);
        flags |= AMQP_BASIC_EXPIRATION_FLAG;
    }
    if (p.timestamp) {
        properties_.timestamp = static_cast<std::uint64_t>(*p.timestamp);
        flags |= AMQP_BASIC_TIMESTAMP_FLAG;
    }
    properties_._flags = flags;
}

Envelope decode_envelope(const amqp_basic_properties_t& p, std::string body) {
    Envelope envelope;
    envelope.body = std::move(body);
    const amqp_flags_t flags = p._flags;
    auto text = [&](amqp_flags_t flag, const amqp_bytes_t& field, std::string& out) {
        if ((flags & flag) != 0) out = string_of(field);
    };
    Properties& out = envelope.properties;
    text(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type, out.content_type);
    text(AMQP_BASIC_CONTENT_ENCODING_FLAG, p.content_encoding, out.content_encoding);
    text(AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id, out.correlation_id);
    text(AMQP_BASIC_REPLY_TO_FLAG, p.reply_to, out.reply_to);
    text(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id, out.message_id);
    text(AMQP_BASIC_TYPE_FLAG, p.type, out.type);
    text(AMQP_BASIC_USER_ID_FLAG, p.user_id, out.user_id);
    text(AMQP_BASIC_APP_ID_FLAG, p.app_id, out.app_id);
    if ((flags & AMQP_BASIC_HEADERS_FLAG) != 0) envelope.headers = decode_table(p.headers);
    // Absent means AMQP's default: not persistent.
    out.delivery_mode = (flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0 && p.delivery_mode == 2
                            ? DeliveryMode::persistent
                            : DeliveryMode::transient;
    if ((flags & AMQP_BASIC_PRIORITY_FLAG) != 0) out.priority = p.priority;
    if ((flags & AMQP_BASIC_EXPIRATION_FLAG) != 0) {
        const std::string text_value = string_of(p.expiration);
        std::int64_t ms = 0;
        const auto [end, ec] =
            std::from_chars(text_value.data(), text_value.data() + text_value.size(), ms);
        if (ec == std::errc() && end == text_value.data() + text_value.size())
            out.expiration = std::chrono::milliseconds(ms);
    }
    if ((flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0)
        out.timestamp = static_cast<std::int64_t>(p.timestamp);
    return envelope;
}

}  // namespace kelp::amqp
