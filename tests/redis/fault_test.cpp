// Faults: the link to Redis drops under a consumer running on a Hub. The
// fault proxy (tests/support/fault_proxy.hpp) between kelp and the test
// server cuts the connections and refuses new ones for a while, as a
// restarting server or a flaky network would.
#include <atomic>
#include <mutex>
#include <thread>

#include "fault_proxy.hpp"
#include "hub_errors.hpp"
#include "support.hpp"

using namespace redis_test;

namespace {

bool run_until(kelp::Hub& hub, const std::function<bool()>& done, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done() && Clock::now() < deadline)
        hub.run_once(20ms);
    return done();
}

}  // namespace

TEST_SUITE("redis faults") {
    TEST_CASE("a consumer on a Hub reconnects after the link drops and goes on consuming") {
        kelp_test::FaultProxy proxy(port());
        const std::string prefix = unique("fault") + ":";
        const std::string queue = unique("q");
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler(kelp_test::record_errors(errors));
        kelp::Connection conn{"redis://127.0.0.1:" + std::to_string(proxy.port()) +
                              "/0?global_keyprefix=" + prefix +
                              "&interval_start=10ms&interval_step=50ms&interval_max=200ms"};
        std::vector<kelp::LinkEvent> events;
        conn.on_link_event([&](const kelp::LinkEvent& e) { events.push_back(e); });
        conn.register_with_event_loop(hub);
        std::vector<std::string> bodies;
        std::vector<kelp::Message> held;
        kelp::Consumer consumer{conn, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                    bodies.push_back(m.body());
                                    if (m.body() == "before") {
                                        held.push_back(std::move(m));
                                    } else {
                                        m.ack();
                                    }
                                }};
        consumer.consume();
        auto kombu = raw();
        command(*kombu, {"LPUSH", prefix + queue, kombu_envelope("before", "", queue)});
        REQUIRE(run_until(
            hub, [&] { return bodies.size() == 1; }, 5s));

        // The server goes away for a while: cut, and new connections refused.
        proxy.refuse(true);
        proxy.cut();
        REQUIRE(run_until(
            hub, [&] { return !events.empty(); }, 5s));
        CHECK(events[0].kind == kelp::LinkEvent::Kind::lost);
        CHECK(events[0].transport == "redis");
        CHECK_FALSE(conn.connected());
        run_until(
            hub, [] { return false; }, 300ms);  // reconnect attempts fail meanwhile
        proxy.refuse(false);

        command(*kombu, {"LPUSH", prefix + queue, kombu_envelope("after", "", queue)});
        REQUIRE(run_until(
            hub, [&] { return bodies.size() == 2; }, 10s));
        CHECK(bodies[1] == "after");
        CHECK(conn.connected());
        // The drop and the return are events, not errors thrown at the loop.
        REQUIRE(events.size() >= 2);
        CHECK(events.back().kind == kelp::LinkEvent::Kind::reconnected);
        CHECK(events.back().attempt >= 1);
        for (const auto& error : errors)
            CHECK_MESSAGE(false, "an error reached the Hub: " << error);

        // The message held across the gap is still recorded (once the ack
        // of "after", pipelined, has reached the server), and acks.
        CHECK(run_until(
            hub,
            [&] {
                return integer(command(*kombu, {"HLEN", prefix + "unacked"})) == 1;
            },
            5s));
        held[0].ack();
        CHECK(run_until(
            hub,
            [&] {
                return integer(command(*kombu, {"HLEN", prefix + "unacked"})) == 0;
            },
            5s));
    }

    TEST_CASE("with max_retries=0 the transport does not reconnect and says so") {
        kelp_test::FaultProxy proxy(port());
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler(kelp_test::record_errors(errors));
        kelp::Connection conn{"redis://127.0.0.1:" + std::to_string(proxy.port()) +
                              "/0?max_retries=0"};
        std::vector<kelp::LinkEvent> events;
        conn.on_link_event([&](const kelp::LinkEvent& e) { events.push_back(e); });
        conn.register_with_event_loop(hub);
        conn.connect();
        proxy.cut();
        // Giving up is an event and an error: nothing is consumed after it.
        REQUIRE(run_until(
            hub, [&] { return !errors.empty(); }, 5s));
        CHECK(errors.back().find("gave up reconnecting") != std::string::npos);
        REQUIRE(events.size() == 2);
        CHECK(events[0].kind == kelp::LinkEvent::Kind::lost);
        CHECK(events[1].kind == kelp::LinkEvent::Kind::gave_up);
        run_until(
            hub, [] { return false; }, 200ms);
        CHECK_FALSE(conn.connected());
    }
}
