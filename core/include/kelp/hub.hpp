// Hub: kelp's event loop. Transports put their sockets and timers on it through
// `register_with_event_loop`; `drain_events` runs the same loop privately.
//
// One iteration, always in this order (see docs/hub.md):
//   1. update the cached clock (`now()`)
//   2. run due timers, earliest first, ties in scheduling order
//   3. run `call_soon` callbacks in FIFO order (threadsafe ones included);
//      what they schedule runs on the next iteration
//   4. run `on_tick` callbacks
//   5. compute the poll timeout (0 if callbacks are pending or stop was asked)
//   6. poll, then dispatch readiness to reader and writer callbacks
//
// A callback that throws is passed to the error handler and the loop goes on.
//
// Thread rules: a Hub belongs to one thread at a time (the one that runs it).
// Only `call_soon_threadsafe` and `stop` may be called from other threads.
// Handles must not outlive their Hub.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kelp/poller.hpp"

namespace kelp {

class Hub;

// A cancellable reference to something scheduled on a Hub: a timer, a
// `call_soon` callback, an `on_tick` or `on_close` callback. Cheap to copy;
// cancelling twice, or after the callback ran, does nothing.
class Handle {
  public:
    Handle() = default;

    // Stop the callback from running (again). Safe inside the callback itself.
    void cancel();
    // True while the callback is still scheduled (a repeating timer stays
    // active until cancelled).
    bool active() const;

  private:
    friend class Hub;
    Handle(Hub* hub, std::uint32_t slot, std::uint32_t generation)
        : hub_(hub), slot_(slot), generation_(generation) {}

    Hub* hub_ = nullptr;
    std::uint32_t slot_ = 0;
    std::uint32_t generation_ = 0;
};

struct HubOptions {
    // Force a poller back end ("epoll", "kqueue", "poll", "select"); empty
    // means $KELP_POLLER if set, else the best available.
    std::string poller;
    // Receives exceptions thrown by callbacks; the default prints to stderr.
    std::function<void(std::exception_ptr)> on_error;
};

class Hub {
  public:
    using Clock = std::chrono::steady_clock;
    using Callback = std::function<void()>;

    Hub();
    explicit Hub(HubOptions options);
    ~Hub();
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    // --- I/O readiness (level-triggered) -----------------------------------
    // One reader and one writer per fd, each with its own callback; adding
    // again replaces the callback. Remove before closing the fd.
    void add_reader(int fd, Callback callback);
    void add_writer(int fd, Callback callback);
    void remove_reader(int fd);
    void remove_writer(int fd);
    bool has_reader(int fd) const;
    bool has_writer(int fd) const;

    // --- deferred callbacks ---------------------------------------------------
    // Runs on the next iteration, in FIFO order with other call_soon callbacks.
    Handle call_soon(Callback callback);
    // Thread-safe; wakes a blocked poll. Runs in the call_soon phase, FIFO per
    // calling thread.
    void call_soon_threadsafe(Callback callback);

    // --- timers ---------------------------------------------------------------
    // Deadlines are computed from a fresh clock read, not the cached `now()`,
    // so a timer scheduled late in a long iteration never fires early.
    Handle call_later(Clock::duration delay, Callback callback);
    Handle call_at(Clock::time_point when, Callback callback);
    // First run after `interval`, then every `interval` counted from the
    // planned time (no drift). Runs that fell wholly behind are skipped, not
    // bunched.
    Handle call_repeatedly(Clock::duration interval, Callback callback);

    // --- loop hooks -----------------------------------------------------------
    // Runs once per iteration, after the call_soon phase, until cancelled.
    Handle on_tick(Callback callback);
    // Runs once when close() is called (or at destruction), in FIFO order.
    Handle on_close(Callback callback);

    // --- running --------------------------------------------------------------
    // One iteration; blocks in poll at most `timeout` (negative: no limit).
    // Not re-entrant: calling it from one of this Hub's callbacks throws.
    void run_once(Clock::duration timeout = Clock::duration{-1});
    // Iterates until stop(), then clears the stop request so the Hub can run
    // again. A stop() that came before run_forever ends it after one
    // non-blocking iteration.
    void run_forever();
    // Ends run_forever after the current iteration, and makes a blocked
    // run_once return; callable from any thread.
    void stop();
    // Runs on_close callbacks, drops every fd and timer. Idempotent.
    void close();
    bool closed() const { return closed_; }

    // The clock as of the start of the current iteration.
    Clock::time_point now() const { return now_; }
    std::string_view poller_name() const;
    // True when call_soon work (this thread's or another's) waits for the
    // next iteration.
    bool has_pending_callbacks() const { return !soon_.empty() || threadsafe_pending_.load(); }
    // Number of pending timers (cancelled ones excluded).
    std::size_t timer_count() const { return live_timers_; }

    // Replace the error handler for callbacks that throw.
    void set_error_handler(std::function<void(std::exception_ptr)> handler);

  private:
    friend class Handle;

    // A cancelled timer's slot stays `cancelled_timer` until its heap entry
    // is popped or compacted away, so an entry never points at a reused slot.
    // `repeating` timers keep their interval in `intervals_` (few timers
    // repeat; every Slot carrying one would cost a million timers 8 MB).
    enum class SlotKind : std::uint8_t {
        free,
        timer,
        repeating,
        cancelled_timer,
        soon,
        tick,
        close
    };

    static constexpr std::uint32_t no_slot = UINT32_MAX;

    struct Slot {
        Callback callback;
        union {
            std::uint64_t sequence = 0;  // timers: scheduling order, breaks deadline ties
            std::uint32_t next_free;     // free slots: the free list's link
        };
        // Bumped by release and cancel: a reference (Handle, queued entry)
        // is live exactly while its generation matches.
        std::uint32_t generation = 1;
        SlotKind kind = SlotKind::free;
    };

    // Slots live in fixed blocks that never move: growing the pool copies
    // nothing and touches only the new block's pages.
    static constexpr std::uint32_t slot_block_bits = 10;
    static constexpr std::uint32_t slot_block_size = 1u << slot_block_bits;

    // 16 bytes: four children share a cache line or two, and a million
    // timers' heap is 16 MB.
    struct TimerEntry {
        std::int64_t deadline;  // Clock ticks since epoch
        std::uint32_t slot;
    };

    // Storage of the timer heap (the ordering is the Hub's, see
    // hub_timers.cpp). Grown with realloc, which for a large array remaps
    // pages instead of copying them and never faults the same memory in
    // twice, where a std::vector copies every entry into fresh pages at
    // each doubling.
    class TimerArray {
      public:
        TimerArray() = default;
        ~TimerArray();
        TimerArray(const TimerArray&) = delete;
        TimerArray& operator=(const TimerArray&) = delete;

        bool empty() const { return size_ == 0; }
        std::size_t size() const { return size_; }
        TimerEntry& operator[](std::size_t i) { return entries_[i]; }
        const TimerEntry& operator[](std::size_t i) const { return entries_[i]; }
        void push_back(const TimerEntry& entry);
        void truncate(std::size_t size) { size_ = size; }
        void clear() { size_ = 0; }

      private:
        TimerEntry* entries_ = nullptr;
        std::size_t size_ = 0;
        std::size_t capacity_ = 0;
    };

    // One direction (read or write) of an fd.
    struct Watcher {
        Callback callback;
        std::uint64_t added_epoch = 0;  // dispatch epoch in which it was added
        std::uint32_t serial = 0;       // bumped by every add, to spot replacement
        bool active = false;
    };

    struct FdWatch {
        Watcher reader;
        Watcher writer;
        std::uint32_t registered = 0;  // mask currently given to the poller
    };

    // Slots: one pool for every cancellable callback, reused through a free list.
    Slot& slot_at(std::uint32_t index) {
        return slot_blocks_[index >> slot_block_bits][index & (slot_block_size - 1)];
    }
    const Slot& slot_at(std::uint32_t index) const {
        return slot_blocks_[index >> slot_block_bits][index & (slot_block_size - 1)];
    }
    // Inline: it is on the path of every call_soon and timer.
    std::uint32_t acquire_slot(SlotKind kind, Callback&& callback) {
        std::uint32_t index = free_head_;
        if (index != no_slot) {
            free_head_ = slot_at(index).next_free;
        } else {
            // Slot numbers fill the blocks in order: a multiple of the block
            // size means the last block is full, or there is none yet.
            if (slot_count_ % slot_block_size == 0) add_slot_block();
            index = slot_count_++;
        }
        Slot& slot = slot_at(index);
        // A free slot's callback is empty: swapping costs less than a move-assign.
        slot.callback.swap(callback);
        slot.kind = kind;
        return index;
    }
    void add_slot_block();
    void release_slot(std::uint32_t slot);
    bool slot_live(std::uint32_t slot, std::uint32_t generation) const;
    void cancel_slot(std::uint32_t slot, std::uint32_t generation);

    // Timers (hub_timers.cpp): a 4-ary min-heap on (deadline, sequence).
    Handle schedule_timer(Clock::time_point when, Clock::duration interval, Callback&& callback);
    void cancel_timer(std::uint32_t slot);
    bool timer_before(const TimerEntry& a, const TimerEntry& b) const;
    void push_timer(std::int64_t deadline, std::uint32_t slot);
    void pop_timer();
    void sift_down(std::size_t hole, TimerEntry entry);
    void drop_cancelled(std::uint32_t slot);
    void free_cancelled_slot(std::uint32_t slot);
    void compact_timers();
    void drop_cancelled_top();

    FdWatch& watch_for(int fd);
    void update_interest(int fd, FdWatch& watch);
    void add_watcher(int fd, Watcher FdWatch::*direction, Callback&& callback);
    void remove_watcher(int fd, Watcher FdWatch::*direction);
    bool has_watcher(int fd, Watcher FdWatch::*direction) const;
    void dispatch(int fd, Watcher FdWatch::*direction, std::uint64_t epoch);

    void iterate(Clock::duration timeout);
    void run_timers();
    void run_soon();
    void run_ticks();
    Clock::duration poll_timeout(Clock::duration limit) const;
    void poll_and_dispatch(Clock::duration timeout);
    void drain_wakeup();
    void wake();

    template <class Fn>
    void guarded(Fn&& fn);
    void report(std::exception_ptr error);

    std::unique_ptr<Poller> poller_;
    std::function<void(std::exception_ptr)> on_error_;

    std::vector<std::unique_ptr<Slot[]>> slot_blocks_;
    std::uint32_t slot_count_ = 0;  // slots ever handed out; the rest of the last block is unused
    std::uint32_t free_head_ = no_slot;
    std::unordered_map<std::uint32_t, Clock::duration> intervals_;  // of `repeating` slots

    TimerArray timers_;
    std::uint64_t timer_sequence_ = 0;
    std::size_t live_timers_ = 0;
    std::size_t dead_timers_ = 0;  // cancelled entries still in the heap
    // One bit per slot, set while the slot is a cancelled timer whose entry is
    // still in the heap: compaction tests these bits (a few hundred KB at
    // most, cache-resident) rather than every entry's slot, and then releases
    // the slots in index order, not in scattered heap order.
    std::vector<std::uint64_t> cancelled_bits_;
    // The repeating timer whose callback runs now (popped, not in the heap).
    std::uint32_t firing_slot_ = no_slot;

    std::vector<std::pair<std::uint32_t, std::uint32_t>> soon_;  // (slot, generation)
    std::vector<std::pair<std::uint32_t, std::uint32_t>> soon_running_;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> ticks_;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> closers_;

    std::vector<FdWatch> watches_;  // indexed by fd
    std::vector<PollEvent> events_;
    std::uint64_t dispatch_epoch_ = 1;

    // Cross-thread queue, woken through an eventfd (or a pipe where absent).
    std::mutex threadsafe_mutex_;
    std::vector<Callback> threadsafe_;
    std::atomic<bool> threadsafe_pending_{false};
    std::atomic<bool> wake_pending_{false};
    int wake_read_fd_ = -1;
    int wake_write_fd_ = -1;

    std::atomic<bool> stop_requested_{false};
    bool running_ = false;  // guards against re-entrant run_once
    bool closed_ = false;
    Clock::time_point now_;
};

}  // namespace kelp
