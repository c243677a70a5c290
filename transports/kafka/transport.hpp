// The kafka:// transport on librdkafka.
//
// Mapping: a queue is a topic; publishing on the default exchange (or on a
// direct exchange, through its bindings) writes to the topic; consumers read
// the topic in the connection's consumer group. An ack marks an offset;
// per partition, kelp stores (and librdkafka commits) only the offset of the
// lowest message not yet settled, so nothing unacked is lost to a crash or a
// rebalance. A requeue republishes the message at the topic's end; a reject
// dead-letters it when the queue (or the URL) names a dead-letter target.
//
// librdkafka runs its own threads; kelp touches its handles only on the
// Connection's thread. The producer's and the consumer's event queues wake
// the Hub through a pipe (rd_kafka_queue_io_event_enable) and are drained to
// empty on every wake-up, so delivery reports and messages are served on the
// Hub; a repeating timer polls the consumer as well, so an idle application
// is never evicted from its group by max.poll.interval.ms.
//
// Thread rules: a KafkaTransport and its channels belong to their
// Connection's thread.
#pragma once

#include <librdkafka/rdkafka.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster.hpp"
#include "kelp/hub.hpp"
#include "kelp/transport.hpp"
#include "kelp/virtual/qos.hpp"
#include "kelp/virtual/unroutable.hpp"

namespace kelp::kafka {

struct KafkaSettings {
    std::string bootstrap_servers;
    std::string mock_cluster;  // non-empty: the process's mock cluster of that name
    int mock_brokers = 1;
    std::string group_id = "kelp";
    std::string client_id = "kelp";
    bool manual_assignment = false;  // assign() every partition instead of subscribe()
    int default_partitions = 1;
    int default_replication = 1;
    std::string dead_letter_topic;  // for rejects of queues without their own target
    std::chrono::milliseconds operation_timeout{5000};
    // librdkafka properties, applied to producer and consumer alike.
    std::vector<std::pair<std::string, std::string>> properties;
};

// Builds the settings from a validated URL; throws UrlError, with
// librdkafka's own text, for a property librdkafka rejects.
KafkaSettings kafka_settings_from(const Url& url, const Options& options);
std::vector<OptionSpec> kafka_option_specs();

class KafkaChannel;

class KafkaTransport final : public Transport {
  public:
    explicit KafkaTransport(KafkaSettings settings);
    ~KafkaTransport() override;

    static const Capabilities& static_capabilities();

    std::string_view name() const override { return "kafka"; }
    const Capabilities& capabilities() const override { return capabilities_; }
    void connect(Clock::time_point deadline) override;
    bool connected() const override { return producer_ != nullptr; }
    // librdkafka reconnects to the brokers by itself: a failed call is
    // retried on this transport, whose consumers and offsets stay.
    bool reconnects_in_place() const override { return connected(); }
    void close() noexcept override;
    void register_with_event_loop(Hub& hub) override;
    std::shared_ptr<Channel> create_channel() override;
    std::uint64_t deliveries() const override { return deliveries_; }

  private:
    friend class KafkaChannel;

    // One partition this connection consumes: the offsets delivered and not
    // yet settled, in offset order, and the offset to commit.
    struct Pending {
        std::int64_t offset;
        std::uint32_t generation;
        bool settled;
    };
    struct Partition {
        std::string topic;
        std::int32_t partition = 0;
        std::deque<Pending> pending;
        std::int64_t commit = -1;          // offset to store; -1: nothing yet
        std::int64_t next_delivery = -1;   // first offset not yet delivered
        std::int64_t delivered_high = -1;  // for redelivered()
        std::uint32_t generation = 0;      // bumped by rewinds and purges
        bool assigned = false;
        bool dirty = false;  // commit moved since the last offsets_store
    };
    struct Buffered {
        rd_kafka_message_t* record;
        Partition* partition;
        std::uint32_t generation;
    };
    struct TopicInfo {
        rd_kafka_topic_t* handle = nullptr;
        int partitions = 1;
        std::uint32_t next_partition = 0;
    };

    rd_kafka_conf_t* make_conf(bool consumer) const;
    void ensure_consumer();
    void attach_queue(rd_kafka_queue_t* queue, int (&fds)[2], bool consumer);
    void detach_queue(rd_kafka_queue_t*& queue, int (&fds)[2]);
    void on_producer_ready();
    void on_consumer_ready();
    void drain_consumer();
    void schedule_drain();
    void schedule_serve();
    void serve_producer();
    void leave_hub();
    void forget_hub();

    // Topics ------------------------------------------------------------------
    // The topic if it exists (cached), nullptr if not.
    TopicInfo* topic(const std::string& name);
    void create_topic(const std::string& name, int partitions, int replication);
    void delete_topic(const std::string& name);
    int partition_count(const std::string& name);
    void produce(TopicInfo& info, const std::string& topic, const Envelope& envelope,
                 std::string_view exchange, std::string_view routing_key, bool redelivered);
    void flush_producer();

    // Consumption ---------------------------------------------------------------
    void consume_topic(const std::string& topic);
    void resubscribe();
    Partition& track(const std::string& topic, std::int32_t partition);
    void buffer_record(rd_kafka_message_t* record);
    void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
    void schedule_delivery();
    void deliver();
    void settle(Partition* partition, std::int64_t offset, std::uint32_t generation);
    // Moves the partition back to `offset`: what was delivered from there on
    // will come again; records buffered for it are dropped.
    void rewind(Partition& partition, std::int64_t offset);
    void store_offsets();
    void commit_sync();
    // Ready messages of a topic (not delivered by this connection), counted
    // from the watermarks; with `purge`, skipped for good.
    std::uint64_t ready_count(const std::string& topic, bool purge);
    bool take_buffered(const std::string& topic, Buffered& out);
    bool take_buffered(std::deque<Buffered>& buffer, Buffered& out);
    void wait_for_records(Clock::duration budget);
    // Waits (bounded) until records of a topic with ready messages are here.
    void prime(const std::string& topic);
    void report(std::exception_ptr error);
    // librdkafka's error callback: every broker gone is a LinkEvent (lost;
    // reconnected with the next record or delivery report), a fatal error
    // is reported; the rest librdkafka retries by itself.
    void on_client_error(rd_kafka_t* handle, rd_kafka_resp_err_t err, const std::string& reason);
    void link_back();

    KafkaSettings settings_;
    Capabilities capabilities_;
    std::shared_ptr<ClusterState> state_;
    rd_kafka_t* producer_ = nullptr;
    rd_kafka_t* consumer_ = nullptr;
    rd_kafka_queue_t* producer_queue_ = nullptr;
    rd_kafka_queue_t* consumer_queue_ = nullptr;
    int producer_fds_[2] = {-1, -1};
    int consumer_fds_[2] = {-1, -1};
    Hub* hub_ = nullptr;
    Handle hub_closing_;
    Handle ticker_;
    Handle delivery_;
    Handle store_;
    Handle commit_timer_;
    Handle drain_soon_;  // every Hub callback holding `this` has a handle,
    Handle serve_soon_;  // cancelled when the transport leaves its Hub
    std::uint64_t topology_generation_ = 0;
    std::unordered_map<std::string, TopicInfo> topics_;
    std::string last_topic_name_;  // topic()'s cache
    TopicInfo* last_topic_ = nullptr;
    std::set<std::string> consumed_;
    std::map<std::pair<std::string, std::int32_t>, std::unique_ptr<Partition>> partitions_;
    std::unordered_map<std::string, std::deque<Buffered>> buffers_;
    rd_kafka_topic_t* last_rkt_ = nullptr;  // buffer_record's cache
    std::int32_t last_partition_id_ = -1;
    Partition* last_partition_ = nullptr;
    std::deque<Buffered>* last_buffer_ = nullptr;
    std::vector<std::weak_ptr<KafkaChannel>> channels_;
    std::uint64_t deliveries_ = 0;
    std::uint64_t produced_ = 0;
    bool link_lost_ = false;
    std::uint64_t delivery_failures_ = 0;
    std::string last_delivery_error_;
};

class KafkaChannel final : public Channel {
  public:
    explicit KafkaChannel(KafkaTransport& transport);
    ~KafkaChannel() override;

    void exchange_declare(const Exchange& exchange, bool passive) override;
    void exchange_delete(const std::string& name, bool if_unused) override;
    QueueDeclareOk queue_declare(const Queue& queue, bool passive) override;
    void queue_bind(const std::string& queue, const std::string& exchange,
                    const std::string& routing_key, const Table& arguments) override;
    void queue_unbind(const std::string& queue, const std::string& exchange,
                      const std::string& routing_key, const Table& arguments) override;
    std::uint64_t queue_purge(const std::string& queue) override;
    std::uint64_t queue_delete(const std::string& queue, bool if_unused, bool if_empty) override;
    using Channel::basic_publish;
    void basic_publish(std::shared_ptr<const Envelope> envelope, const std::string& exchange,
                       const std::string& routing_key, PublishFlags flags) override;
    std::string basic_consume(const std::string& queue, bool no_ack, DeliveryCallback callback,
                              const std::string& consumer_tag) override;
    void basic_cancel(const std::string& consumer_tag) override;
    std::optional<Message> basic_get(const std::string& queue, bool no_ack) override;
    void basic_ack(std::uint64_t delivery_tag, bool multiple) override;
    void basic_reject(std::uint64_t delivery_tag, bool requeue) override;
    void basic_qos(std::uint32_t prefetch_count, bool global) override;
    void basic_recover(bool requeue) override;
    void on_return(ReturnCallback callback) override { on_return_ = std::move(callback); }
    std::optional<std::uint64_t> unroutable_dropped() const override {
        return unroutable_.dropped();
    }
    void close() override;
    bool is_open() const override { return open_; }

  private:
    friend class KafkaTransport;

    struct Record {
        KafkaTransport::Partition* partition = nullptr;
        std::int64_t offset = 0;
        std::uint32_t generation = 0;
        std::shared_ptr<const Envelope> envelope;
        std::string routing_key;  // empty: the topic's name
    };
    struct ConsumerEntry {
        std::string tag;
        std::string queue;
        bool no_ack;
        DeliveryCallback callback;
        bool cancelled = false;
        // The transport's buffer of the queue (stable until the transport
        // closes, when the channel closes too); found on first delivery.
        std::deque<KafkaTransport::Buffered>* buffer = nullptr;
    };

    void check_open() const;
    // Hands buffered records to this channel's consumers in turn, at most
    // `budget` and not past `until`; returns how many. `more`: some are
    // left that could go now.
    std::size_t deliver(std::size_t budget, KafkaTransport::Clock::time_point until, bool& more);
    void remove_cancelled();
    // Hands one buffered record to `entry` (or to basic_get when null).
    Message make_message(KafkaTransport::Buffered& buffered, const std::string& consumer_tag,
                         bool no_ack);
    void dead_letter(Record& record);
    // Gives every unacked message back (rewinding its partition).
    void give_back();

    KafkaTransport& transport_;
    virt::QoS<Record> qos_;
    std::vector<std::unique_ptr<ConsumerEntry>> consumers_;
    std::size_t next_consumer_ = 0;
    std::uint64_t tag_counter_ = 0;
    ReturnCallback on_return_;
    virt::Unroutable unroutable_{"topic", "declare the queue first"};
    bool open_ = true;
    bool delivering_ = false;  // inside deliver(): cancelled entries stay until it ends
};

}  // namespace kelp::kafka
