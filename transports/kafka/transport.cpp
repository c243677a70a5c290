#include "transport.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "codec.hpp"
#include "kelp/envelope_pool.hpp"
#include "kelp/errors.hpp"

namespace kelp::kafka {
namespace {

// One Hub callback hands out at most this many messages, and pulls at most
// `pull_budget` records from librdkafka, so other fds and timers get turns.
constexpr std::size_t delivery_budget = 1024;
constexpr std::size_t pull_budget = 4096;
// Messages one consumer gets in a row before the next consumer's turn.
constexpr std::size_t delivery_run = 32;
constexpr auto delivery_slice = std::chrono::milliseconds(2);
constexpr auto commit_delay = std::chrono::milliseconds(100);
// The consumer is polled at least this often whatever the fd says: librdkafka
// evicts a member that does not poll within max.poll.interval.ms.
constexpr auto poll_interval = std::chrono::milliseconds(500);

std::string err_text(rd_kafka_resp_err_t err) {
    return rd_kafka_err2str(err);
}

int remaining_ms(Transport::Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Transport::Clock::now());
    return static_cast<int>(std::clamp<std::int64_t>(left.count(), 1, 3'600'000));
}

struct PartitionList {
    rd_kafka_topic_partition_list_t* list;
    explicit PartitionList(int size = 4) : list(rd_kafka_topic_partition_list_new(size)) {}
    ~PartitionList() { rd_kafka_topic_partition_list_destroy(list); }
    PartitionList(const PartitionList&) = delete;
    PartitionList& operator=(const PartitionList&) = delete;
    rd_kafka_topic_partition_t* add(const std::string& topic, std::int32_t partition) {
        return rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
    }
};

void drain_pipe(int fd) {
    char sink[256];
    while (::read(fd, sink, sizeof sink) > 0) {
    }
}

}  // namespace

// --- settings ------------------------------------------------------------------

std::vector<OptionSpec> kafka_option_specs() {
    return {
        OptionSpec::string("group_id", "kelp", "consumer group (Kafka group.id)"),
        OptionSpec::string("client_id", "kelp", "client id (Kafka client.id)"),
        OptionSpec::enumeration("assignment", {"group", "manual"}, "group",
                                "group: subscribe() with group rebalancing; manual: this "
                                "connection reads every partition of the topics it consumes"),
        OptionSpec::integer("partitions", "1", "1", "100000",
                            "partitions of a declared topic when the Queue does not say"),
        OptionSpec::integer("replication_factor", "1", "1", "1000",
                            "replication of a declared topic when the Queue does not say"),
        OptionSpec::string("dead_letter_queue", "",
                           "topic for rejected messages of queues without a dead-letter "
                           "exchange of their own"),
        OptionSpec::enumeration("security_protocol",
                                {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"}, "plaintext",
                                "Kafka security.protocol"),
        OptionSpec::string("sasl_mechanism", "",
                           "Kafka sasl.mechanism (PLAIN, SCRAM-SHA-256, ...)"),
        OptionSpec::string("ssl_ca_location", "", "Kafka ssl.ca.location"),
        OptionSpec::integer("mock_brokers", "1", "1", "16",
                            "brokers of the in-process mock cluster (kafka://mock only)"),
        OptionSpec::duration("operation_timeout", "5s", "1ms", "1h",
                             "how long a synchronous operation (declare, purge, get) waits"),
        OptionSpec::prefix("rdkafka.*", "any librdkafka property, e.g. rdkafka.linger.ms=5"),
    };
}

KafkaSettings kafka_settings_from(const Url& url, const Options& options) {
    KafkaSettings settings;
    if (url.host == "mock") {
        settings.mock_cluster = url.path.empty() ? "mock" : "mock/" + url.path;
        settings.mock_brokers = static_cast<int>(options.get_int("mock_brokers"));
    } else {
        std::string host = url.host_or("localhost");
        if (host.find(':') != std::string::npos) host = "[" + host + "]";
        settings.bootstrap_servers = host + ":" + std::to_string(url.port_or(9092));
    }
    settings.group_id = options.get_string("group_id");
    settings.client_id = options.get_string("client_id");
    settings.manual_assignment = options.get_string("assignment") == "manual";
    settings.default_partitions = static_cast<int>(options.get_int("partitions"));
    settings.default_replication = static_cast<int>(options.get_int("replication_factor"));
    settings.dead_letter_topic = options.get_string("dead_letter_queue");
    settings.operation_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        options.get_duration("operation_timeout"));
    auto& props = settings.properties;
    if (!settings.mock_cluster.empty()) {
        // The mock broker answers an empty fetch only after the full wait,
        // and its first group join waits 3 s: short waits keep tests quick.
        props.emplace_back("fetch.wait.max.ms", "10");
        props.emplace_back("session.timeout.ms", "6000");
        props.emplace_back("heartbeat.interval.ms", "500");
        // Mock partitions keep only 5 MiB each (hard-coded): compressed
        // batches hold far more messages.
        props.emplace_back("compression.type", "lz4");
        props.emplace_back("message.max.bytes", "16777216");
    }
    if (options.has("security_protocol"))
        props.emplace_back("security.protocol", options.get_string("security_protocol"));
    if (!options.get_string("sasl_mechanism").empty())
        props.emplace_back("sasl.mechanisms", options.get_string("sasl_mechanism"));
    if (!options.get_string("ssl_ca_location").empty())
        props.emplace_back("ssl.ca.location", options.get_string("ssl_ca_location"));
    if (!url.user.empty()) props.emplace_back("sasl.username", url.user);
    if (!url.password.empty()) props.emplace_back("sasl.password", url.password);
    for (auto& [key, value] : options.prefixed("rdkafka."))
        props.emplace_back(key, value);

    // librdkafka judges every property now, so a bad one fails before any
    // connection attempt, with its own words.
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char error[512];
    for (const auto& [key, value] : props) {
        if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw UrlError("kafka: librdkafka rejects property '" + key + "=" + value + "': " +
                           error + " (see librdkafka's CONFIGURATION.md for the valid properties)");
        }
    }
    rd_kafka_conf_destroy(conf);
    return settings;
}

// --- KafkaTransport ------------------------------------------------------------

KafkaTransport::KafkaTransport(KafkaSettings settings)
    : settings_(std::move(settings)), capabilities_(static_capabilities()) {
    // librdkafka's own limit (message.max.bytes, 1000000 by default) unless
    // the URL raises it; the mock cluster keeps at most 5 MiB per partition.
    std::uint64_t limit = 1000000;
    for (const auto& [key, value] : settings_.properties) {
        if (key == "message.max.bytes") limit = std::stoull(value);
    }
    if (!settings_.mock_cluster.empty()) limit = std::min<std::uint64_t>(limit, 4u << 20);
    capabilities_.max_message_bytes = limit;
}

KafkaTransport::~KafkaTransport() {
    close();
    leave_hub();
}

const Capabilities& KafkaTransport::static_capabilities() {
    static const Capabilities capabilities{
        .exchange_direct = true,
        .exchange_topic = false,
        .exchange_fanout = false,
        .exchange_headers = false,
        .priorities = false,
        .message_ttl = false,
        .max_length = false,
        .dead_letter = true,
        .per_message_requeue = false,  // a requeue goes to the topic's end
        .heartbeats = false,           // librdkafka keeps its own
        .publisher_confirms = false,
        .network = true,
        // librdkafka's and Kafka's default message.max.bytes; a connection
        // whose URL raises it says so once connected.
        .max_message_bytes = 1000000,
    };
    return capabilities;
}

rd_kafka_conf_t* KafkaTransport::make_conf(bool consumer) const {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char error[512];
    auto set = [&](const std::string& key, const std::string& value) {
        if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw UrlError("kafka: librdkafka rejects property '" + key + "': " + error);
        }
    };
    set("bootstrap.servers", settings_.bootstrap_servers);
    set("client.id", settings_.client_id);
    set("log_level", "3");
    if (consumer) {
        set("group.id", settings_.group_id);
        set("enable.auto.commit", "true");
        set("enable.auto.offset.store", "false");
        set("auto.commit.interval.ms", "1000");
        set("auto.offset.reset", "earliest");
        set("enable.partition.eof", "false");
    } else {
        set("linger.ms", "5");
    }
    for (const auto& [key, value] : settings_.properties) {
        // A producer property in a consumer's conf (or the reverse) is only
        // a warning in librdkafka; the settings were validated already.
        rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error);
    }
    rd_kafka_conf_set_opaque(conf, const_cast<KafkaTransport*>(this));
    rd_kafka_conf_set_error_cb(
        conf, [](rd_kafka_t* handle, int err, const char* reason, void* opaque) {
            static_cast<KafkaTransport*>(opaque)->on_client_error(
                handle, static_cast<rd_kafka_resp_err_t>(err), reason == nullptr ? "" : reason);
        });
    if (consumer) {
        rd_kafka_conf_set_rebalance_cb(
            conf, [](rd_kafka_t*, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t* partitions, void* opaque) {
                static_cast<KafkaTransport*>(opaque)->on_rebalance(err, partitions);
            });
    } else {
        rd_kafka_conf_set_dr_msg_cb(
            conf, [](rd_kafka_t*, const rd_kafka_message_t* report, void* opaque) {
                auto* self = static_cast<KafkaTransport*>(opaque);
                if (report->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                    if (self->link_lost_) self->link_back();
                    return;
                }
                ++self->delivery_failures_;
                self->last_delivery_error_ = err_text(report->err);
                self->report(std::make_exception_ptr(ConnectionError(
                    "kafka: a message to topic '" + std::string(rd_kafka_topic_name(report->rkt)) +
                    "' was not delivered: " + self->last_delivery_error_)));
            });
    }
    return conf;
}

void KafkaTransport::on_client_error(rd_kafka_t* handle, rd_kafka_resp_err_t err,
                                     const std::string& reason) {
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char text[512] = "";
        rd_kafka_fatal_error(handle, text, sizeof text);
        report(std::make_exception_ptr(
            ConnectionError(std::string("kafka: fatal error, this client cannot go on: ") + text +
                            "; close the connection and connect again")));
        return;
    }
    // librdkafka reconnects by itself; only losing every broker is worth an
    // event (one broker of a cluster going is its business).
    if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || link_lost_) return;
    link_lost_ = true;
    emit_link_event(
        {.kind = LinkEvent::Kind::lost, .detail = reason + " (librdkafka reconnects by itself)"});
}

void KafkaTransport::link_back() {
    link_lost_ = false;
    emit_link_event({.kind = LinkEvent::Kind::reconnected,
                     .detail = settings_.bootstrap_servers + " (records flow again)"});
}

void KafkaTransport::report(std::exception_ptr error) {
    if (hub_ == nullptr) return;
    hub_->call_soon([error] { std::rethrow_exception(error); });
}

void KafkaTransport::connect(Clock::time_point deadline) {
    if (producer_ != nullptr) return;
    if (!settings_.mock_cluster.empty()) {
        settings_.bootstrap_servers =
            mock_cluster_bootstraps(settings_.mock_cluster, settings_.mock_brokers);
    }
    state_ = cluster_state(settings_.bootstrap_servers);
    char error[512];
    rd_kafka_conf_t* conf = make_conf(false);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (producer_ == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw ConnectionError(std::string("kafka: cannot create the producer: ") + error);
    }
    // librdkafka connects lazily; a metadata request proves a broker answers.
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(producer_, 0, nullptr, &metadata, remaining_ms(deadline));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy(producer_);
        producer_ = nullptr;
        throw ConnectionError("kafka: no broker of '" + settings_.bootstrap_servers +
                              "' answered before the connect timeout: " + err_text(err) +
                              "; check the address and that the brokers run");
    }
    rd_kafka_metadata_destroy(metadata);
    producer_queue_ = rd_kafka_queue_get_main(producer_);
    attach_queue(producer_queue_, producer_fds_, false);
    topology_generation_ = state_->generation();
}

void KafkaTransport::attach_queue(rd_kafka_queue_t* queue, int (&fds)[2], bool consumer) {
    if (::pipe(fds) != 0) throw ConnectionError("kafka: pipe() failed");
    for (int fd : fds) {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    static const char one = 1;
    rd_kafka_queue_io_event_enable(queue, fds[1], &one, 1);
    if (hub_ != nullptr) {
        if (consumer) {
            hub_->add_reader(fds[0], [this] { on_consumer_ready(); });
        } else {
            hub_->add_reader(fds[0], [this] { on_producer_ready(); });
        }
        // Whatever arrived before the fd was watched is served now.
        if (consumer) {
            schedule_drain();
        } else {
            schedule_serve();
        }
    }
}

void KafkaTransport::detach_queue(rd_kafka_queue_t*& queue, int (&fds)[2]) {
    if (queue == nullptr) return;
    rd_kafka_queue_io_event_enable(queue, -1, nullptr, 0);
    rd_kafka_queue_destroy(queue);
    queue = nullptr;
    if (hub_ != nullptr && !hub_->closed()) hub_->remove_reader(fds[0]);
    ::close(fds[0]);
    ::close(fds[1]);
    fds[0] = fds[1] = -1;
}

void KafkaTransport::ensure_consumer() {
    if (consumer_ != nullptr) return;
    if (producer_ == nullptr) throw ConnectionError("kafka transport: not connected");
    char error[512];
    rd_kafka_conf_t* conf = make_conf(true);
    consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    if (consumer_ == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw ConnectionError(std::string("kafka: cannot create the consumer: ") + error);
    }
    rd_kafka_poll_set_consumer(consumer_);
    consumer_queue_ = rd_kafka_queue_get_consumer(consumer_);
    attach_queue(consumer_queue_, consumer_fds_, true);
}

void KafkaTransport::close() noexcept {
    if (producer_ == nullptr) return;
    for (auto& weak : channels_) {
        if (auto channel = weak.lock()) {
            try {
                channel->close();
            } catch (...) {
                // Closing gives messages back through offsets; a failure
                // here leaves them to the committed offset, which is safe.
            }
        }
    }
    channels_.clear();
    delivery_.cancel();
    store_.cancel();
    ticker_.cancel();
    commit_timer_.cancel();
    drain_soon_.cancel();
    serve_soon_.cancel();
    if (consumer_ != nullptr) {
        store_offsets();
        for (auto& [key, partition] : partitions_) {
            if (partition->delivered_high >= 0)
                state_->raise_delivered(settings_.group_id, partition->topic, partition->partition,
                                        partition->delivered_high);
        }
        for (auto& [topic, buffer] : buffers_) {
            for (auto& buffered : buffer)
                rd_kafka_message_destroy(buffered.record);
        }
        buffers_.clear();
        last_rkt_ = nullptr;
        // Commits what is stored and leaves the group.
        rd_kafka_consumer_close(consumer_);
        detach_queue(consumer_queue_, consumer_fds_);
        rd_kafka_destroy(consumer_);
        consumer_ = nullptr;
    }
    partitions_.clear();
    consumed_.clear();
    rd_kafka_flush(producer_, static_cast<int>(settings_.operation_timeout.count()));
    for (auto& [name, info] : topics_) {
        if (info.handle != nullptr) rd_kafka_topic_destroy(info.handle);
    }
    topics_.clear();
    last_topic_ = nullptr;
    detach_queue(producer_queue_, producer_fds_);
    rd_kafka_destroy(producer_);
    producer_ = nullptr;
}

void KafkaTransport::register_with_event_loop(Hub& hub) {
    if (hub_ == &hub) return;
    leave_hub();
    hub_ = &hub;
    hub_closing_ = hub.on_close([this] { forget_hub(); });
    if (producer_queue_ != nullptr) {
        hub.add_reader(producer_fds_[0], [this] { on_producer_ready(); });
        schedule_serve();
    }
    if (consumer_queue_ != nullptr) {
        hub.add_reader(consumer_fds_[0], [this] { on_consumer_ready(); });
        schedule_drain();
    }
    ticker_ = hub.call_repeatedly(poll_interval, [this] {
        if (consumer_ != nullptr) drain_consumer();
        if (producer_ != nullptr) serve_producer();
    });
}

void KafkaTransport::leave_hub() {
    if (hub_ == nullptr) return;
    if (!hub_->closed()) {
        if (producer_queue_ != nullptr) hub_->remove_reader(producer_fds_[0]);
        if (consumer_queue_ != nullptr) hub_->remove_reader(consumer_fds_[0]);
    }
    delivery_.cancel();
    store_.cancel();
    ticker_.cancel();
    commit_timer_.cancel();
    drain_soon_.cancel();
    serve_soon_.cancel();
    hub_closing_.cancel();
    hub_ = nullptr;
}

void KafkaTransport::forget_hub() {
    delivery_ = Handle{};
    store_ = Handle{};
    ticker_ = Handle{};
    commit_timer_ = Handle{};
    drain_soon_ = Handle{};
    serve_soon_ = Handle{};
    hub_closing_ = Handle{};
    hub_ = nullptr;
}

std::shared_ptr<Channel> KafkaTransport::create_channel() {
    if (producer_ == nullptr) throw ConnectionError("kafka transport: not connected");
    auto channel = std::make_shared<KafkaChannel>(*this);
    std::erase_if(channels_, [](const auto& weak) { return weak.expired(); });
    channels_.push_back(channel);
    return channel;
}

void KafkaTransport::schedule_drain() {
    if (hub_ == nullptr || drain_soon_.active()) return;
    drain_soon_ = hub_->call_soon([this] { drain_consumer(); });
}

void KafkaTransport::schedule_serve() {
    if (hub_ == nullptr || serve_soon_.active()) return;
    serve_soon_ = hub_->call_soon([this] { serve_producer(); });
}

void KafkaTransport::on_producer_ready() {
    drain_pipe(producer_fds_[0]);
    serve_producer();
}

void KafkaTransport::serve_producer() {
    if (producer_ == nullptr) return;
    // Drained to empty: librdkafka writes the fd again only after that.
    while (rd_kafka_poll(producer_, 0) > 0) {
    }
}

void KafkaTransport::on_consumer_ready() {
    drain_pipe(consumer_fds_[0]);
    drain_consumer();
}

void KafkaTransport::drain_consumer() {
    if (consumer_ == nullptr) return;
    bool pulled = false;
    // In batches: one queue lock per batch instead of one per record. The
    // batch call serves rebalance and commit callbacks as consumer_poll does.
    constexpr std::size_t batch = 256;
    rd_kafka_message_t* records[batch];
    for (std::size_t taken = 0; taken < pull_budget;) {
        const ssize_t count = rd_kafka_consume_batch_queue(consumer_queue_, 0, records, batch);
        if (count <= 0) {
            if (pulled) schedule_delivery();
            return;
        }
        taken += static_cast<std::size_t>(count);
        for (ssize_t i = 0; i < count; ++i) {
            rd_kafka_message_t* record = records[i];
            if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                const rd_kafka_resp_err_t err = record->err;
                const std::string reason = rd_kafka_message_errstr(record);
                rd_kafka_message_destroy(record);
                if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
                if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
                    err == RD_KAFKA_RESP_ERR__TRANSPORT) {
                    // librdkafka reconnects by itself.
                    on_client_error(consumer_, err, reason);
                    continue;
                }
                report(std::make_exception_ptr(
                    ConnectionError("kafka consumer: " + err_text(err) + ": " + reason)));
                continue;
            }
            if (link_lost_) link_back();
            buffer_record(record);
            pulled = true;
        }
    }
    // More may wait: the fd will not be written again until the queue is
    // served to empty, so come back on the next iteration.
    schedule_drain();
    schedule_delivery();
}

void KafkaTransport::buffer_record(rd_kafka_message_t* record) {
    // Records come in runs from one partition: the last one's partition and
    // buffer are kept at hand (their addresses are stable until close).
    if (record->rkt != last_rkt_ || record->partition != last_partition_id_) {
        const std::string topic = rd_kafka_topic_name(record->rkt);
        last_partition_ = &track(topic, record->partition);
        last_buffer_ = &buffers_[topic];
        last_rkt_ = record->rkt;
        last_partition_id_ = record->partition;
    }
    last_buffer_->push_back(Buffered{record, last_partition_, last_partition_->generation});
}

KafkaTransport::Partition& KafkaTransport::track(const std::string& topic, std::int32_t partition) {
    auto& slot = partitions_[{topic, partition}];
    if (!slot) {
        slot = std::make_unique<Partition>();
        slot->topic = topic;
        slot->partition = partition;
        slot->delivered_high = state_->delivered_high(settings_.group_id, topic, partition);
    }
    return *slot;
}

void KafkaTransport::schedule_delivery() {
    if (hub_ == nullptr || delivery_.active()) return;
    delivery_ = hub_->call_soon([this] { deliver(); });
}

void KafkaTransport::deliver() {
    std::size_t budget = delivery_budget;
    const auto until = Clock::now() + delivery_slice;
    bool more = false;
    // Index loop: a callback may open channels.
    for (std::size_t c = 0; c < channels_.size() && budget > 0; ++c) {
        auto channel = channels_[c].lock();
        if (!channel || !channel->open_ || channel->consumers_.empty()) continue;
        bool channel_more = false;
        budget -= channel->deliver(budget, until, channel_more);
        more = more || channel_more;
    }
    if (more || budget == 0) schedule_delivery();
}

bool KafkaTransport::take_buffered(const std::string& topic, Buffered& out) {
    auto found = buffers_.find(topic);
    if (found == buffers_.end()) return false;
    return take_buffered(found->second, out);
}

bool KafkaTransport::take_buffered(std::deque<Buffered>& buffer, Buffered& out) {
    while (!buffer.empty()) {
        Buffered front = buffer.front();
        buffer.pop_front();
        if (front.generation != front.partition->generation) {
            // Rewound or purged since it was fetched.
            rd_kafka_message_destroy(front.record);
            continue;
        }
        out = front;
        return true;
    }
    return false;
}

void KafkaTransport::settle(Partition* partition, std::int64_t offset, std::uint32_t generation) {
    auto& pending = partition->pending;
    auto it = std::lower_bound(pending.begin(), pending.end(), offset,
                               [](const Pending& p, std::int64_t o) { return p.offset < o; });
    if (it == pending.end() || it->offset != offset || it->generation != generation) return;
    it->settled = true;
    std::int64_t next = -1;
    while (!pending.empty() && pending.front().settled) {
        next = pending.front().offset + 1;
        pending.pop_front();
    }
    if (next < 0) return;  // the lowest unsettled one is still unsettled
    partition->commit = pending.empty() ? next : pending.front().offset;
    partition->dirty = true;
    if (hub_ != nullptr && !store_.active()) {
        store_ = hub_->call_soon([this] { store_offsets(); });
    }
}

void KafkaTransport::store_offsets() {
    if (consumer_ == nullptr) return;
    PartitionList list;
    for (auto& [key, partition] : partitions_) {
        if (!partition->dirty || !partition->assigned || partition->commit < 0) continue;
        list.add(partition->topic, partition->partition)->offset = partition->commit;
        partition->dirty = false;
    }
    if (list.list->cnt == 0) return;
    rd_kafka_offsets_store(consumer_, list.list);
    // librdkafka's auto-commit (every second) would leave a second of acks
    // to redeliver after a rebalance; a commit 100 ms after the first new
    // store keeps that window short at one request per 100 ms at most.
    if (hub_ != nullptr && !commit_timer_.active()) {
        commit_timer_ = hub_->call_later(commit_delay, [this] {
            if (consumer_ != nullptr) rd_kafka_commit(consumer_, nullptr, 1);
        });
    }
}

void KafkaTransport::commit_sync() {
    if (consumer_ == nullptr) return;
    store_offsets();
    // Nothing stored is not an error worth reporting (_NO_OFFSET).
    rd_kafka_commit(consumer_, nullptr, 0);
}

void KafkaTransport::rewind(Partition& partition, std::int64_t offset) {
    ++partition.generation;
    // Another connection of this process reading from here on marks them
    // redelivered.
    if (partition.delivered_high >= 0)
        state_->raise_delivered(settings_.group_id, partition.topic, partition.partition,
                                partition.delivered_high);
    std::erase_if(partition.pending, [&](const Pending& p) { return p.offset >= offset; });
    partition.commit = partition.pending.empty() ? offset : partition.pending.front().offset;
    partition.next_delivery = offset;
    partition.dirty = true;
    if (consumer_ == nullptr) return;
    if (partition.assigned) {
        PartitionList list(1);
        list.add(partition.topic, partition.partition)->offset = offset;
        // Asynchronous (timeout 0): a partition whose fetcher is still
        // starting would otherwise hold the Hub; records fetched before the
        // seek are dropped by their generation and by librdkafka's version.
        if (rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, list.list, 0)) {
            const std::string text = rd_kafka_error_string(error);
            rd_kafka_error_destroy(error);
            throw ChannelError("kafka: cannot seek " + partition.topic + "[" +
                               std::to_string(partition.partition) + "] back to offset " +
                               std::to_string(offset) + ": " + text);
        }
        store_offsets();
    } else {
        PartitionList list(1);
        list.add(partition.topic, partition.partition)->offset = partition.commit;
        rd_kafka_commit(consumer_, list.list, 0);
        partition.dirty = false;
    }
}

void KafkaTransport::on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list) {
    const bool cooperative =
        std::string_view(rd_kafka_rebalance_protocol(consumer_)) == "COOPERATIVE";
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < list->cnt; ++i) {
            Partition& partition = track(list->elems[i].topic, list->elems[i].partition);
            partition.assigned = true;
            partition.pending.clear();
            ++partition.generation;
            partition.commit = -1;
            partition.next_delivery = -1;
        }
        if (cooperative) {
            if (rd_kafka_error_t* error = rd_kafka_incremental_assign(consumer_, list))
                rd_kafka_error_destroy(error);
        } else {
            rd_kafka_assign(consumer_, list);
        }
        return;
    }
    // Revoked: what is acked is committed now; the rest will go to the
    // partition's next owner, so nothing more is handed out from it and
    // late settles of its messages change nothing.
    store_offsets();
    rd_kafka_commit(consumer_, nullptr, 0);
    for (int i = 0; i < list->cnt; ++i) {
        auto found = partitions_.find({list->elems[i].topic, list->elems[i].partition});
        if (found == partitions_.end()) continue;
        Partition& partition = *found->second;
        partition.assigned = false;
        ++partition.generation;
        partition.pending.clear();
        if (partition.delivered_high >= 0)
            state_->raise_delivered(settings_.group_id, partition.topic, partition.partition,
                                    partition.delivered_high);
    }
    if (cooperative) {
        if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(consumer_, list))
            rd_kafka_error_destroy(error);
    } else {
        rd_kafka_assign(consumer_, nullptr);
    }
}

void KafkaTransport::consume_topic(const std::string& topic) {
    ensure_consumer();
    if (!consumed_.insert(topic).second) {
        if (settings_.manual_assignment) {
            // Assigned already; a partition given up by a rewind without an
            // assignment stays as it is.
        }
        return;
    }
    if (!settings_.manual_assignment) {
        resubscribe();
        return;
    }
    const int count = partition_count(topic);
    PartitionList list(count);
    for (int p = 0; p < count; ++p) {
        Partition& partition = track(topic, p);
        partition.assigned = true;
        list.add(topic, p)->offset =
            partition.commit >= 0 ? partition.commit : RD_KAFKA_OFFSET_STORED;
    }
    if (rd_kafka_error_t* error = rd_kafka_incremental_assign(consumer_, list.list)) {
        const std::string text = rd_kafka_error_string(error);
        rd_kafka_error_destroy(error);
        consumed_.erase(topic);
        throw ChannelError("kafka: cannot assign the partitions of '" + topic + "': " + text);
    }
}

void KafkaTransport::resubscribe() {
    PartitionList list(static_cast<int>(consumed_.size()));
    for (const auto& topic : consumed_)
        list.add(topic, RD_KAFKA_PARTITION_UA);
    const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_, list.list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw ChannelError("kafka: cannot subscribe: " + err_text(err));
    }
}

KafkaTransport::TopicInfo* KafkaTransport::topic(const std::string& name) {
    const std::uint64_t generation = state_->generation();
    // Publishing goes to the same topic again and again.
    if (generation == topology_generation_ && last_topic_ != nullptr && name == last_topic_name_)
        return last_topic_;
    last_topic_ = nullptr;
    if (generation != topology_generation_) {
        // Deletions may have happened: forget what we knew, keep the handles.
        for (auto it = topics_.begin(); it != topics_.end();) {
            if (state_->deleted(it->first)) {
                if (it->second.handle != nullptr) rd_kafka_topic_destroy(it->second.handle);
                it = topics_.erase(it);
            } else {
                ++it;
            }
        }
        topology_generation_ = generation;
    }
    auto found = topics_.find(name);
    if (found != topics_.end()) {
        last_topic_name_ = name;
        last_topic_ = &found->second;
        return last_topic_;
    }
    if (state_->deleted(name)) return nullptr;
    // Listing every topic never creates one (asking for a single topic may:
    // brokers and the mock auto-create topics on metadata requests).
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(
        producer_, 1, nullptr, &metadata, static_cast<int>(settings_.operation_timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw ConnectionError("kafka: cannot read the cluster's topics: " + err_text(err));
    }
    int partitions = -1;
    for (int i = 0; i < metadata->topic_cnt; ++i) {
        if (name == metadata->topics[i].topic && metadata->topics[i].err == 0) {
            partitions = metadata->topics[i].partition_cnt;
        }
    }
    rd_kafka_metadata_destroy(metadata);
    if (partitions <= 0) return nullptr;
    TopicInfo info;
    info.partitions = partitions;
    info.handle = rd_kafka_topic_new(producer_, name.c_str(), nullptr);
    return &topics_.emplace(name, info).first->second;
}

int KafkaTransport::partition_count(const std::string& name) {
    TopicInfo* info = topic(name);
    if (info == nullptr) throw NotFound("NOT_FOUND - no queue (Kafka topic) '" + name + "'");
    return info->partitions;
}

void KafkaTransport::create_topic(const std::string& name, int partitions, int replication) {
    if (!settings_.mock_cluster.empty()) {
        mock_create_topic(settings_.mock_cluster, name, partitions, replication);
        return;
    }
    char error[512];
    rd_kafka_NewTopic_t* topic =
        rd_kafka_NewTopic_new(name.c_str(), partitions, replication, error, sizeof error);
    if (topic == nullptr)
        throw ChannelError("kafka: cannot declare topic '" + name + "': " + error);
    rd_kafka_queue_t* queue = rd_kafka_queue_new(producer_);
    rd_kafka_CreateTopics(producer_, &topic, 1, nullptr, queue);
    rd_kafka_event_t* event =
        rd_kafka_queue_poll(queue, static_cast<int>(settings_.operation_timeout.count()));
    std::string failure;
    if (event == nullptr) {
        failure = "no answer within the operation timeout";
    } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = rd_kafka_event_error_string(event);
    } else if (const auto* result = rd_kafka_event_CreateTopics_result(event)) {
        std::size_t count = 0;
        const rd_kafka_topic_result_t** results =
            rd_kafka_CreateTopics_result_topics(result, &count);
        for (std::size_t i = 0; i < count; ++i) {
            const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
                err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                const char* text = rd_kafka_topic_result_error_string(results[i]);
                failure = text != nullptr ? text : err_text(err);
            }
        }
    }
    if (event != nullptr) rd_kafka_event_destroy(event);
    rd_kafka_queue_destroy(queue);
    rd_kafka_NewTopic_destroy(topic);
    if (!failure.empty())
        throw ChannelError("kafka: cannot create topic '" + name + "': " + failure);
}

void KafkaTransport::delete_topic(const std::string& name) {
    last_topic_ = nullptr;
    auto found = topics_.find(name);
    if (found != topics_.end()) {
        if (found->second.handle != nullptr) rd_kafka_topic_destroy(found->second.handle);
        topics_.erase(found);
    }
    // The mock cluster cannot delete topics: the queue is purged and hidden
    // until it is declared again. A real cluster deletes the topic.
    if (settings_.mock_cluster.empty()) {
        rd_kafka_DeleteTopic_t* topic = rd_kafka_DeleteTopic_new(name.c_str());
        rd_kafka_queue_t* queue = rd_kafka_queue_new(producer_);
        rd_kafka_DeleteTopics(producer_, &topic, 1, nullptr, queue);
        rd_kafka_event_t* event =
            rd_kafka_queue_poll(queue, static_cast<int>(settings_.operation_timeout.count()));
        if (event != nullptr) rd_kafka_event_destroy(event);
        rd_kafka_queue_destroy(queue);
        rd_kafka_DeleteTopic_destroy(topic);
    }
    state_->mark_deleted(name, true);
}

void KafkaTransport::produce(TopicInfo& info, const std::string& topic, const Envelope& envelope,
                             std::string_view exchange, std::string_view routing_key,
                             bool redelivered) {
    const std::string_view key = record_key(envelope);
    const std::int32_t partition =
        !key.empty() || info.partitions <= 1
            ? (info.partitions <= 1 ? 0 : RD_KAFKA_PARTITION_UA)
            : static_cast<std::int32_t>(info.next_partition++ %
                                        static_cast<std::uint32_t>(info.partitions));
    rd_kafka_headers_t* headers =
        encode_headers(envelope, exchange, routing_key, topic, redelivered);
    for (;;) {
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (headers == nullptr) {
            // Raw bytes with nothing else set: the plain call, a quarter
            // cheaper than producev's argument list.
            if (rd_kafka_produce(info.handle, partition, RD_KAFKA_MSG_F_COPY,
                                 const_cast<char*>(envelope.body.data()), envelope.body.size(),
                                 key.empty() ? nullptr : key.data(), key.size(), nullptr) != 0)
                err = rd_kafka_last_error();
        } else {
            err = rd_kafka_producev(
                producer_, RD_KAFKA_V_RKT(info.handle), RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_VALUE(const_cast<char*>(envelope.body.data()), envelope.body.size()),
                RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
                RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        }
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            // The headers are librdkafka's now. A publishing loop that never
            // returns to the Hub still has its delivery reports served (and
            // their messages freed) as it goes.
            if (++produced_ % 1024 == 0) serve_producer();
            return;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            // Back-pressure: serve delivery reports until there is room.
            rd_kafka_poll(producer_, 10);
            continue;
        }
        if (headers != nullptr) rd_kafka_headers_destroy(headers);
        throw ChannelError("kafka: cannot publish to topic '" + topic + "': " + err_text(err));
    }
}

void KafkaTransport::flush_producer() {
    const rd_kafka_resp_err_t err =
        rd_kafka_flush(producer_, static_cast<int>(settings_.operation_timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw ConnectionError("kafka: published messages not acknowledged by the broker: " +
                              err_text(err));
    }
}

std::uint64_t KafkaTransport::ready_count(const std::string& topic_name, bool purge) {
    flush_producer();
    const int count = partition_count(topic_name);
    ensure_consumer();
    store_offsets();
    // Where the group stands, for partitions this connection does not read.
    PartitionList committed(count);
    for (int p = 0; p < count; ++p)
        committed.add(topic_name, p);
    const rd_kafka_resp_err_t err = rd_kafka_committed(
        consumer_, committed.list, static_cast<int>(settings_.operation_timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw ChannelError("kafka: cannot read the committed offsets of '" + topic_name +
                           "': " + err_text(err));
    }
    std::uint64_t total = 0;
    PartitionList skip(count);
    for (int p = 0; p < count; ++p) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        const rd_kafka_resp_err_t werr =
            rd_kafka_query_watermark_offsets(consumer_, topic_name.c_str(), p, &low, &high,
                                             static_cast<int>(settings_.operation_timeout.count()));
        if (werr != RD_KAFKA_RESP_ERR_NO_ERROR) {
            throw ChannelError("kafka: cannot read the offsets of '" + topic_name +
                               "': " + err_text(werr));
        }
        std::int64_t start = committed.list->elems[p].offset;
        if (start < 0) start = low;
        auto found = partitions_.find({topic_name, p});
        Partition* partition = found == partitions_.end() ? nullptr : found->second.get();
        if (partition != nullptr && partition->assigned && partition->next_delivery >= 0) {
            start = std::max(start, partition->next_delivery);
        }
        start = std::max(start, low);
        if (high > start) total += static_cast<std::uint64_t>(high - start);
        if (purge) {
            if (partition != nullptr) {
                // Delivered messages, settled or not, never come back.
                ++partition->generation;
                partition->pending.clear();
                partition->commit = high;
                partition->next_delivery = high;
                partition->dirty = false;
                if (partition->assigned) {
                    PartitionList seek(1);
                    seek.add(topic_name, p)->offset = high;
                    if (rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, seek.list, 0))
                        rd_kafka_error_destroy(error);
                }
            }
            skip.add(topic_name, p)->offset = high;
        }
    }
    if (!purge && total > 0 && settings_.manual_assignment && consumed_.contains(topic_name)) {
        prime(topic_name);
    }
    if (purge && skip.list->cnt > 0) {
        const rd_kafka_resp_err_t cerr = rd_kafka_commit(consumer_, skip.list, 0);
        if (cerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
            throw ChannelError("kafka: cannot purge '" + topic_name + "': " + err_text(cerr));
        }
    }
    return total;
}

void KafkaTransport::prime(const std::string& topic) {
    const auto deadline = Clock::now() + settings_.operation_timeout;
    while (Clock::now() < deadline) {
        auto found = buffers_.find(topic);
        if (found != buffers_.end() && !found->second.empty()) break;
        wait_for_records(std::chrono::milliseconds(20));
    }
    schedule_delivery();
}

void KafkaTransport::wait_for_records(Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (Clock::now() < deadline) {
        rd_kafka_message_t* record = rd_kafka_consumer_poll(consumer_, 10);
        if (record == nullptr) continue;
        if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_message_destroy(record);
            continue;
        }
        buffer_record(record);
        // Whatever else is ready comes along.
        drain_consumer();
        return;
    }
}

// --- KafkaChannel --------------------------------------------------------------

KafkaChannel::KafkaChannel(KafkaTransport& transport) : transport_(transport) {}

KafkaChannel::~KafkaChannel() {
    try {
        close();
    } catch (...) {
    }
}

void KafkaChannel::check_open() const {
    if (!open_) {
        throw ChannelError("kafka channel is closed; open a new one with Connection::channel()");
    }
}

void KafkaChannel::exchange_declare(const Exchange& exchange, bool passive) {
    check_open();
    if (exchange.is_default()) return;
    if (passive) {
        if (!transport_.state_->has_exchange(exchange.name)) {
            throw NotFound("NOT_FOUND - no exchange '" + exchange.name +
                           "' declared in this process (kafka keeps exchanges client-side)");
        }
        return;
    }
    if (exchange.type != ExchangeType::direct) {
        throw ChannelError("kafka: exchange '" + exchange.name + "' of type " +
                           std::string(to_string(exchange.type)) +
                           " is not supported; Kafka offers direct routing only (a topic per "
                           "queue): use a direct exchange or the default one");
    }
    if (!transport_.state_->declare_exchange(exchange)) {
        throw ChannelError("PRECONDITION_FAILED - exchange '" + exchange.name +
                           "' exists with another definition");
    }
}

void KafkaChannel::exchange_delete(const std::string& name, bool) {
    check_open();
    transport_.state_->delete_exchange(name);
}

QueueDeclareOk KafkaChannel::queue_declare(const Queue& queue, bool passive) {
    check_open();
    auto& state = *transport_.state_;
    const bool exists = transport_.topic(queue.name) != nullptr;
    if (passive) {
        if (!exists) throw NotFound("NOT_FOUND - no queue (Kafka topic) '" + queue.name + "'");
    } else {
        const QueueOptions& o = queue.options;
        const char* unsupported = o.max_priority       ? "max_priority"
                                  : o.message_ttl      ? "message_ttl"
                                  : o.expires          ? "expires"
                                  : o.max_length       ? "max_length"
                                  : o.max_length_bytes ? "max_length_bytes"
                                                       : nullptr;
        if (unsupported != nullptr) {
            throw ChannelError("kafka: queue '" + queue.name + "' asks for " + unsupported +
                               ", which Kafka topics cannot honour; leave it unset (use topic "
                               "retention settings on the cluster instead)");
        }
        if (auto known = state.queue(queue.name); known && !state.deleted(queue.name)) {
            const QueueOptions& k = known->options;
            // A declaration that leaves an option unset accepts what is there.
            auto differs = [](const auto& was, const auto& now) { return now && was != now; };
            if (differs(k.partitions, o.partitions) ||
                differs(k.replication_factor, o.replication_factor) ||
                differs(k.dead_letter_exchange, o.dead_letter_exchange) ||
                differs(k.dead_letter_routing_key, o.dead_letter_routing_key)) {
                throw ChannelError("PRECONDITION_FAILED - queue '" + queue.name +
                                   "' was declared with other options");
            }
        }
        if (!exists) {
            transport_.create_topic(
                queue.name, o.partitions.value_or(transport_.settings_.default_partitions),
                o.replication_factor.value_or(
                    static_cast<std::int16_t>(transport_.settings_.default_replication)));
            state.mark_deleted(queue.name, false);
        }
        if (!state.queue(queue.name)) state.remember_queue(queue);
        if (queue.exchange && !queue.exchange->is_default()) {
            exchange_declare(*queue.exchange, false);
            state.bind(queue.exchange->name, queue.routing_key, queue.name);
        }
        for (const auto& binding : o.bindings)
            state.bind(binding.exchange, binding.routing_key, queue.name);
        if (!exists) return {queue.name, 0, 0};
    }
    QueueDeclareOk ok{queue.name, transport_.ready_count(queue.name, false), 0};
    ok.consumer_count = static_cast<std::uint32_t>(std::max(0, state.consumers(queue.name)));
    return ok;
}

void KafkaChannel::queue_bind(const std::string& queue, const std::string& exchange,
                              const std::string& routing_key, const Table&) {
    check_open();
    if (exchange.empty()) return;
    if (!transport_.state_->has_exchange(exchange)) {
        throw NotFound("NOT_FOUND - no exchange '" + exchange + "'");
    }
    if (transport_.topic(queue) == nullptr) throw NotFound("NOT_FOUND - no queue '" + queue + "'");
    transport_.state_->bind(exchange, routing_key, queue);
}

void KafkaChannel::queue_unbind(const std::string& queue, const std::string& exchange,
                                const std::string& routing_key, const Table&) {
    check_open();
    transport_.state_->unbind(exchange, routing_key, queue);
}

std::uint64_t KafkaChannel::queue_purge(const std::string& queue) {
    check_open();
    return transport_.ready_count(queue, true);
}

std::uint64_t KafkaChannel::queue_delete(const std::string& queue, bool if_unused, bool if_empty) {
    check_open();
    if (transport_.topic(queue) == nullptr) return 0;
    auto& state = *transport_.state_;
    if (if_unused && state.consumers(queue) > 0) {
        throw ChannelError("PRECONDITION_FAILED - queue '" + queue + "' in use");
    }
    if (if_empty && transport_.ready_count(queue, false) > 0) {
        throw ChannelError("PRECONDITION_FAILED - queue '" + queue + "' not empty");
    }
    const std::uint64_t count = transport_.ready_count(queue, true);
    state.forget_queue(queue);
    transport_.delete_topic(queue);
    return count;
}

void KafkaChannel::basic_publish(std::shared_ptr<const Envelope> envelope,
                                 const std::string& exchange, const std::string& routing_key,
                                 PublishFlags flags) {
    check_open();
    bool routed = false;
    if (exchange.empty()) {
        if (auto* info = transport_.topic(routing_key)) {
            transport_.produce(*info, routing_key, *envelope, exchange, routing_key, false);
            routed = true;
        }
    } else {
        auto queues = transport_.state_->route(exchange, routing_key);
        // An exchange this process never declared: the routing key names
        // the topic (how other Kafka clients publish).
        if (!queues) queues = std::vector<std::string>{routing_key};
        for (const auto& queue : *queues) {
            if (auto* info = transport_.topic(queue)) {
                transport_.produce(*info, queue, *envelope, exchange, routing_key, false);
                routed = true;
            }
        }
    }
    if (!routed) unroutable_.settle(*envelope, exchange, routing_key, flags, on_return_);
}

std::string KafkaChannel::basic_consume(const std::string& queue, bool no_ack,
                                        DeliveryCallback callback,
                                        const std::string& consumer_tag) {
    check_open();
    if (transport_.topic(queue) == nullptr) throw NotFound("NOT_FOUND - no queue '" + queue + "'");
    std::string tag =
        consumer_tag.empty() ? "kelp-kafka-" + std::to_string(++tag_counter_) : consumer_tag;
    for (const auto& entry : consumers_) {
        if (entry->tag == tag && !entry->cancelled) {
            throw ChannelError("NOT_ALLOWED - consumer tag '" + tag + "' is in use");
        }
    }
    transport_.consume_topic(queue);
    if (transport_.settings_.manual_assignment) {
        // The first records are fetched before consume returns, so that a
        // consumer of several queues starts on all of them at once.
        transport_.ready_count(queue, false);
    }
    consumers_.push_back(
        std::make_unique<ConsumerEntry>(ConsumerEntry{tag, queue, no_ack, std::move(callback)}));
    transport_.state_->add_consumer(queue, 1);
    transport_.schedule_delivery();
    return tag;
}

void KafkaChannel::basic_cancel(const std::string& consumer_tag) {
    for (auto& entry : consumers_) {
        if (entry->tag == consumer_tag && !entry->cancelled) {
            entry->cancelled = true;
            transport_.state_->add_consumer(entry->queue, -1);
        }
    }
    // A delivery loop running over them removes them when it is done.
    if (!delivering_) remove_cancelled();
}

std::size_t KafkaChannel::deliver(std::size_t budget, KafkaTransport::Clock::time_point until,
                                  bool& more) {
    std::size_t delivered = 0;
    std::size_t idle = 0;  // consumers in a row that had nothing
    // A callback may cancel consumers or close the channel: entries are
    // only marked then, and removed when the loop is done.
    delivering_ = true;
    struct EndDelivery {
        KafkaChannel& channel;
        ~EndDelivery() {
            channel.delivering_ = false;
            channel.remove_cancelled();
        }
    } end_delivery{*this};
    while (open_ && delivered < budget && !consumers_.empty() && qos_.can_consume() &&
           idle < consumers_.size()) {
        next_consumer_ %= consumers_.size();
        ConsumerEntry& entry = *consumers_[next_consumer_];
        // Next time the next consumer starts: a few messages each in turn,
        // so no queue starves another.
        ++next_consumer_;
        if (entry.cancelled) {
            ++idle;
            continue;
        }
        if (entry.buffer == nullptr) entry.buffer = &transport_.buffers_[entry.queue];
        // Never more in a row than the prefetch window holds now, so that
        // with a small window the queues still take turns.
        const std::size_t want = std::min(qos_.capacity(), delivery_run);
        std::size_t run = 0;
        KafkaTransport::Buffered buffered{};
        while (run < want && delivered < budget && open_ && !entry.cancelled &&
               qos_.can_consume() && transport_.take_buffered(*entry.buffer, buffered)) {
            Message message = make_message(buffered, entry.tag, entry.no_ack);
            ++run;
            ++delivered;
            entry.callback(message);
            // The clock is read every 16 messages: cheap, and fine-grained enough.
            if (delivered % 16 == 0 && KafkaTransport::Clock::now() >= until) {
                more = true;
                return delivered;
            }
        }
        idle = run == 0 ? idle + 1 : 0;
    }
    more = open_ && !consumers_.empty() && qos_.can_consume() && idle < consumers_.size();
    return delivered;
}

void KafkaChannel::remove_cancelled() {
    std::erase_if(consumers_, [](const auto& entry) { return entry->cancelled; });
}

Message KafkaChannel::make_message(KafkaTransport::Buffered& buffered,
                                   const std::string& consumer_tag, bool no_ack) {
    rd_kafka_message_t* raw = buffered.record;
    KafkaTransport::Partition* partition = buffered.partition;
    const std::int64_t offset = raw->offset;
    // A recycled envelope: a stream of small messages is received without
    // allocating for the body and the properties.
    std::shared_ptr<Envelope> envelope = detail::pooled_envelope();
    const RecordRoute decoded = decode_record(*raw, *envelope);
    rd_kafka_message_destroy(raw);
    const std::string& topic = partition->topic;
    const bool redelivered = decoded.redelivered || offset <= partition->delivered_high;
    partition->delivered_high = std::max(partition->delivered_high, offset);
    partition->next_delivery = offset + 1;
    partition->pending.push_back({offset, partition->generation, no_ack});
    std::uint64_t tag = 0;
    if (no_ack) {
        tag = qos_.untracked_tag();
        transport_.settle(partition, offset, partition->generation);
    } else {
        tag = qos_.append(
            Record{partition, offset, partition->generation, envelope, decoded.routing_key});
    }
    transport_.deliveries_++;
    const std::string_view routing_key =
        decoded.routing_key.empty() ? std::string_view(topic) : decoded.routing_key;
    const DeliveryInfoView info{decoded.exchange, routing_key, consumer_tag, topic, tag,
                                redelivered};
    return Message(std::move(envelope), info, *this, no_ack);
}

std::optional<Message> KafkaChannel::basic_get(const std::string& queue, bool no_ack) {
    check_open();
    transport_.flush_producer();
    transport_.consume_topic(queue);
    KafkaTransport::Buffered buffered{};
    transport_.drain_consumer();
    if (!transport_.take_buffered(queue, buffered)) {
        // Anything there that this connection has not fetched yet?
        if (transport_.ready_count(queue, false) == 0) return std::nullopt;
        const auto deadline = KafkaTransport::Clock::now() + transport_.settings_.operation_timeout;
        while (!transport_.take_buffered(queue, buffered)) {
            if (KafkaTransport::Clock::now() >= deadline) return std::nullopt;
            transport_.wait_for_records(std::chrono::milliseconds(100));
        }
    }
    return make_message(buffered, "", no_ack);
}

void KafkaChannel::basic_ack(std::uint64_t delivery_tag, bool multiple) {
    check_open();
    if (multiple) {
        for (auto& record : qos_.take_through(delivery_tag))
            transport_.settle(record.partition, record.offset, record.generation);
    } else {
        const Record record = qos_.take(delivery_tag);
        transport_.settle(record.partition, record.offset, record.generation);
    }
    transport_.schedule_delivery();
}

void KafkaChannel::dead_letter(Record& record) {
    std::optional<std::string> exchange;
    std::string routing_key =
        record.routing_key.empty() ? record.partition->topic : record.routing_key;
    if (auto queue = transport_.state_->queue(record.partition->topic)) {
        if (queue->options.dead_letter_exchange) {
            exchange = *queue->options.dead_letter_exchange;
            if (queue->options.dead_letter_routing_key)
                routing_key = *queue->options.dead_letter_routing_key;
        }
    }
    if (!exchange && !transport_.settings_.dead_letter_topic.empty()) {
        exchange = "";
        routing_key = transport_.settings_.dead_letter_topic;
    }
    if (!exchange) return;  // no target: dropped, as AMQP drops it
    basic_publish(record.envelope, *exchange, routing_key, {});
}

void KafkaChannel::basic_reject(std::uint64_t delivery_tag, bool requeue) {
    check_open();
    Record record = qos_.take(delivery_tag);
    // Published before the offset moves past it: a crash in between
    // duplicates the message, never loses it.
    if (requeue) {
        if (auto* info = transport_.topic(record.partition->topic)) {
            transport_.produce(*info, record.partition->topic, *record.envelope, "",
                               record.routing_key.empty()
                                   ? std::string_view(record.partition->topic)
                                   : std::string_view(record.routing_key),
                               true);
        }
    } else {
        dead_letter(record);
    }
    transport_.settle(record.partition, record.offset, record.generation);
    transport_.schedule_delivery();
}

void KafkaChannel::basic_qos(std::uint32_t prefetch_count, bool) {
    check_open();
    qos_.set_prefetch(prefetch_count);
    transport_.schedule_delivery();
}

void KafkaChannel::give_back() {
    std::map<KafkaTransport::Partition*, std::int64_t> lowest;
    for (auto& record : qos_.take_all()) {
        auto& pending = record.partition->pending;
        const bool live = std::any_of(pending.begin(), pending.end(), [&](const auto& p) {
            return p.offset == record.offset && p.generation == record.generation;
        });
        if (!live) continue;  // purged, or the partition went to another member
        auto [it, inserted] = lowest.emplace(record.partition, record.offset);
        if (!inserted) it->second = std::min(it->second, record.offset);
    }
    for (auto& [partition, offset] : lowest)
        transport_.rewind(*partition, offset);
    if (!lowest.empty()) transport_.commit_sync();
    transport_.schedule_delivery();
}

void KafkaChannel::basic_recover(bool) {
    check_open();
    give_back();
}

void KafkaChannel::close() {
    if (!open_) return;
    open_ = false;
    for (auto& entry : consumers_) {
        if (!entry->cancelled) transport_.state_->add_consumer(entry->queue, -1);
        entry->cancelled = true;
    }
    if (!delivering_) consumers_.clear();
    if (transport_.producer_ != nullptr) give_back();
}

}  // namespace kelp::kafka
