// KeySchema: the names of every Redis key and pub/sub channel the redis://
// transport uses, exactly as Kombu 5.2.4 names them for the same options, so
// kelp and Kombu/Celery processes meet on the same keys.
//
//   queue list, priority bucket 0      <prefix><queue>
//   queue list, bucket of step s > 0   <prefix><queue><sep><s>
//   bindings of an exchange (set)      <prefix>_kombu.binding.<exchange>
//   binding member                     <routing_key><sep><pattern><sep><queue>
//   fanout channel                     <prefix><fanout_prefix><exchange>[/<routing_key>]
//   unacked hash / index / mutex       <prefix>unacked, unacked_index, unacked_mutex
//
// <prefix> is global_keyprefix, which Kombu puts on every key and channel but
// not inside binding members or envelopes. The default fanout_prefix is
// "/<db>.".
//
// Priorities: a message of priority p (clamped to 0..9) goes to the bucket of
// the largest step <= p (steps 0,3,6,9: 0-2, 3-5, 6-8, 9). Kombu's consumers
// list the buckets lowest step first, so on Redis priority 0 is served first;
// kelp serves the highest step first unless priority_order=lower_first.
//
// Thread rules: immutable after construction; share freely.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wire/options.hpp"

namespace kelp::redis {

// One member of a binding set, split.
struct BindingMember {
    std::string routing_key;
    std::string pattern;  // Kombu's topic regex; empty for direct and fanout
    std::string queue;
    bool operator==(const BindingMember&) const = default;
};

// A queue list's key taken apart (a BRPOP reply names the key it popped).
struct QueueKey {
    std::string queue;
    int step = 0;  // the priority bucket
    bool operator==(const QueueKey&) const = default;
};

// The pattern field Kombu stores in a topic binding's member: its regex for
// the binding key ("a.#" gives "^a\\..*?$"), which Kombu publishers match the
// routing key against. Kombu's quirks are kept so members match byte for
// byte: '*' and '#' count only as whole words ('*' is ".*?[^\\.]", which can
// span words), and other characters but letters, digits and '.' are
// backslash-escaped. Every non-ASCII character is kept as is (Python escapes
// the non-ASCII ones that are not letters or digits; the regex means the
// same either way).
std::string kombu_topic_pattern(std::string_view binding_key);

class KeySchema {
  public:
    explicit KeySchema(const RedisSettings& settings);

    // The list a message of `priority` goes to.
    std::string queue_key(std::string_view queue, int priority) const;
    // Every bucket of `queue`, in the order BRPOP must list them: by
    // priority_order (higher_first: step 9 first; lower_first: step 0 first,
    // as Kombu). Also the set of keys to LLEN, DEL or EXISTS for the queue.
    std::vector<std::string> queue_keys_in_pop_order(std::string_view queue) const;
    // For several queues, priority-major as Kombu's BRPOP lists them: every
    // queue's first bucket, then every queue's second bucket, ...
    std::vector<std::string> queue_keys_in_pop_order(std::span<const std::string> queues) const;
    // The step whose bucket holds `priority` (clamped to 0..9 first).
    int priority_step(int priority) const;
    // The queue and step of a list key; nullopt when the key lacks the global
    // prefix. A suffix counts only when it is <sep> and one of the steps, so a
    // queue whose own name holds the separator is not cut (Kombu cuts it).
    std::optional<QueueKey> parse_queue_key(std::string_view key) const;

    std::string binding_key(std::string_view exchange) const;
    // Throws kelp::Error when a part holds the separator (Kombu would write a
    // member that no one can split back).
    std::string encode_binding(std::string_view routing_key, std::string_view pattern,
                               std::string_view queue) const;
    // Throws kelp::DecodeError unless the member splits into exactly three.
    BindingMember decode_binding(std::string_view member) const;

    // Where a fanout publish goes: the routing key is appended after '/' when
    // it is not empty and fanout_patterns is on.
    std::string fanout_channel(std::string_view exchange, std::string_view routing_key) const;
    // What a consumer of a queue bound with `binding_key` PSUBSCRIBEs to: as
    // fanout_channel, with '#' in the key turned into the glob '*' (Kombu's
    // rule; other glob characters are not escaped, as in Kombu).
    std::string fanout_pattern(std::string_view exchange, std::string_view binding_key) const;
    // The exchange a message received on `channel` was published to; nullopt
    // when the channel does not carry this schema's prefixes.
    std::optional<std::string> fanout_exchange(std::string_view channel) const;

    const std::string& unacked_key() const { return unacked_key_; }
    const std::string& unacked_index_key() const { return unacked_index_key_; }
    const std::string& unacked_mutex_key() const { return unacked_mutex_key_; }

    const std::string& global_keyprefix() const { return prefix_; }
    // The fanout prefix with the db filled in ("/0."), without the global prefix.
    const std::string& fanout_prefix() const { return fanout_prefix_; }
    const std::string& sep() const { return sep_; }
    const std::vector<int>& priority_steps() const { return steps_; }

  private:
    std::string bucket_key(std::string_view queue, int step) const;
    std::vector<int> steps_in_pop_order() const;

    std::string prefix_;
    std::string sep_;
    std::vector<int> steps_;  // ascending, steps_[0] == 0
    PriorityOrder priority_order_;
    std::string fanout_prefix_;
    bool fanout_patterns_;
    std::string unacked_key_;
    std::string unacked_index_key_;
    std::string unacked_mutex_key_;
};

}  // namespace kelp::redis
