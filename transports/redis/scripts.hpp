// The Lua scripts the redis:// transport runs on the server (EVALSHA). They
// are where the transport needs atomicity or wants to save a round trip:
//
//   pop            pops up to N messages over many queues and priority buckets
//                  and records each in Kombu's unacked hash and index, in one
//                  step: no crash window between the pop and the record.
//   publish        routes a message through the exchange's bindings (direct,
//                  topic with AMQP matching, fanout, headers) and pushes it to
//                  the right priority bucket of every matched queue: no extra
//                  round trip to read the bindings.
//   publish_to_queue  the default exchange at priority 0 (the common case):
//                  one LPUSHX when the queue's list exists, else the
//                  queue-exists check and an LPUSH, without the routing
//                  library, for one or many messages.
//   give_back      puts deliveries back (requeue, channel close, recover)
//                  into the exact list they came from, but only while the
//                  delivery's own unacked record is still there: a delivery
//                  restored by someone else is not pushed twice.
//   dead_letter    a rejected delivery goes to its queue's dead-letter
//                  exchange, only while its record is still there.
//   restore_expired  the visibility-timeout restore of one record, compared
//                  with the value read before, re-routed as Kombu does for
//                  Kombu's records.
//   declare_queue, declare_exchange, delete_queue, delete_exchange, purge,
//   unbind_queue, release_mutex: one round trip each, atomic.
//
// Routing context: the scripts that route take the same first arguments (see
// RouteContext in scripts.cpp), so one Lua routing library serves them all.
//
// Thread rules: the script table is immutable and shared; ScriptSet belongs
// to its transport's thread.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "client.hpp"

namespace kelp::redis {

enum class ScriptId : std::size_t {
    pop,
    publish,
    publish_to_queue,
    give_back,
    dead_letter,
    restore_expired,
    declare_queue,
    declare_exchange,
    delete_queue,
    delete_exchange,
    purge,
    unbind_queue,
    release_mutex,
    count_,
};

struct Script {
    std::string_view name;
    std::string body;
    std::string sha;  // SHA-1 of the body, hex, as EVALSHA wants it
};

// A script invocation that owns its arguments, for pipelined calls whose
// reply (or a NOSCRIPT retry) comes after the caller returned.
struct ScriptCall {
    ScriptId id = ScriptId::pop;
    std::vector<std::string> keys;
    std::vector<std::string> args;
};

// Every script with its SHA-1, built once.
const Script& script(ScriptId id);

// Loads every script on the server (SCRIPT LOAD), so EVALSHA finds them.
void load_scripts(RespClient& client, Clock::time_point deadline);

// EVALSHA's arguments: sha, number of keys, keys, args. `by_body` gives EVAL's
// instead (the body), for a server that lost its script cache (NOSCRIPT).
std::vector<std::string_view> eval_args(ScriptId id, std::span<const std::string_view> keys,
                                        std::span<const std::string_view> args, bool by_body,
                                        std::string& key_count_storage);

// True for the error a server gives when it does not know the script.
bool is_noscript(const ReplyView& reply);

// Marks written into the pattern field of binding members that Kombu leaves
// empty or fills with a topic regex: a fanout binding whose queue kelp
// consumes from its list (a durable fanout queue), and a headers binding with
// its arguments as JSON after the mark. Kombu never reads the pattern of such
// bindings.
inline constexpr std::string_view fanout_list_mark = "kelp:fanout";
inline constexpr std::string_view headers_mark = "kelp:headers:";

}  // namespace kelp::redis
