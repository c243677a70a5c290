#include "kelp/hub.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>

#include "kelp/errors.hpp"

#if defined(KELP_HAVE_EVENTFD)
#include <sys/eventfd.h>
#endif

namespace kelp {
namespace {

void default_error_handler(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kelp::Hub: callback threw: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "kelp::Hub: callback threw a non-standard exception\n");
    }
}

// Clears the re-entrancy flag however an iteration ends.
struct RunningGuard {
    bool& running;
    ~RunningGuard() { running = false; }
};

[[noreturn]] void throw_errno(const char* what) {
    throw HubError(std::string("kelp::Hub: ") + what + ": " + std::strerror(errno));
}

}  // namespace

// --- Handle ------------------------------------------------------------------

void Handle::cancel() {
    if (hub_ != nullptr) hub_->cancel_slot(slot_, generation_);
}

bool Handle::active() const {
    return hub_ != nullptr && hub_->slot_live(slot_, generation_);
}

// --- construction ------------------------------------------------------------

Hub::Hub() : Hub(HubOptions{}) {}

Hub::Hub(HubOptions options)
    : poller_(make_poller(options.poller)),
      on_error_(options.on_error ? std::move(options.on_error) : default_error_handler),
      now_(Clock::now()) {
#if defined(KELP_HAVE_EVENTFD)
    wake_read_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_read_fd_ < 0) throw_errno("eventfd");
    wake_write_fd_ = wake_read_fd_;
#else
    int fds[2];
    if (::pipe(fds) != 0) throw_errno("pipe");
    for (int fd : fds) {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    wake_read_fd_ = fds[0];
    wake_write_fd_ = fds[1];
#endif
    add_reader(wake_read_fd_, [this] { drain_wakeup(); });
}

Hub::~Hub() {
    close();
    if (wake_write_fd_ >= 0 && wake_write_fd_ != wake_read_fd_) ::close(wake_write_fd_);
    if (wake_read_fd_ >= 0) ::close(wake_read_fd_);
}

void Hub::set_error_handler(std::function<void(std::exception_ptr)> handler) {
    on_error_ = handler ? std::move(handler) : default_error_handler;
}

std::string_view Hub::poller_name() const {
    return poller_->name();
}

// --- slots -------------------------------------------------------------------

// Out of line, once per 1024 slots: acquire_slot stays small.
void Hub::add_slot_block() {
    slot_blocks_.push_back(std::make_unique<Slot[]>(slot_block_size));
}

void Hub::release_slot(std::uint32_t index) {
    Slot& slot = slot_at(index);
    if (slot.kind == SlotKind::repeating) intervals_.erase(index);
    ++slot.generation;
    slot.kind = SlotKind::free;
    slot.callback = nullptr;
    slot.next_free = free_head_;
    free_head_ = index;
}

bool Hub::slot_live(std::uint32_t index, std::uint32_t generation) const {
    return index < slot_count_ && slot_at(index).generation == generation;
}

void Hub::cancel_slot(std::uint32_t index, std::uint32_t generation) {
    if (!slot_live(index, generation)) return;
    const SlotKind kind = slot_at(index).kind;
    if (kind == SlotKind::timer || kind == SlotKind::repeating) {
        cancel_timer(index);
    } else {
        release_slot(index);
    }
}

// --- I/O ---------------------------------------------------------------------

Hub::FdWatch& Hub::watch_for(int fd) {
    if (fd < 0) throw HubError("kelp::Hub: negative file descriptor " + std::to_string(fd));
    auto index = static_cast<std::size_t>(fd);
    if (index >= watches_.size()) watches_.resize(std::max(index + 1, watches_.size() * 2));
    return watches_[index];
}

void Hub::update_interest(int fd, FdWatch& watch) {
    const std::uint32_t wanted = (watch.reader.active ? poll_events::readable : 0u) |
                                 (watch.writer.active ? poll_events::writable : 0u);
    if (wanted == watch.registered) return;
    if (wanted == 0) {
        poller_->remove(fd);
    } else if (watch.registered == 0) {
        poller_->add(fd, wanted);
    } else {
        poller_->modify(fd, wanted);
    }
    watch.registered = wanted;
}

void Hub::add_watcher(int fd, Watcher FdWatch::*direction, Callback&& callback) {
    FdWatch& watch = watch_for(fd);
    Watcher& watcher = watch.*direction;
    const bool was_active = watcher.active;
    watcher.active = true;
    try {
        update_interest(fd, watch);
    } catch (...) {
        watcher.active = was_active;
        throw;
    }
    watcher.callback = std::move(callback);
    ++watcher.serial;
    // Readiness already collected in this batch belongs to whatever used the
    // fd before (it may be a reused fd number): the new callback waits for
    // the next poll.
    watcher.added_epoch = dispatch_epoch_;
}

void Hub::remove_watcher(int fd, Watcher FdWatch::*direction) {
    if (!has_watcher(fd, direction)) return;
    FdWatch& watch = watches_[static_cast<std::size_t>(fd)];
    Watcher& watcher = watch.*direction;
    watcher.active = false;
    watcher.callback = nullptr;  // a running callback was moved out: safe
    update_interest(fd, watch);
}

bool Hub::has_watcher(int fd, Watcher FdWatch::*direction) const {
    return fd >= 0 && static_cast<std::size_t>(fd) < watches_.size() &&
           (watches_[static_cast<std::size_t>(fd)].*direction).active;
}

void Hub::add_reader(int fd, Callback callback) {
    add_watcher(fd, &FdWatch::reader, std::move(callback));
}
void Hub::add_writer(int fd, Callback callback) {
    add_watcher(fd, &FdWatch::writer, std::move(callback));
}
void Hub::remove_reader(int fd) {
    remove_watcher(fd, &FdWatch::reader);
}
void Hub::remove_writer(int fd) {
    remove_watcher(fd, &FdWatch::writer);
}
bool Hub::has_reader(int fd) const {
    return has_watcher(fd, &FdWatch::reader);
}
bool Hub::has_writer(int fd) const {
    return has_watcher(fd, &FdWatch::writer);
}

// --- deferred callbacks --------------------------------------------------------

Handle Hub::call_soon(Callback callback) {
    std::uint32_t index = acquire_slot(SlotKind::soon, std::move(callback));
    std::uint32_t generation = slot_at(index).generation;
    soon_.emplace_back(index, generation);
    return Handle{this, index, generation};
}

void Hub::call_soon_threadsafe(Callback callback) {
    {
        std::lock_guard lock(threadsafe_mutex_);
        threadsafe_.push_back(std::move(callback));
    }
    threadsafe_pending_.store(true);
    wake();
}

void Hub::wake() {
    // One write per poll wake-up is enough; further writers see the flag.
    if (wake_pending_.exchange(true)) return;
    std::uint64_t one = 1;
    std::size_t size = wake_write_fd_ == wake_read_fd_ ? sizeof one : 1;
    ssize_t written;
    do {
        written = ::write(wake_write_fd_, &one, size);
    } while (written < 0 && errno == EINTR);
    // EAGAIN means the fd is already readable: the loop will wake anyway.
}

void Hub::drain_wakeup() {
#if defined(KELP_HAVE_EVENTFD)
    // One read resets an eventfd's counter: no second read to see EAGAIN.
    std::uint64_t count;
    while (::read(wake_read_fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
#else
    char buffer[64];
    while (::read(wake_read_fd_, buffer, sizeof buffer) > 0) {
    }
#endif
    // Sequentially consistent, with the flags in call_soon_threadsafe: a
    // writer that skipped its write because the flag was still set has
    // already published threadsafe_pending_, which run_soon reads next.
    wake_pending_.store(false);
}

// --- loop hooks ----------------------------------------------------------------

Handle Hub::on_tick(Callback callback) {
    std::uint32_t index = acquire_slot(SlotKind::tick, std::move(callback));
    std::uint32_t generation = slot_at(index).generation;
    ticks_.emplace_back(index, generation);
    return Handle{this, index, generation};
}

Handle Hub::on_close(Callback callback) {
    std::uint32_t index = acquire_slot(SlotKind::close, std::move(callback));
    std::uint32_t generation = slot_at(index).generation;
    closers_.emplace_back(index, generation);
    return Handle{this, index, generation};
}

// --- running -------------------------------------------------------------------

template <class Fn>
void Hub::guarded(Fn&& fn) {
    try {
        fn();
    } catch (...) {
        report(std::current_exception());
    }
}

void Hub::report(std::exception_ptr error) {
    try {
        on_error_(error);
    } catch (...) {
        // An error handler that throws must not take the loop down either.
        default_error_handler(std::current_exception());
    }
}

void Hub::run_timers() {
    // Timers scheduled while this pass runs (a 0 delay, a repeating timer's
    // next run) wait for the next iteration, so a pass always ends.
    const std::uint64_t sequence_limit = timer_sequence_;
    const std::int64_t now = now_.time_since_epoch().count();
    while (!timers_.empty()) {
        const TimerEntry top = timers_[0];
        if (top.deadline > now) break;
        // Blocks never move, so `slot` stays valid while callbacks schedule
        // more timers.
        Slot& slot = slot_at(top.slot);
        if (slot.kind == SlotKind::cancelled_timer) {
            pop_timer();
            drop_cancelled(top.slot);
            continue;
        }
        if (slot.sequence >= sequence_limit) break;
        pop_timer();
        // Moved out: the callback may cancel itself while it runs.
        Callback callback = std::move(slot.callback);
        if (slot.kind == SlotKind::timer) {
            --live_timers_;
            release_slot(top.slot);
            guarded(callback);
            continue;
        }
        const std::uint32_t generation = slot.generation;
        const std::int64_t step = intervals_.at(top.slot).count();
        firing_slot_ = top.slot;
        guarded(callback);
        firing_slot_ = no_slot;
        if (slot.generation != generation) continue;  // cancelled itself, or close()
        slot.callback = std::move(callback);
        // Next run counted from the planned time; runs already missed are
        // skipped so a stalled loop does not fire a burst.
        std::int64_t next = top.deadline + step;
        const std::int64_t fresh = Clock::now().time_since_epoch().count();
        if (next <= fresh) next += ((fresh - next) / step + 1) * step;
        push_timer(next, top.slot);
    }
}

void Hub::run_soon() {
    if (threadsafe_pending_.load() && threadsafe_pending_.exchange(false)) {
        std::vector<Callback> incoming;
        {
            std::lock_guard lock(threadsafe_mutex_);
            incoming.swap(threadsafe_);
        }
        for (Callback& callback : incoming)
            call_soon(std::move(callback));
    }
    if (soon_.empty()) return;
    // Only what was queued before this phase runs now; the rest is next time.
    soon_running_.swap(soon_);
    for (auto [index, generation] : soon_running_) {
        if (!slot_live(index, generation)) continue;
        Callback callback = std::move(slot_at(index).callback);
        release_slot(index);
        guarded(callback);
    }
    soon_running_.clear();
}

void Hub::run_ticks() {
    if (ticks_.empty()) return;
    std::erase_if(ticks_, [this](auto entry) { return !slot_live(entry.first, entry.second); });
    // Index loop: a tick callback may add another tick (runs from next time).
    const std::size_t count = ticks_.size();
    // close() from a tick empties ticks_: re-check the size on every turn.
    for (std::size_t i = 0; i < count && i < ticks_.size(); ++i) {
        auto [index, generation] = ticks_[i];
        if (!slot_live(index, generation)) continue;
        Callback callback = std::move(slot_at(index).callback);
        guarded(callback);
        if (slot_live(index, generation)) slot_at(index).callback = std::move(callback);
    }
}

Hub::Clock::duration Hub::poll_timeout(Clock::duration limit) const {
    if (!soon_.empty() || threadsafe_pending_.load() || stop_requested_.load()) {
        return Clock::duration::zero();
    }
    Clock::duration timeout = limit;
    if (!timers_.empty()) {
        const auto until = Clock::duration{timers_[0].deadline} - Clock::now().time_since_epoch();
        const auto bounded = std::max(until, Clock::duration::zero());
        if (timeout < Clock::duration::zero() || bounded < timeout) timeout = bounded;
    }
    return timeout;
}

void Hub::dispatch(int fd, Watcher FdWatch::*direction, std::uint64_t epoch) {
    const auto index = static_cast<std::size_t>(fd);
    if (index >= watches_.size()) return;  // close() ran in an earlier callback
    Watcher& watcher = watches_[index].*direction;
    if (!watcher.active || watcher.added_epoch > epoch) return;
    // Moved out while it runs: it may remove or replace itself, and other
    // callbacks may grow watches_.
    // Swapped rather than moved: the same, with no temporary to destroy.
    const std::uint32_t serial = watcher.serial;
    Callback callback;
    callback.swap(watcher.callback);
    guarded(callback);
    if (index >= watches_.size()) return;
    Watcher& after = watches_[index].*direction;
    if (after.active && after.serial == serial) after.callback.swap(callback);
}

void Hub::poll_and_dispatch(Clock::duration timeout) {
    poller_->wait(timeout, events_);
    if (events_.empty()) return;
    // Watchers added from now on carry a newer epoch, so the stale readiness
    // collected above never reaches them.
    const std::uint64_t epoch = dispatch_epoch_++;
    for (const PollEvent& event : events_) {
        const bool error = (event.events & poll_events::error) != 0;
        if (error || (event.events & poll_events::readable) != 0) {
            dispatch(event.fd, &FdWatch::reader, epoch);
        }
        if (error || (event.events & poll_events::writable) != 0) {
            dispatch(event.fd, &FdWatch::writer, epoch);
        }
    }
}

void Hub::iterate(Clock::duration timeout) {
    now_ = Clock::now();
    run_timers();
    run_soon();
    run_ticks();
    // A callback may have closed the Hub: nothing is left to wait for.
    if (closed_) return;
    // A cancelled timer on top would only cut the poll short for nothing.
    drop_cancelled_top();
    poll_and_dispatch(poll_timeout(timeout));
}

void Hub::run_once(Clock::duration timeout) {
    if (closed_) throw HubError("kelp::Hub::run_once: the Hub is closed");
    if (running_) {
        throw HubError(
            "kelp::Hub::run_once: called from inside one of this Hub's callbacks; "
            "schedule the work with call_soon instead");
    }
    running_ = true;
    RunningGuard guard{running_};
    iterate(timeout);
    // A stop() aimed at this single iteration is used up by it.
    stop_requested_.store(false);
}

void Hub::run_forever() {
    if (closed_) throw HubError("kelp::Hub::run_forever: the Hub is closed");
    if (running_) {
        throw HubError("kelp::Hub::run_forever: called from inside one of this Hub's callbacks");
    }
    running_ = true;
    RunningGuard guard{running_};
    do {
        iterate(Clock::duration{-1});
    } while (!stop_requested_.exchange(false) && !closed_);
}

void Hub::stop() {
    stop_requested_.store(true, std::memory_order_release);
    wake();
}

void Hub::close() {
    if (closed_) return;
    closed_ = true;
    // Close callbacks may still settle messages or flush; they run before the
    // fds and timers go away.
    for (std::size_t i = 0; i < closers_.size(); ++i) {
        auto [index, generation] = closers_[i];
        if (!slot_live(index, generation)) continue;
        Callback callback = std::move(slot_at(index).callback);
        release_slot(index);
        guarded(callback);
    }
    closers_.clear();
    for (std::size_t fd = 0; fd < watches_.size(); ++fd) {
        if (watches_[fd].registered != 0) poller_->remove(static_cast<int>(fd));
    }
    watches_.clear();
    timers_.clear();
    soon_.clear();
    ticks_.clear();
    for (std::uint32_t i = 0; i < slot_count_; ++i) {
        if (slot_at(i).kind != SlotKind::free) release_slot(i);
    }
    live_timers_ = 0;
    dead_timers_ = 0;
    cancelled_bits_.clear();
    std::lock_guard lock(threadsafe_mutex_);
    threadsafe_.clear();
}

}  // namespace kelp
