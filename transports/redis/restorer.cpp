#include "restorer.hpp"

#include <cstdio>
#include <vector>

#include "channel.hpp"
#include "kelp/errors.hpp"
#include "scripts.hpp"
#include "transport.hpp"
#include "wire/envelope.hpp"
#include "wire/unacked.hpp"

namespace kelp::redis {
namespace {

// Records read and restored per round trip.
constexpr std::size_t sweep_batch = 100;
// Index members refreshed per ZADD.
constexpr std::size_t refresh_batch = 256;

constexpr std::string_view field_mark = "kelp/";

// The payload to push back: marked redelivered, as Kombu's restore marks it.
// A payload kelp cannot read goes back as it was, never dropped.
std::string redelivered_payload(const std::string& payload, BodyEncoding encoding, int& priority) {
    try {
        DecodedMessage message = decode_message(payload);
        message.delivery.redelivered = true;
        priority = message.delivery.priority;
        return encode_message(message.envelope, message.delivery, encoding);
    } catch (const Error&) {
        return payload;
    }
}

}  // namespace

std::optional<std::string_view> field_source_key(std::string_view field) {
    if (!field.starts_with(field_mark)) return std::nullopt;
    const std::size_t slash = field.find('/', field_mark.size());
    if (slash == std::string_view::npos) return std::nullopt;
    return field.substr(slash + 1);
}

std::string unix_time_text(std::chrono::system_clock::time_point when) {
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
    char text[32];
    std::snprintf(text, sizeof text, "%lld.%06lld", static_cast<long long>(micros / 1000000),
                  static_cast<long long>(micros % 1000000));
    return text;
}

std::string index_score_text(std::chrono::system_clock::time_point when) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(when.time_since_epoch()).count();
    return std::to_string(seconds);
}

void Restorer::run() {
    if (!transport_.connected()) return;
    try {
        refresh_leases();
        bool consuming = false;
        for (const auto& channel : transport_.live_channels()) {
            if (!channel->consumed_queues().empty()) consuming = true;
        }
        if (consuming) restore_expired();
    } catch (const Error&) {
        transport_.report(std::current_exception());
    }
}

void Restorer::refresh_leases() {
    std::vector<std::string> fields;
    for (const auto& channel : transport_.live_channels())
        channel->collect_fields(fields);
    if (fields.empty()) return;
    const std::string now = index_score_text(std::chrono::system_clock::now());
    const KeySchema& keys = transport_.keys();
    RespClient& client = transport_.command();
    RespClient::Cork cork(client);
    for (std::size_t first = 0; first < fields.size(); first += refresh_batch) {
        // XX: only records still there; one acked meanwhile stays gone.
        std::vector<std::string_view> command{"ZADD", keys.unacked_index_key(), "XX"};
        for (std::size_t i = first; i < fields.size() && i < first + refresh_batch; ++i) {
            command.push_back(now);
            command.push_back(fields[i]);
        }
        client.send(command);
    }
}

std::size_t Restorer::restore_expired() {
    const RedisSettings& settings = transport_.settings();
    const KeySchema& keys = transport_.keys();
    RespClient& client = transport_.command();
    const auto deadline = transport_.call_deadline();

    const auto threshold = unix_time_text(
        std::chrono::system_clock::now() -
        std::chrono::duration_cast<std::chrono::microseconds>(settings.visibility_timeout));
    // Nothing expired, the usual case while every consumer lives: no lock.
    // A process killed while it holds the lock leaves it for
    // unacked_mutex_expire (5 min by default), and meanwhile nobody restores
    // anything; taken every round (every restore_interval, by every
    // consumer), a kill -9 would often land there.
    {
        const Reply first = client.call(
            args({"ZRANGEBYSCORE", keys.unacked_index_key(), "-inf", threshold, "LIMIT", "0", "1"}),
            deadline);
        if (first.view().is_error())
            throw ChannelError("redis: reading the unacked index failed: " +
                               first.view().describe());
        if (first.view().size() == 0) return 0;
    }

    // Kombu's lock, so a Kombu worker and kelp do not sweep at once.
    const std::string token = new_delivery_tag();
    const std::string expire = std::to_string(settings.unacked_mutex_expire.count());
    const Reply locked =
        client.call(args({"SET", keys.unacked_mutex_key(), token, "NX", "PX", expire}), deadline);
    if (locked.view().is_nil()) return 0;
    if (locked.view().is_error()) {
        throw ChannelError("redis: cannot take " + keys.unacked_mutex_key() + ": " +
                           locked.view().describe());
    }
    struct Unlock {
        RespClient& client;
        const std::string& mutex;
        const std::string& token;
        ~Unlock() {
            try {
                std::string count;
                const std::string_view key_list[] = {mutex};
                const std::string_view arg_list[] = {token};
                client.send(eval_args(ScriptId::release_mutex, key_list, arg_list, false, count));
            } catch (const Error&) {
                // The lock expires by itself (unacked_mutex_expire).
            }
        }
    } unlock{client, keys.unacked_mutex_key(), token};

    std::size_t restored = 0;
    std::size_t skipped = 0;  // left in place this round; read past them
    while (true) {
        const std::string offset = std::to_string(skipped);
        const std::string count = std::to_string(sweep_batch);
        const Reply expired = client.call(args({"ZRANGEBYSCORE", keys.unacked_index_key(), "-inf",
                                                threshold, "LIMIT", offset, count}),
                                          deadline);
        const ReplyView list = expired.view();
        if (list.is_error())
            throw ChannelError("redis: reading the unacked index failed: " + list.describe());
        if (list.size() == 0) break;
        std::vector<std::string> fields;
        for (std::size_t i = 0; i < list.size(); ++i)
            fields.emplace_back(list[i].text());

        Pipeline reads(client);
        for (const auto& field : fields)
            reads.add(args({"HGET", keys.unacked_key(), field}));
        reads.run(deadline);

        Pipeline writes(client);
        // Kept alive until the writes are sent: the arguments point into them.
        std::vector<std::vector<std::string>> storage;
        for (std::size_t i = 0; i < fields.size(); ++i) {
            const ReplyView record = reads.reply(i).view();
            std::string expected(record.text());
            std::string payload;
            std::string exchange;
            std::string routing_key;
            int priority = 0;
            if (!record.is_nil()) {
                try {
                    UnackedRecord decoded = decode_unacked(expected);
                    payload =
                        redelivered_payload(decoded.payload, settings.body_encoding, priority);
                    exchange = std::move(decoded.exchange);
                    routing_key = std::move(decoded.routing_key);
                } catch (const DecodeError& error) {
                    if (!reported_stuck_) {
                        std::fprintf(stderr,
                                     "kelp redis: unacked record '%s' is unreadable (%s); left "
                                     "in %s\n",
                                     fields[i].c_str(), error.what(), keys.unacked_key().c_str());
                        reported_stuck_ = true;
                    }
                    ++skipped;
                    continue;
                }
            }
            const auto source = field_source_key(fields[i]);
            storage.push_back({fields[i], std::move(expected), std::move(payload),
                               source ? std::string(*source) : std::string(), std::move(exchange),
                               std::move(routing_key), std::to_string(priority)});
            const auto& values = storage.back();
            std::vector<std::string_view> arguments(transport_.route().args());
            arguments.insert(arguments.end(), values.begin(), values.end());
            const std::string_view key_list[] = {keys.unacked_key(), keys.unacked_index_key()};
            std::string key_count;
            writes.add(eval_args(ScriptId::restore_expired, key_list, arguments, false, key_count));
        }
        writes.run(deadline);
        for (std::size_t i = 0; i < writes.size(); ++i) {
            const ReplyView result = writes.reply(i).view();
            if (result.is_error()) {
                throw ChannelError("redis: restoring an unacked message failed: " +
                                   result.describe());
            }
            const std::int64_t outcome = result.integer();
            if (outcome == 1) {
                ++restored;
            } else if (outcome < 0) {
                // Changed since read (-1) or nowhere to route it (-2): left for
                // a later round, read past now.
                ++skipped;
                if (outcome == -2 && !reported_stuck_) {
                    std::fprintf(stderr,
                                 "kelp redis: an expired unacked message (%s) matches no queue "
                                 "any more; left in %s until a queue is bound again\n",
                                 storage[i][0].c_str(), keys.unacked_key().c_str());
                    reported_stuck_ = true;
                }
            }
        }
        if (settings.unacked_restore_limit &&
            static_cast<std::int64_t>(restored) >= *settings.unacked_restore_limit) {
            break;
        }
        if (list.size() < sweep_batch) break;
    }
    return restored;
}

}  // namespace kelp::redis
