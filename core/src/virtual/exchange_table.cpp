#include "kelp/virtual/exchange_table.hpp"

#include <algorithm>
#include <utility>

#include "kelp/errors.hpp"

namespace kelp::virt {

namespace {

constexpr std::string_view reserved_prefix = "amq.";
constexpr std::string_view alternate_exchange = "alternate-exchange";

// The exchanges every RabbitMQ vhost starts with; code written against
// RabbitMQ binds to them without declaring them.
struct StandardExchange {
    const char* name;
    ExchangeType type;
};
constexpr StandardExchange standard_exchanges[] = {
    {"amq.direct", ExchangeType::direct}, {"amq.fanout", ExchangeType::fanout},
    {"amq.topic", ExchangeType::topic},   {"amq.headers", ExchangeType::headers},
    {"amq.match", ExchangeType::headers},
};

[[noreturn]] void refuse_default_exchange() {
    throw ChannelError(
        "ACCESS_REFUSED - operation not permitted on the default exchange: it routes to the "
        "queue named by the routing key and cannot be declared, deleted or bound");
}

[[noreturn]] void no_exchange(std::string_view name) {
    throw NotFound("NOT_FOUND - no exchange '" + std::string(name) +
                   "' in vhost; declare it first");
}

// AMQP field tables arrive as JSON objects; null is the empty table.
Json normalized_table(const Json& table, std::string_view what) {
    if (table.is_null()) return Json::object();
    if (table.is_object()) return table;
    throw ChannelError("PRECONDITION_FAILED - " + std::string(what) +
                       " must be a JSON object (an AMQP field table), not " +
                       std::string(table.type_name()));
}

std::string in_quotes(bool value) {
    return value ? "'true'" : "'false'";
}

std::string in_quotes(std::string_view value) {
    return "'" + std::string(value) + "'";
}

[[noreturn]] void inequivalent(const std::string& exchange, std::string_view arg,
                               const std::string& received, const std::string& current) {
    throw ChannelError("PRECONDITION_FAILED - inequivalent arg '" + std::string(arg) +
                       "' for exchange '" + exchange + "': received " + received +
                       " but current is " + current +
                       "; declare it as it is, or delete it first to change it");
}

std::string describe_argument(const Json& arguments, std::string_view name) {
    auto it = arguments.find(name);
    if (it == arguments.end()) return "none";
    return in_quotes(it->dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace

ExchangeTable::ExchangeTable() {
    for (const auto& standard : standard_exchanges) {
        Exchange exchange;
        exchange.name = standard.name;
        exchange.type = standard.type;
        exchanges_.emplace(std::string(standard.name), std::move(exchange));
    }
}

const ExchangeTable::Exchange* ExchangeTable::find(std::string_view name) const {
    auto it = exchanges_.find(name);
    return it == exchanges_.end() ? nullptr : &it->second;
}

ExchangeTable::Exchange* ExchangeTable::find(std::string_view name) {
    auto it = exchanges_.find(name);
    return it == exchanges_.end() ? nullptr : &it->second;
}

ExchangeTable::Exchange& ExchangeTable::existing(std::string_view name) {
    if (name.empty()) refuse_default_exchange();
    Exchange* exchange = find(name);
    if (exchange == nullptr) no_exchange(name);
    return *exchange;
}

void ExchangeTable::declare(const std::string& name, ExchangeType type, bool durable,
                            bool auto_delete, const Json& arguments) {
    if (name.empty()) refuse_default_exchange();
    Json table = normalized_table(arguments, "exchange arguments");
    if (const Exchange* current = find(name)) {
        if (current->type != type) {
            inequivalent(name, "type", in_quotes(to_string(type)),
                         in_quotes(to_string(current->type)));
        }
        if (current->durable != durable) {
            inequivalent(name, "durable", in_quotes(durable), in_quotes(current->durable));
        }
        if (current->auto_delete != auto_delete) {
            inequivalent(name, "auto_delete", in_quotes(auto_delete),
                         in_quotes(current->auto_delete));
        }
        const auto wanted = table.find(alternate_exchange);
        const auto held = current->arguments.find(alternate_exchange);
        const bool wanted_set = wanted != table.end();
        const bool held_set = held != current->arguments.end();
        if (wanted_set != held_set || (wanted_set && *wanted != *held)) {
            inequivalent(name, alternate_exchange, describe_argument(table, alternate_exchange),
                         describe_argument(current->arguments, alternate_exchange));
        }
        return;
    }
    if (std::string_view(name).starts_with(reserved_prefix)) {
        throw ChannelError("ACCESS_REFUSED - exchange name '" + name +
                           "' contains reserved prefix 'amq.*'; choose another name");
    }
    Exchange exchange;
    exchange.name = name;
    exchange.type = type;
    exchange.durable = durable;
    exchange.auto_delete = auto_delete;
    exchange.arguments = std::move(table);
    exchanges_.emplace(name, std::move(exchange));
}

void ExchangeTable::declare_passive(std::string_view name) const {
    if (name.empty()) refuse_default_exchange();
    if (find(name) == nullptr) no_exchange(name);
}

bool ExchangeTable::exists(std::string_view name) const {
    return name.empty() || find(name) != nullptr;
}

std::optional<ExchangeType> ExchangeTable::type_of(std::string_view name) const {
    if (name.empty()) return ExchangeType::direct;
    const Exchange* exchange = find(name);
    if (exchange == nullptr) return std::nullopt;
    return exchange->type;
}

void ExchangeTable::remove(std::string_view name, bool if_unused) {
    if (name.empty()) refuse_default_exchange();
    if (name.starts_with(reserved_prefix)) {
        throw ChannelError("ACCESS_REFUSED - deletion of system exchange '" + std::string(name) +
                           "' not allowed");
    }
    auto it = exchanges_.find(name);
    if (it == exchanges_.end()) return;
    if (if_unused && !it->second.entries.empty()) {
        throw ChannelError("PRECONDITION_FAILED - exchange '" + std::string(name) +
                           "' in use: it still has bindings; unbind them or delete without "
                           "if_unused");
    }
    exchanges_.erase(it);
}

void ExchangeTable::index_entry(Exchange& exchange, std::size_t position) {
    Entry& entry = exchange.entries[position];
    const std::string& queue = entry.binding.queue;
    auto& positions = exchange.queue_entries[queue];
    positions.push_back(static_cast<std::uint32_t>(position));
    if (positions.size() > 1) {
        for (std::uint32_t other : positions)
            exchange.entries[other].shared_queue = true;
    }
    switch (exchange.type) {
        case ExchangeType::direct: {
            auto& queues = exchange.direct[entry.binding.routing_key];
            if (std::find(queues.begin(), queues.end(), queue) == queues.end()) {
                queues.push_back(queue);
            }
            break;
        }
        case ExchangeType::fanout:
            if (positions.size() == 1) exchange.fanout.push_back(queue);
            break;
        case ExchangeType::topic:
        case ExchangeType::headers:
            break;  // routed from `entries` directly
    }
}

// Removal shifts positions and may undo dedup flags; rebuilding the indexes
// keeps that logic in one place, and unbinding is rare next to routing.
void ExchangeTable::reindex(Exchange& exchange) {
    exchange.queue_entries.clear();
    exchange.direct.clear();
    exchange.fanout.clear();
    for (Entry& entry : exchange.entries)
        entry.shared_queue = false;
    for (std::size_t i = 0; i < exchange.entries.size(); ++i)
        index_entry(exchange, i);
}

bool ExchangeTable::bind(std::string_view exchange_name, std::string_view queue,
                         std::string_view routing_key, const Json& arguments) {
    Exchange& exchange = existing(exchange_name);
    Json table = normalized_table(arguments, "binding arguments");
    if (exchange.type == ExchangeType::headers) validate_headers_arguments(table);
    if (auto it = exchange.queue_entries.find(queue); it != exchange.queue_entries.end()) {
        for (std::uint32_t position : it->second) {
            const Binding& bound = exchange.entries[position].binding;
            if (bound.routing_key == routing_key && bound.arguments == table) return false;
        }
    }
    Entry entry;
    entry.binding.queue = std::string(queue);
    entry.binding.routing_key = std::string(routing_key);
    if (exchange.type == ExchangeType::topic) entry.topic.emplace(routing_key);
    if (exchange.type == ExchangeType::headers) entry.headers.emplace(table);
    entry.binding.arguments = std::move(table);
    exchange.entries.push_back(std::move(entry));
    index_entry(exchange, exchange.entries.size() - 1);
    return true;
}

bool ExchangeTable::unbind(std::string_view exchange_name, std::string_view queue,
                           std::string_view routing_key, const Json& arguments) {
    if (exchange_name.empty()) refuse_default_exchange();
    auto found = exchanges_.find(exchange_name);
    if (found == exchanges_.end()) no_exchange(exchange_name);
    Exchange& exchange = found->second;
    const Json table = normalized_table(arguments, "binding arguments");
    auto it = exchange.queue_entries.find(queue);
    if (it == exchange.queue_entries.end()) return false;
    for (std::uint32_t position : it->second) {
        const Binding& bound = exchange.entries[position].binding;
        if (bound.routing_key != routing_key || bound.arguments != table) continue;
        exchange.entries.erase(exchange.entries.begin() + position);
        reindex(exchange);
        if (exchange.auto_delete && exchange.entries.empty()) exchanges_.erase(found);
        return true;
    }
    return false;
}

void ExchangeTable::remove_queue(std::string_view queue) {
    for (auto it = exchanges_.begin(); it != exchanges_.end();) {
        Exchange& exchange = it->second;
        if (!exchange.queue_entries.contains(queue)) {
            ++it;
            continue;
        }
        std::erase_if(exchange.entries,
                      [queue](const Entry& entry) { return entry.binding.queue == queue; });
        reindex(exchange);
        if (exchange.auto_delete && exchange.entries.empty()) {
            it = exchanges_.erase(it);
        } else {
            ++it;
        }
    }
}

std::vector<Binding> ExchangeTable::bindings_of(std::string_view exchange_name) const {
    std::vector<Binding> bindings;
    if (const Exchange* exchange = find(exchange_name)) {
        bindings.reserve(exchange->entries.size());
        for (const Entry& entry : exchange->entries)
            bindings.push_back(entry.binding);
    }
    return bindings;
}

template <class Name>
void ExchangeTable::route_into(std::string_view exchange_name, std::string_view routing_key,
                               const Json& headers, std::vector<Name>& out) const {
    if (exchange_name.empty()) {
        out.emplace_back(routing_key);
        return;
    }
    const Exchange* exchange = find(exchange_name);
    if (exchange == nullptr) no_exchange(exchange_name);
    const std::size_t first = out.size();
    // Only a queue with several bindings can match twice, so only those pay
    // for the scan of what this call has appended so far.
    auto append = [&](const Entry& entry) {
        const std::string& queue = entry.binding.queue;
        if (entry.shared_queue && std::find(out.begin() + static_cast<std::ptrdiff_t>(first),
                                            out.end(), queue) != out.end()) {
            return;
        }
        out.emplace_back(queue);
    };
    switch (exchange->type) {
        case ExchangeType::direct: {
            auto it = exchange->direct.find(routing_key);
            if (it == exchange->direct.end()) break;
            // A plain loop: range insert costs more than the copies for the
            // one or two queues a key usually has.
            for (const std::string& queue : it->second)
                out.emplace_back(queue);
            break;
        }
        case ExchangeType::fanout:
            for (const std::string& queue : exchange->fanout)
                out.emplace_back(queue);
            break;
        case ExchangeType::topic:
            for (const Entry& entry : exchange->entries) {
                if (entry.topic->matches(routing_key)) append(entry);
            }
            break;
        case ExchangeType::headers:
            for (const Entry& entry : exchange->entries) {
                if (entry.headers->matches(headers)) append(entry);
            }
            break;
    }
}

void ExchangeTable::route(std::string_view exchange, std::string_view routing_key,
                          const Json& headers, std::vector<std::string>& out) const {
    route_into(exchange, routing_key, headers, out);
}

void ExchangeTable::route(std::string_view exchange, std::string_view routing_key,
                          const Json& headers, std::vector<std::string_view>& out) const {
    route_into(exchange, routing_key, headers, out);
}

}  // namespace kelp::virt
