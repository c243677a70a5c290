#include "support.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
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

std::int64_t thread_cpu_ns() {
    return read_clock(CLOCK_THREAD_CPUTIME_ID);
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

std::string default_python() {
    if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
    return "python3";
}

}  // namespace kelp_bench
