// Faults that take a whole process down (issue 4, "survives faults, loses
// nothing"): a consumer process killed with SIGKILL while it holds 100
// unacked messages, and redis-server itself killed and restarted (appendonly)
// under a running producer and consumer. Every message is counted: none may
// be missing, and every duplicate must be one at-least-once allows.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "support.hpp"
#include "wire/keys.hpp"

using namespace redis_test;

namespace {

// The program's path: `name` when it holds a '/', else found on $PATH
// (before the fork: execv after it, since execvp may allocate).
std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    const char* path = std::getenv("PATH");
    std::string_view rest = path != nullptr ? path : "/usr/bin:/bin";
    while (!rest.empty()) {
        const std::size_t colon = rest.find(':');
        const std::string dir(rest.substr(0, colon));
        rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
        const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    FAIL(name << " is not on PATH (Debian package redis-server; scripts/install-deps test)");
    return {};
}

// A program run as a child process, its stdout read line by line.
class Child {
  public:
    explicit Child(std::vector<std::string> argv, bool capture_stdout = true) {
        const std::string program = find_program(argv.at(0));
        int out[2] = {-1, -1};
        if (capture_stdout) REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        REQUIRE(null >= 0);
        // Built before the fork: between fork and exec only async-signal-safe calls.
        std::vector<char*> raw;
        for (auto& argument : argv)
            raw.push_back(argument.data());
        raw.push_back(nullptr);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::dup2(capture_stdout ? out[1] : null, STDOUT_FILENO);
            if (!capture_stdout) ::dup2(null, STDERR_FILENO);
            // None of the test's sockets goes along (a server holding a copy
            // of a client's socket would keep that connection open).
            ::close_range(3, ~0U, 0);
            ::execv(program.c_str(), raw.data());
            ::_exit(127);
        }
        ::close(null);
        if (capture_stdout) {
            ::close(out[1]);
            out_ = out[0];
        }
    }
    ~Child() {
        if (pid_ > 0) kill_and_wait(SIGKILL);
        if (out_ >= 0) ::close(out_);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return pid_; }

    // The next line of its stdout; nullopt at EOF or once the budget passed.
    std::optional<std::string> read_line(Clock::duration budget) {
        const auto deadline = Clock::now() + budget;
        while (true) {
            if (const auto end = buffer_.find('\n'); end != std::string::npos) {
                std::string line = buffer_.substr(0, end);
                buffer_.erase(0, end + 1);
                return line;
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd fd{out_, POLLIN, 0};
            if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
            char chunk[4096];
            const ssize_t got = ::read(out_, chunk, sizeof chunk);
            if (got <= 0) return std::nullopt;
            buffer_.append(chunk, static_cast<std::size_t>(got));
        }
    }

    // Sends `signal` and reaps the process; its wait status.
    int kill_and_wait(int signal) {
        REQUIRE(pid_ > 0);
        ::kill(pid_, signal);
        int status = 0;
        const pid_t reaped = ::waitpid(pid_, &status, 0);
        pid_ = -1;
        REQUIRE(reaped > 0);
        return status;
    }

    // True when it has exited already (reaped then).
    bool exited() {
        int status = 0;
        if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;
        return pid_ <= 0;
    }

  private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffer_;
};

// Every list of `queue` under `prefix` (bucket of each priority level).
std::vector<std::string> lists_of(const std::string& prefix, const std::string& queue) {
    kelp::redis::RedisSettings settings;
    settings.global_keyprefix = prefix;
    settings.priority_steps = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    return kelp::redis::KeySchema(settings).queue_keys_in_pop_order(queue);
}

std::int64_t messages_in_lists(kelp::redis::RespClient& client, const std::string& prefix,
                               const std::string& queue) {
    std::int64_t total = 0;
    for (const auto& list : lists_of(prefix, queue))
        total += integer(command(client, {"LLEN", list}));
    return total;
}

// A loopback port nobody listens on now.
std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    ::close(fd);
    return ntohs(address.sin_port);
}

// A redis-server of this test's own, with appendonly on: its own port and
// data directory (under the build tree), killed and started again by the
// test. The shared test server is never touched.
class OwnRedis {
  public:
    OwnRedis()
        : dir_(std::filesystem::path(scratch_dir()) / unique("restart")), port_(free_port()) {
        std::filesystem::create_directories(dir_);
        start();
    }
    ~OwnRedis() {
        if (server_ && !server_->exited()) server_->kill_and_wait(SIGTERM);
        server_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    // Starts it (on the same port and files as before) and waits until it
    // answers PING, i.e. has loaded its append-only file.
    void start() {
        server_ = std::make_unique<Child>(
            std::vector<std::string>{"redis-server", "--port", std::to_string(port_), "--bind",
                                     "127.0.0.1", "--dir", dir_.string(), "--save", "",
                                     "--appendonly", "yes", "--appendfsync", "always", "--logfile",
                                     (dir_ / "redis.log").string()},
            /*capture_stdout=*/false);
        const bool up = eventually(
            [&] {
                if (server_->exited()) return true;  // reported below
                try {
                    auto client = raw();
                    return text(command(*client, {"PING"})) == "PONG";
                } catch (const kelp::Error&) {
                    return false;
                }
            },
            10s);
        REQUIRE_MESSAGE((up && !server_->exited()), "redis-server did not start on port "
                                                        << port_ << "; see " << dir_.string()
                                                        << "/redis.log");
    }
    // kill -9: no shutdown, no last write.
    void kill() { server_->kill_and_wait(SIGKILL); }

    std::string url(const std::string& prefix, std::string_view query) const {
        return "redis://127.0.0.1:" + std::to_string(port_) + "/0?global_keyprefix=" + prefix +
               "&" + std::string(query);
    }
    std::unique_ptr<kelp::redis::RespClient> raw() const {
        kelp::redis::Endpoint endpoint{.host = "127.0.0.1", .port = port_};
        return kelp::redis::RespClient::connect(endpoint, {}, Clock::now() + 1s);
    }

  private:
    std::filesystem::path dir_;
    std::uint16_t port_;
    std::unique_ptr<Child> server_;
};

}  // namespace

TEST_SUITE("redis faults") {
    TEST_CASE("kill -9 of a consumer holding 100 unacked messages: all 100 come back, once each") {
        constexpr int count = 100;
        const std::string prefix = unique("kill100") + ":";
        const std::string queue = unique("q");
        const std::string options = "visibility_timeout=1s&restore_interval=50ms";
        std::set<std::string> expected;
        {
            kelp::Connection conn{url(prefix)};
            kelp::Producer producer{conn};
            producer.publish("m0", {.routing_key = queue, .declare = {kelp::Queue{queue}}});
            expected.insert("m0");
            for (int i = 1; i < count; ++i) {
                producer.publish("m" + std::to_string(i), {.routing_key = queue});
                expected.insert("m" + std::to_string(i));
            }
            conn.default_channel().queue_declare(kelp::Queue{queue}, true);  // all in Redis
        }
        auto inspector = raw();
        REQUIRE(messages_in_lists(*inspector, prefix, queue) == count);

        // The holder: a process of its own, prefetch 100, never acks.
        Child holder({KELP_REDIS_HOLDER, url(prefix, options), queue, std::to_string(count)});
        std::set<std::string> held;
        std::optional<std::string> line;
        while ((line = holder.read_line(10s)) && line->starts_with("got "))
            held.insert(line->substr(4));
        REQUIRE(line == std::optional<std::string>("holding " + std::to_string(count)));
        CHECK(held == expected);
        // All 100 are out of the lists and in the unacked hash and index.
        CHECK(messages_in_lists(*inspector, prefix, queue) == 0);
        CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) == count);
        CHECK(integer(command(*inspector, {"ZCARD", prefix + "unacked_index"})) == count);

        const int status = holder.kill_and_wait(SIGKILL);
        REQUIRE(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGKILL);
        // Killed, not closed: nothing was acked or given back.
        CHECK(integer(command(*inspector, {"HLEN", prefix + "unacked"})) == count);

        // A new consumer gets every one back once visibility_timeout passed.
        kelp::Connection conn{url(prefix, options)};
        std::map<std::string, int> received;
        int deliveries = 0;
        int not_redelivered = 0;
        kelp::Consumer consumer{conn,
                                {kelp::Queue{queue}},
                                [&](kelp::Message& m) {
                                    ++received[m.body()];
                                    ++deliveries;
                                    if (!m.redelivered()) ++not_redelivered;
                                    m.ack();
                                },
                                {.prefetch_count = count}};
        consumer.consume();
        const bool all_back = drain_until(
            conn, [&] { return deliveries >= count; }, 15s);
        INFO("deliveries " << deliveries << ", unacked "
                           << integer(command(*inspector, {"HLEN", prefix + "unacked"}))
                           << ", the restore lock's ttl "
                           << integer(command(*inspector, {"PTTL", prefix + "unacked_mutex"}))
                           << " ms");
        REQUIRE(all_back);
        // Settled: no list and no record holds any of them any more, so no
        // further copy can come.
        CHECK(drain_until(conn, [&] {
            return messages_in_lists(*inspector, prefix, queue) == 0 &&
                   integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 0 &&
                   integer(command(*inspector, {"ZCARD", prefix + "unacked_index"})) == 0;
        }));
        CHECK(deliveries == count);
        CHECK(received.size() == expected.size());
        for (const auto& body : expected) {
            CHECK_MESSAGE(received[body] == 1, body << " delivered " << received[body] << " times");
        }
        CHECK(not_redelivered == 0);
    }

    TEST_CASE(
        "redis-server restarted mid-stream (appendonly): nothing confirmed is lost, the "
        "consumer resumes by itself") {
        OwnRedis server;
        const std::string prefix = unique("restart") + ":";
        const std::string queue = unique("q");
        const std::string reconnect = "interval_start=10ms&interval_step=50ms&interval_max=200ms";

        // The consumer, on an application Hub or in drain_events; the
        // link's drop and return are link events, and no error reaches its
        // loop (an error there would be recorded and fail the test).
        std::vector<std::string> consumer_errors;
        auto record = [&](std::exception_ptr error) {
            try {
                std::rethrow_exception(error);
            } catch (const kelp::ConnectionError& e) {
                consumer_errors.push_back(e.what());
            } catch (const std::exception& e) {
                consumer_errors.push_back(std::string("unexpected: ") + e.what());
            }
        };
        kelp::Hub hub;
        hub.set_error_handler(record);
        bool on_hub = true;
        SUBCASE("the consumer on an application Hub") {
            on_hub = true;
        }
        SUBCASE("the consumer in a drain_events loop") {
            on_hub = false;
        }
        // unacked_mutex_expire short: a restore sweep killed with the server
        // leaves Kombu's lock behind, which would hold up the next sweeps.
        kelp::Connection consumer_conn{server.url(
            prefix,
            "visibility_timeout=1s&restore_interval=100ms&unacked_mutex_expire=2s&" + reconnect)};
        std::vector<kelp::LinkEvent> consumer_events;
        consumer_conn.on_link_event(
            [&](const kelp::LinkEvent& e) { consumer_events.push_back(e); });
        if (on_hub) consumer_conn.register_with_event_loop(hub);
        // One turn of the consumer's loop, as an application writes it.
        auto step = [&] {
            if (on_hub) {
                hub.run_once(20ms);
                return;
            }
            try {
                consumer_conn.drain_events(20ms);
            } catch (const kelp::TimeoutError&) {
            } catch (...) {
                record(std::current_exception());
            }
        };
        auto run_until = [&](const std::function<bool()>& done, Clock::duration budget) {
            const auto deadline = Clock::now() + budget;
            while (!done() && Clock::now() < deadline)
                step();
            return done();
        };
        struct Seen {
            int copies = 0;
            int redelivered = 0;
        };
        std::map<long, Seen> seen;
        kelp::Consumer consumer{consumer_conn,
                                {kelp::Queue{queue}},
                                [&](kelp::Message& m) {
                                    Seen& entry = seen[std::stol(m.body())];
                                    ++entry.copies;
                                    if (m.redelivered()) ++entry.redelivered;
                                    m.ack();
                                },
                                {.prefetch_count = 50}};
        consumer.consume();  // declares the queue

        // The producer, in a thread of its own: batches of 10, each
        // confirmed by the reply to a call made after it (replies come in
        // order); a batch whose confirmation fails is published again,
        // per the retry policy, after reconnecting.
        constexpr long per_batch = 10;
        std::atomic<bool> stop{false};
        std::atomic<long> confirmed{0};
        std::atomic<int> producer_retries{0};
        std::set<long> resent_batches;  // producer thread; read after join
        std::string producer_failure;   // likewise
        std::thread producer_thread([&] {
            try {
                kelp::Connection conn{server.url(prefix, reconnect)};
                kelp::Producer producer{conn};
                const kelp::RetryPolicy policy{
                    .max_retries = -1,
                    .interval_start = 10ms,
                    .interval_step = 50ms,
                    .interval_max = 200ms,
                    .timeout = 20s,
                    .on_retry = [&](std::exception_ptr, int, std::chrono::milliseconds) {
                        ++producer_retries;
                    }};
                for (long batch = 0; !stop; ++batch) {
                    int runs = 0;
                    conn.ensure(
                        [&] {
                            ++runs;
                            for (long i = 0; i < per_batch; ++i) {
                                producer.publish(std::to_string(batch * per_batch + i),
                                                 {.routing_key = queue});
                            }
                            conn.default_channel().queue_declare(kelp::Queue{queue}, true);
                        },
                        policy);
                    if (runs > 1) resent_batches.insert(batch);
                    confirmed = (batch + 1) * per_batch;
                    // Paced, so the consumer keeps up and the run stays short.
                    std::this_thread::sleep_for(1ms);
                }
            } catch (const std::exception& e) {
                producer_failure = e.what();
            }
        });
        struct Join {
            std::thread& thread;
            std::atomic<bool>& stop;
            ~Join() {
                stop = true;
                if (thread.joinable()) thread.join();
            }
        } join{producer_thread, stop};

        REQUIRE(run_until([&] { return seen.size() >= 300; }, 10s));
        server.kill();
        // Both sides notice: the consumer's link broke, the producer retries.
        REQUIRE(run_until([&] { return producer_retries > 0 && !consumer_events.empty(); }, 10s));
        CHECK(consumer_events.front().kind == kelp::LinkEvent::Kind::lost);
        CHECK_FALSE(consumer_conn.connected());
        const long before_restart = confirmed;
        const std::size_t seen_before_restart = seen.size();
        server.start();
        // The consumer reconnects by itself and the producer goes on.
        REQUIRE(run_until(
            [&] {
                return confirmed >= before_restart + 300 && consumer_conn.connected() &&
                       seen.size() > seen_before_restart;
            },
            15s));
        stop = true;
        producer_thread.join();
        REQUIRE_MESSAGE(producer_failure.empty(), "the producer gave up: " << producer_failure);
        const long published = confirmed;

        // Every confirmed message arrives: those whose pop or ack the restart
        // cut come back through the restore after visibility_timeout.
        auto missing = [&] {
            long count = 0;
            for (long i = 0; i < published; ++i) {
                if (seen.count(i) == 0) ++count;
            }
            return count;
        };
        CHECK(run_until([&] { return missing() == 0; }, 20s));
        // Settled: nothing waits in a list or an unacked record, so no
        // further copy can come.
        auto inspector = server.raw();
        CHECK(run_until(
            [&] {
                return messages_in_lists(*inspector, prefix, queue) == 0 &&
                       integer(command(*inspector, {"HLEN", prefix + "unacked"})) == 0;
            },
            10s));

        long duplicates = 0;
        long resent_copies = 0;
        long redelivered_copies = 0;
        long unexplained = 0;
        long beyond = 0;
        for (const auto& [index, entry] : seen) {
            if (index >= published) ++beyond;
            if (entry.copies <= 1) continue;
            duplicates += entry.copies - 1;
            // At-least-once allows a copy the producer sent again (its
            // confirmation was lost) and a copy the restore brought back
            // (its pop reply or ack was lost); marked redelivered.
            const bool resent = resent_batches.count(index / per_batch) != 0;
            const int extra = entry.copies - 1;
            const int by_restore = std::min(extra, entry.redelivered);
            redelivered_copies += by_restore;
            const int rest = extra - by_restore;
            if (rest > 0 && resent) {
                resent_copies += 1;
                if (rest > 1) unexplained += rest - 1;
            } else {
                unexplained += rest;
            }
        }
        MESSAGE("published " << published << " confirmed messages (" << resent_batches.size()
                             << " batches of " << per_batch << " published again), " << seen.size()
                             << " distinct received, " << duplicates << " duplicates ("
                             << redelivered_copies << " redelivered by restore, " << resent_copies
                             << " from publishes sent again); " << producer_retries.load()
                             << " producer retries, " << consumer_events.size()
                             << " consumer link events");
        CHECK(missing() == 0);
        CHECK(beyond == 0);
        CHECK(unexplained == 0);
        for (const auto& error : consumer_errors)
            CHECK_MESSAGE(false, "an error reached the consumer's loop: " << error);
        CHECK(consumer_events.back().kind == kelp::LinkEvent::Kind::reconnected);
    }
}
