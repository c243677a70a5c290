#include "cluster.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "kelp/errors.hpp"

namespace kelp::kafka {
namespace {

// A mock cluster lives inside the rd_kafka_t that created it; that handle is
// kept for the life of the process so that every Connection (and every
// other client given the bootstraps) reaches the same brokers.
struct MockCluster {
    rd_kafka_t* handle = nullptr;
    rd_kafka_mock_cluster_t* cluster = nullptr;
    std::string bootstraps;
    MockCluster() = default;
    MockCluster(const MockCluster&) = delete;
    MockCluster& operator=(const MockCluster&) = delete;
    ~MockCluster() {
        if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
        if (handle != nullptr) rd_kafka_destroy(handle);
    }
};

std::mutex& mock_mutex() {
    static std::mutex mutex;
    return mutex;
}

std::map<std::string, std::unique_ptr<MockCluster>>& mock_clusters() {
    static std::map<std::string, std::unique_ptr<MockCluster>> clusters;
    return clusters;
}

MockCluster& mock_cluster(const std::string& name, int brokers) {
    auto& clusters = mock_clusters();
    auto found = clusters.find(name);
    if (found != clusters.end()) return *found->second;
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The handle only hosts the cluster; it never talks to it.
    rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error);
    rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (handle == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw ConnectionError(std::string("kafka mock cluster: librdkafka could not start: ") +
                              error);
    }
    auto mock = std::make_unique<MockCluster>();
    mock->handle = handle;
    mock->cluster = rd_kafka_mock_cluster_new(handle, brokers);
    if (mock->cluster == nullptr) {
        throw ConnectionError("kafka mock cluster '" + name + "' could not be created");
    }
    mock->bootstraps = rd_kafka_mock_cluster_bootstraps(mock->cluster);
    return *clusters.emplace(name, std::move(mock)).first->second;
}

}  // namespace

std::string mock_cluster_bootstraps(const std::string& name, int brokers) {
    std::lock_guard lock(mock_mutex());
    return mock_cluster(name, brokers).bootstraps;
}

void mock_create_topic(const std::string& name, const std::string& topic, int partitions,
                       int replication) {
    std::lock_guard lock(mock_mutex());
    auto& clusters = mock_clusters();
    auto found = clusters.find(name);
    if (found == clusters.end()) {
        throw ChannelError("kafka mock cluster '" + name + "' is not running");
    }
    const rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(found->second->cluster, topic.c_str(), partitions, replication);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        throw ChannelError("kafka: cannot create topic '" + topic +
                           "' on the mock cluster: " + rd_kafka_err2str(err));
    }
}

void mock_set_broker_up(const std::string& name, int broker_id, bool up) {
    std::lock_guard lock(mock_mutex());
    auto& clusters = mock_clusters();
    auto found = clusters.find(name);
    if (found == clusters.end()) {
        throw ChannelError("kafka mock cluster '" + name + "' is not running");
    }
    rd_kafka_mock_cluster_t* cluster = found->second->cluster;
    const rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(cluster, broker_id)
                                       : rd_kafka_mock_broker_set_down(cluster, broker_id);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw ChannelError("kafka: cannot set mock broker " + std::to_string(broker_id) +
                           (up ? " up: " : " down: ") + rd_kafka_err2str(err));
    }
}

bool ClusterState::declare_exchange(const Exchange& exchange) {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = exchanges_.emplace(exchange.name, exchange);
    if (inserted) ++generation_;
    return inserted || it->second == exchange;
}

bool ClusterState::has_exchange(const std::string& name) const {
    std::lock_guard lock(mutex_);
    return exchanges_.contains(name);
}

void ClusterState::delete_exchange(const std::string& name) {
    std::lock_guard lock(mutex_);
    exchanges_.erase(name);
    bindings_.erase(name);
    ++generation_;
}

void ClusterState::bind(const std::string& exchange, const std::string& routing_key,
                        const std::string& queue) {
    std::lock_guard lock(mutex_);
    bindings_[exchange].emplace(routing_key, queue);
    ++generation_;
}

void ClusterState::unbind(const std::string& exchange, const std::string& routing_key,
                          const std::string& queue) {
    std::lock_guard lock(mutex_);
    auto found = bindings_.find(exchange);
    if (found != bindings_.end()) found->second.erase({routing_key, queue});
    ++generation_;
}

std::optional<std::vector<std::string>> ClusterState::route(const std::string& exchange,
                                                            const std::string& routing_key) const {
    std::lock_guard lock(mutex_);
    if (!exchanges_.contains(exchange)) return std::nullopt;
    std::vector<std::string> queues;
    auto found = bindings_.find(exchange);
    if (found == bindings_.end()) return queues;
    for (auto it = found->second.lower_bound({routing_key, std::string()});
         it != found->second.end() && it->first == routing_key; ++it) {
        if (!deleted_.contains(it->second)) queues.push_back(it->second);
    }
    return queues;
}

std::optional<Queue> ClusterState::queue(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto found = queues_.find(name);
    if (found == queues_.end()) return std::nullopt;
    return found->second;
}

void ClusterState::remember_queue(const Queue& queue) {
    std::lock_guard lock(mutex_);
    queues_.insert_or_assign(queue.name, queue);
}

void ClusterState::forget_queue(const std::string& name) {
    std::lock_guard lock(mutex_);
    queues_.erase(name);
    for (auto& [exchange, bindings] : bindings_) {
        std::erase_if(bindings, [&](const auto& binding) { return binding.second == name; });
    }
    ++generation_;
}

bool ClusterState::deleted(const std::string& topic) const {
    std::lock_guard lock(mutex_);
    return deleted_.contains(topic);
}

void ClusterState::mark_deleted(const std::string& topic, bool deleted) {
    std::lock_guard lock(mutex_);
    if (deleted) {
        deleted_.insert(topic);
    } else {
        deleted_.erase(topic);
    }
    ++generation_;
}

void ClusterState::add_consumer(const std::string& topic, int delta) {
    std::lock_guard lock(mutex_);
    consumers_[topic] += delta;
}

int ClusterState::consumers(const std::string& topic) const {
    std::lock_guard lock(mutex_);
    auto found = consumers_.find(topic);
    return found == consumers_.end() ? 0 : found->second;
}

namespace {
std::string delivered_key(const std::string& group, const std::string& topic,
                          std::int32_t partition) {
    std::string key = group;
    key += '\0';
    key += topic;
    key += '\0';
    key += std::to_string(partition);
    return key;
}
}  // namespace

std::int64_t ClusterState::delivered_high(const std::string& group, const std::string& topic,
                                          std::int32_t partition) const {
    const std::string key = delivered_key(group, topic, partition);
    std::lock_guard lock(mutex_);
    auto found = delivered_.find(key);
    return found == delivered_.end() ? -1 : found->second;
}

void ClusterState::raise_delivered(const std::string& group, const std::string& topic,
                                   std::int32_t partition, std::int64_t offset) {
    std::string key = delivered_key(group, topic, partition);
    std::lock_guard lock(mutex_);
    auto [it, inserted] = delivered_.emplace(std::move(key), offset);
    if (!inserted && offset > it->second) it->second = offset;
}

std::uint64_t ClusterState::generation() const {
    return generation_.load(std::memory_order_acquire);
}

std::shared_ptr<ClusterState> cluster_state(const std::string& key) {
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<ClusterState>> states;
    std::lock_guard lock(mutex);
    auto& state = states[key];
    if (!state) state = std::make_shared<ClusterState>();
    return state;
}

}  // namespace kelp::kafka
