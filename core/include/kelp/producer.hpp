// Producer: publishes messages, with Kombu's publish options.
//
//   producer.publish(R"({"file":"a.mp4"})", {.exchange = media, .routing_key = "video",
//                    .content_type = "application/json", .declare = {video}});
//   producer.publish(kelp::Json{{"file", "a.mp4"}}, {.routing_key = "video"});
//
// A string body is sent as bytes (content type "application/data" unless
// given); a Json body is encoded with `serializer` (default "json").
//
// Thread rules: belongs to its Connection's thread.
#pragma once

#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "kelp/channel.hpp"
#include "kelp/entities.hpp"
#include "kelp/json.hpp"
#include "kelp/retry.hpp"

namespace kelp {

class Connection;

struct PublishOptions {
    std::optional<Exchange> exchange;        // default: the producer's exchange
    std::optional<std::string> routing_key;  // default: the producer's key
    std::string serializer;                  // for Json bodies; default the producer's
    std::string content_type;                // for string bodies
    std::string content_encoding;            // for string bodies
    std::string compression;                 // "zlib", "bz2", "lzma", "zstd" or a MIME type
    Table headers;
    std::optional<std::uint8_t> priority;
    std::optional<std::chrono::milliseconds> expiration;
    std::optional<DeliveryMode> delivery_mode;
    bool mandatory = false;
    std::string correlation_id;
    std::string reply_to;
    std::string message_id;
    std::string type;
    std::string app_id;
    std::string user_id;
    std::optional<std::int64_t> timestamp;
    // Retry a publish that failed with ConnectionError (after reconnecting).
    std::optional<RetryPolicy> retry;
    // Declared (through maybe_declare) before publishing.
    std::vector<Queue> declare;
};

struct ProducerOptions {
    Exchange exchange;  // the default exchange ""
    std::string routing_key;
    std::string serializer = "json";
    std::string compression;
    DeliveryMode delivery_mode = DeliveryMode::persistent;
    // Declare the producer's exchange when the producer is made.
    bool auto_declare = true;
    // Where unroutable mandatory messages go (see Channel::on_return).
    ReturnCallback on_return;
};

class Producer {
  public:
    explicit Producer(Connection& connection, ProducerOptions options = {});
    // Publishes on the given channel instead of the connection's default one.
    Producer(Connection& connection, std::shared_ptr<Channel> channel,
             ProducerOptions options = {});

    // Bytes, sent as they are.
    template <class Body>
    requires(std::convertible_to<const Body&, std::string_view> &&
             !std::same_as<std::remove_cvref_t<Body>,
                           Json>) void publish(const Body& body,
                                               const PublishOptions& options = no_options()) {
        publish_bytes(std::string_view(body), options);
    }
    // A value, encoded with the serializer.
    void publish(const Json& value, const PublishOptions& options = no_options());

    void publish_bytes(std::string_view body, const PublishOptions& options);

    Connection& connection() { return connection_; }
    Channel& channel();

  private:
    // The options of a publish that gives none: made once, not per call
    // (a PublishOptions is a few hundred bytes to build and destroy).
    static const PublishOptions& no_options();
    // Fills headers, compression and properties of an envelope whose body and
    // content type are set.
    void prepare(Envelope& envelope, const PublishOptions& options) const;
    void send(std::shared_ptr<const Envelope> envelope, const PublishOptions& options);

    Connection& connection_;
    std::shared_ptr<Channel> channel_;  // null: the connection's default channel
    ProducerOptions options_;
};

// PublishBatch: holds the producer's publishes back while it lives, so they
// leave for the broker together when it ends (or at flush()). On Redis a run
// of publishes to one queue becomes one script call and one write instead
// of one each; other transports take it as a no-op (AMQP writes each
// publish in one system call, Kafka batches in librdkafka). What is held
// waits in memory: flush every few hundred publishes in a long loop.
//
//   {
//       kelp::PublishBatch batch{producer};
//       for (const auto& row : rows) producer.publish(row, {.routing_key = "rows"});
//   }  // written here
//
// A write that fails is reported like any publish's (the link event, then
// ConnectionError from the next call). Thread rules: the producer's.
class PublishBatch {
  public:
    explicit PublishBatch(Producer& producer);
    ~PublishBatch();
    PublishBatch(const PublishBatch&) = delete;
    PublishBatch& operator=(const PublishBatch&) = delete;

    // Writes what is held so far and goes on holding.
    void flush();

  private:
    // Shared: a connection closed inside the batch must not free it.
    std::shared_ptr<Channel> channel_;
};

}  // namespace kelp
