#include "kelp/envelope_pool.hpp"

#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

namespace kelp::detail {
namespace {

// A slot whose body grew beyond this is freed: keeping it would pin a large
// buffer for a message that may never come again. With the limits below, the
// pool holds at most about 400 KB per thread and 3 MB in the depot.
constexpr std::size_t max_kept_body = 1024;
// Slots one thread keeps; past that, half of them go to the depot.
constexpr std::size_t thread_cache_size = 256;
// Batches (of thread_cache_size / 2) the depot keeps; past that, a spilled
// batch is freed.
constexpr std::size_t depot_batches = 16;
// Room for shared_ptr's control block: a vtable pointer, the two counts, the
// envelope pointer and the allocator's slot pointer (32 bytes with
// libstdc++); checked where it is used.
constexpr std::size_t control_size = 32;

// The control block first: with the body, headers and content type it makes
// the two cache lines a consumer reads of a message it did not publish.
struct Slot {
    alignas(std::max_align_t) std::byte control[control_size];
    Envelope envelope;
};

void recycle(Slot* slot) noexcept;

// Gives shared_ptr the slot's own storage for its control block, and takes
// the slot back when shared_ptr returns that storage, which is the last
// thing it does once the message's last reference is gone.
template <class T>
struct SlotAllocator {
    using value_type = T;

    explicit SlotAllocator(Slot* s) noexcept : slot(s) {}
    template <class U>
    SlotAllocator(const SlotAllocator<U>& other) noexcept : slot(other.slot) {}

    T* allocate(std::size_t n) {
        static_assert(sizeof(T) <= control_size && alignof(T) <= alignof(std::max_align_t),
                      "shared_ptr's control block does not fit Slot::control");
        if (n != 1) throw std::bad_alloc();
        return reinterpret_cast<T*>(slot->control);
    }
    void deallocate(T*, std::size_t) noexcept { recycle(slot); }

    template <class U>
    bool operator==(const SlotAllocator<U>& other) const noexcept {
        return slot == other.slot;
    }

    Slot* slot;
};

// The envelope stays in its slot, which SlotAllocator recycles.
struct KeepInSlot {
    void operator()(Envelope*) const noexcept {}
};

class Depot {
  public:
    // Moves a batch into `out` (empty, capacity kept); false if there is none.
    bool take(std::vector<Slot*>& out) {
        std::vector<Slot*> batch;
        {
            std::lock_guard lock(mutex_);
            if (batches_.empty()) return false;
            batch = std::move(batches_.back());
            batches_.pop_back();
        }
        out.assign(batch.begin(), batch.end());
        return true;
    }
    // False when the depot is full: the caller frees the batch.
    bool keep(std::vector<Slot*>&& batch) {
        std::lock_guard lock(mutex_);
        if (batches_.size() >= depot_batches) return false;
        batches_.push_back(std::move(batch));
        return true;
    }

  private:
    std::mutex mutex_;
    std::vector<std::vector<Slot*>> batches_;
};

Depot& depot() {
    // Never destroyed: an envelope may be released during static destruction
    // (a message still queued in a broker, say).
    static Depot* const instance = new Depot;
    return *instance;
}

struct ThreadCache {
    ThreadCache() { slots.reserve(thread_cache_size); }
    ~ThreadCache();
    std::vector<Slot*> slots;
};

thread_local ThreadCache cache;
// Trivially destructible, so it can still be read after ~ThreadCache ran (a
// release from another thread_local's destructor, or during exit).
thread_local bool cache_closed = false;

ThreadCache::~ThreadCache() {
    cache_closed = true;
    for (Slot* slot : slots)
        delete slot;
}

// Hands half of a full cache to the depot.
void spill(std::vector<Slot*>& slots) noexcept {
    const std::size_t half = slots.size() / 2;
    try {
        std::vector<Slot*> batch(slots.end() - static_cast<std::ptrdiff_t>(half), slots.end());
        slots.resize(slots.size() - half);
        if (!depot().keep(std::move(batch))) {
            for (Slot* slot : batch)
                delete slot;
        }
    } catch (const std::bad_alloc&) {
        // The cache stays full; the slot being released is freed instead.
    }
}

Slot* acquire() {
    if (!cache_closed) {
        std::vector<Slot*>& slots = cache.slots;
        if (slots.empty()) depot().take(slots);
        if (!slots.empty()) {
            Slot* slot = slots.back();
            slots.pop_back();
            return slot;
        }
    }
    return new Slot;
}

void recycle(Slot* slot) noexcept {
    Envelope& envelope = slot->envelope;
    if (cache_closed || envelope.body.capacity() > max_kept_body) {
        delete slot;
        return;
    }
    // The body and the properties stay as they are (the next user assigns
    // every field, into the capacity they kept); headers may be a whole
    // tree, freed now rather than when the slot is reused.
    if (!envelope.headers.is_null()) envelope.headers = nullptr;
    std::vector<Slot*>& slots = cache.slots;
    if (slots.size() >= thread_cache_size) spill(slots);
    if (slots.size() < slots.capacity()) {
        slots.push_back(slot);
    } else {
        delete slot;
    }
}

}  // namespace

std::shared_ptr<Envelope> pooled_envelope() {
    Slot* slot = acquire();
    return std::shared_ptr<Envelope>(&slot->envelope, KeepInSlot{}, SlotAllocator<Envelope>(slot));
}

}  // namespace kelp::detail
