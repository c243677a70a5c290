// bench_kafka: produce, and consume+ack, through kelp's kafka:// transport
// and through raw librdkafka doing the same work on the same mock cluster
// (librdkafka's in-process one, as kafka://mock uses), in one run.
//
// Same work: N messages of B bytes to a topic of 4 partitions, partition
// chosen round-robin, linger.ms=5, lz4 (kafka://mock's settings); the
// destination is set once (raw: a topic handle; kelp: the Producer's routing
// key); produce ends when every delivery report is in. Consume+ack reads them all in a
// consumer group with the partitions assigned (no join delay) and marks every
// offset done (raw: rd_kafka_offsets_store per message, like kelp's ack), and
// ends at the last message; the commit after it is outside the timing. The
// clock starts at the first message received, so the assignment's start-up
// latency (the same for both) is not counted.
//
//   bench_kafka [--messages N] [--size B] [--repeat R]
//
// Prints each run and the median of R runs per column, and kelp/raw ratios
// (goal: >= 0.9). Figures drift on a shared VM: compare within one run.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <kelp/kelp.hpp>

#include "cluster.hpp"
#include "support.hpp"

namespace {

using kelp_bench::wall_ns;
using namespace std::chrono_literals;

constexpr int partitions = 4;

struct Config {
    std::size_t messages = 100000;
    std::size_t size = 100;
    int repeat = 3;
};

std::string bootstraps() {
    return kelp::kafka::mock_cluster_bootstraps("mock", 1);
}

std::string topic_name(const char* what, int run) {
    return std::string("bench-") + what + "-" + std::to_string(run) + "-" +
           std::to_string(wall_ns() % 1000000007);
}

void declare(const std::string& topic) {
    kelp::Connection conn{"kafka://mock"};
    conn.default_channel().queue_declare(kelp::Queue{topic, {.partitions = partitions}});
}

rd_kafka_t* raw_handle(rd_kafka_type_t type, const std::string& group) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const char* key, const std::string& value) {
        if (rd_kafka_conf_set(conf, key, value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
            std::fprintf(stderr, "bench_kafka: %s\n", error);
            std::exit(1);
        }
    };
    set("bootstrap.servers", bootstraps());
    set("log_level", "3");
    if (type == RD_KAFKA_PRODUCER) {
        set("linger.ms", "5");
        set("compression.type", "lz4");
        rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* o) {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) ++*static_cast<std::size_t*>(o);
        });
    } else {
        set("group.id", group);
        set("enable.auto.commit", "true");
        set("enable.auto.offset.store", "false");
        set("auto.offset.reset", "earliest");
        set("fetch.wait.max.ms", "10");
    }
    static std::size_t delivered = 0;
    delivered = 0;
    rd_kafka_conf_set_opaque(conf, &delivered);
    rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof error);
    if (rk == nullptr) {
        std::fprintf(stderr, "bench_kafka: %s\n", error);
        std::exit(1);
    }
    return rk;
}

double raw_produce(const Config& config, const std::string& topic, const std::string& body) {
    rd_kafka_t* rk = raw_handle(RD_KAFKA_PRODUCER, "");
    auto* delivered = static_cast<std::size_t*>(rd_kafka_opaque(rk));
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const std::int64_t start = wall_ns();
    for (std::size_t i = 0; i < config.messages; ++i) {
        while (rd_kafka_produce(rkt, static_cast<std::int32_t>(i % partitions), RD_KAFKA_MSG_F_COPY,
                                const_cast<char*>(body.data()), body.size(), nullptr, 0,
                                nullptr) != 0) {
            rd_kafka_poll(rk, 10);
        }
        if (i % 1024 == 0) rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    const std::int64_t elapsed = wall_ns() - start;
    if (*delivered != config.messages) {
        std::fprintf(stderr, "bench_kafka: raw produce delivered %zu of %zu\n", *delivered,
                     config.messages);
        std::exit(1);
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return static_cast<double>(config.messages) * 1e9 / static_cast<double>(elapsed);
}

double raw_consume(const Config& config, const std::string& topic) {
    rd_kafka_t* rk = raw_handle(RD_KAFKA_CONSUMER, topic + "-raw");
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_STORED;
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    std::size_t received = 0;
    std::int64_t start = 0;
    while (received < config.messages) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (m == nullptr) continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (received++ == 0) start = wall_ns();
            rd_kafka_offset_store(m->rkt, m->partition, m->offset + 1);
        }
        rd_kafka_message_destroy(m);
    }
    const std::int64_t elapsed = wall_ns() - start;
    rd_kafka_commit(rk, nullptr, 0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return static_cast<double>(config.messages - 1) * 1e9 / static_cast<double>(elapsed);
}

double kelp_produce(const Config& config, const std::string& topic, const std::string& body) {
    kelp::Connection conn{"kafka://mock"};
    conn.connect();
    // The destination set once, as the raw side makes its topic handle once.
    kelp::Producer producer{conn, {.routing_key = topic}};
    const std::int64_t start = wall_ns();
    for (std::size_t i = 0; i < config.messages; ++i)
        producer.publish(body);
    // A passive declare waits for every delivery report (and reads the
    // watermarks, a few round trips on the loopback).
    const auto ok = conn.default_channel().queue_declare(kelp::Queue{topic}, true);
    const std::int64_t elapsed = wall_ns() - start;
    if (ok.message_count != config.messages) {
        std::fprintf(stderr, "bench_kafka: kelp produce left %llu of %zu\n",
                     static_cast<unsigned long long>(ok.message_count), config.messages);
        std::exit(1);
    }
    return static_cast<double>(config.messages) * 1e9 / static_cast<double>(elapsed);
}

double kelp_consume(const Config& config, const std::string& topic) {
    kelp::Connection conn{"kafka://mock?assignment=manual&group_id=" + topic + "-kelp"};
    std::size_t received = 0;
    std::int64_t start = 0;
    std::int64_t end = 0;
    kelp::Consumer consumer{conn, {kelp::Queue{topic}}, [&](kelp::Message& m) {
                                if (received++ == 0) start = wall_ns();
                                m.ack();
                                if (received == config.messages) end = wall_ns();
                            }};
    consumer.consume();
    kelp::Hub& hub = conn.hub();
    const std::int64_t deadline = wall_ns() + 120'000'000'000;
    while (received < config.messages && wall_ns() < deadline)
        hub.run_once(100ms);
    if (received != config.messages) {
        std::fprintf(stderr, "bench_kafka: kelp consumed %zu of %zu\n", received, config.messages);
        std::exit(1);
    }
    return static_cast<double>(config.messages - 1) * 1e9 / static_cast<double>(end - start);
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    Config config;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto next = [&]() -> long {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_kafka: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return std::strtol(argv[++i], nullptr, 10);
        };
        if (arg == "--messages") {
            config.messages = static_cast<std::size_t>(next());
        } else if (arg == "--size") {
            config.size = static_cast<std::size_t>(next());
        } else if (arg == "--repeat") {
            config.repeat = static_cast<int>(next());
        } else {
            std::fprintf(stderr, "usage: bench_kafka [--messages N] [--size B] [--repeat R]\n");
            return 2;
        }
    }
    const std::string body(config.size, 'x');
    std::printf("bench_kafka: %zu messages of %zu bytes, %d partitions, mock cluster, %d runs\n",
                config.messages, config.size, partitions, config.repeat);
    std::vector<double> raw_p, kelp_p, raw_c, kelp_c;
    for (int run = 0; run < config.repeat; ++run) {
        // Alternating order per run, so neither side always goes first.
        const std::string raw_topic = topic_name("raw", run);
        const std::string kelp_topic = topic_name("kelp", run);
        declare(raw_topic);
        declare(kelp_topic);
        if (run % 2 == 0) {
            raw_p.push_back(raw_produce(config, raw_topic, body));
            kelp_p.push_back(kelp_produce(config, kelp_topic, body));
            raw_c.push_back(raw_consume(config, raw_topic));
            kelp_c.push_back(kelp_consume(config, kelp_topic));
        } else {
            kelp_p.push_back(kelp_produce(config, kelp_topic, body));
            raw_p.push_back(raw_produce(config, raw_topic, body));
            kelp_c.push_back(kelp_consume(config, kelp_topic));
            raw_c.push_back(raw_consume(config, raw_topic));
        }
        std::printf(
            "run %d: produce raw %.0f/s kelp %.0f/s (%.2f) | consume+ack raw %.0f/s kelp %.0f/s "
            "(%.2f)\n",
            run + 1, raw_p.back(), kelp_p.back(), kelp_p.back() / raw_p.back(), raw_c.back(),
            kelp_c.back(), kelp_c.back() / raw_c.back());
        std::fflush(stdout);
    }
    const double rp = median(raw_p), kp = median(kelp_p), rc = median(raw_c), kc = median(kelp_c);
    std::printf("\n%-12s %14s %14s %8s\n", "median", "raw librdkafka", "kelp", "ratio");
    std::printf("%-12s %12.0f/s %12.0f/s %8.2f\n", "produce", rp, kp, kp / rp);
    std::printf("%-12s %12.0f/s %12.0f/s %8.2f\n", "consume+ack", rc, kc, kc / rc);
    std::printf("goal: kelp >= 0.90 of raw librdkafka for both\n");
    return 0;
}
