#include "support.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include <doctest/doctest.h>

extern char** environ;

namespace interop {
namespace {

std::string environment(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        throw kelp::Error(std::string(name) +
                          " is not set: run the interop tests through ctest, which starts the "
                          "test redis-server and rabbitmq-server (fixtures redis_server, "
                          "rabbitmq_server, tests/support)");
    }
    return value;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& text : strings)
        out.push_back(text.data());
    out.push_back(nullptr);
    return out;
}

// The current environment with `extra` ("NAME=value") added or replaced.
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
    std::vector<std::string> out;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string_view text(*entry);
        const auto name = text.substr(0, text.find('=') + 1);
        bool replaced = false;
        for (const auto& added : extra) {
            if (added.starts_with(name)) replaced = true;
        }
        if (!replaced) out.emplace_back(text);
    }
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
}

std::string file_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

std::uint16_t redis_port() {
    return static_cast<std::uint16_t>(std::stoi(environment("KELP_TEST_REDIS_PORT")));
}

std::uint16_t amqp_port() {
    return static_cast<std::uint16_t>(std::stoi(environment("KELP_TEST_AMQP_PORT")));
}

std::string amqp_url(std::string_view query) {
    std::string url = "amqp://guest:guest@127.0.0.1:" + std::to_string(amqp_port()) + "//";
    if (!query.empty()) url += "?" + std::string(query);
    return url;
}

std::string redis_url(std::string_view query) {
    std::string url =
        "redis://127.0.0.1:" + std::to_string(redis_port()) + "/" + std::to_string(interop_db);
    if (!query.empty()) url += "?" + std::string(query);
    return url;
}

// --- TempDir ---------------------------------------------------------------------------

TempDir::TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("kelp-interop-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

void TempDir::write(std::string_view name, std::string_view data) const {
    std::ofstream(path_ / name, std::ios::binary)
        .write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string TempDir::read(std::string_view name) const {
    return file_text(path_ / name);
}

// --- RedisProbe ------------------------------------------------------------------------

namespace {

kelp::Json reply_json(const redisReply* reply) {
    switch (reply->type) {
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
            return std::string(reply->str, reply->len);
        case REDIS_REPLY_INTEGER:
            return reply->integer;
        case REDIS_REPLY_ARRAY: {
            kelp::Json items = kelp::Json::array();
            for (std::size_t i = 0; i < reply->elements; ++i)
                items.push_back(reply_json(reply->element[i]));
            return items;
        }
        case REDIS_REPLY_ERROR:
            throw kelp::Error("redis replied: " + std::string(reply->str, reply->len));
        default:
            return nullptr;
    }
}

}  // namespace

RedisProbe::RedisProbe() {
    const timeval timeout{5, 0};
    context_ = redisConnectWithTimeout("127.0.0.1", redis_port(), timeout);
    if (context_ == nullptr || context_->err != 0) {
        const std::string why = context_ ? context_->errstr : "out of memory";
        if (context_) redisFree(context_);
        throw kelp::Error("cannot reach the test redis-server on 127.0.0.1:" +
                          std::to_string(redis_port()) + ": " + why);
    }
    redisSetTimeout(context_, timeout);
    try {
        command({"SELECT", std::to_string(interop_db)});
    } catch (...) {
        redisFree(context_);
        throw;
    }
}

RedisProbe::~RedisProbe() {
    redisFree(context_);
}

kelp::Json RedisProbe::command(const std::vector<std::string>& args) {
    std::vector<const char*> pointers;
    std::vector<std::size_t> lengths;
    for (const auto& arg : args) {
        pointers.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_, static_cast<int>(args.size()), pointers.data(), lengths.data()));
    if (reply == nullptr) {
        throw kelp::Error("redis command failed: " + std::string(context_->errstr));
    }
    try {
        kelp::Json out = reply_json(reply);
        freeReplyObject(reply);
        return out;
    } catch (...) {
        freeReplyObject(reply);
        throw;
    }
}

void RedisProbe::flush() {
    command({"FLUSHDB"});
}

// --- Child -----------------------------------------------------------------------------

Child::Child(const std::vector<std::string>& argv, const std::filesystem::path& stderr_file,
             const std::vector<std::string>& extra_env, const std::filesystem::path& working_dir) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw kelp::Error("pipe2 failed");
    // Everything the child needs is built before fork: after it, only exec.
    std::vector<std::string> arguments = argv;
    std::vector<std::string> env = environment_with(extra_env);
    std::vector<char*> argv_c = c_strings(arguments);
    std::vector<char*> env_c = c_strings(env);
    const std::string err_path = stderr_file.string();
    const std::string dir = working_dir.string();
    const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_fd < 0) throw kelp::Error("cannot create " + err_path);
    pid_ = ::fork();
    if (pid_ == 0) {
        ::dup2(pipe_fds[1], STDOUT_FILENO);
        ::dup2(err_fd, STDERR_FILENO);
        if (!dir.empty() && ::chdir(dir.c_str()) != 0) ::_exit(126);
        ::execve(argv_c[0], argv_c.data(), env_c.data());
        constexpr char message[] = "exec failed\n";
        [[maybe_unused]] const auto ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
        ::_exit(127);
    }
    ::close(err_fd);
    ::close(pipe_fds[1]);
    if (pid_ < 0) {
        ::close(pipe_fds[0]);
        throw kelp::Error("fork failed");
    }
    out_ = pipe_fds[0];
}

Child::Child(const std::function<void(int out)>& body) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw kelp::Error("pipe2 failed");
    pid_ = ::fork();
    if (pid_ == 0) {
        ::close(pipe_fds[0]);
        int status = 0;
        try {
            body(pipe_fds[1]);
        } catch (const std::exception& error) {
            std::fprintf(stderr, "forked child failed: %s\n", error.what());
            status = 1;
        }
        // No atexit handlers, no doctest report: this is the parent's job.
        ::_exit(status);
    }
    ::close(pipe_fds[1]);
    if (pid_ < 0) {
        ::close(pipe_fds[0]);
        throw kelp::Error("fork failed");
    }
    out_ = pipe_fds[0];
}

Child::~Child() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
}

std::optional<std::string> Child::read_line(Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        if (const auto newline = buffer_.find('\n'); newline != std::string::npos) {
            std::string line = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            return line;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd ready{out_, POLLIN, 0};
        const int polled = ::poll(&ready, 1, static_cast<int>(left.count()));
        if (polled < 0 && errno == EINTR) continue;
        if (polled <= 0) return std::nullopt;
        char chunk[4096];
        const ssize_t got = ::read(out_, chunk, sizeof chunk);
        if (got <= 0) return std::nullopt;
        buffer_.append(chunk, static_cast<std::size_t>(got));
    }
}

std::string Child::read_rest(Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd ready{out_, POLLIN, 0};
        const int polled = ::poll(&ready, 1, static_cast<int>(left.count()) + 1);
        if (polled < 0 && errno == EINTR) continue;
        if (polled <= 0) break;
        char chunk[4096];
        const ssize_t got = ::read(out_, chunk, sizeof chunk);
        if (got <= 0) break;
        buffer_.append(chunk, static_cast<std::size_t>(got));
    }
    return std::exchange(buffer_, {});
}

void Child::kill(int signal) {
    if (!reaped_) ::kill(pid_, signal);
}

std::optional<int> Child::wait(Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        int status = 0;
        const pid_t done = ::waitpid(pid_, &status, WNOHANG);
        if (done == pid_) {
            reaped_ = true;
            return status;
        }
        if (Clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(10ms);
    }
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// --- kombu_peer.py -----------------------------------------------------------------------

void kombu_publish(const kelp::Json& spec) {
    TempDir dir;
    dir.write("spec.json", kelp::dump_json(spec));
    Child child({python, kombu_peer, "publish", dir.file("spec.json").string()},
                dir.file("stderr"));
    child.read_rest(30s);
    const auto status = child.wait(30s);
    INFO("kombu_peer.py publish said: " << dir.read("stderr"));
    REQUIRE_MESSAGE(status.has_value(), "kombu_peer.py publish did not finish within 30 s");
    REQUIRE_MESSAGE(*status == 0, "kombu_peer.py publish " << describe_status(*status)
                                                           << " (it needs /usr/bin/python3 with "
                                                              "the Debian package python3-kombu)");
}

KombuConsumer::KombuConsumer(const kelp::Json& spec) {
    dir_.write("spec.json", kelp::dump_json(spec));
    child_.emplace(
        std::vector<std::string>{python, kombu_peer, "consume", dir_.file("spec.json").string(),
                                 dir_.file("report.json").string()},
        dir_.file("stderr"));
}

bool KombuConsumer::ready(Clock::duration timeout) {
    const auto line = child_->read_line(timeout);
    INFO("kombu_peer.py consume said: " << dir_.read("stderr"));
    CHECK_MESSAGE(line == std::optional<std::string>("ready"),
                  "kombu_peer.py consume did not get ready (it needs /usr/bin/python3 with the "
                  "Debian package python3-kombu)");
    return line == std::optional<std::string>("ready");
}

kelp::Json KombuConsumer::report(Clock::duration timeout) {
    child_->read_rest(timeout);
    const auto status = child_->wait(timeout);
    INFO("kombu_peer.py consume said: " << dir_.read("stderr"));
    REQUIRE_MESSAGE(status.has_value(), "kombu_peer.py consume did not finish in time");
    REQUIRE_MESSAGE(*status == 0, "kombu_peer.py consume " << describe_status(*status)
                                                           << " (it needs /usr/bin/python3 with "
                                                              "the Debian package python3-kombu)");
    return kelp::parse_json(dir_.read("report.json"));
}

kelp::Json kombu_consume(const kelp::Json& spec) {
    KombuConsumer consumer(spec);
    consumer.ready();
    return consumer.report();
}

// --- kelp's side ---------------------------------------------------------------------------

namespace {

kelp::ConsumerOptions reporting_decode_errors(
    kelp::ConsumerOptions options, const std::function<void(kelp::Message&, kelp::Json)>& keep) {
    // A message kelp cannot decode is kept with the reason, for the test to show.
    options.on_decode_error = [keep](kelp::Message& message, std::exception_ptr error) {
        std::string why;
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            why = e.what();
        }
        keep(message, kelp::Json{{"decode error", why}});
    };
    return options;
}

}  // namespace

KelpConsumer::KelpConsumer(kelp::Connection& connection, std::vector<kelp::Queue> queues,
                           kelp::ConsumerOptions options)
    : connection_(connection),
      consumer_(
          connection, std::move(queues),
          [this](kelp::Message& message) { keep(message, message.payload()); },
          reporting_decode_errors(
              std::move(options),
              [this](kelp::Message& message, kelp::Json why) { keep(message, std::move(why)); })) {
    consumer_.consume();
}

void KelpConsumer::keep(kelp::Message& message, kelp::Json payload) {
    const auto& info = message.delivery_info();
    received_.push_back(Received{info.queue, message.envelope(), std::move(payload), info.exchange,
                                 info.routing_key, info.redelivered});
    message.ack();
}

void KelpConsumer::drain_until(Clock::time_point end, std::size_t count) {
    while (received_.size() < count && Clock::now() < end) {
        try {
            connection_.drain_events(end - Clock::now());
        } catch (const kelp::TimeoutError&) {
            return;
        }
    }
}

const std::vector<Received>& KelpConsumer::collect(std::size_t count, Clock::duration timeout,
                                                   Clock::duration linger) {
    drain_until(Clock::now() + timeout, count);
    if (linger.count() > 0) drain_until(Clock::now() + linger, static_cast<std::size_t>(-1));
    return received_;
}

kelp::Json big_int(std::string_view digits) {
    return kelp::Json{{"$int", std::string(digits)}};
}

}  // namespace interop
