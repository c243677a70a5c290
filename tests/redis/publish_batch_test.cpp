// Publishes to the default exchange pushed faster than Redis takes them:
// whether or not they were merged into one script call while the connection
// was backed up, they arrive once each, in order, and the unroutable ones
// are counted one by one.
#include <string>

#include <doctest/doctest.h>

#include "support.hpp"
#include "wire/envelope.hpp"

using namespace redis_test;

namespace {

// How many of the `total` bodies in `list` are not "<i><suffix>" in publish
// order. Consumers pop from the right: the first published is the last
// element.
int out_of_order(kelp::redis::RespClient& redis, const std::string& list, int total,
                 const std::string& suffix) {
    const auto bodies = texts(command(redis, {"LRANGE", list, "0", "-1"}));
    if (bodies.size() != static_cast<std::size_t>(total)) return total;
    int wrong = 0;
    for (int i = 0; i < total; ++i) {
        const auto decoded = kelp::redis::decode_message(bodies[total - 1 - i]);
        if (decoded.envelope.body != std::to_string(i) + suffix) ++wrong;
    }
    return wrong;
}

}  // namespace

TEST_SUITE("redis publish batches") {
    TEST_CASE("a burst of publishes arrives once each, in publish order") {
        const std::string prefix = unique("burst") + ":";
        const std::string queue = unique("q");
        kelp::Connection conn{url(prefix)};
        kelp::Producer producer{conn};
        conn.maybe_declare(kelp::Queue{queue});
        constexpr int total = 20000;
        const std::string padding(400, 'p');
        for (int i = 0; i < total; ++i)
            producer.publish(std::to_string(i) + ":" + padding, {.routing_key = queue});
        CHECK(producer.channel().unroutable_dropped() == 0u);
        auto redis = raw();
        REQUIRE(integer(command(*redis, {"LLEN", prefix + queue})) == total);
        CHECK(out_of_order(*redis, prefix + queue, total, ":" + padding) == 0);
    }

    TEST_CASE("a burst to a queue that does not exist is dropped and counted, message by message") {
        const std::string prefix = unique("burst-none") + ":";
        const std::string queue = unique("nowhere");
        kelp::Connection conn{url(prefix)};
        kelp::Producer producer{conn};
        constexpr int total = 5000;
        for (int i = 0; i < total; ++i)
            producer.publish(std::to_string(i), {.routing_key = queue});
        CHECK(producer.channel().unroutable_dropped() == std::uint64_t{total});
        auto redis = raw();
        CHECK(integer(command(*redis, {"EXISTS", prefix + queue})) == 0);
    }

    TEST_CASE(
        "a PublishBatch holds publishes until it ends, then sends them in a few script calls") {
        const std::string prefix = unique("batch") + ":";
        const std::string queue = unique("q");
        kelp::Connection conn{url(prefix)};
        kelp::Producer producer{conn};
        conn.maybe_declare(kelp::Queue{queue});
        auto redis = raw();
        auto script_calls = [&] {
            // "cmdstat_evalsha:calls=N,..." in INFO commandstats: the whole
            // server's count, so this suite runs alone (RUN_SERIAL).
            const std::string info = text(command(*redis, {"INFO", "commandstats"}));
            const auto at = info.find("cmdstat_evalsha:calls=");
            if (at == std::string::npos) return std::int64_t{0};
            return std::int64_t{std::stoll(info.substr(at + 22))};
        };
        const std::int64_t calls_before = script_calls();
        constexpr int total = 300;
        {
            kelp::PublishBatch batch{producer};
            for (int i = 0; i < total; ++i)
                producer.publish(std::to_string(i), {.routing_key = queue});
            // Held: nothing has reached Redis yet.
            CHECK(integer(command(*redis, {"EXISTS", prefix + queue})) == 0);
        }
        CHECK(producer.channel().unroutable_dropped() == 0u);  // waits for the replies
        REQUIRE(integer(command(*redis, {"LLEN", prefix + queue})) == total);
        // One script call for the run (a few, if it outgrew one command),
        // not one per publish.
        CHECK(script_calls() - calls_before <= 5);
        CHECK(out_of_order(*redis, prefix + queue, total, "") == 0);
    }

    TEST_CASE("a connection closed inside a PublishBatch: the batch ends without harm") {
        const std::string prefix = unique("batch-close") + ":";
        const std::string queue = unique("q");
        kelp::Connection conn{url(prefix)};
        kelp::Producer producer{conn};
        conn.maybe_declare(kelp::Queue{queue});
        {
            kelp::PublishBatch batch{producer};
            producer.publish("held", {.routing_key = queue});
            conn.close();  // close drains what is in flight, held or not
        }
        auto redis = raw();
        CHECK(integer(command(*redis, {"LLEN", prefix + queue})) == 1);
    }

    TEST_CASE("batches of more than 1000 keep their order into a full queue and an empty one") {
        const std::string prefix = unique("big-batch") + ":";
        const std::string full = unique("full");
        const std::string empty = unique("empty");
        kelp::Connection conn{url(prefix)};
        kelp::Producer producer{conn};
        conn.maybe_declare(kelp::Queue{full});
        conn.maybe_declare(kelp::Queue{empty});
        auto redis = raw();
        // The script's first push is LPUSHX, which only a list that exists
        // takes; the empty queue exists by its declaration alone.
        command(*redis, {"LPUSH", prefix + full, kombu_envelope("first", "", full)});
        constexpr int total = 2500;
        {
            kelp::PublishBatch batch{producer};
            for (int i = 0; i < total; ++i) {
                producer.publish(std::to_string(i), {.routing_key = full});
            }
            batch.flush();
            for (int i = 0; i < total; ++i) {
                producer.publish(std::to_string(i), {.routing_key = empty});
            }
        }
        CHECK(producer.channel().unroutable_dropped() == 0u);
        REQUIRE(integer(command(*redis, {"LLEN", prefix + full})) == total + 1);
        CHECK(kelp::redis::decode_message(text(command(*redis, {"RPOP", prefix + full})))
                  .envelope.body == "first");
        CHECK(out_of_order(*redis, prefix + full, total, "") == 0);
        CHECK(out_of_order(*redis, prefix + empty, total, "") == 0);
    }

    TEST_CASE("a queue known by Kombu's binding alone takes publishes; deadletter_queue the rest") {
        const std::string prefix = unique("exists") + ":";
        const std::string bound = unique("bound");
        const std::string nowhere = unique("nowhere");
        const std::string dead = unique("dead");
        auto redis = raw();
        // What Kombu's SimpleQueue and Celery leave: the queue bound to an
        // exchange of its own name, its list empty, no kelp declaration.
        const std::string sep = "\x06\x16";
        command(*redis, {"SADD", prefix + "_kombu.binding." + bound, bound + sep + sep + bound});
        kelp::Connection conn{url(prefix, "deadletter_queue=" + dead)};
        kelp::Producer producer{conn};
        producer.publish("to the bound queue", {.routing_key = bound});
        producer.publish("to no queue", {.routing_key = nowhere});
        // deadletter_queue took it: nothing was dropped.
        CHECK(producer.channel().unroutable_dropped() == 0u);
        const auto in_bound = texts(command(*redis, {"LRANGE", prefix + bound, "0", "-1"}));
        REQUIRE(in_bound.size() == 1);
        CHECK(kelp::redis::decode_message(in_bound[0]).envelope.body == "to the bound queue");
        const auto in_dead = texts(command(*redis, {"LRANGE", prefix + dead, "0", "-1"}));
        REQUIRE(in_dead.size() == 1);
        CHECK(kelp::redis::decode_message(in_dead[0]).envelope.body == "to no queue");
        CHECK(integer(command(*redis, {"EXISTS", prefix + nowhere})) == 0);
    }
}
