// Kombu's key and channel names.
#include "wire/keys.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <utility>

#include "kelp/errors.hpp"

namespace kelp::redis {
namespace {

constexpr std::string_view kBindingPrefix = "_kombu.binding.";

std::string fanout_prefix_for(const RedisSettings& settings) {
    if (const bool* enabled = std::get_if<bool>(&settings.fanout_prefix))
        return *enabled ? "/" + std::to_string(settings.db) + "." : std::string();
    // Kombu formats the prefix with str.format(db=...); "{db}" is the only field.
    std::string prefix = std::get<std::string>(settings.fanout_prefix);
    const std::string db = std::to_string(settings.db);
    for (std::size_t at = prefix.find("{db}"); at != std::string::npos;
         at = prefix.find("{db}", at + db.size()))
        prefix.replace(at, 4, db);
    return prefix;
}

std::string printable(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            out += ch;
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
        }
    }
    return out;
}

}  // namespace

std::string kombu_topic_pattern(std::string_view binding_key) {
    std::string pattern = "^";
    std::size_t word_start = 0;
    while (true) {
        const std::size_t dot = binding_key.find('.', word_start);
        const std::string_view word = binding_key.substr(word_start, dot - word_start);
        if (word_start > 0) pattern += "\\.";
        if (word == "*") {
            pattern += ".*?[^\\.]";
        } else if (word == "#") {
            pattern += ".*?";
        } else {
            for (const char ch : word) {
                const auto c = static_cast<unsigned char>(ch);
                const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                                   (c >= 'A' && c <= 'Z') || c >= 0x80;
                if (alnum || c == '#' || c == '*') {
                    pattern += ch;
                } else if (c == 0) {
                    pattern += "\\000";
                } else {
                    pattern += '\\';
                    pattern += ch;
                }
            }
        }
        if (dot == std::string_view::npos) break;
        word_start = dot + 1;
    }
    pattern += '$';
    return pattern;
}

KeySchema::KeySchema(const RedisSettings& settings)
    : prefix_(settings.global_keyprefix),
      sep_(settings.sep),
      steps_(settings.priority_steps),
      priority_order_(settings.priority_order),
      fanout_prefix_(fanout_prefix_for(settings)),
      fanout_patterns_(settings.fanout_patterns),
      unacked_key_(prefix_ + settings.unacked_key),
      unacked_index_key_(prefix_ + settings.unacked_index_key),
      unacked_mutex_key_(prefix_ + settings.unacked_mutex_key) {
    // Settings from redis_settings_from are checked already; hand-made ones
    // get the same check, since priority_step relies on it.
    if (const std::string problem = check_priority_steps(steps_); !problem.empty())
        throw std::invalid_argument("RedisSettings::priority_steps: " + problem);
    if (sep_.empty())
        throw std::invalid_argument("RedisSettings::sep is empty; Kombu's default is \\x06\\x16");
}

int KeySchema::priority_step(int priority) const {
    const int clamped = std::clamp(priority, 0, 9);
    // The largest step <= clamped; steps_[0] is 0, so there is one.
    return *std::prev(std::upper_bound(steps_.begin(), steps_.end(), clamped));
}

std::string KeySchema::bucket_key(std::string_view queue, int step) const {
    std::string key;
    key.reserve(prefix_.size() + queue.size() + sep_.size() + 1);
    key += prefix_;
    key += queue;
    if (step != 0) {
        key += sep_;
        key += std::to_string(step);
    }
    return key;
}

std::string KeySchema::queue_key(std::string_view queue, int priority) const {
    return bucket_key(queue, priority_step(priority));
}

std::vector<int> KeySchema::steps_in_pop_order() const {
    std::vector<int> steps = steps_;
    if (priority_order_ == PriorityOrder::higher_first) std::reverse(steps.begin(), steps.end());
    return steps;
}

std::vector<std::string> KeySchema::queue_keys_in_pop_order(std::string_view queue) const {
    std::vector<std::string> keys;
    keys.reserve(steps_.size());
    for (const int step : steps_in_pop_order())
        keys.push_back(bucket_key(queue, step));
    return keys;
}

std::vector<std::string> KeySchema::queue_keys_in_pop_order(
    std::span<const std::string> queues) const {
    std::vector<std::string> keys;
    keys.reserve(steps_.size() * queues.size());
    for (const int step : steps_in_pop_order())
        for (const auto& queue : queues)
            keys.push_back(bucket_key(queue, step));
    return keys;
}

std::optional<QueueKey> KeySchema::parse_queue_key(std::string_view key) const {
    if (!key.starts_with(prefix_)) return std::nullopt;
    key.remove_prefix(prefix_.size());
    const std::size_t at = key.rfind(sep_);
    if (at != std::string_view::npos) {
        const std::string_view suffix = key.substr(at + sep_.size());
        int step = 0;
        const auto [end, ec] = std::from_chars(suffix.data(), suffix.data() + suffix.size(), step);
        const bool is_step = ec == std::errc{} && end == suffix.data() + suffix.size() &&
                             step != 0 && suffix == std::to_string(step) &&
                             std::binary_search(steps_.begin(), steps_.end(), step);
        if (is_step) return QueueKey{std::string(key.substr(0, at)), step};
    }
    return QueueKey{std::string(key), 0};
}

std::string KeySchema::binding_key(std::string_view exchange) const {
    std::string key = prefix_;
    key += kBindingPrefix;
    key += exchange;
    return key;
}

std::string KeySchema::encode_binding(std::string_view routing_key, std::string_view pattern,
                                      std::string_view queue) const {
    const std::pair<const char*, std::string_view> parts[] = {
        {"routing key", routing_key}, {"pattern", pattern}, {"queue name", queue}};
    for (const auto& [what, text] : parts)
        if (text.find(sep_) != std::string_view::npos)
            throw kelp::Error(std::string("cannot bind: the ") + what + " '" + printable(text) +
                              "' contains the binding separator '" + printable(sep_) +
                              "', so the binding could not be read back; rename it or "
                              "choose another sep (both sides must use the same one)");
    std::string member;
    member.reserve(routing_key.size() + pattern.size() + queue.size() + 2 * sep_.size());
    member += routing_key;
    member += sep_;
    member += pattern;
    member += sep_;
    member += queue;
    return member;
}

BindingMember KeySchema::decode_binding(std::string_view member) const {
    const std::size_t first = member.find(sep_);
    const std::size_t second =
        first == std::string_view::npos ? first : member.find(sep_, first + sep_.size());
    const bool three = second != std::string_view::npos &&
                       member.find(sep_, second + sep_.size()) == std::string_view::npos;
    if (!three)
        throw kelp::DecodeError("binding '" + printable(member) +
                                "' is not <routing_key><sep><pattern><sep><queue> with sep '" +
                                printable(sep_) +
                                "'; check that every process uses the same sep option, or "
                                "remove the member from the binding set");
    return {std::string(member.substr(0, first)),
            std::string(member.substr(first + sep_.size(), second - first - sep_.size())),
            std::string(member.substr(second + sep_.size()))};
}

std::string KeySchema::fanout_channel(std::string_view exchange,
                                      std::string_view routing_key) const {
    std::string channel = prefix_;
    channel += fanout_prefix_;
    channel += exchange;
    if (!routing_key.empty() && fanout_patterns_) {
        channel += '/';
        channel += routing_key;
    }
    return channel;
}

std::string KeySchema::fanout_pattern(std::string_view exchange,
                                      std::string_view binding_key) const {
    std::string glob(binding_key);
    std::replace(glob.begin(), glob.end(), '#', '*');
    return fanout_channel(exchange, glob);
}

std::optional<std::string> KeySchema::fanout_exchange(std::string_view channel) const {
    if (!channel.starts_with(prefix_)) return std::nullopt;
    channel.remove_prefix(prefix_.size());
    if (!channel.starts_with(fanout_prefix_)) return std::nullopt;
    channel.remove_prefix(fanout_prefix_.size());
    if (!fanout_patterns_) return std::string(channel);
    return std::string(channel.substr(0, channel.find('/')));
}

}  // namespace kelp::redis
