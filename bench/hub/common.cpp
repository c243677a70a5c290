#include "common.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kelp_bench {

namespace {

std::int64_t read_clock(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string figure(double value) {
    char text[32];
    std::snprintf(text, sizeof text, value >= 100 ? "%.0f" : "%.2f", value);
    return text;
}

}  // namespace

std::int64_t wall_ns() {
    return read_clock(CLOCK_MONOTONIC);
}
std::int64_t cpu_ns() {
    return read_clock(CLOCK_PROCESS_CPUTIME_ID);
}
std::int64_t thread_cpu_ns() {
    return read_clock(CLOCK_THREAD_CPUTIME_ID);
}

void fail(const char* format, ...) {
    std::fflush(stdout);
    std::fputs("CHECK FAILED: ", stderr);
    va_list args;
    va_start(args, format);
    std::vfprintf(stderr, format, args);
    va_end(args);
    std::fputc('\n', stderr);
    std::fflush(stderr);
    // _Exit: other benchmark threads may still be running their loops, and
    // running static destructors under them would only add noise to the report.
    std::_Exit(1);
}

FdPair make_pipe() {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) fail("pipe2: %s", std::strerror(errno));
    return {fds[0], fds[1]};
}

FdPair make_socketpair() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        fail("socketpair: %s", std::strerror(errno));
    return {fds[0], fds[1]};
}

void close_pair(FdPair& pair) {
    if (pair.read_end >= 0) close(pair.read_end);
    if (pair.write_end >= 0) close(pair.write_end);
    pair = {};
}

bool fd_is_empty(int fd) {
    char byte;
    ssize_t n = read(fd, &byte, 1);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void write_byte(int fd) {
    const char byte = 'k';
    if (write(fd, &byte, 1) != 1) fail("write(fd %d): %s", fd, std::strerror(errno));
}

void read_byte(int fd) {
    char byte;
    if (read(fd, &byte, 1) != 1) fail("read(fd %d): %s", fd, std::strerror(errno));
}

std::uint64_t raise_fd_limit(std::uint64_t wanted, std::string& why_not) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        why_not = std::string("getrlimit: ") + std::strerror(errno);
        return 0;
    }
    if (limit.rlim_cur >= wanted) return limit.rlim_cur;
    rlimit raised = limit;
    raised.rlim_cur = wanted;
    if (raised.rlim_max < wanted) raised.rlim_max = wanted;  // needs CAP_SYS_RESOURCE
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return wanted;
    why_not = "setrlimit(RLIMIT_NOFILE, " + std::to_string(wanted) + "): " + std::strerror(errno) +
              ", hard limit " + std::to_string(static_cast<unsigned long long>(limit.rlim_max));
    // Up to the hard limit needs no privilege.
    raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return limit.rlim_max;
    return limit.rlim_cur;
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const std::size_t mid = values.size() / 2;
    return values.size() % 2 != 0 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

bool Options::wants(const std::string& impl, const std::string& backend) const {
    if (only.empty()) return true;
    for (const std::string& name : only)
        if (name == impl || name == impl + ":" + backend) return true;
    return false;
}

std::string role_tag(Role role) {
    switch (role) {
        case Role::kelp:
            return "kelp";
        case Role::anchor:
            return "anchor";
        case Role::reference:
            return "reference";
    }
    return "?";
}

void print_summary(const std::string& label, const std::vector<Row>& rows,
                   const std::string& kelp_backend, const char* unit, bool lower_is_better,
                   double goal, const std::string& anchor_backend) {
    const Row* kelp = nullptr;
    const Row* best = nullptr;
    for (const Row& row : rows) {
        if (row.role == Role::kelp && row.backend == kelp_backend) kelp = &row;
        if (row.role != Role::anchor || row.value <= 0) continue;
        if (!anchor_backend.empty() && row.backend != anchor_backend) continue;
        if (best == nullptr ||
            (lower_is_better ? row.value < best->value : row.value > best->value))
            best = &row;
    }
    if (kelp == nullptr || best == nullptr || kelp->value <= 0) {
        std::printf("summary %-30s: n/a (kelp %s or anchors missing)\n", label.c_str(),
                    kelp_backend.c_str());
        return;
    }
    // Always a time ratio, so "lower is better" reads the same on every line.
    const double ratio = lower_is_better ? kelp->value / best->value : best->value / kelp->value;
    std::printf(
        "summary %-30s: kelp(%s)/fastest-anchor = %.3f  [time ratio, lower is better; "
        "kelp %s vs %s(%s) %s %s",
        label.c_str(), kelp_backend.c_str(), ratio, figure(kelp->value).c_str(), best->impl.c_str(),
        best->backend.c_str(), figure(best->value).c_str(), unit);
    if (goal > 0) std::printf("; goal <= %.2f: %s", goal, ratio <= goal ? "met" : "MISSED");
    std::printf("]\n");
}

}  // namespace kelp_bench
