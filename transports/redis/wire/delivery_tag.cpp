// uuid4 delivery tags from a per-thread splitmix64 generator.
#include "wire/delivery_tag.hpp"

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <random>

namespace kelp::redis {
namespace {

// Bumped in a forked child: each thread's generator compares it with the
// generation it was seeded in, so a child never replays its parent's tags.
std::atomic<std::uint64_t> fork_generation{0};

void on_fork_child() {
    fork_generation.fetch_add(1, std::memory_order_relaxed);
}

void install_fork_hook() {
    [[maybe_unused]] static const bool installed =
        pthread_atfork(nullptr, nullptr, on_fork_child) == 0;
}

// splitmix64: a Weyl sequence through a bijective mixer, so one thread's
// outputs never repeat within 2^64 draws; threads start at random points.
class TagGenerator {
  public:
    std::uint64_t next() {
        if (generation_ != fork_generation.load(std::memory_order_relaxed)) reseed();
        state_ += 0x9E3779B97F4A7C15ULL;
        std::uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }

  private:
    void reseed() {
        install_fork_hook();
        std::random_device device;
        state_ = (std::uint64_t{device()} << 32) ^ std::uint64_t{device()};
        generation_ = fork_generation.load(std::memory_order_relaxed);
    }

    std::uint64_t state_ = 0;
    std::uint64_t generation_ = ~std::uint64_t{0};  // never a real generation: seed at first use
};

void put_hex(char* out, std::uint64_t bits, int digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; --i) {
        out[i] = kHex[bits & 0xF];
        bits >>= 4;
    }
}

}  // namespace

std::string new_delivery_tag() {
    thread_local TagGenerator generator;
    std::uint64_t high = generator.next();
    std::uint64_t low = generator.next();
    // RFC 4122: version 4 in the top nibble of octet 6, variant 10 in octet 8.
    high = (high & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;
    low = (low & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;

    std::string tag(36, '-');
    put_hex(&tag[0], high >> 32, 8);
    put_hex(&tag[9], (high >> 16) & 0xFFFF, 4);
    put_hex(&tag[14], high & 0xFFFF, 4);
    put_hex(&tag[19], low >> 48, 4);
    put_hex(&tag[24], low & 0xFFFFFFFFFFFFULL, 12);
    return tag;
}

}  // namespace kelp::redis
