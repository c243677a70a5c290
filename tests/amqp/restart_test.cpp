// A broker restart mid-stream: the test rabbitmq-server is stopped and started
// again (the fixture script's `restart`, same node and data directory) while a
// producer with publisher confirms publishes to a durable queue and a consumer
// on the Hub acks. Every confirmed message must be consumed after the restart
// (persistent messages in a durable queue survive it), duplicates only where
// at-least-once allows them, and the consumer resumes without help.
//
// Runs as its own ctest entry (amqp_broker_restart) that holds the broker's
// RESOURCE_LOCK, so no other test talks to the broker while it is down.
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "hub_errors.hpp"
#include "support.hpp"
#include "transport.hpp"

using namespace amqp_test;

namespace {

std::string env_or_fail(const char* name) {
    const char* value = std::getenv(name);
    REQUIRE_MESSAGE(value != nullptr, name << " is not set: run this test via ctest");
    return value;
}

}  // namespace

TEST_SUITE("amqp_restart") {
    TEST_CASE("broker restart mid-stream: every confirmed message consumed, consumer resumes") {
        const std::string script = env_or_fail("KELP_TEST_AMQP_SCRIPT");
        const std::string dir = env_or_fail("KELP_TEST_AMQP_DIR");
        const std::uint16_t port = broker_port();

        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler(kelp_test::record_errors(errors));
        kelp::Connection consumer_conn{
            url(port, "heartbeat=5&interval_step=200ms&interval_max=1s")};
        consumer_conn.register_with_event_loop(hub);
        auto& consumer_transport =
            dynamic_cast<kelp::amqp::AmqpTransport&>(consumer_conn.transport());
        std::vector<kelp::LinkEvent> consumer_events;
        consumer_transport.on_link_event(
            [&](const kelp::LinkEvent& e) { consumer_events.push_back(e); });

        // Durable exchange and queue: a broker restart keeps them and the
        // persistent messages in them (a transient queue would vanish).
        const kelp::Exchange exchange{unique_name("restart-x"),
                                      kelp::ExchangeType::direct,
                                      {.durable = true, .auto_delete = false}};
        const kelp::Queue queue{unique_name("restart-q"), exchange, "k",
                                kelp::QueueOptions{.durable = true, .auto_delete = false}};
        consumer_conn.maybe_declare(queue);

        std::map<int, int> seen;  // body -> times consumed
        int redelivered = 0;
        kelp::Consumer consumer{consumer_conn,
                                {queue},
                                [&](kelp::Message& m) {
                                    ++seen[std::stoi(m.body())];
                                    if (m.redelivered()) ++redelivered;
                                    m.ack();
                                },
                                {.prefetch_count = 20}};
        consumer.consume();

        // The producer runs on its own thread and Connection (with its own
        // private Hub): its publishes block while the broker is away.
        std::atomic<int> published{0};
        std::atomic<bool> restarted{false};
        std::atomic<bool> producer_done{false};
        std::mutex producer_mutex;
        std::set<int> confirmed;
        std::vector<int> failed;
        std::vector<std::string> producer_errors;
        int retries = 0;
        std::uint64_t producer_reconnections = 0;
        constexpr int after_restart = 300;
        std::thread producer_thread([&] {
            try {
                kelp::Connection conn{
                    url(port, "confirm_publish=true&interval_step=200ms&interval_max=1s")};
                auto& transport = dynamic_cast<kelp::amqp::AmqpTransport&>(conn.transport());
                transport.on_link_event([](const kelp::LinkEvent&) {});
                kelp::Producer producer{conn, {.exchange = exchange, .routing_key = "k"}};
                kelp::RetryPolicy policy;
                policy.max_retries = -1;
                policy.interval_step = 200ms;
                policy.interval_max = 1s;
                policy.timeout = 150s;
                policy.on_retry = [&](std::exception_ptr, int, std::chrono::milliseconds) {
                    const std::lock_guard lock(producer_mutex);
                    ++retries;
                };
                int after = 0;
                for (int i = 0; after < after_restart; ++i) {
                    try {
                        producer.publish(
                            std::to_string(i),
                            {.delivery_mode = kelp::DeliveryMode::persistent, .retry = policy});
                        const std::lock_guard lock(producer_mutex);
                        confirmed.insert(i);
                    } catch (const kelp::ConnectionError&) {
                        const std::lock_guard lock(producer_mutex);
                        failed.push_back(i);
                    }
                    published = i + 1;
                    if (restarted) ++after;
                    // Spread the stream over the restart instead of finishing first.
                    if (!restarted) std::this_thread::sleep_for(5ms);
                }
                producer_reconnections = transport.reconnections();
            } catch (const std::exception& error) {
                const std::lock_guard lock(producer_mutex);
                producer_errors.push_back(error.what());
            }
            producer_done = true;
        });

        // Mid-stream: the consumer has had some, the producer is still going.
        REQUIRE(run_until(
            hub, [&] { return seen.size() >= 100 && published >= 150; }, 60s));
        std::atomic<int> restart_status{-1};
        std::atomic<bool> restart_done{false};
        std::thread restarter([&] {
            const std::string command =
                "'" + script + "' restart '" + dir + "' " + std::to_string(port) + " >/dev/null";
            restart_status = std::system(command.c_str());
            restart_done = true;
        });
        // The Hub keeps running while the broker is down and booting.
        run_until(
            hub, [&] { return restart_done.load(); }, 150s);
        restarter.join();
        REQUIRE_MESSAGE(restart_status == 0, "the fixture script could not restart the broker");
        restarted = true;
        const int published_at_restart = published;
        MESSAGE("published before the broker came back: " << published_at_restart);

        REQUIRE(run_until(
            hub, [&] { return producer_done.load(); }, 180s));
        producer_thread.join();
        {
            const std::lock_guard lock(producer_mutex);
            for (const auto& error : producer_errors)
                FAIL_CHECK("producer: " << error);
            CHECK(failed.empty());
        }
        // Every confirmed message arrives, after the restart too, with no help
        // from the test: the consumer's transport reconnected by itself.
        const auto all_confirmed_seen = [&] {
            for (const int i : confirmed)
                if (!seen.contains(i)) return false;
            return true;
        };
        REQUIRE(run_until(hub, all_confirmed_seen, 120s));
        // A little longer for duplicates still on their way.
        run_until(
            hub, [] { return false; }, 1s);

        CHECK(consumer_transport.reconnections() >= 1);
        CHECK(consumer_transport.link_up());
        CHECK(confirmed.size() == static_cast<std::size_t>(published.load()));
        // Nothing consumed that was never published.
        for (const auto& [body, count] : seen)
            CHECK(body < published);
        // Duplicates: a redelivery (delivered, not acked when the broker went),
        // or a publish sent again (a retry after a lost confirm, or the
        // transport republishing what was unconfirmed at the drop).
        int duplicates = 0;
        for (const auto& [body, count] : seen)
            duplicates += count - 1;
        const int allowed = redelivered + retries + static_cast<int>(producer_reconnections);
        MESSAGE("confirmed " << confirmed.size() << ", consumed " << seen.size()
                             << " distinct, duplicates " << duplicates << ", redelivered "
                             << redelivered << ", publish retries " << retries
                             << ", producer reconnections " << producer_reconnections
                             << ", consumer reconnections " << consumer_transport.reconnections());
        CHECK(duplicates <= allowed);
        // Unconfirmed ones (none expected) may or may not have arrived.
        for (const auto& error : errors)
            CHECK_MESSAGE(error.find("PRECONDITION") == std::string::npos, error);
        CHECK(std::count_if(consumer_events.begin(), consumer_events.end(), [](const auto& e) {
                  return e.kind == kelp::LinkEvent::Kind::reconnected;
              }) >= 1);

        // Nothing left behind.
        consumer.cancel();
        kelp::Connection admin{url(port)};
        auto ok = admin.default_channel().queue_declare(queue, true);
        CHECK(ok.message_count == 0);
        admin.default_channel().queue_delete(queue.name);
        admin.default_channel().exchange_delete(exchange.name);
    }
}
