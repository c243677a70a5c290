#include "support.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

namespace conformance {
namespace {

std::mutex skips_mutex;
std::vector<std::string> skips;
std::string running_test;

}  // namespace

const std::string& test_url() {
    static const std::string url = [] {
        const char* env = std::getenv("KELP_TEST_URL");
        return std::string(env != nullptr && *env != '\0' ? env : "memory://conformance");
    }();
    return url;
}

std::string current_test_name() {
    std::lock_guard lock(skips_mutex);
    return running_test;
}

std::string unique_name(std::string_view stem) {
    // Seeded from the device and the clock: two runs against one broker (or
    // two ctest jobs at once) must never meet on a name.
    thread_local std::mt19937_64 rng{
        std::random_device{}() ^
        static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())};
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
    return "kconf-" + std::string(stem) + "-" + suffix;
}

void report_skip(std::string_view what) {
    const std::string line = "SKIP: " + current_test_name() + ": " + std::string(what);
    MESSAGE(line);
    std::lock_guard lock(skips_mutex);
    skips.push_back(line);
}

// --- Scope -------------------------------------------------------------------

Scope::~Scope() {
    if (queues_.empty() && exchanges_.empty()) return;
    try {
        kelp::Connection conn{test_url()};
        for (const auto& name : queues_) {
            try {
                // A fresh channel per entity: on AMQP one failure closes the channel.
                conn.channel()->queue_delete(name);
            } catch (const kelp::Error&) {
            }
        }
        for (const auto& name : exchanges_) {
            try {
                conn.channel()->exchange_delete(name);
            } catch (const kelp::Error&) {
            }
        }
    } catch (const kelp::Error& e) {
        std::fprintf(stderr, "conformance: clean-up failed: %s\n", e.what());
    }
}

std::string Scope::queue_name(std::string_view stem) {
    queues_.push_back(unique_name(stem));
    return queues_.back();
}

std::string Scope::exchange_name(std::string_view stem) {
    exchanges_.push_back(unique_name(stem));
    return exchanges_.back();
}

kelp::Queue Scope::queue(std::string_view stem, kelp::QueueOptions options) {
    return kelp::Queue{queue_name(stem), std::move(options)};
}

// --- draining ------------------------------------------------------------------

bool drain_until(kelp::Connection& conn, const std::function<bool()>& done,
                 Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (!done()) {
        const auto now = Clock::now();
        if (now >= deadline) break;
        // Short slices so done() is re-checked after events that deliver
        // nothing (returns, acks) but may satisfy it.
        const auto slice = std::min<Clock::duration>(deadline - now, 50ms);
        try {
            conn.drain_events(slice);
        } catch (const kelp::TimeoutError&) {
        }
    }
    return done();
}

void drain_for(kelp::Connection& conn, Clock::duration window) {
    const auto deadline = Clock::now() + window;
    for (auto now = Clock::now(); now < deadline; now = Clock::now()) {
        try {
            conn.drain_events(deadline - now);
        } catch (const kelp::TimeoutError&) {
        }
    }
}

std::optional<kelp::Message> get_within(kelp::Channel& channel, const std::string& queue,
                                        Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (true) {
        if (auto message = channel.basic_get(queue)) return message;
        if (Clock::now() >= deadline) return std::nullopt;
        // Polling an empty queue: a short pause, not part of any assertion.
        std::this_thread::sleep_for(2ms);
    }
}

kelp::Envelope bytes_envelope(std::string body) {
    kelp::Envelope envelope;
    envelope.body = std::move(body);
    envelope.properties.content_type = "application/data";
    envelope.properties.content_encoding = "binary";
    return envelope;
}

std::map<std::string, std::vector<std::string>> collect(kelp::Connection& conn,
                                                        const std::vector<std::string>& queues,
                                                        kelp::Channel* publish_on,
                                                        Clock::duration budget) {
    std::map<std::string, std::vector<std::string>> received;
    std::map<std::string, bool> finished;
    std::vector<kelp::Queue> definitions;
    for (const auto& name : queues) {
        received[name];
        finished[name] = false;
        definitions.emplace_back(name);
    }
    kelp::Channel& channel = publish_on != nullptr ? *publish_on : conn.default_channel();
    for (const auto& name : queues) {
        channel.basic_publish(bytes_envelope(std::string(sentinel)), "", name);
    }
    std::size_t done = 0;
    kelp::Consumer consumer{conn,
                            definitions,
                            [&](kelp::Message& m) {
                                const std::string& queue = m.delivery_info().queue;
                                if (m.body() == sentinel) {
                                    if (!finished[queue]) ++done;
                                    finished[queue] = true;
                                } else {
                                    received[queue].push_back(m.body());
                                }
                                m.ack();
                            },
                            {.auto_declare = false}};
    consumer.consume();
    drain_until(
        conn, [&] { return done == queues.size(); }, budget);
    for (const auto& [queue, seen] : finished) {
        CHECK_MESSAGE(seen, "the sentinel of queue " << queue << " did not arrive");
    }
    return received;
}

std::uint64_t wait_for_count(kelp::Channel& channel, const kelp::Queue& queue, std::uint64_t count,
                             Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (true) {
        const std::uint64_t now_count = channel.queue_declare(queue, true).message_count;
        if (now_count == count || Clock::now() >= deadline) return now_count;
        std::this_thread::sleep_for(2ms);
    }
}

std::string describe(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "a non-standard exception";
    }
}

// --- the runner ------------------------------------------------------------------

// Keeps the running test's name for skip lines and prints every skip again at
// the end, so a green run still shows what it did not check.
struct SkipListener : doctest::IReporter {
    explicit SkipListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {
        std::printf("kelp conformance suite: KELP_TEST_URL=%s\n", test_url().c_str());
    }
    void test_run_end(const doctest::TestRunStats&) override {
        std::lock_guard lock(skips_mutex);
        if (skips.empty()) {
            std::printf("conformance: no test skipped\n");
            return;
        }
        std::printf("conformance: %zu skip(s) for %s\n", skips.size(), test_url().c_str());
        for (const auto& line : skips)
            std::printf("  %s\n", line.c_str());
    }
    void test_case_start(const doctest::TestCaseData& data) override {
        std::lock_guard lock(skips_mutex);
        running_test = data.m_name;
    }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("kelp_conformance_skips", 1, SkipListener);

}  // namespace conformance
