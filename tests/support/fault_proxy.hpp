// FaultProxy: a TCP proxy on loopback between kelp and a test broker, for
// fault tests. It forwards bytes both ways until told to misbehave: cut()
// closes every connection through it (a dropped link), refuse() closes new
// connections as soon as they are accepted (a server restarting), freeze()
// forwards nothing and closes nothing (a hung peer, found only by
// heartbeats or timeouts).
//
// Thread rules: the proxy runs on a thread of its own; its public functions
// may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace kelp_test {

class FaultProxy {
  public:
    // Listens on an ephemeral loopback port and forwards to 127.0.0.1:target.
    // Throws std::runtime_error when the listening socket cannot be made.
    explicit FaultProxy(std::uint16_t target);
    ~FaultProxy();
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    // Where clients connect.
    std::uint16_t port() const { return port_; }
    // Closes every connection through the proxy.
    void cut();
    // While refusing, a new connection is closed as soon as it is accepted.
    void refuse(bool on) { refusing_ = on; }
    // While frozen, nothing is forwarded and nothing closed.
    void freeze(bool on);

  private:
    void poke();
    void run();
    void close_all();
    void accept_one();

    std::uint16_t target_;
    std::uint16_t port_ = 0;
    int listener_ = -1;
    int wake_[2] = {-1, -1};
    std::vector<std::pair<int, int>> pairs_;  // (client, server); proxy thread only
    std::atomic<bool> stopping_{false};
    std::atomic<bool> cut_{false};
    std::atomic<bool> refusing_{false};
    std::atomic<bool> frozen_{false};
    std::thread thread_;
};

}  // namespace kelp_test
