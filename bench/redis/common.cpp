#include "common.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

extern char** environ;

namespace kelp_bench {

namespace {

std::int64_t read_clock(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

std::int64_t wall_ns() {
    return read_clock(CLOCK_MONOTONIC);
}

std::int64_t process_cpu_ns() {
    return read_clock(CLOCK_PROCESS_CPUTIME_ID);
}

const std::string& JsonBody::with_seq(std::uint64_t seq) {
    char head[96];
    const int length = std::snprintf(
        head, sizeof head, R"({"seq": %llu, "task": "bench.process", "args": [1, 2, 3], "pad": ")",
        static_cast<unsigned long long>(seq));
    text_.assign(head, static_cast<std::size_t>(length));
    // The padding takes what the number leaves, so every body is the same size.
    text_.append(body_size - text_.size() - 2, 'x');
    text_.append("\"}");
    return text_;
}

void Tally::record(std::int64_t seq) {
    ++count_;
    if (seq < 0 || static_cast<std::uint64_t>(seq) >= seen_.size()) {
        error("stray sequence number " + std::to_string(seq));
    } else if (seen_[static_cast<std::size_t>(seq)] != 0) {
        error("message " + std::to_string(seq) + " consumed twice");
    } else {
        seen_[static_cast<std::size_t>(seq)] = 1;
    }
}

std::vector<std::string> Tally::verify() const {
    std::vector<std::string> problems = errors_;
    std::uint64_t missing = 0;
    for (const std::uint8_t seen : seen_)
        missing += seen == 0 ? 1 : 0;
    if (missing != 0) problems.push_back(std::to_string(missing) + " messages never consumed");
    if (count_ != seen_.size()) {
        problems.push_back(std::to_string(count_) + " deliveries for " +
                           std::to_string(seen_.size()) + " messages");
    }
    return problems;
}

void fail(const std::string& what) {
    std::fflush(stdout);
    std::fprintf(stderr, "bench_redis: FAILED: %s\n", what.c_str());
    std::exit(1);
}

void check_tally(const Tally& tally, const std::string& run_name) {
    const auto problems = tally.verify();
    if (problems.empty()) return;
    std::string what = run_name + ":";
    for (const auto& problem : problems)
        what += " " + problem + ";";
    fail(what);
}

Output run_capturing(const std::vector<std::string>& argv) {
    Output out;
    int fds[2];
    if (::pipe(fds) != 0) {
        out.spawn_error = std::strerror(errno);
        return out;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<char*> args;
    for (const auto& arg : argv)
        args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        out.spawn_error = argv[0] + ": " + std::strerror(rc);
        return out;
    }
    char buffer[4096];
    while (true) {
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n > 0) {
            out.stdout_text.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    ::close(fds[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    out.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    return out;
}

std::string field(const std::string& line, const std::string& key) {
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
        if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
    }
    return {};
}

std::string redis_cli(const Options& options, const std::vector<std::string>& command) {
    std::vector<std::string> argv{options.redis_cli, "-h", options.host, "-p",
                                  std::to_string(options.port)};
    argv.insert(argv.end(), command.begin(), command.end());
    const Output out = run_capturing(argv);
    std::string joined;
    for (const auto& part : command)
        joined += " " + part;
    if (!out.spawn_error.empty()) fail("redis-cli: " + out.spawn_error);
    if (out.status != 0)
        fail("redis-cli" + joined + " exited with status " + std::to_string(out.status));
    std::string text = out.stdout_text;
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (text.rfind("ERR", 0) == 0 || text.rfind("(error)", 0) == 0) {
        fail("redis-cli" + joined + ": " + text);
    }
    return text;
}

std::uint64_t redis_cli_number(const Options& options, const std::vector<std::string>& command) {
    const std::string text = redis_cli(options, command);
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') {
        std::string joined;
        for (const auto& part : command)
            joined += " " + part;
        fail("redis-cli" + joined + " answered '" + text + "', not a number");
    }
    return value;
}

}  // namespace kelp_bench
