// The portable back end: poll(2) over a dense array, O(1) add and remove.
#include <poll.h>

#include <cerrno>

#include "pollers.hpp"

namespace kelp::detail {
namespace {

short to_poll(std::uint32_t events) {
    short out = 0;
    if ((events & poll_events::readable) != 0) out |= POLLIN;
    if ((events & poll_events::writable) != 0) out |= POLLOUT;
    return out;
}

class PollPoller final : public Poller {
  public:
    std::string_view name() const override { return "poll"; }

    void add(int fd, std::uint32_t events) override {
        if (fd < 0) {
            errno = EBADF;
            throw_poller_errno("poll", "add", fd);
        }
        const auto index = static_cast<std::size_t>(fd);
        if (index >= position_.size()) position_.resize(index + 1, npos);
        if (position_[index] != npos) {
            fds_[position_[index]].events = to_poll(events);
            return;
        }
        position_[index] = fds_.size();
        fds_.push_back(pollfd{fd, to_poll(events), 0});
    }

    void modify(int fd, std::uint32_t events) override { add(fd, events); }

    void remove(int fd) noexcept override {
        const auto index = static_cast<std::size_t>(fd);
        if (fd < 0 || index >= position_.size() || position_[index] == npos) return;
        // Swap with the last entry so the array stays dense.
        const std::size_t slot = position_[index];
        fds_[slot] = fds_.back();
        position_[static_cast<std::size_t>(fds_[slot].fd)] = slot;
        fds_.pop_back();
        position_[index] = npos;
    }

    void wait(std::chrono::nanoseconds timeout, std::vector<PollEvent>& out) override {
        out.clear();
        int ready = ::poll(fds_.data(), fds_.size(), timeout_to_ms(timeout));
        if (ready < 0) {
            if (errno == EINTR) return;
            throw_poller_errno("poll", "poll", -1);
        }
        for (const pollfd& entry : fds_) {
            if (ready == 0) break;
            if (entry.revents == 0) continue;
            --ready;
            std::uint32_t events = 0;
            if ((entry.revents & POLLIN) != 0) events |= poll_events::readable;
            if ((entry.revents & POLLOUT) != 0) events |= poll_events::writable;
            if ((entry.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) events |= poll_events::error;
            out.push_back(PollEvent{entry.fd, events});
        }
    }

  private:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::vector<pollfd> fds_;
    std::vector<std::size_t> position_;  // fd -> index in fds_, or npos
};

}  // namespace

std::unique_ptr<Poller> make_poll_poller() {
    return std::make_unique<PollPoller>();
}

}  // namespace kelp::detail
