// Restorer: puts back messages whose consumer died, as Kombu's
// visibility-timeout restore does, but on a Hub timer every restore_interval
// whatever the load (Kombu restores only when a poll comes back empty, so a
// busy consumer never restores anything), over every expired record (no cap
// that strands the rest), each into the very list it was popped from (so its
// priority bucket is kept).
//
// It also refreshes this connection's own records first (their score in the
// unacked index becomes "now"), so a live consumer's long-running messages are
// not handed to someone else after visibility_timeout: only a consumer that
// stopped refreshing (crashed, or its Hub stalled that long) loses them.
//
// Kombu's records (fields that are delivery tags) are restored as Kombu does:
// routed again by their exchange and routing key. kelp's fields name their
// list (see Delivery::field).
//
// Thread rules: belongs to its transport's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kelp::redis {

class RedisTransport;

class Restorer {
  public:
    explicit Restorer(RedisTransport& transport) : transport_(transport) {}

    // One round: refresh this connection's records, then restore expired
    // ones (only while this connection consumes, as Kombu). Errors go to the
    // Hub's error handler; the next round tries again.
    void run();

    // Sets the index score of every record this connection holds to now.
    void refresh_leases();
    // Restores every record older than visibility_timeout (at most
    // unacked_restore_limit per round when set); returns how many. Takes
    // the unacked mutex only when some record has expired, and skips the
    // round when another process holds it.
    std::size_t restore_expired();

  private:
    RedisTransport& transport_;
    bool reported_stuck_ = false;
};

// The list named by a kelp record field ("kelp/<nonce>.<n>/<key>"); nullopt
// for Kombu's fields (plain delivery tags).
std::optional<std::string_view> field_source_key(std::string_view field);

// Unix time in seconds with microseconds, as Kombu scores the unacked index.
std::string unix_time_text(std::chrono::system_clock::time_point when);

// The score kelp gives its own records in the unacked index: Unix seconds,
// rounded up to a whole second. Kombu reads it as it reads its own scores;
// a record becomes restorable up to a second after visibility_timeout, never
// before. Whole numbers because Redis keeps a small sorted set as a flat
// list and parses a fractional score back from text at every comparison:
// one pop's ZADD of 50 records cost 440 us with fractional scores.
std::string index_score_text(std::chrono::system_clock::time_point when);

}  // namespace kelp::redis
