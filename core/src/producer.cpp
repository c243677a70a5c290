#include "kelp/producer.hpp"

#include <chrono>

#include "kelp/compression.hpp"
#include "kelp/connection.hpp"
#include "kelp/envelope_pool.hpp"
#include "kelp/errors.hpp"
#include "kelp/serialization.hpp"

namespace kelp {

Producer::Producer(Connection& connection, ProducerOptions options)
    : Producer(connection, nullptr, std::move(options)) {}

Producer::Producer(Connection& connection, std::shared_ptr<Channel> channel,
                   ProducerOptions options)
    : connection_(connection), channel_(std::move(channel)), options_(std::move(options)) {
    if (options_.auto_declare && !options_.exchange.is_default()) {
        connection_.maybe_declare(options_.exchange);
    }
    if (options_.on_return) this->channel().on_return(options_.on_return);
}

const PublishOptions& Producer::no_options() {
    // Never destroyed: a publish may still happen during static destruction.
    static const PublishOptions* const options = new PublishOptions;
    return *options;
}

Channel& Producer::channel() {
    if (channel_) return *channel_;
    return connection_.default_channel();
}

void Producer::publish(const Json& value, const PublishOptions& options) {
    const std::string& serializer =
        options.serializer.empty() ? options_.serializer : options.serializer;
    Encoded encoded = encode(value, serializer);
    // Built in its final place: the envelope is shared from here to the
    // broker (and to a retry) without being moved or copied.
    auto envelope = detail::pooled_envelope();
    envelope->body = std::move(encoded.body);
    envelope->properties.content_type = std::move(encoded.content_type);
    envelope->properties.content_encoding = std::move(encoded.content_encoding);
    prepare(*envelope, options);
    send(std::move(envelope), options);
}

void Producer::publish_bytes(std::string_view body, const PublishOptions& options) {
    // A recycled envelope: the body and the content type fit the capacity
    // an earlier message left, so a stream of small messages allocates
    // nothing here.
    auto envelope = detail::pooled_envelope();
    envelope->body.assign(body);
    Properties& p = envelope->properties;
    if (options.content_type.empty() && options.content_encoding.empty()) {
        // The common case, without a registry lookup: Kombu's raw bytes.
        p.content_type = raw_content_type;
        p.content_encoding = "binary";
    } else {
        Encoded encoded = encode_bytes({}, options.content_type, options.content_encoding);
        p.content_type = std::move(encoded.content_type);
        p.content_encoding = std::move(encoded.content_encoding);
    }
    prepare(*envelope, options);
    send(std::move(envelope), options);
}

namespace {

// Envelopes are recycled, so every field is assigned; most are empty on
// both sides, and this skips the copy for those.
void assign(std::string& to, const std::string& from) {
    if (!to.empty() || !from.empty()) to = from;
}

}  // namespace

void Producer::prepare(Envelope& envelope, const PublishOptions& options) const {
    // A pooled envelope comes with null headers.
    if (!options.headers.is_null() || !envelope.headers.is_null()) {
        envelope.headers = options.headers;
    }
    const std::string& compression =
        options.compression.empty() ? options_.compression : options.compression;
    if (!compression.empty()) {
        envelope.body = compress(compression, envelope.body);
        if (!envelope.headers.is_object()) envelope.headers = Table::object();
        envelope.headers["compression"] = std::string(compression_mime(compression));
    }
    Properties& p = envelope.properties;
    p.priority = options.priority;
    p.delivery_mode = options.delivery_mode.value_or(options_.delivery_mode);
    p.expiration = options.expiration;
    assign(p.correlation_id, options.correlation_id);
    assign(p.reply_to, options.reply_to);
    assign(p.message_id, options.message_id);
    assign(p.type, options.type);
    assign(p.app_id, options.app_id);
    assign(p.user_id, options.user_id);
    p.timestamp = options.timestamp;
}

void Producer::send(std::shared_ptr<const Envelope> envelope, const PublishOptions& options) {
    const Exchange& exchange = options.exchange ? *options.exchange : options_.exchange;
    const std::string& routing_key =
        options.routing_key ? *options.routing_key : options_.routing_key;
    auto declare = [&] {
        for (const Queue& queue : options.declare)
            connection_.maybe_declare(queue);
        if (options.exchange && !exchange.is_default()) connection_.maybe_declare(exchange);
    };
    if (options.retry) {
        connection_.ensure(
            [&] {
                declare();
                // Shared, not moved: a retry publishes the same envelope again.
                channel().basic_publish(envelope, exchange.name, routing_key, {options.mandatory});
            },
            *options.retry);
    } else {
        declare();
        // Moved: no reference count to touch on the way to the broker.
        channel().basic_publish(std::move(envelope), exchange.name, routing_key,
                                {options.mandatory});
    }
}

PublishBatch::PublishBatch(Producer& producer) : channel_(producer.channel().shared_from_this()) {
    channel_->begin_batch();
}

PublishBatch::~PublishBatch() {
    channel_->end_batch();
}

void PublishBatch::flush() {
    channel_->end_batch();
    channel_->begin_batch();
}

}  // namespace kelp
