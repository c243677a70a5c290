// Many messages, and many producers at once: none lost, none doubled, and
// each producer's order kept.
#include <array>
#include <atomic>
#include <exception>
#include <thread>

#include "support.hpp"

using namespace conformance;

TEST_SUITE("conformance") {
    TEST_CASE("100,000 messages: none lost, none doubled") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("volume");
        conn.maybe_declare(queue);
        constexpr std::size_t count = 100000;
        kelp::Producer producer{conn};
        for (std::size_t i = 0; i < count; ++i)
            producer.publish(std::to_string(i), {.routing_key = queue.name});

        std::vector<std::uint8_t> seen(count, 0);
        std::size_t unique = 0;
        std::size_t doubled = 0;
        std::size_t malformed = 0;
        auto count_one = [&](const std::string& body) {
            std::size_t sequence = 0;
            try {
                sequence = std::stoul(body);
            } catch (const std::exception&) {
                ++malformed;
                return;
            }
            if (sequence >= count) {
                ++malformed;
            } else if (seen[sequence]++ != 0) {
                ++doubled;
            } else {
                ++unique;
            }
        };
        {
            kelp::Consumer consumer{conn,
                                    {queue},
                                    [&](kelp::Message& m) {
                                        count_one(m.body());
                                        m.ack();
                                    },
                                    {.prefetch_count = 1000}};
            consumer.consume();
            CHECK(drain_until(
                conn, [&] { return unique == count; }, 60s));
        }
        // Anything still in the queue (a double) arrives before the sentinel.
        const auto rest = collect(conn, {queue.name});
        for (const auto& body : rest.at(queue.name))
            count_one(body);
        CHECK(unique == count);
        CHECK(doubled == 0);
        CHECK(malformed == 0);
    }

    TEST_CASE("four producer threads with their own connections, one consumer") {
        Scope scope;
        kelp::Connection conn{test_url()};
        const kelp::Queue queue = scope.queue("threads");
        conn.maybe_declare(queue);
        constexpr int producers = 4;
        constexpr int per_producer = 10000;

        std::array<std::vector<std::uint8_t>, producers> seen;
        for (auto& bitmap : seen)
            bitmap.assign(per_producer, 0);
        std::array<int, producers> last{};
        last.fill(-1);
        int received = 0;
        int doubled = 0;
        int reordered = 0;
        int malformed = 0;
        kelp::Consumer consumer{conn,
                                {queue},
                                [&](kelp::Message& m) {
                                    m.ack();
                                    const std::string& body = m.body();
                                    const auto colon = body.find(':');
                                    int producer = -1;
                                    int sequence = -1;
                                    if (colon != std::string::npos) {
                                        producer = std::stoi(body.substr(0, colon));
                                        sequence = std::stoi(body.substr(colon + 1));
                                    }
                                    if (producer < 0 || producer >= producers || sequence < 0 ||
                                        sequence >= per_producer) {
                                        ++malformed;
                                        return;
                                    }
                                    if (seen[producer][sequence]++ != 0) {
                                        ++doubled;
                                        return;
                                    }
                                    if (sequence <= last[producer]) ++reordered;
                                    last[producer] = sequence;
                                    ++received;
                                },
                                {.prefetch_count = 500}};
        consumer.consume();

        std::array<std::exception_ptr, producers> failures{};
        std::atomic<int> finished{0};
        std::vector<std::thread> threads;
        for (int p = 0; p < producers; ++p) {
            threads.emplace_back([&, p] {
                try {
                    // A Connection belongs to one thread: each producer has its own.
                    kelp::Connection own{test_url()};
                    kelp::Producer producer{own};
                    const std::string prefix = std::to_string(p) + ":";
                    for (int i = 0; i < per_producer; ++i)
                        producer.publish(prefix + std::to_string(i), {.routing_key = queue.name});
                } catch (...) {
                    failures[p] = std::current_exception();
                }
                ++finished;
            });
        }
        const bool all = drain_until(
            conn, [&] { return received == producers * per_producer; }, 60s);
        for (auto& thread : threads)
            thread.join();
        for (int p = 0; p < producers; ++p) {
            if (failures[p])
                FAIL_CHECK("producer thread " << p << " failed: " << describe(failures[p]));
        }
        CHECK(all);
        consumer.cancel();
        // A double still on its way arrives before the sentinel.
        doubled += static_cast<int>(collect(conn, {queue.name}).at(queue.name).size());
        CHECK(finished == producers);
        CHECK(received == producers * per_producer);
        CHECK(doubled == 0);
        CHECK(reordered == 0);
        CHECK(malformed == 0);
    }
}
