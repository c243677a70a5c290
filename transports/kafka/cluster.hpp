// What the connections of one process share per Kafka cluster: librdkafka's
// in-process mock clusters (kafka://mock), and the topology Kafka itself
// does not keep (named direct exchanges and their bindings, queue
// definitions for redeclare checks, logically deleted topics on the mock),
// plus the highest offset this process has delivered per group and
// partition, which sets Message::redelivered().
//
// Thread rules: every function and every ClusterState member is safe from
// any thread (one mutex per cluster).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kelp/entities.hpp"

namespace kelp::kafka {

// The bootstrap servers of the process-wide mock cluster `name` (started on
// first use with `brokers` brokers, kept until the process exits). Throws
// ConnectionError when librdkafka cannot start it.
std::string mock_cluster_bootstraps(const std::string& name, int brokers);
// Creates a topic on the mock cluster `name` (the mock has no admin API for
// it). Throws ChannelError with librdkafka's text.
void mock_create_topic(const std::string& name, const std::string& topic, int partitions,
                       int replication);

// Takes broker `broker_id` (1-based) of the mock cluster `name` down (its
// connections cut, new ones refused) or up again: for tests of a lost link.
void mock_set_broker_up(const std::string& name, int broker_id, bool up);

class ClusterState {
  public:
    // Topology -------------------------------------------------------------
    // Returns false when `exchange` exists with another definition.
    bool declare_exchange(const Exchange& exchange);
    bool has_exchange(const std::string& name) const;
    void delete_exchange(const std::string& name);
    void bind(const std::string& exchange, const std::string& routing_key,
              const std::string& queue);
    void unbind(const std::string& exchange, const std::string& routing_key,
                const std::string& queue);
    // The queues bound to `exchange` with `routing_key`; nullopt when the
    // exchange was never declared in this process.
    std::optional<std::vector<std::string>> route(const std::string& exchange,
                                                  const std::string& routing_key) const;

    // The definition of a queue declared in this process, if any.
    std::optional<Queue> queue(const std::string& name) const;
    void remember_queue(const Queue& queue);
    void forget_queue(const std::string& name);
    bool deleted(const std::string& topic) const;
    void mark_deleted(const std::string& topic, bool deleted);

    // Consumers per topic (queue_delete's if_unused) --------------------------
    void add_consumer(const std::string& topic, int delta);
    int consumers(const std::string& topic) const;

    // Highest offset delivered per group/topic/partition -----------------------
    // The highest offset delivered so far (-1: none); a transport reads it
    // when it starts tracking a partition and raises it when it lets go.
    std::int64_t delivered_high(const std::string& group, const std::string& topic,
                                std::int32_t partition) const;
    void raise_delivered(const std::string& group, const std::string& topic, std::int32_t partition,
                         std::int64_t offset);

    // Bumped by every change of exchanges, bindings and deletions: a
    // transport's route cache is valid while this does not move.
    std::uint64_t generation() const;

  private:
    mutable std::mutex mutex_;
    std::map<std::string, Exchange> exchanges_;
    std::map<std::string, std::set<std::pair<std::string, std::string>>> bindings_;
    std::map<std::string, Queue> queues_;
    std::set<std::string> deleted_;
    std::map<std::string, int> consumers_;
    std::map<std::string, std::int64_t> delivered_;
    std::atomic<std::uint64_t> generation_{1};  // read without the lock
};

// The state shared by every connection to the cluster `key` (its bootstrap
// servers).
std::shared_ptr<ClusterState> cluster_state(const std::string& key);

}  // namespace kelp::kafka
