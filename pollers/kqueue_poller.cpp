// The BSD and macOS back end: kqueue with one read and one write filter per
// fd. Compiled only where <sys/event.h> exists (not on Linux).
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>

#include "pollers.hpp"

namespace kelp::detail {
namespace {

class KqueuePoller final : public Poller {
  public:
    KqueuePoller() : kqueue_fd_(::kqueue()), buffer_(64) {
        if (kqueue_fd_ < 0) throw_poller_errno("kqueue", "kqueue", -1);
    }
    ~KqueuePoller() override { ::close(kqueue_fd_); }
    KqueuePoller(const KqueuePoller&) = delete;
    KqueuePoller& operator=(const KqueuePoller&) = delete;

    std::string_view name() const override { return "kqueue"; }

    void add(int fd, std::uint32_t events) override { apply(fd, events); }
    void modify(int fd, std::uint32_t events) override { apply(fd, events); }

    void remove(int fd) noexcept override {
        if (fd < 0 || static_cast<std::size_t>(fd) >= interest_.size()) return;
        struct kevent changes[2];
        int count = 0;
        const std::uint32_t had = interest_[static_cast<std::size_t>(fd)];
        if ((had & poll_events::readable) != 0) {
            EV_SET(&changes[count++], fd, EVFILT_READ, EV_DELETE, 0, 0, nullptr);
        }
        if ((had & poll_events::writable) != 0) {
            EV_SET(&changes[count++], fd, EVFILT_WRITE, EV_DELETE, 0, 0, nullptr);
        }
        // Errors mean the fd was closed, which removed its filters already.
        if (count > 0) ::kevent(kqueue_fd_, changes, count, nullptr, 0, nullptr);
        interest_[static_cast<std::size_t>(fd)] = 0;
    }

    void wait(std::chrono::nanoseconds timeout, std::vector<PollEvent>& out) override {
        out.clear();
        timespec ts{};
        timespec* ts_ptr = nullptr;
        if (timeout >= std::chrono::nanoseconds::zero()) {
            ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000000);
            ts.tv_nsec = static_cast<long>(timeout.count() % 1000000000);
            ts_ptr = &ts;
        }
        const int count = ::kevent(kqueue_fd_, nullptr, 0, buffer_.data(),
                                   static_cast<int>(buffer_.size()), ts_ptr);
        if (count < 0) {
            if (errno == EINTR) return;
            throw_poller_errno("kqueue", "kevent", -1);
        }
        for (int i = 0; i < count; ++i) {
            const struct kevent& event = buffer_[static_cast<std::size_t>(i)];
            std::uint32_t events = 0;
            if (event.filter == EVFILT_READ) events |= poll_events::readable;
            if (event.filter == EVFILT_WRITE) events |= poll_events::writable;
            if ((event.flags & EV_ERROR) != 0) events |= poll_events::error;
            out.push_back(PollEvent{static_cast<int>(event.ident), events});
        }
        if (static_cast<std::size_t>(count) == buffer_.size()) buffer_.resize(buffer_.size() * 2);
    }

  private:
    void apply(int fd, std::uint32_t events) {
        if (fd < 0) {
            errno = EBADF;
            throw_poller_errno("kqueue", "add", fd);
        }
        const auto index = static_cast<std::size_t>(fd);
        if (index >= interest_.size()) interest_.resize(index + 1, 0);
        const std::uint32_t had = interest_[index];
        struct kevent changes[2];
        int count = 0;
        if ((events & poll_events::readable) != (had & poll_events::readable)) {
            EV_SET(&changes[count++], fd, EVFILT_READ,
                   (events & poll_events::readable) != 0 ? EV_ADD : EV_DELETE, 0, 0, nullptr);
        }
        if ((events & poll_events::writable) != (had & poll_events::writable)) {
            EV_SET(&changes[count++], fd, EVFILT_WRITE,
                   (events & poll_events::writable) != 0 ? EV_ADD : EV_DELETE, 0, 0, nullptr);
        }
        if (count > 0 && ::kevent(kqueue_fd_, changes, count, nullptr, 0, nullptr) < 0) {
            throw_poller_errno("kqueue", "kevent(change)", fd);
        }
        interest_[index] = events;
    }

    int kqueue_fd_;
    std::vector<struct kevent> buffer_;
    std::vector<std::uint32_t> interest_;  // fd -> mask registered
};

}  // namespace

std::unique_ptr<Poller> make_kqueue_poller() {
    return std::make_unique<KqueuePoller>();
}

}  // namespace kelp::detail
