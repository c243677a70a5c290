// The Hub's timers: scheduling, cancelling, and the heap that orders them.
//
// The heap is 4-ary (half the depth of a binary heap, so a pop moves half as
// many entries) over 16-byte entries {deadline, slot}. Ties on the deadline
// go to the slot's sequence number, so equal deadlines fire in scheduling
// order. Cancelling is lazy and O(1): the slot is marked `cancelled_timer`
// (and in `cancelled_bits_`), its callback destroyed at once, and the entry
// dropped when it reaches the top, or by a compaction once cancelled entries
// make up more than three quarters of the heap.
#include <algorithm>
#include <bit>
#include <cstdlib>
#include <new>
#include <type_traits>

#include "kelp/errors.hpp"
#include "kelp/hub.hpp"

namespace kelp {
namespace {

constexpr std::size_t heap_arity = 4;
// Compaction runs once cancelled entries are over compact_floor and over
// three quarters of the heap: each pass then drops at least three entries
// for every live one it keeps (and re-heapifies), which keeps its cost per
// cancel low, while the heap holds at most four entries per live timer.
// (At one half, cancelling a million timers cost about 25 % more.)
constexpr std::size_t compact_floor = 1024;

}  // namespace

// --- storage -------------------------------------------------------------------

Hub::TimerArray::~TimerArray() {
    std::free(entries_);
}

void Hub::TimerArray::push_back(const TimerEntry& entry) {
    static_assert(std::is_trivially_copyable_v<TimerEntry>, "the array is grown with realloc");
    if (size_ == capacity_) {
        const std::size_t capacity = capacity_ == 0 ? 64 : capacity_ * 2;
        void* grown = std::realloc(entries_, capacity * sizeof(TimerEntry));
        if (grown == nullptr) throw std::bad_alloc();
        entries_ = static_cast<TimerEntry*>(grown);
        capacity_ = capacity;
    }
    entries_[size_++] = entry;
}

// --- heap order ------------------------------------------------------------------

bool Hub::timer_before(const TimerEntry& a, const TimerEntry& b) const {
    if (a.deadline != b.deadline) return a.deadline < b.deadline;
    // Every slot in the heap keeps its sequence until its entry leaves.
    return slot_at(a.slot).sequence < slot_at(b.slot).sequence;
}

void Hub::sift_down(std::size_t hole, TimerEntry entry) {
    const std::size_t size = timers_.size();
    for (;;) {
        const std::size_t first = hole * heap_arity + 1;
        if (first >= size) break;
        const std::size_t end = std::min(first + heap_arity, size);
        std::size_t best = first;
        for (std::size_t child = first + 1; child < end; ++child) {
            if (timer_before(timers_[child], timers_[best])) best = child;
        }
        if (!timer_before(timers_[best], entry)) break;
        timers_[hole] = timers_[best];
        hole = best;
    }
    timers_[hole] = entry;
}

void Hub::push_timer(std::int64_t deadline, std::uint32_t slot) {
    slot_at(slot).sequence = timer_sequence_++;
    const TimerEntry entry{deadline, slot};
    // Append, then move the hole up to where the entry belongs.
    timers_.push_back(entry);
    std::size_t hole = timers_.size() - 1;
    while (hole > 0) {
        const std::size_t parent = (hole - 1) / heap_arity;
        if (!timer_before(entry, timers_[parent])) break;
        timers_[hole] = timers_[parent];
        hole = parent;
    }
    timers_[hole] = entry;
}

void Hub::pop_timer() {
    const TimerEntry last = timers_[timers_.size() - 1];
    timers_.truncate(timers_.size() - 1);
    if (!timers_.empty()) sift_down(0, last);
}

// --- cancelled entries -------------------------------------------------------------

void Hub::cancel_timer(std::uint32_t index) {
    --live_timers_;
    if (index == firing_slot_) {
        // A repeating timer cancelling itself from its callback: it is out of
        // the heap while it runs, so nothing points at the slot.
        release_slot(index);
        return;
    }
    Slot& slot = slot_at(index);
    if (slot.kind == SlotKind::repeating) intervals_.erase(index);
    ++slot.generation;
    slot.kind = SlotKind::cancelled_timer;
    const std::size_t word = index / 64;
    if (word >= cancelled_bits_.size()) {
        cancelled_bits_.resize(slot_blocks_.size() * (slot_block_size / 64));
    }
    cancelled_bits_[word] |= std::uint64_t{1} << (index % 64);
    ++dead_timers_;
    // Whatever the callback holds is let go now, not when the entry surfaces.
    // Swapped out first: its destructor may call back into the Hub.
    Callback doomed;
    doomed.swap(slot.callback);
    if (dead_timers_ > compact_floor && dead_timers_ * 4 > timers_.size() * 3) compact_timers();
}

void Hub::drop_cancelled(std::uint32_t slot) {
    cancelled_bits_[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
    --dead_timers_;
    free_cancelled_slot(slot);
}

// release_slot for a slot cancel_timer already emptied: its generation is
// bumped and its callback gone, only the free list is left to join.
void Hub::free_cancelled_slot(std::uint32_t index) {
    Slot& slot = slot_at(index);
    slot.kind = SlotKind::free;
    slot.next_free = free_head_;
    free_head_ = index;
}

void Hub::compact_timers() {
    const auto cancelled = [this](std::uint32_t slot) {
        return (cancelled_bits_[slot / 64] >> (slot % 64) & 1) != 0;
    };
    std::size_t kept = 0;
    for (std::size_t i = 0; i < timers_.size(); ++i) {
        if (!cancelled(timers_[i].slot)) timers_[kept++] = timers_[i];
    }
    timers_.truncate(kept);
    for (std::size_t word = 0; word < cancelled_bits_.size(); ++word) {
        for (std::uint64_t bits = cancelled_bits_[word]; bits != 0; bits &= bits - 1) {
            free_cancelled_slot(static_cast<std::uint32_t>(word * 64 + std::countr_zero(bits)));
        }
        cancelled_bits_[word] = 0;
    }
    // Restore heap order bottom-up, from the last entry that has children.
    if (kept > 1) {
        for (std::size_t i = (kept - 2) / heap_arity + 1; i-- > 0;)
            sift_down(i, timers_[i]);
    }
    dead_timers_ = 0;
}

void Hub::drop_cancelled_top() {
    while (!timers_.empty() && slot_at(timers_[0].slot).kind == SlotKind::cancelled_timer) {
        const std::uint32_t slot = timers_[0].slot;
        pop_timer();
        drop_cancelled(slot);
    }
}

// --- scheduling --------------------------------------------------------------------

Handle Hub::schedule_timer(Clock::time_point when, Clock::duration interval, Callback&& callback) {
    const bool repeats = interval > Clock::duration::zero();
    const std::uint32_t index =
        acquire_slot(repeats ? SlotKind::repeating : SlotKind::timer, std::move(callback));
    try {
        if (repeats) intervals_.emplace(index, interval);
        push_timer(when.time_since_epoch().count(), index);
    } catch (...) {
        release_slot(index);  // out of memory: leave no half-scheduled timer
        throw;
    }
    ++live_timers_;
    return Handle{this, index, slot_at(index).generation};
}

Handle Hub::call_later(Clock::duration delay, Callback callback) {
    return schedule_timer(Clock::now() + delay, Clock::duration::zero(), std::move(callback));
}

Handle Hub::call_at(Clock::time_point when, Callback callback) {
    return schedule_timer(when, Clock::duration::zero(), std::move(callback));
}

Handle Hub::call_repeatedly(Clock::duration interval, Callback callback) {
    if (interval <= Clock::duration::zero()) {
        throw HubError("kelp::Hub::call_repeatedly: the interval must be positive");
    }
    return schedule_timer(Clock::now() + interval, interval, std::move(callback));
}

}  // namespace kelp
