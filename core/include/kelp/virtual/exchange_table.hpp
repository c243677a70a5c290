// ExchangeTable: the exchanges and bindings of one virtual vhost, and the
// routing of a published message to queue names. It is how transports whose
// brokers have no exchanges (memory, Redis) get AMQP routing.
//
// Behaviour follows RabbitMQ rather than Kombu's virtual transport:
//   * The default exchange "" always exists: a direct exchange that routes to
//     the queue named by the routing key (route() appends the key; whether
//     such a queue exists is the caller's business). It cannot be declared,
//     deleted, bound or unbound (ACCESS_REFUSED).
//   * amq.direct, amq.fanout, amq.topic, amq.headers and amq.match exist from
//     the start and may be redeclared with the same definition, but not
//     deleted; declaring any other "amq." name is refused (ACCESS_REFUSED).
//   * Redeclaring an exchange is a no-op if type, durable, auto_delete and the
//     `alternate-exchange` argument agree (RabbitMQ compares no other argument)
//     and a ChannelError (PRECONDITION_FAILED) otherwise.
//   * A binding is identified by (queue, routing key, arguments): binding the
//     same triple again is a no-op, and unbinding a binding that does not
//     exist is a no-op too. Null arguments mean the empty table.
//   * An auto_delete exchange is deleted when its last binding goes.
//   * route() appends each matching queue once, in the order of the queue's
//     first matching binding. It allocates nothing besides what `out` needs.
//
// Thread rules: not thread-safe. The owning broker serialises every call
// (route() included, if bindings may change concurrently). route() is const
// and touches no mutable state, so concurrent route() calls with no writer
// (under a shared lock, say) are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kelp/exchange_type.hpp"
#include "kelp/json.hpp"
#include "kelp/virtual/matching.hpp"

namespace kelp::virt {

// One queue binding of an exchange, as bound (arguments always an object).
struct Binding {
    std::string queue;
    std::string routing_key;
    Json arguments = Json::object();

    bool operator==(const Binding&) const = default;
};

class ExchangeTable {
  public:
    ExchangeTable();

    // Creates the exchange, or checks that an existing one is equivalent.
    // Throws ChannelError: ACCESS_REFUSED for "" and new "amq." names,
    // PRECONDITION_FAILED for an inequivalent redeclaration or arguments
    // that are neither null nor an object.
    void declare(const std::string& name, ExchangeType type, bool durable, bool auto_delete,
                 const Json& arguments);
    // A passive declare: NotFound unless the exchange exists; ACCESS_REFUSED
    // for "".
    void declare_passive(std::string_view name) const;

    bool exists(std::string_view name) const;
    std::optional<ExchangeType> type_of(std::string_view name) const;

    // Deletes the exchange and its bindings; a missing exchange is a no-op,
    // as on RabbitMQ. ChannelError for "" and "amq." names, and with
    // `if_unused` when the exchange has bindings.
    void remove(std::string_view name, bool if_unused);

    // Returns true if the binding is new. NotFound if the exchange does not
    // exist; ChannelError for "" and for a headers binding whose x-match is
    // invalid. The queue's existence is the caller's business.
    bool bind(std::string_view exchange, std::string_view queue, std::string_view routing_key,
              const Json& arguments);
    // Returns true if a binding was removed. NotFound if the exchange does not
    // exist; ChannelError for "".
    bool unbind(std::string_view exchange, std::string_view queue, std::string_view routing_key,
                const Json& arguments);
    // Drops every binding to `queue`: call it when the queue is deleted.
    void remove_queue(std::string_view queue);

    // The bindings of `exchange` in binding order; empty for "" (its bindings
    // are implicit) and for an exchange that does not exist.
    std::vector<Binding> bindings_of(std::string_view exchange) const;

    // Appends the names of the queues the message goes to. NotFound if the
    // exchange does not exist. `headers` matters only to headers exchanges;
    // pass null or an object.
    void route(std::string_view exchange, std::string_view routing_key, const Json& headers,
               std::vector<std::string>& out) const;
    // The same without copying names: the views point into this table (or,
    // for the default exchange, at `routing_key`) and stay valid until the
    // next non-const call.
    void route(std::string_view exchange, std::string_view routing_key, const Json& headers,
               std::vector<std::string_view>& out) const;

  private:
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const noexcept {
            return std::hash<std::string_view>{}(text);
        }
    };
    template <class Value>
    using StringMap = std::unordered_map<std::string, Value, StringHash, std::equal_to<>>;

    struct Entry {
        Binding binding;
        std::optional<TopicPattern> topic;      // topic exchanges only
        std::optional<HeadersPattern> headers;  // headers exchanges only
        // The queue has other bindings on this exchange, so a match must
        // check that the queue is not already in the output.
        bool shared_queue = false;
    };

    struct Exchange {
        std::string name;
        ExchangeType type = ExchangeType::direct;
        bool durable = true;
        bool auto_delete = false;
        Json arguments = Json::object();

        std::vector<Entry> entries;  // binding order
        // queue -> positions in `entries`: finds a queue's bindings without a
        // scan (duplicate checks, dedup flags).
        StringMap<std::vector<std::uint32_t>> queue_entries;
        StringMap<std::vector<std::string>> direct;  // direct: routing key -> queues
        std::vector<std::string> fanout;             // fanout: queues, first-bound first
    };

    static void index_entry(Exchange& exchange, std::size_t position);
    static void reindex(Exchange& exchange);

    const Exchange* find(std::string_view name) const;
    Exchange* find(std::string_view name);
    Exchange& existing(std::string_view name);

    template <class Name>
    void route_into(std::string_view exchange, std::string_view routing_key, const Json& headers,
                    std::vector<Name>& out) const;

    StringMap<Exchange> exchanges_;
};

}  // namespace kelp::virt
