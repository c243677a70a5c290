#include "subscriber.hpp"

#include <algorithm>

#include "kelp/errors.hpp"

namespace kelp::redis {
namespace {

constexpr std::string_view invalidation_channel = "__redis__:invalidate";

}  // namespace

Subscriber::Subscriber(const Endpoint& endpoint, const Handshake& handshake,
                       Clock::time_point deadline, KeysChanged on_keys, Message on_message)
    : client_(RespClient::connect(endpoint, handshake, deadline)),
      on_keys_(std::move(on_keys)),
      on_message_(std::move(on_message)) {
    // CLIENT ID before SUBSCRIBE: a subscribed connection takes no other command.
    const Reply id = client_->call(args({"CLIENT", "ID"}), deadline);
    if (id.view().is_error()) {
        throw ConnectionError("redis: CLIENT ID failed on " + client_->peer() + ": " +
                              id.view().describe() +
                              "; kelp's consumers need Redis 6 or newer (client-side tracking)");
    }
    client_id_ = id.view().integer();
    client_->set_push_handler([this](ReplyView push) { on_push(push); });
    client_->send_subscription(args({"SUBSCRIBE", invalidation_channel}));
    // PING in subscribed mode answers ["pong", ""] through the command queue,
    // after the confirmation: once it is back, the subscription is live.
    const Reply pong = client_->call(args({"PING"}), deadline);
    if (pong.view().is_error()) {
        throw ConnectionError("redis: subscribing on " + client_->peer() +
                              " failed: " + pong.view().describe());
    }
}

void Subscriber::set_patterns(const std::set<std::string>& patterns, Clock::time_point deadline) {
    std::vector<std::string_view> added{"PSUBSCRIBE"};
    std::vector<std::string_view> dropped{"PUNSUBSCRIBE"};
    for (const auto& pattern : patterns) {
        if (patterns_.count(pattern) == 0) added.push_back(pattern);
    }
    for (const auto& pattern : patterns_) {
        if (patterns.count(pattern) == 0) dropped.push_back(pattern);
    }
    if (added.size() == 1 && dropped.size() == 1) return;
    {
        RespClient::Cork cork(*client_);
        if (added.size() > 1) client_->send_subscription(added);
        if (dropped.size() > 1) client_->send_subscription(dropped);
    }
    // Confirmations go to the push handler; the PING reply comes after them.
    client_->call(args({"PING"}), deadline);
    patterns_ = patterns;
}

void Subscriber::ping() {
    client_->send(args({"PING"}));
}

void Subscriber::on_push(ReplyView push) {
    const std::string_view kind = push[0].text();
    if (kind == "message" && push[1].text() == invalidation_channel) {
        const ReplyView keys = push[2];
        std::vector<std::string_view> names;
        if (keys.is_array()) {
            names.reserve(keys.size());
            for (std::size_t i = 0; i < keys.size(); ++i)
                names.push_back(keys[i].text());
        }
        on_keys_(names);
    } else if (kind == "pmessage" && push.size() == 4) {
        on_message_(push[1].text(), push[2].text(), push[3].text());
    }
    // (p)subscribe confirmations need nothing: the PING after them is awaited.
}

std::vector<std::string> tracking_prefixes(std::vector<std::string> keys) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::vector<std::string> prefixes;
    // Sorted, a key that another covers comes right after the one covering it
    // (or after keys the same one covers).
    for (auto& key : keys) {
        if (!prefixes.empty() && key.starts_with(prefixes.back())) continue;
        prefixes.push_back(std::move(key));
    }
    return prefixes;
}

}  // namespace kelp::redis
