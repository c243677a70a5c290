// (a) Ping-pong harness, shared by kelp's code in pingpong.cpp and the
// anchors' code in anchor_*.cpp: every implementation drives the same Game.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace kelp_bench {

struct Pipes {
    FdPair a;  // seeded; its reader forwards to b
    FdPair b;  // its reader counts and answers on a
};

struct Game {
    const Pipes* pipes;
    long rounds;
    long count = 0;
};

// Both callbacks of every implementation go through these two, so the
// per-library code is only the registration and the stop call.
inline void on_a(const Game& game) {
    read_byte(game.pipes->a.read_end);
    write_byte(game.pipes->b.write_end);
}

// Returns false when the game is over and the loop should stop.
inline bool on_b(Game& game) {
    read_byte(game.pipes->b.read_end);
    if (++game.count < game.rounds) {
        write_byte(game.pipes->a.write_end);
        return true;
    }
    return false;
}

inline void check_game(const char* impl, const Game& game) {
    KB_CHECK(game.count == game.rounds, "pingpong %s: %ld round trips counted, %ld expected", impl,
             game.count, game.rounds);
    KB_CHECK(fd_is_empty(game.pipes->a.read_end) && fd_is_empty(game.pipes->b.read_end),
             "pingpong %s: bytes left in the pipes", impl);
}

// One slice of `rounds` round trips on a fresh epoll loop: returns the time
// from the seed write until the last round trip, after checking the counts.
Elapsed libuv_pingpong(const Pipes& pipes, long rounds);
Elapsed libev_pingpong(const Pipes& pipes, long rounds);
Elapsed libevent_pingpong(const Pipes& pipes, long rounds);

}  // namespace kelp_bench
