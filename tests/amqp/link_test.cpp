// The link: heartbeats keep an idle connection up; a peer that stops
// answering is found dead; a dropped socket mid-stream is reconnected with
// its topology and consumers, every message counted, none acked twice.
#include <map>
#include <set>

#include "channel.hpp"
#include "hub_errors.hpp"
#include "support.hpp"
#include "transport.hpp"

using namespace amqp_test;

namespace {

kelp::amqp::AmqpTransport& amqp_of(kelp::Connection& conn) {
    return dynamic_cast<kelp::amqp::AmqpTransport&>(conn.transport());
}

}  // namespace

TEST_SUITE("amqp") {
    TEST_CASE("heartbeat=1: the connection stays up through five idle intervals") {
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler(kelp_test::record_errors(errors));
        kelp::Connection conn{url(broker_port(), "heartbeat=1")};
        conn.register_with_event_loop(hub);
        auto& transport = amqp_of(conn);
        std::vector<kelp::LinkEvent> events;
        transport.on_link_event([&](const kelp::LinkEvent& e) { events.push_back(e); });
        const kelp::Queue queue{unique_name("hb"), kelp::QueueOptions{.auto_delete = true}};
        conn.maybe_declare(queue);
        // Idle: no traffic but heartbeats, both ways, for five intervals.
        const auto until = Clock::now() + 5s;
        run_until(
            hub, [&] { return Clock::now() >= until; }, 6s);
        CHECK(events.empty());
        CHECK(errors.empty());
        CHECK(transport.link_up());
        CHECK(transport.reconnections() == 0);
        // The same link still works.
        kelp::Producer producer{conn};
        producer.publish("after idle", {.routing_key = queue.name});
        std::optional<kelp::Message> got;
        for (int i = 0; i < 50 && !got; ++i) {
            got = conn.default_channel().basic_get(queue.name, true);
            if (!got) hub.run_once(20ms);
        }
        REQUIRE(got.has_value());
        CHECK(got->body() == "after idle");
        CHECK(transport.reconnections() == 0);
        conn.default_channel().queue_delete(queue.name);
    }

    TEST_CASE("heartbeat=1: a broker that stops answering is found dead and reconnected") {
        Proxy proxy(broker_port());
        kelp::Hub hub;
        hub.set_error_handler([](std::exception_ptr) {});
        kelp::Connection conn{url(proxy.port(), "heartbeat=1")};
        conn.register_with_event_loop(hub);
        auto& transport = amqp_of(conn);
        std::vector<kelp::LinkEvent> events;
        Clock::time_point lost_at{};
        // Through the Connection, as an application sets it.
        conn.on_link_event([&](const kelp::LinkEvent& e) {
            if (e.kind == kelp::LinkEvent::Kind::lost && events.empty()) lost_at = Clock::now();
            events.push_back(e);
        });
        conn.default_channel();
        run_until(
            hub, [] { return false; }, 1500ms);
        REQUIRE(events.empty());
        const auto frozen_at = Clock::now();
        proxy.freeze(true);
        REQUIRE(run_until(
            hub, [&] { return !events.empty(); }, 10s));
        CHECK(events.front().kind == kelp::LinkEvent::Kind::lost);
        CHECK(events.front().transport == "amqp");
        CHECK(events.front().detail.find("heartbeat") != std::string::npos);
        // Two intervals of silence, plus the quarter interval between looks
        // (and slack for a loaded machine): never the TCP timeout's minutes.
        CHECK(lost_at - frozen_at < 4s);
        proxy.cut();
        proxy.freeze(false);
        REQUIRE(run_until(
            hub, [&] { return transport.reconnections() >= 1; }, 20s));
        CHECK(transport.link_up());
    }

    TEST_CASE(
        "a socket dropped mid-stream: reconnects, restarts the consumer, counts every "
        "message") {
        Proxy proxy(broker_port());
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler(kelp_test::record_errors(errors));
        // Consumer through the proxy; publisher straight to the broker.
        kelp::Connection consumer_conn{url(proxy.port(), "heartbeat=2&interval_step=100ms")};
        consumer_conn.register_with_event_loop(hub);
        auto& transport = amqp_of(consumer_conn);
        transport.on_link_event([](const kelp::LinkEvent&) {});
        kelp::Connection publisher_conn{url(broker_port())};
        const kelp::Exchange exchange{unique_name("rx"),
                                      kelp::ExchangeType::direct,
                                      {.durable = false, .auto_delete = false}};
        // Declared through the consumer's connection only: after the drop it
        // must be declared again by the transport itself (auto_delete goes
        // with its last consumer).
        const kelp::Queue queue{unique_name("rq"), exchange, "k",
                                kelp::QueueOptions{.durable = false}};
        constexpr int total = 400;
        std::map<std::string, int> seen;
        int redelivered = 0;
        kelp::Consumer consumer{consumer_conn,
                                {queue},
                                [&](kelp::Message& m) {
                                    ++seen[m.body()];
                                    if (m.redelivered()) ++redelivered;
                                    m.ack();
                                },
                                {.prefetch_count = 20}};
        consumer.consume();
        kelp::Producer producer{publisher_conn, {.exchange = exchange}};
        for (int i = 0; i < total / 2; ++i)
            producer.publish(std::to_string(i), {.routing_key = "k"});
        REQUIRE(run_until(
            hub, [&] { return seen.size() >= 50; }, 20s));
        // Mid-stream: some delivered and acked, some in flight, some queued.
        proxy.cut();
        for (int i = total / 2; i < total; ++i)
            producer.publish(std::to_string(i), {.routing_key = "k"});
        REQUIRE(run_until(
            hub, [&] { return seen.size() >= static_cast<std::size_t>(total); }, 60s));
        CHECK(transport.reconnections() >= 1);
        CHECK(seen.size() == static_cast<std::size_t>(total));
        // Duplicates only as redeliveries (unacked when the link went).
        int duplicates = 0;
        for (const auto& [body, count] : seen)
            duplicates += count - 1;
        CHECK(duplicates <= redelivered);
        // No stale delivery tag reached the new channel (the broker would have
        // closed it with PRECONDITION_FAILED, reported as an error).
        for (const auto& error : errors)
            CHECK_MESSAGE(error.find("PRECONDITION") == std::string::npos, error);
        // Nothing left behind, nothing unacked.
        auto ok = publisher_conn.default_channel().queue_declare(queue, true);
        CHECK(ok.message_count == 0);
        consumer.cancel();
        publisher_conn.default_channel().queue_delete(queue.name);
        publisher_conn.default_channel().exchange_delete(exchange.name);
    }

    TEST_CASE(
        "a publish retried through Connection::ensure while the link is down keeps the "
        "consumers of the same connection") {
        Proxy proxy(broker_port());
        kelp::Hub hub;
        hub.set_error_handler([](std::exception_ptr) {});
        kelp::Connection conn{url(proxy.port(), "interval_start=10ms&interval_step=50ms")};
        conn.on_link_event([](const kelp::LinkEvent&) {});
        conn.register_with_event_loop(hub);
        const kelp::Queue queue{unique_name("eq"), kelp::QueueOptions{.durable = false}};
        std::vector<std::string> bodies;
        kelp::Consumer consumer{conn, {queue}, [&](kelp::Message& m) {
                                    bodies.push_back(m.body());
                                    m.ack();
                                }};
        consumer.consume();
        kelp::Producer producer{conn};
        producer.publish("before", {.routing_key = queue.name});
        REQUIRE(run_until(
            hub, [&] { return bodies.size() == 1; }, 10s));
        kelp::Transport* before = &conn.transport();

        // The broker is unreachable: the first try fails, and the retry
        // policy's callback lets it back before the next.
        proxy.refuse(true);
        proxy.cut();
        // Noticed first: a publish written into a socket whose peer is gone
        // is lost without confirms (use confirm_publish for that case).
        REQUIRE(run_until(
            hub, [&] { return !amqp_of(conn).link_up(); }, 10s));
        int retries = 0;
        const kelp::RetryPolicy policy{
            .max_retries = 20,
            .interval_start = 10ms,
            .interval_step = 50ms,
            .on_retry = [&](std::exception_ptr, int, std::chrono::milliseconds) {
                ++retries;
                proxy.refuse(false);
            }};
        producer.publish("after", {.routing_key = queue.name, .retry = policy});
        CHECK(retries >= 1);
        // The same transport, so the consumer made on it still consumes.
        CHECK(&conn.transport() == before);
        REQUIRE(run_until(
            hub, [&] { return bodies.size() == 2; }, 20s));
        CHECK(bodies[1] == "after");
        consumer.cancel();
        conn.default_channel().queue_delete(queue.name);
    }
}
