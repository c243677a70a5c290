// The kafka:// transport on librdkafka's mock cluster: what the conformance
// suite cannot show (consumer groups, crashes, commits).
#include <doctest/doctest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <kelp/kelp.hpp>

#include "cluster.hpp"
#include "hub_errors.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string unique(std::string_view stem) {
    static std::mt19937_64 random{std::random_device{}()};
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random()));
    return "ktest-" + std::string(stem) + "-" + hex;
}

// The mock cluster every kafka://mock connection of this process uses, as
// host:port for other clients (a child process, raw librdkafka).
std::string bootstraps() {
    return kelp::kafka::mock_cluster_bootstraps("mock", 1);
}

// Group mode with a short session: a dead member is noticed in 4 s, and the
// mock's rebalance after a member leaves waits session - 1 s. Below 3 s the
// mock never answers the first JoinGroup (it waits 3 s and has expired the
// member by then).
std::string group_url(const std::string& group, const std::string& base = "kafka://mock") {
    std::string url = base + "?group_id=" + group +
                      "&rdkafka.session.timeout.ms=4000&rdkafka.heartbeat.interval.ms=300";
    // KELP_TEST_KAFKA_DEBUG=cgrp,fetch: librdkafka's debug log of the groups.
    if (const char* debug = std::getenv("KELP_TEST_KAFKA_DEBUG"))
        url += "&rdkafka.debug=" + std::string(debug);
    return url;
}

bool run_until(kelp::Hub& hub, const std::function<bool()>& done, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done() && Clock::now() < deadline)
        hub.run_once(10ms);
    return done();
}

void declare(const std::string& topic, int partitions) {
    kelp::Connection conn{"kafka://mock"};
    conn.default_channel().queue_declare(kelp::Queue{topic, {.partitions = partitions}});
}

void publish(const std::string& topic, int count, int first = 0) {
    kelp::Connection conn{"kafka://mock"};
    kelp::Producer producer{conn};
    for (int i = first; i < first + count; ++i)
        producer.publish(std::to_string(i), {.routing_key = topic});
    conn.default_channel().queue_declare(kelp::Queue{topic}, true);  // flushes
}

// The group's committed offsets of a topic, read with plain librdkafka.
std::vector<std::int64_t> committed(const std::string& group, const std::string& topic,
                                    int partitions) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps().c_str(), error, sizeof error);
    rd_kafka_conf_set(conf, "group.id", group.c_str(), error, sizeof error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    REQUIRE(rk != nullptr);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
    REQUIRE(rd_kafka_committed(rk, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    std::vector<std::int64_t> out;
    for (int p = 0; p < partitions; ++p)
        out.push_back(list->elems[p].offset);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return out;
}

// The first record of partition 0 of `topic`, read with plain librdkafka;
// `headers` gets how many headers it carries.
std::string raw_first_record(const std::string& topic, std::size_t& headers) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps().c_str(), error, sizeof error);
    rd_kafka_conf_set(conf, "group.id", unique("raw").c_str(), error, sizeof error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    REQUIRE(rk != nullptr);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    std::string body;
    headers = 0;
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (m == nullptr) continue;
        const bool ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (ok) {
            body.assign(static_cast<const char*>(m->payload), m->len);
            rd_kafka_headers_t* h = nullptr;
            if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
                headers = rd_kafka_header_cnt(h);
        }
        rd_kafka_message_destroy(m);
        if (ok) break;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return body;
}

// Writes one header-less record to partition 0 of `topic`, as any other
// Kafka client would.
void raw_produce_one(const std::string& topic, const std::string& body) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps().c_str(), error, sizeof error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    REQUIRE(rk != nullptr);
    REQUIRE(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_VALUE(const_cast<char*>(body.data()), body.size()),
                              RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_flush(rk, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}
}  // namespace

// The child: consumes `count` messages in the group without acking, says so
// on stdout, then waits to be killed (SIGKILL: no leave, no commit).
int kafka_child_main(int argc, char** argv) {
    if (argc != 5) return 2;
    const std::string url = group_url(argv[2], std::string("kafka://") + argv[3]);
    const std::string topic = argv[4];
    kelp::Connection conn{url};
    std::vector<kelp::Message> held;
    kelp::Consumer consumer{
        conn, {kelp::Queue{topic}}, [&](kelp::Message& m) { held.push_back(std::move(m)); }};
    consumer.consume();
    const auto deadline = Clock::now() + 30s;
    while (held.size() < 20 && Clock::now() < deadline) {
        try {
            conn.drain_events(100ms);
        } catch (const kelp::TimeoutError&) {
        }
    }
    std::printf("held %zu\n", held.size());
    std::fflush(stdout);
    for (;;) {
        try {
            conn.drain_events(1s);
        } catch (const kelp::TimeoutError&) {
        }
    }
}

TEST_SUITE("kafka") {
    TEST_CASE("every broker gone is a link event, not an error; the next record reports it back") {
        const std::string cluster = "linktest";
        const std::string topic = unique("link");
        kelp::Hub hub;
        std::vector<std::string> errors;
        hub.set_error_handler(kelp_test::record_errors(errors));
        kelp::Connection conn{"kafka://mock/" + cluster +
                              "?assignment=manual&rdkafka.reconnect.backoff.ms=50&"
                              "rdkafka.reconnect.backoff.max.ms=200"};
        std::vector<kelp::LinkEvent> events;
        conn.on_link_event([&](const kelp::LinkEvent& e) { events.push_back(e); });
        conn.register_with_event_loop(hub);
        conn.default_channel().queue_declare(kelp::Queue{topic});
        std::vector<std::string> bodies;
        kelp::Consumer consumer{conn, {kelp::Queue{topic}}, [&](kelp::Message& m) {
                                    bodies.push_back(m.body());
                                    m.ack();
                                }};
        consumer.consume();
        kelp::Producer producer{conn};
        producer.publish("before", {.routing_key = topic});
        REQUIRE(run_until(
            hub, [&] { return bodies.size() == 1; }, 20s));

        kelp::kafka::mock_set_broker_up("mock/" + cluster, 1, false);
        REQUIRE(run_until(
            hub, [&] { return !events.empty(); }, 20s));
        CHECK(events[0].kind == kelp::LinkEvent::Kind::lost);
        CHECK(events[0].transport == "kafka");
        kelp::kafka::mock_set_broker_up("mock/" + cluster, 1, true);
        producer.publish("after", {.routing_key = topic});
        REQUIRE(run_until(
            hub,
            [&] {
                return bodies.size() == 2 &&
                       events.back().kind == kelp::LinkEvent::Kind::reconnected;
            },
            30s));
        CHECK(bodies[1] == "after");
        CHECK(events.size() == 2);
        for (const auto& error : errors)
            CHECK_MESSAGE(false, "an error reached the Hub: " << error);
    }

    TEST_CASE("a bad rdkafka property fails with librdkafka's own words") {
        kelp::Connection bad_value{"kafka://mock?rdkafka.linger.ms=banana"};
        try {
            bad_value.connect();
            FAIL("connect accepted linger.ms=banana");
        } catch (const kelp::UrlError& error) {
            const std::string text = error.what();
            CHECK(text.find("linger.ms") != std::string::npos);
            CHECK(text.find("banana") != std::string::npos);
            // librdkafka's text: "Invalid value for configuration property ..."
            CHECK(text.find("Invalid value") != std::string::npos);
        }
        kelp::Connection unknown{"kafka://mock?rdkafka.no.such.property=1"};
        try {
            unknown.connect();
            FAIL("connect accepted no.such.property");
        } catch (const kelp::UrlError& error) {
            CHECK(std::string(error.what()).find("No such configuration property") !=
                  std::string::npos);
        }
        // kelp's own options are checked when the Connection is made.
        CHECK_THROWS_AS(kelp::Connection{"kafka://mock?assignment=sometimes"}, kelp::UrlError);
    }

    TEST_CASE("the group commits only up to the lowest unacked offset") {
        const std::string topic = unique("lowest");
        const std::string group = unique("group");
        declare(topic, 1);
        publish(topic, 10);
        std::vector<kelp::Message> held;
        {
            kelp::Connection conn{"kafka://mock?assignment=manual&group_id=" + group};
            kelp::Consumer consumer{conn, {kelp::Queue{topic}}, [&](kelp::Message& m) {
                                        held.push_back(std::move(m));
                                    }};
            consumer.consume();
            kelp::Hub& hub = conn.hub();
            REQUIRE(run_until(
                hub, [&] { return held.size() == 10; }, 10s));
            // Everything but offset 3 is acked: the commit stops at 3.
            for (int i = 0; i < 10; ++i)
                if (i != 3) held[static_cast<std::size_t>(i)].ack();
            // Auto-commit runs every second; the ack of 3 comes after it.
            const auto deadline = Clock::now() + 5s;
            while (committed(group, topic, 1)[0] != 3 && Clock::now() < deadline)
                run_until(
                    hub, [] { return false; }, 200ms);
            CHECK(committed(group, topic, 1)[0] == 3);
            held[3].ack();
            const auto later = Clock::now() + 5s;
            while (committed(group, topic, 1)[0] != 10 && Clock::now() < later)
                run_until(
                    hub, [] { return false; }, 200ms);
            CHECK(committed(group, topic, 1)[0] == 10);
        }
    }

    TEST_CASE("a consumer killed before acking: its messages reach the next one of the group") {
        const std::string topic = unique("killed");
        const std::string group = unique("group");
        declare(topic, 1);
        publish(topic, 20);

        int out[2];
        REQUIRE(::pipe(out) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_addclose(&actions, out[0]);
        const std::string self = "/proc/self/exe";
        const std::string servers = bootstraps();
        std::vector<std::string> args = {self, "--kafka-child", group, servers, topic};
        std::vector<char*> argv;
        for (auto& arg : args)
            argv.push_back(arg.data());
        argv.push_back(nullptr);
        pid_t child = 0;
        REQUIRE(posix_spawn(&child, self.c_str(), &actions, nullptr, argv.data(), environ) == 0);
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        char line[64] = {};
        FILE* from_child = ::fdopen(out[0], "r");
        const bool said = std::fgets(line, sizeof line, from_child) != nullptr;
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        std::fclose(from_child);
        REQUIRE(said);
        CHECK(std::string(line) == "held 20\n");
        // Nothing was acked, so nothing was committed.
        CHECK(committed(group, topic, 1)[0] < 0);

        kelp::Connection next{group_url(group)};
        std::set<std::string> bodies;
        kelp::Consumer consumer{next, {kelp::Queue{topic}}, [&](kelp::Message& m) {
                                    bodies.insert(m.body());
                                    m.ack();
                                }};
        consumer.consume();
        REQUIRE(run_until(
            next.hub(), [&] { return bodies.size() == 20; }, 30s));
        CHECK(bodies.size() == 20);
    }

    TEST_CASE("a rebalance between two consumers loses nothing") {
        const std::string topic = unique("rebalance");
        const std::string group = unique("group");
        constexpr int total = 20000;
        declare(topic, 4);
        publish(topic, total / 2);  // the rest while the second member joins

        kelp::Hub hub;
        std::vector<int> seen(total, 0);
        int received = 0;
        auto count = [&](kelp::Message& m) {
            ++seen[static_cast<std::size_t>(std::stoi(m.body()))];
            ++received;
            m.ack();
        };
        kelp::Connection first{group_url(group)};
        first.register_with_event_loop(hub);
        int by_first = 0;
        int by_second = 0;
        kelp::Consumer a{first,
                         {kelp::Queue{topic}},
                         [&](kelp::Message& m) {
                             ++by_first;
                             count(m);
                         },
                         {.prefetch_count = 50}};
        a.consume();
        REQUIRE(run_until(
            hub, [&] { return received == total / 2; }, 20s));
        // The mock refuses every commit once a join has begun (a real broker
        // takes them until the rebalance completes): let the first member's
        // acks reach the group before the second member asks to join.
        const auto committed_all = [&] {
            std::int64_t sum = 0;
            for (auto offset : committed(group, topic, 4))
                sum += std::max<std::int64_t>(offset, 0);
            return sum == total / 2;
        };
        const auto commit_deadline = Clock::now() + 10s;
        while (!committed_all() && Clock::now() < commit_deadline)
            run_until(
                hub, [] { return false; }, 50ms);
        REQUIRE(committed_all());

        // A second member joins mid-stream: partitions move while messages flow.
        kelp::Connection second{group_url(group)};
        second.register_with_event_loop(hub);
        kelp::Consumer b{second,
                         {kelp::Queue{topic}},
                         [&](kelp::Message& m) {
                             ++by_second;
                             count(m);
                         },
                         {.prefetch_count = 50}};
        b.consume();
        // Messages keep coming, 100 at a time, until the second member has
        // its partitions and consumes too (the mock rebalances in seconds).
        int published = total / 2;
        const auto deadline = Clock::now() + 30s;
        while (by_second == 0 && published < total && Clock::now() < deadline) {
            publish(topic, 100, published);
            published += 100;
            run_until(
                hub, [] { return false; }, 200ms);
        }
        publish(topic, total - published, published);
        REQUIRE(run_until(
            hub, [&] { return std::all_of(seen.begin(), seen.end(), [](int n) { return n > 0; }); },
            40s));
        int doubled = 0;
        for (int n : seen)
            doubled += n > 1 ? 1 : 0;
        MESSAGE("rebalance: " << received << " deliveries for " << total << " messages, " << doubled
                              << " delivered more than once; first member " << by_first
                              << ", second " << by_second);
        CHECK(received >= total);  // at-least-once: some may come twice or more
        // The partitions were shared: both members consumed.
        CHECK(by_first > 0);
        CHECK(by_second > 0);
    }

    TEST_CASE("raw bytes travel without headers; other content types are written as they are") {
        // Raw bytes (kelp's default for a string body): a bare record.
        const std::string topic = unique("rawbytes");
        declare(topic, 1);
        publish(topic, 1);
        std::size_t headers = 99;
        CHECK(raw_first_record(topic, headers) == "0");
        CHECK(headers == 0);

        // A record from another client, without kelp's headers, reads as
        // raw bytes.
        const std::string foreign = unique("foreign");
        declare(foreign, 1);
        raw_produce_one(foreign, "from elsewhere");
        kelp::Connection conn{"kafka://mock?assignment=manual&group_id=" + unique("group")};
        auto& channel = conn.default_channel();
        auto got = channel.basic_get(foreign, true);
        REQUIRE(got.has_value());
        CHECK(got->body() == "from elsewhere");
        CHECK(got->content_type() == "application/data");
        CHECK(got->content_encoding() == "binary");
        CHECK(got->headers().is_null());

        // Anything else comes back exactly, empty values included.
        const std::string typed = unique("typed");
        declare(typed, 1);
        const std::pair<std::string, std::string> cases[] = {
            {"", ""},       {"application/json", "binary"}, {"application/data", "utf-8"},
            {"", "binary"}, {"application/data", ""},
        };
        for (const auto& [type, encoding] : cases) {
            kelp::Envelope envelope;
            envelope.body = type + "|" + encoding;
            envelope.properties.content_type = type;
            envelope.properties.content_encoding = encoding;
            channel.basic_publish(envelope, "", typed);
        }
        for (const auto& [type, encoding] : cases) {
            auto message = channel.basic_get(typed, true);
            REQUIRE(message.has_value());
            CHECK(message->body() == type + "|" + encoding);
            CHECK(message->content_type() == type);
            CHECK(message->content_encoding() == encoding);
        }
    }

    TEST_CASE("100,000 messages through a consumer group, exactly counted") {
        const std::string topic = unique("volume");
        const std::string group = unique("group");
        constexpr std::size_t total = 100000;
        declare(topic, 4);
        {
            kelp::Connection conn{"kafka://mock"};
            kelp::Producer producer{conn};
            for (std::size_t i = 0; i < total; ++i)
                producer.publish(std::to_string(i), {.routing_key = topic});
            conn.default_channel().queue_declare(kelp::Queue{topic}, true);
        }
        std::vector<std::uint8_t> seen(total, 0);
        std::size_t unique_count = 0;
        std::size_t doubled = 0;
        kelp::Connection conn{group_url(group)};
        kelp::Consumer consumer{conn,
                                {kelp::Queue{topic}},
                                [&](kelp::Message& m) {
                                    const auto i = std::stoul(m.body());
                                    if (seen[i]++ == 0) {
                                        ++unique_count;
                                    } else {
                                        ++doubled;
                                    }
                                    m.ack();
                                },
                                {.prefetch_count = 1000}};
        consumer.consume();
        REQUIRE(run_until(
            conn.hub(), [&] { return unique_count == total; }, 60s));
        CHECK(doubled == 0);
        // The group's commits add up to every message.
        consumer.cancel();
        conn.close();
        std::int64_t sum = 0;
        for (auto offset : committed(group, topic, 4))
            sum += offset;
        CHECK(sum == static_cast<std::int64_t>(total));
    }
}
