// The Linux back end: level-triggered epoll, one epoll_ctl per interest change.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "pollers.hpp"

namespace kelp::detail {
namespace {

std::uint32_t to_epoll(std::uint32_t events) {
    std::uint32_t out = 0;
    if ((events & poll_events::readable) != 0) out |= EPOLLIN;
    if ((events & poll_events::writable) != 0) out |= EPOLLOUT;
    return out;
}

class EpollPoller final : public Poller {
  public:
    EpollPoller() : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)), buffer_(64) {
        if (epoll_fd_ < 0) throw_poller_errno("epoll", "epoll_create1", -1);
    }
    ~EpollPoller() override { ::close(epoll_fd_); }
    EpollPoller(const EpollPoller&) = delete;
    EpollPoller& operator=(const EpollPoller&) = delete;

    std::string_view name() const override { return "epoll"; }

    void add(int fd, std::uint32_t events) override {
        // EEXIST: the fd number is registered already (a dup'd or reused
        // number whose old registration outlived a close): just update it.
        if (control(EPOLL_CTL_ADD, fd, events) != 0 &&
            (errno != EEXIST || control(EPOLL_CTL_MOD, fd, events) != 0)) {
            throw_poller_errno("epoll", "epoll_ctl(ADD)", fd);
        }
    }

    void modify(int fd, std::uint32_t events) override {
        // ENOENT: the fd was closed and reopened behind our back, which
        // silently drops it from epoll; register it afresh.
        if (control(EPOLL_CTL_MOD, fd, events) != 0 &&
            (errno != ENOENT || control(EPOLL_CTL_ADD, fd, events) != 0)) {
            throw_poller_errno("epoll", "epoll_ctl(MOD)", fd);
        }
    }

    void remove(int fd) noexcept override {
        // Errors mean the kernel already forgot the fd (closed): nothing to do.
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    }

    void wait(std::chrono::nanoseconds timeout, std::vector<PollEvent>& out) override {
        out.clear();
        const int count = ::epoll_wait(epoll_fd_, buffer_.data(), static_cast<int>(buffer_.size()),
                                       timeout_to_ms(timeout));
        if (count < 0) {
            if (errno == EINTR) return;
            throw_poller_errno("epoll", "epoll_wait", -1);
        }
        for (int i = 0; i < count; ++i) {
            const epoll_event& event = buffer_[static_cast<std::size_t>(i)];
            std::uint32_t events = 0;
            if ((event.events & EPOLLIN) != 0) events |= poll_events::readable;
            if ((event.events & EPOLLOUT) != 0) events |= poll_events::writable;
            if ((event.events & (EPOLLERR | EPOLLHUP)) != 0) events |= poll_events::error;
            out.push_back(PollEvent{event.data.fd, events});
        }
        // A full buffer suggests more were ready: take more next time.
        if (static_cast<std::size_t>(count) == buffer_.size()) buffer_.resize(buffer_.size() * 2);
    }

  private:
    int control(int op, int fd, std::uint32_t events) {
        epoll_event event{};
        event.events = to_epoll(events);
        event.data.fd = fd;
        return ::epoll_ctl(epoll_fd_, op, fd, &event);
    }

    int epoll_fd_;
    std::vector<epoll_event> buffer_;
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller() {
    return std::make_unique<EpollPoller>();
}

}  // namespace kelp::detail
