// The Hub on its own: a repeating timer, a one-shot timer, a reader on a pipe,
// and a stop. Runs in well under a second.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <kelp/hub.hpp>

using namespace std::chrono_literals;

int main() {
    kelp::Hub hub;  // best poller for this platform, or $KELP_POLLER
    std::printf("poller: %.*s\n", static_cast<int>(hub.poller_name().size()),
                hub.poller_name().data());

    int ticks = 0;
    kelp::Handle heartbeat = hub.call_repeatedly(20ms, [&] { std::printf("tick %d\n", ++ticks); });

    int fds[2];
    if (::pipe(fds) != 0) return 1;
    hub.add_reader(fds[0], [&] {
        char byte = 0;
        if (::read(fds[0], &byte, 1) == 1) std::printf("read '%c' from the pipe\n", byte);
        hub.remove_reader(fds[0]);
    });
    hub.call_later(50ms, [&] { (void)!::write(fds[1], "k", 1); });

    hub.call_later(110ms, [&] {
        heartbeat.cancel();
        hub.stop();
    });
    hub.run_forever();
    ::close(fds[0]);
    ::close(fds[1]);
    std::printf("stopped after %d ticks\n", ticks);
    return ticks >= 4 ? 0 : 1;
}
