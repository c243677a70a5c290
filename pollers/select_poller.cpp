// The last-resort back end: select(2). Limited to fds below FD_SETSIZE, which
// is checked on add: FD_SET beyond it would write past the fd_set.
#include <fcntl.h>
#include <sys/select.h>

#include <cerrno>
#include <string>

#include "kelp/errors.hpp"
#include "pollers.hpp"

namespace kelp::detail {
namespace {

class SelectPoller final : public Poller {
  public:
    SelectPoller() {
        FD_ZERO(&read_);
        FD_ZERO(&write_);
    }

    std::string_view name() const override { return "select"; }

    void add(int fd, std::uint32_t events) override {
        if (fd < 0 || fd >= FD_SETSIZE) {
            throw HubError("kelp select poller: fd " + std::to_string(fd) +
                           " is outside select's range 0.." + std::to_string(FD_SETSIZE - 1) +
                           "; use the epoll or poll poller (KELP_POLLER=poll) for this many fds");
        }
        set(fd, events);
    }

    void modify(int fd, std::uint32_t events) override { add(fd, events); }

    void remove(int fd) noexcept override {
        if (fd < 0 || fd >= FD_SETSIZE) return;
        set(fd, 0);
    }

    void wait(std::chrono::nanoseconds timeout, std::vector<PollEvent>& out) override {
        out.clear();
        fd_set readable = read_;
        fd_set writable = write_;
        timeval tv{};
        timeval* tv_ptr = nullptr;
        if (timeout >= std::chrono::nanoseconds::zero()) {
            const auto us = std::chrono::ceil<std::chrono::microseconds>(timeout).count();
            tv.tv_sec = static_cast<time_t>(us / 1000000);
            tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
            tv_ptr = &tv;
        }
        const int ready = ::select(max_fd_ + 1, &readable, &writable, nullptr, tv_ptr);
        if (ready < 0) {
            if (errno == EINTR) return;
            if (errno == EBADF) return report_closed(out);
            throw_poller_errno("select", "select", -1);
        }
        if (ready == 0) return;
        for (int fd = 0; fd <= max_fd_; ++fd) {
            std::uint32_t events = 0;
            if (FD_ISSET(fd, &readable)) events |= poll_events::readable;
            if (FD_ISSET(fd, &writable)) events |= poll_events::writable;
            if (events != 0) out.push_back(PollEvent{fd, events});
        }
    }

  private:
    void set(int fd, std::uint32_t events) {
        if ((events & poll_events::readable) != 0) {
            FD_SET(fd, &read_);
        } else {
            FD_CLR(fd, &read_);
        }
        if ((events & poll_events::writable) != 0) {
            FD_SET(fd, &write_);
        } else {
            FD_CLR(fd, &write_);
        }
        if (events != 0 && fd > max_fd_) max_fd_ = fd;
        while (max_fd_ >= 0 && !FD_ISSET(max_fd_, &read_) && !FD_ISSET(max_fd_, &write_)) {
            --max_fd_;
        }
    }

    // select fails as a whole when one fd was closed while watched; report
    // those fds as errored so their owners see it and remove them.
    void report_closed(std::vector<PollEvent>& out) const {
        for (int fd = 0; fd <= max_fd_; ++fd) {
            if ((FD_ISSET(fd, &read_) || FD_ISSET(fd, &write_)) && ::fcntl(fd, F_GETFD) < 0) {
                out.push_back(PollEvent{fd, poll_events::error});
            }
        }
    }

    fd_set read_;
    fd_set write_;
    int max_fd_ = -1;
};

}  // namespace

std::unique_ptr<Poller> make_select_poller() {
    return std::make_unique<SelectPoller>();
}

}  // namespace kelp::detail
