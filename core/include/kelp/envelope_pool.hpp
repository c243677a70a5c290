// Envelope recycling for Producer, and for transports that build the
// envelopes of received messages (kafka): an envelope, once its last
// reference is gone (the consumer settled it and dropped the Message), comes
// back here with its strings' capacity instead of being freed, so a steady
// stream of small messages is published and received without allocating.
// Not part of the application API (namespace detail).
//
// An envelope and its shared_ptr control block live in one pooled slot. The
// slot returns to the releasing thread's cache; a full cache passes half of
// it to a process-wide depot, and an empty one takes from there, so slots
// freed by a consumer thread flow back to a producer thread in batches of
// one lock each. Envelopes with a large body are freed, not kept.
//
// Thread rules: thread-safe; the envelope returned belongs to the caller.
#pragma once

#include <memory>

#include "kelp/message.hpp"

namespace kelp::detail {

// An envelope to fill: its body and properties may still hold an earlier
// message's values, so the caller assigns every one of them; `headers` is
// null.
std::shared_ptr<Envelope> pooled_envelope();

}  // namespace kelp::detail
