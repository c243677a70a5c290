// A consumer killed (kill -9) while it holds an unacked message: the message
// sits in Kombu's unacked hash and index, and a consumer of the other
// library gets it back once its visibility_timeout (2 s here) has passed.
#include <signal.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace interop;
using kelp::Json;

namespace {

// The unacked bookkeeping is empty: every delivery was settled.
void check_no_unacked(RedisProbe& probe) {
    CHECK(probe.command({"HLEN", "unacked"}) == 0);
    CHECK(probe.command({"ZCARD", "unacked_index"}) == 0);
}

}  // namespace

TEST_SUITE("crash_recovery") {
    TEST_CASE("a kelp consumer killed holding a message: Kombu gets it back") {
        RedisProbe probe;
        probe.flush();
        const kelp::Exchange exchange{"x.crash.kelp"};
        const kelp::Queue queue{"c.kelp", exchange, "crash"};
        {
            kelp::Connection conn{redis_url()};
            conn.maybe_declare(queue);
            kelp::Producer producer{conn};
            producer.publish("held by kelp",
                             {.exchange = exchange, .routing_key = "crash", .headers = {{"n", 1}}});
            conn.close();
        }
        Child holder([&](int out) {
            kelp::Connection conn{redis_url()};
            kelp::Consumer consumer{conn,
                                    {queue},
                                    [out](kelp::Message& message) {
                                        // Never acked: the process dies holding it.
                                        const std::string line = message.body() + "\n";
                                        if (::write(out, line.data(), line.size()) < 0) ::_exit(2);
                                    },
                                    {.prefetch_count = 1}};
            consumer.consume();
            while (true) {
                try {
                    conn.drain_events(1s);
                } catch (const kelp::TimeoutError&) {
                }
            }
        });
        REQUIRE(holder.read_line(15s) == std::optional<std::string>("held by kelp"));
        // kelp's record is in Kombu's hash and index, the list is empty.
        CHECK(probe.command({"HLEN", "unacked"}) == 1);
        CHECK(probe.command({"ZCARD", "unacked_index"}) == 1);
        CHECK(probe.command({"LLEN", "c.kelp"}) == 0);
        holder.kill(SIGKILL);
        const auto status = holder.wait(5s);
        REQUIRE(status.has_value());
        CHECK(describe_status(*status) == "killed by signal 9");

        const Json report =
            kombu_consume(Json{{"url", redis_url()},
                               {"transport_options", {{"visibility_timeout", 2}}},
                               {"queues", Json::array({{{"name", "c.kelp"},
                                                        {"exchange", "x.crash.kelp"},
                                                        {"type", "direct"},
                                                        {"routing_key", "crash"}}})},
                               {"count", 1},
                               {"timeout", 20}});
        REQUIRE(report.size() == 1);
        CHECK(report[0]["body_b64"] == "aGVsZCBieSBrZWxw");  // "held by kelp"
        CHECK(report[0]["redelivered"] == true);
        CHECK(report[0]["exchange"] == "x.crash.kelp");
        CHECK(report[0]["routing_key"] == "crash");
        CHECK(kelp::parse_json(report[0]["headers_json"].get<std::string>()) ==
              Json{{"n", 1}, {"redelivered", true}});
        check_no_unacked(probe);
    }

    TEST_CASE("a Kombu consumer killed holding a message: kelp gets it back") {
        RedisProbe probe;
        probe.flush();
        const Json queue = {{"name", "c.kombu"},
                            {"exchange", "x.crash.kombu"},
                            {"type", "direct"},
                            {"routing_key", "crash"}};
        kombu_publish(Json{{"url", redis_url()},
                           {"queues", Json::array({queue})},
                           {"messages", Json::array({{{"exchange", "x.crash.kombu"},
                                                      {"routing_key", "crash"},
                                                      {"body", {{"text", "held by kombu"}}},
                                                      {"headers", {{"n", 2}}}}})}});
        TempDir dir;
        dir.write("spec.json",
                  kelp::dump_json(Json{{"url", redis_url()}, {"queues", Json::array({queue})}}));
        Child holder({python, kombu_peer, "hold", dir.file("spec.json").string()},
                     dir.file("stderr"));
        const auto line = holder.read_line(15s);
        INFO("kombu_peer.py hold said: " << dir.read("stderr"));
        REQUIRE(line.has_value());
        REQUIRE(line->starts_with("holding "));
        CHECK(kelp::parse_json(line->substr(8))["body_b64"] == "aGVsZCBieSBrb21idQ==");
        // Kombu's record: field = the delivery tag, [envelope, exchange, routing key].
        CHECK(probe.command({"HLEN", "unacked"}) == 1);
        holder.kill(SIGKILL);
        REQUIRE(holder.wait(5s).has_value());

        {
            kelp::Connection conn{redis_url("visibility_timeout=2&restore_interval=250ms")};
            KelpConsumer kelp_side(
                conn, {kelp::Queue{"c.kombu", kelp::Exchange{"x.crash.kombu"}, "crash"}});
            const auto& received = kelp_side.collect(1, 20s);
            REQUIRE(received.size() == 1);
            CHECK(received[0].envelope.body == "held by kombu");
            CHECK(received[0].redelivered);
            CHECK(received[0].exchange == "x.crash.kombu");
            CHECK(received[0].routing_key == "crash");
            CHECK(received[0].envelope.headers == Json{{"n", 2}, {"redelivered", true}});
        }  // closing the connection sends the ack before the link goes
        check_no_unacked(probe);
    }
}
