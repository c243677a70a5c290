// Kombu's delivery tags: a random uuid4 per published message, made by the
// publisher ("df157af3-eb0a-4907-9a8b-ac3af53c3e5b"). The tag names the
// message in the unacked hash and index, so two messages must never share one.
//
// Thread rules: new_delivery_tag may be called from any thread; each thread
// draws from its own generator, and a forked child reseeds before its first
// tag so parent and child never repeat each other's tags.
#pragma once

#include <string>

namespace kelp::redis {

// A version-4 UUID in its 36-character text form, lower-case. Unique, not
// secret: drawn from a per-thread generator seeded once from
// std::random_device, so a tag costs a few nanoseconds.
std::string new_delivery_tag();

}  // namespace kelp::redis
