// The gaps Kombu's Redis transport leaves open (reference kombu-behaviour
// §2.5, §4, §5.2), each with a test that would fail on Kombu's behaviour.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "scripts.hpp"
#include "support.hpp"
#include "wire/keys.hpp"

using namespace redis_test;
using kelp::redis::args;

namespace {

// Every list of `queue` under `prefix`, highest priority first, as kelp's
// consumers pop them.
std::vector<std::string> lists_of(const std::string& prefix, const std::string& queue) {
    kelp::redis::RedisSettings settings;
    settings.global_keyprefix = prefix;
    settings.priority_steps = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    return kelp::redis::KeySchema(settings).queue_keys_in_pop_order(queue);
}

std::string bucket(const std::string& prefix, const std::string& queue, int step) {
    return prefix + queue + (step == 0 ? "" : "\x06\x16" + std::to_string(step));
}

struct Received {
    std::string body;
    bool redelivered;
};

}  // namespace

TEST_SUITE("redis reliability") {
    TEST_CASE("a consumer that dies between the pop and its record loses nothing") {
        const std::string prefix = unique("pop") + ":";
        const std::string queue = unique("q");
        auto inspector = raw();

        // kelp: the pop and the unacked record are one Lua script. A consumer
        // that sends it and dies before reading the reply has lost nothing:
        // the message is recorded as unacked by the time it left the list.
        command(*inspector, {"LPUSH", prefix + queue, kombu_envelope("survivor", "", queue)});
        {
            auto dying = raw();
            std::vector<std::string> key_storage{prefix + "unacked", prefix + "unacked_index"};
            for (auto& list : lists_of(prefix, queue))
                key_storage.push_back(list);
            const std::vector<std::string_view> keys(key_storage.begin(), key_storage.end());
            const std::string levels = std::to_string(key_storage.size() - 2);
            const std::string now = std::to_string(std::time(nullptr));
            const std::vector<std::string_view> arguments{"1", levels,         "0", "1", "4194304",
                                                          now, "kelp/dead:1.", "1"};
            std::string key_count;
            dying->send(kelp::redis::eval_args(kelp::redis::ScriptId::pop, keys, arguments,
                                               /*by_body=*/true, key_count));
            REQUIRE(eventually([&] {
                return integer(command(*inspector, {"LLEN", prefix + queue})) == 0;
            }));
            dying->close();  // dies without reading its reply
        }
        CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 1);
        CHECK(integer(command(*inspector, {"ZCARD", prefix + "unacked_index"})) == 1);

        // Kombu: BRPOP, then a separate MULTI/ZADD/HSET. Dying in between
        // (here: after BRPOP, before anything else) loses the message.
        const std::string kombu_queue = unique("kombu-q");
        command(*inspector,
                {"LPUSH", prefix + kombu_queue, kombu_envelope("lost", "", kombu_queue)});
        {
            auto dying = raw();
            dying->send(args({"BRPOP", prefix + kombu_queue, "1"}));
            REQUIRE(eventually([&] {
                return integer(command(*inspector, {"LLEN", prefix + kombu_queue})) == 0;
            }));
            dying->close();
        }
        CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 1);  // only kelp's

        // The restore brings kelp's back once visibility_timeout passed.
        kelp::Connection conn{url(prefix, "visibility_timeout=1s&restore_interval=50ms")};
        std::vector<Received> received;
        kelp::Consumer consumer{conn, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                    received.push_back({m.body(), m.redelivered()});
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(
            conn, [&] { return !received.empty(); }, 10s));
        CHECK(received[0].body == "survivor");
        CHECK(received[0].redelivered);
        CHECK(eventually([&] {
            return integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 0;
        }));
    }

    TEST_CASE("a consumer killed while holding a message: another one gets it back") {
        const std::string prefix = unique("kill") + ":";
        const std::string queue = unique("q");
        {
            kelp::Connection conn{url(prefix)};
            kelp::Producer producer{conn};
            producer.publish("held when killed",
                             {.routing_key = queue, .declare = {kelp::Queue{queue}}});
            conn.default_channel().queue_declare(kelp::Queue{queue}, true);  // flushed
        }
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            // The consumer process: dies by SIGKILL inside its callback, so
            // no destructor, no close, no restore runs.
            kelp::Connection conn{url(prefix)};
            kelp::Consumer consumer{
                conn, {kelp::Queue{queue}}, [](kelp::Message&) { ::raise(SIGKILL); }};
            consumer.consume();
            conn.drain_events(std::chrono::seconds(10));
            ::_exit(3);  // no message came: the parent sees exit code 3
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGKILL);

        auto inspector = raw();
        CHECK(integer(command(*inspector, {"LLEN", prefix + queue})) == 0);
        CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 1);

        kelp::Connection survivor{url(prefix, "visibility_timeout=1s&restore_interval=50ms")};
        std::vector<Received> received;
        kelp::Consumer consumer{survivor, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                    received.push_back({m.body(), m.redelivered()});
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(
            survivor, [&] { return !received.empty(); }, 10s));
        CHECK(received[0].body == "held when killed");
        CHECK(received[0].redelivered);
    }

    TEST_CASE("a late ack does not erase the newer delivery's record") {
        const std::string prefix = unique("late") + ":";
        const std::string queue = unique("q");
        auto inspector = raw();
        // The first consumer's Hub stalls (restore_interval far away), so it
        // stops refreshing its record, as a worker stuck in a long task.
        kelp::Connection first{url(prefix, "visibility_timeout=1s&restore_interval=1h")};
        kelp::Producer producer{first};
        producer.publish("job", {.routing_key = queue, .declare = {kelp::Queue{queue}}});
        auto first_channel = first.channel();
        std::optional<kelp::Message> late;
        REQUIRE(eventually([&] { return (late = first_channel->basic_get(queue)).has_value(); }));
        const auto first_fields = texts(command(*inspector, {"HKEYS", prefix + "unacked"}));
        REQUIRE(first_fields.size() == 1);

        // After visibility_timeout, another consumer's restore hands it on.
        kelp::Connection second{url(prefix, "visibility_timeout=1s&restore_interval=50ms")};
        std::vector<kelp::Message> held;
        kelp::Consumer consumer{
            second, {kelp::Queue{queue}}, [&](kelp::Message& m) { held.push_back(std::move(m)); }};
        consumer.consume();
        REQUIRE(drain_until(
            second, [&] { return !held.empty(); }, 10s));
        CHECK(held[0].redelivered());
        const auto second_fields = texts(command(*inspector, {"HKEYS", prefix + "unacked"}));
        REQUIRE(second_fields.size() == 1);
        // Each delivery has its own record: Kombu keys both by the one
        // delivery tag the publisher wrote, which is what the late ack erases.
        CHECK(second_fields[0] != first_fields[0]);

        late->ack();
        first_channel->queue_declare(kelp::Queue{queue}, true);  // the ack has reached Redis
        CHECK(texts(command(*inspector, {"HKEYS", prefix + "unacked"})) == second_fields);

        // The newer delivery is still protected, and its own ack clears it.
        held[0].ack();
        CHECK(eventually([&] {
            return integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 0;
        }));
    }

    TEST_CASE("restore puts a message back into its priority bucket") {
        const std::string prefix = unique("bucket") + ":";
        const std::string queue = unique("q");
        auto inspector = raw();
        kelp::Connection conn{url(prefix, "visibility_timeout=1s&restore_interval=50ms")};
        kelp::Producer producer{conn};
        producer.publish("urgent",
                         {.routing_key = queue, .priority = 9, .declare = {kelp::Queue{queue}}});
        producer.publish("normal", {.routing_key = queue});

        SUBCASE("when its channel closes") {
            auto channel = conn.channel();
            std::optional<kelp::Message> message;
            REQUIRE(eventually([&] { return (message = channel->basic_get(queue)).has_value(); }));
            CHECK(message->body() == "urgent");
            channel->close();
            // Kombu (5.2.4) re-routes it to the bare queue: bucket 0.
            CHECK(integer(command(*inspector, {"LLEN", bucket(prefix, queue, 9)})) == 1);
            CHECK(integer(command(*inspector, {"LLEN", bucket(prefix, queue, 0)})) == 1);
        }
        SUBCASE("by the visibility-timeout restore, for a Kombu record") {
            // A Kombu worker died holding a priority-6 message: its record,
            // scored long ago.
            const std::string tag = kelp::redis::new_delivery_tag();
            const std::string envelope = kombu_envelope("from kombu", "", queue, 6, tag);
            command(*inspector, {"HSET", prefix + "unacked", tag,
                                 "[" + envelope + ", \"\", \"" + queue + "\"]"});
            command(*inspector, {"ZADD", prefix + "unacked_index", "1", tag});
            // The restore runs where something consumes.
            const std::string other = unique("other");
            kelp::Consumer consumer{conn, {kelp::Queue{other}}, [](kelp::Message& m) { m.ack(); }};
            consumer.consume();
            REQUIRE(drain_until(conn, [&] {
                return integer(command(*inspector, {"LLEN", bucket(prefix, queue, 6)})) == 1;
            }));
            CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 0);
        }
    }

    TEST_CASE("the restore runs while the consumer is busy, and restores every expired record") {
        const std::string prefix = unique("busy") + ":";
        const std::string busy = unique("busy");
        const std::string stranded = unique("stranded");
        auto inspector = raw();
        // 250 messages of crashed Kombu consumers, expired long ago; a limit
        // of 100 per round, which Kombu would apply to its rare idle sweeps.
        constexpr int expired = 250;
        for (int i = 0; i < expired; ++i) {
            const std::string tag = kelp::redis::new_delivery_tag();
            const std::string envelope =
                kombu_envelope("expired " + std::to_string(i), "", stranded, 0, tag);
            command(*inspector, {"HSET", prefix + "unacked", tag,
                                 "[" + envelope + ", \"\", \"" + stranded + "\"]"});
            command(*inspector, {"ZADD", prefix + "unacked_index", "1", tag});
        }
        kelp::Connection conn{url(prefix,
                                  "visibility_timeout=1s&restore_interval=50ms&"
                                  "unacked_restore_limit=100")};
        kelp::Producer producer{conn};
        producer.publish("0", {.routing_key = busy, .declare = {kelp::Queue{busy}}});
        // Each delivery publishes the next before it is acked: the busy
        // queue is never found empty, so Kombu would never restore.
        int delivered = 0;
        kelp::Consumer consumer{conn, {kelp::Queue{busy}}, [&](kelp::Message& m) {
                                    producer.publish(std::to_string(++delivered),
                                                     {.routing_key = busy});
                                    m.ack();
                                }};
        consumer.consume();
        CHECK(drain_until(
            conn,
            [&] {
                return integer(command(*inspector, {"LLEN", prefix + stranded})) == expired;
            },
            20s));
        CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) <= 1);
        CHECK(delivered > 0);
        consumer.cancel();
        command(*inspector, {"DEL", prefix + stranded, prefix + busy});
    }

    TEST_CASE("a live consumer's long-held message is not restored to another") {
        const std::string prefix = unique("lease") + ":";
        const std::string queue = unique("q");
        kelp::Connection holder{url(prefix, "visibility_timeout=1s&restore_interval=100ms")};
        kelp::Producer producer{holder};
        producer.publish("long task", {.routing_key = queue, .declare = {kelp::Queue{queue}}});
        std::vector<kelp::Message> held;
        kelp::Consumer consumer{
            holder, {kelp::Queue{queue}}, [&](kelp::Message& m) { held.push_back(std::move(m)); }};
        consumer.consume();
        REQUIRE(drain_until(holder, [&] { return !held.empty(); }));

        // Another consumer sweeps all the while; the holder keeps its lease
        // fresh from its Hub for three visibility timeouts.
        kelp::Connection other{url(prefix, "visibility_timeout=1s&restore_interval=50ms")};
        int stolen = 0;
        kelp::Consumer thief{other, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                 ++stolen;
                                 m.ack();
                             }};
        thief.consume();
        const auto until = Clock::now() + 3s;
        while (Clock::now() < until) {
            drain_until(
                holder, [] { return false; }, 20ms);
            drain_until(
                other, [] { return false; }, 20ms);
        }
        CHECK(stolen == 0);
        held[0].ack();
    }

    TEST_CASE("higher priorities first, whoever published them (one convention)") {
        const std::string prefix = unique("priority") + ":";
        const std::string queue = unique("q");
        auto inspector = raw();
        // As a Kombu publisher writes them (default steps 0, 3, 6, 9).
        for (const auto& [body, priority] :
             std::vector<std::pair<std::string, int>>{{"p0", 0}, {"p3", 3}, {"p9", 9}, {"p6", 6}}) {
            const int step = priority;  // each is its own step here
            command(*inspector, {"LPUSH", bucket(prefix, queue, step),
                                 kombu_envelope(body, "", queue, priority)});
        }
        auto consume_all = [&](const std::string& query) {
            kelp::Connection conn{url(prefix, query)};
            std::vector<std::string> order;
            kelp::Consumer consumer{conn,
                                    {kelp::Queue{queue}},
                                    [&](kelp::Message& m) {
                                        order.push_back(m.body());
                                        m.requeue();  // kept for the next round
                                    },
                                    {.prefetch_count = 1}};
            consumer.consume();
            drain_until(conn, [&] { return order.size() >= 1; });
            return order.front();
        };
        // kelp serves the highest bucket first, as AMQP (Kombu: 0 first).
        CHECK(consume_all("") == "p9");
        // And Kombu's order on request, for queues shared with Celery workers.
        CHECK(consume_all("priority_order=lower_first") == "p0");
        command(*inspector, {"DEL", bucket(prefix, queue, 0), bucket(prefix, queue, 3),
                             bucket(prefix, queue, 6), bucket(prefix, queue, 9)});
    }

    TEST_CASE("an envelope nobody can decode goes to deadletter_queue and consuming goes on") {
        const std::string prefix = unique("garbage") + ":";
        const std::string queue = unique("q");
        const std::string dead = unique("dead");
        auto inspector = raw();
        command(*inspector, {"LPUSH", prefix + queue, "this is not an envelope"});
        command(*inspector, {"LPUSH", prefix + queue, kombu_envelope("fine", "", queue)});
        kelp::Connection conn{url(prefix, "deadletter_queue=" + dead)};
        std::vector<std::string> received;
        kelp::Consumer consumer{conn, {kelp::Queue{queue}}, [&](kelp::Message& m) {
                                    received.push_back(m.body());
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(drain_until(conn, [&] { return !received.empty(); }));
        CHECK(received == std::vector<std::string>{"fine"});
        CHECK(eventually([&] {
            return texts(command(*inspector, {"LRANGE", prefix + dead, "0", "-1"})) ==
                   std::vector<std::string>{"this is not an envelope"};
        }));
        CHECK(eventually([&] {
            return integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 0;
        }));
        command(*inspector, {"DEL", prefix + dead});
    }
}
