// QueuedMessage: one stored copy of a message in the memory broker, and the
// containers that pass it around.
//
// A node is filled once, when the message is published. Queues, a channel's
// batch being delivered, its unacked window and the broker's pool of spare
// nodes hold it by pointer, so a message is never moved or copied between
// publish and ack, and a settled node is reused (its strings keep their
// capacity) instead of freed. A queue holds pointers in a deque: taking a
// batch off it under the broker's lock reads no node, so a consumer on
// another thread than the producer does not wait for the producer's cache
// lines while it holds the lock.
//
// Thread rules: a container belongs to its holder: a queue's and the pool's
// to the broker (under its mutex), a channel's to the channel's thread.
// Nodes change hands only under the broker's mutex.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>

#include "kelp/virtual/stored_message.hpp"

namespace kelp::memory {

struct QueuedMessage {
    virt::StoredMessage stored;
    // The body's size, for queues with a byte limit (x-max-length-bytes).
    std::size_t body_size = 0;
    // The queue it was taken from, while a channel holds it: where a
    // requeue, a reject or a close sends it back.
    std::string queue;
};

using Node = std::unique_ptr<QueuedMessage>;
// First in, first out.
using NodeQueue = std::deque<Node>;

}  // namespace kelp::memory
