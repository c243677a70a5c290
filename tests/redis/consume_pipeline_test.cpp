// Consumption at speed: pops pipelined ahead of the batch being handed out,
// the pop script taking many messages per call, and the records of messages
// acked inside callbacks removed together. None of it may lose, double or
// strand a message.
#include <set>
#include <string>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace redis_test;

namespace {

// Publishes bodies "0".."count-1" to `queue` (declared) on `conn`.
void publish_numbered(kelp::Connection& conn, const std::string& queue, int count) {
    kelp::Producer producer{conn};
    for (int i = 0; i < count; ++i) {
        producer.publish(std::to_string(i),
                         {.routing_key = queue, .declare = {kelp::Queue{queue}}});
    }
    REQUIRE(producer.channel().unroutable_dropped().value_or(0) == 0);
}

}  // namespace

TEST_SUITE("redis consume pipeline") {
    TEST_CASE("prefetch 10, acked in the callback: each message once, in order, no record left") {
        const std::string prefix = unique("pipe") + ":";
        const std::string queue = unique("q");
        kelp::Connection conn{url(prefix)};
        constexpr int total = 1000;
        publish_numbered(conn, queue, total);
        int next = 0;
        int out_of_order = 0;
        kelp::Consumer consumer{conn,
                                {kelp::Queue{queue}},
                                [&](kelp::Message& m) {
                                    if (m.body() != std::to_string(next)) ++out_of_order;
                                    ++next;
                                    m.ack();
                                },
                                {.prefetch_count = 10}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return next >= total; }));
        CHECK(next == total);
        CHECK(out_of_order == 0);
        auto redis = raw();
        // The acks of the last turn are sent when it ends; their replies follow.
        CHECK(eventually([&] {
            return integer(command(*redis, {"HLEN", prefix + "unacked"})) == 0;
        }));
        CHECK(integer(command(*redis, {"ZCARD", prefix + "unacked_index"})) == 0);
        CHECK(integer(command(*redis, {"LLEN", prefix + queue})) == 0);
    }

    TEST_CASE("a channel closed mid-batch, a pop in flight, gives every unacked message back") {
        const std::string prefix = unique("pipe-close") + ":";
        const std::string queue = unique("q");
        kelp::Connection conn{url(prefix)};
        constexpr int total = 200;
        publish_numbered(conn, queue, total);
        auto channel = conn.channel();
        std::set<std::string> acked;
        int seen = 0;
        kelp::Consumer consumer{conn,
                                channel,
                                {kelp::Queue{queue}},
                                [&](kelp::Message& m) {
                                    ++seen;
                                    // Half of the window acked: the next pop is in flight.
                                    if (seen <= 6) {
                                        acked.insert(m.body());
                                        m.ack();
                                    }
                                    if (seen == 8) channel->close();
                                },
                                {.prefetch_count = 10}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return seen >= 8; }));
        CHECK(seen == 8);
        auto redis = raw();
        // What was not acked is back in the list (in front), nothing recorded.
        CHECK(integer(command(*redis, {"LLEN", prefix + queue})) == total - 6);
        CHECK(integer(command(*redis, {"HLEN", prefix + "unacked"})) == 0);
        CHECK(integer(command(*redis, {"ZCARD", prefix + "unacked_index"})) == 0);
        // And every message not acked comes again, once.
        kelp::Connection again{url(prefix)};
        std::multiset<std::string> bodies;
        kelp::Consumer second{again, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                  bodies.insert(m.body());
                                  m.ack();
                              }};
        second.consume();
        REQUIRE(drain_until(again, [&] { return bodies.size() >= total - 6; }));
        CHECK(bodies.size() == total - 6);
        for (const auto& body : acked)
            CHECK(bodies.count(body) == 0);
        CHECK(std::set<std::string>(bodies.begin(), bodies.end()).size() == bodies.size());
    }

    TEST_CASE("one pop call takes up to the window from several queues, round robin") {
        const std::string prefix = unique("pipe-rr") + ":";
        const std::string a = unique("a");
        const std::string b = unique("b");
        kelp::Connection conn{url(prefix)};
        publish_numbered(conn, a, 30);
        publish_numbered(conn, b, 5);
        std::string order;
        kelp::Consumer consumer{conn,
                                {kelp::Queue{a}, kelp::Queue{b}},
                                [&](kelp::Message& m) {
                                    order += m.delivery_info().queue == a ? 'a' : 'b';
                                    m.ack();
                                },
                                {.prefetch_count = 100}};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return order.size() >= 35; }));
        // b's five are spread over the first ten deliveries, not left last.
        CHECK(order.size() == 35);
        CHECK(order.substr(0, 10) == "ababababab");
    }
}
