// Each exchange type routes as AMQP 0-9-1 says; mandatory and non-mandatory
// unroutable publishes.
#include "support.hpp"

using namespace conformance;

namespace {

using Bodies = std::vector<std::string>;

}  // namespace

TEST_SUITE("conformance") {
    TEST_CASE("direct exchange routes on the exact routing key") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Exchange exchange{scope.exchange_name("direct"), kelp::ExchangeType::direct};
        const kelp::Queue q1{scope.queue_name("direct1"), exchange, "k1"};
        const kelp::Queue q2{scope.queue_name("direct2"), exchange, "k2"};
        // A second queue on k1: direct delivers to every queue bound with the key.
        const kelp::Queue q3{scope.queue_name("direct3"), exchange, "k1"};
        for (const auto& q : {q1, q2, q3})
            conn.maybe_declare(q);
        kelp::Producer producer{conn, {.exchange = exchange}};
        for (const char* key : {"k1", "k2", "k3", "K1", "k1.x", ""}) {
            producer.publish(std::string("to ") + key, {.routing_key = key});
        }
        const auto got = collect(conn, {q1.name, q2.name, q3.name});
        CHECK(got.at(q1.name) == Bodies{"to k1"});
        CHECK(got.at(q2.name) == Bodies{"to k2"});
        CHECK(got.at(q3.name) == Bodies{"to k1"});
    }

    TEST_CASE("topic exchange matches with AMQP word semantics") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, exchange_topic);
        const kelp::Exchange exchange{scope.exchange_name("topic"), kelp::ExchangeType::topic};
        const std::vector<std::pair<std::string, Bodies>> bindings = {
            {"a.#", {"a", "a.b", "a.b.c"}},
            {"*.stock.#", {"usd.stock", "eur.stock.db"}},
            {"a.*", {"a.b"}},
            {"*", {"a", "stock", "b"}},
            {"#", {"a", "a.b", "a.b.c", "usd.stock", "eur.stock.db", "stock", "b", "x.a"}},
            {"*.a", {"x.a"}},
            {"a.b.c", {"a.b.c"}},
        };
        const Bodies keys = {"a", "a.b", "a.b.c", "usd.stock", "eur.stock.db", "stock", "b", "x.a"};
        std::vector<std::string> names;
        for (const auto& [pattern, expected] : bindings) {
            names.push_back(scope.queue_name("topic"));
            conn.maybe_declare(kelp::Queue{names.back(), exchange, pattern});
        }
        kelp::Producer producer{conn, {.exchange = exchange}};
        for (const auto& key : keys)
            producer.publish(key, {.routing_key = key});
        const auto got = collect(conn, names);
        for (std::size_t i = 0; i < bindings.size(); ++i) {
            CAPTURE(bindings[i].first);
            CHECK(got.at(names[i]) == bindings[i].second);
        }
    }

    TEST_CASE("fanout exchange delivers to every bound queue") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, exchange_fanout);
        const kelp::Exchange exchange{scope.exchange_name("fanout"), kelp::ExchangeType::fanout};
        std::vector<std::string> names;
        // The binding keys differ: fanout ignores them.
        for (const char* key : {"", "x", "y.z"}) {
            names.push_back(scope.queue_name("fanout"));
            conn.maybe_declare(kelp::Queue{names.back(), exchange, key});
        }
        kelp::Producer producer{conn, {.exchange = exchange}};
        const Bodies sent = {"m0", "m1", "m2", "m3", "m4"};
        for (const auto& body : sent)
            producer.publish(body, {.routing_key = "any." + body});
        const auto got = collect(conn, names);
        for (const auto& name : names) {
            CAPTURE(name);
            CHECK(got.at(name) == sent);
        }
    }

    TEST_CASE("headers exchange matches x-match all and any") {
        Scope scope;
        kelp::Connection conn{test_url()};
        KELP_REQUIRE_CAPABILITY(conn, exchange_headers);
        const kelp::Exchange exchange{scope.exchange_name("headers"), kelp::ExchangeType::headers};
        const std::string all = scope.queue_name("hdr-all");
        const std::string any = scope.queue_name("hdr-any");
        auto channel = conn.channel();
        channel->exchange_declare(exchange);
        channel->queue_declare(kelp::Queue{all});
        channel->queue_declare(kelp::Queue{any});
        channel->queue_bind(all, exchange.name, "",
                            {{"x-match", "all"}, {"format", "pdf"}, {"type", "report"}});
        channel->queue_bind(any, exchange.name, "",
                            {{"x-match", "any"}, {"format", "pdf"}, {"type", "report"}});

        const std::vector<std::pair<std::string, kelp::Table>> messages = {
            {"both", {{"format", "pdf"}, {"type", "report"}}},
            {"both-extra", {{"format", "pdf"}, {"type", "report"}, {"other", 1}}},
            {"format-only", {{"format", "pdf"}, {"type", "log"}}},
            {"type-only", {{"type", "report"}}},
            {"neither", {{"format", "zip"}}},
            {"no-headers", kelp::Table()},
            // Values compare by type too: the string "pdf" is not 1.
            {"wrong-type", {{"format", 1}, {"type", 2}}},
        };
        kelp::Producer producer{conn, {.exchange = exchange}};
        for (const auto& [body, headers] : messages) {
            producer.publish(body, {.routing_key = "ignored", .headers = headers});
        }
        const auto got = collect(conn, {all, any});
        CHECK(got.at(all) == Bodies{"both", "both-extra"});
        CHECK(got.at(any) == Bodies{"both", "both-extra", "format-only", "type-only"});
    }

    TEST_CASE("mandatory publish to an unroutable key calls on_return") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Exchange exchange{scope.exchange_name("mandatory")};
        const kelp::Queue bound{scope.queue_name("mandatory"), exchange, "routable"};
        conn.maybe_declare(bound);
        std::vector<kelp::ReturnedMessage> returned;
        kelp::Producer producer{conn,
                                {.exchange = exchange, .on_return = [&](kelp::ReturnedMessage& r) {
                                     returned.push_back(r);
                                 }}};
        producer.publish("lost", {.routing_key = "nowhere", .mandatory = true});
        producer.publish("kept", {.routing_key = "routable", .mandatory = true});
        // Brokers report returns asynchronously: run the loop until it came.
        REQUIRE(drain_until(
            conn, [&] { return !returned.empty(); }, 5s));
        const auto got = collect(conn, {bound.name});
        REQUIRE(returned.size() == 1);
        CHECK(returned[0].envelope.body == "lost");
        CHECK(returned[0].exchange == exchange.name);
        CHECK(returned[0].routing_key == "nowhere");
        CHECK(returned[0].reply_code == 312);
        CHECK(got.at(bound.name) == Bodies{"kept"});
    }

    TEST_CASE("mandatory publish to an unroutable key without a callback is a ChannelError") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Exchange exchange{scope.exchange_name("mandatory-throw")};
        auto channel = conn.channel();
        channel->exchange_declare(exchange);
        // Synchronously where the transport can tell, else from the loop.
        bool raised = false;
        try {
            channel->basic_publish(bytes_envelope("lost"), exchange.name, "nowhere",
                                   {.mandatory = true});
            drain_until(
                conn, [] { return false; }, 2s);
        } catch (const kelp::ChannelError&) {
            raised = true;
        }
        CHECK(raised);
    }

    TEST_CASE("routing follows declares, binds, unbinds and deletes between publishes") {
        // One producer keeps publishing to the same places while the
        // topology changes under it: a transport that remembers where a
        // routing key went must notice every change.
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Exchange exchange{scope.exchange_name("follow")};
        conn.maybe_declare(exchange);
        const std::string late = scope.queue_name("follow-late");
        const std::string bound = scope.queue_name("follow-bound");
        kelp::Producer producer{conn};
        kelp::Channel& channel = producer.channel();
        auto to_queue = [&](const char* body) { producer.publish(body, {.routing_key = late}); };
        auto to_exchange = [&](const char* body) {
            producer.publish(body, {.exchange = exchange, .routing_key = "k"});
        };

        to_queue("before declare");  // no such queue yet: dropped
        to_exchange("before bind");  // nothing bound yet: dropped
        channel.queue_declare(kelp::Queue{late});
        channel.queue_declare(kelp::Queue{bound});
        channel.queue_bind(bound, exchange.name, "k");
        to_queue("after declare");
        to_exchange("after bind");
        channel.queue_unbind(bound, exchange.name, "k");
        to_exchange("after unbind");  // dropped
        channel.queue_delete(late);   // "after declare" goes with it
        to_queue("after delete");     // dropped
        channel.queue_declare(kelp::Queue{late});
        to_queue("after redeclare");

        const auto got = collect(conn, {late, bound});
        CHECK(got.at(late) == Bodies{"after redeclare"});
        CHECK(got.at(bound) == Bodies{"after bind"});
    }

    TEST_CASE("non-mandatory unroutable publish is dropped silently") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Exchange exchange{scope.exchange_name("drop")};
        const kelp::Queue bound{scope.queue_name("drop"), exchange, "routable"};
        conn.maybe_declare(bound);
        int returns = 0;
        kelp::Producer producer{
            conn, {.exchange = exchange, .on_return = [&](kelp::ReturnedMessage&) { ++returns; }}};
        CHECK_NOTHROW(producer.publish("dropped", {.routing_key = "nowhere"}));
        producer.publish("kept", {.routing_key = "routable"});
        // Without a callback either: no error.
        auto bare = conn.channel();
        CHECK_NOTHROW(bare->basic_publish(bytes_envelope("dropped"), exchange.name, "nowhere"));
        const auto got = collect(conn, {bound.name});
        CHECK(got.at(bound.name) == Bodies{"kept"});
        CHECK(returns == 0);
        // Counted where the transport can see it (a virtual broker).
        if (const auto dropped = bare->unroutable_dropped()) {
            CHECK(*dropped == 1);
            CHECK(producer.channel().unroutable_dropped() == std::optional<std::uint64_t>(1));
        } else {
            report_skip("unroutable_dropped: the broker drops unroutable messages silently");
        }
    }
}
