// Helpers for the redis:// transport tests: where the test server is (set by
// ctest from tests/support), URLs with a key prefix of their own per test (so
// tests running beside the conformance suite never share an unacked hash),
// and a raw RESP client to look at Redis the way Kombu would.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include <kelp/kelp.hpp>

#include "client.hpp"

namespace redis_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// $KELP_TEST_REDIS_PORT, $KELP_TEST_REDIS_DIR (the server's files: redis.sock,
// ca.crt, ...). A test run without them fails: the fixture sets them.
std::uint16_t port();
const std::string& server_dir();
// $KELP_TEST_REDIS_SCRATCH: where a test that runs a redis-server of its own
// (one it stops and restarts) keeps that server's files.
const std::string& scratch_dir();

// "kt-<stem>-<random hex>".
std::string unique(std::string_view stem);

// redis://127.0.0.1:<port>/<db>?global_keyprefix=<prefix>[&<query>].
std::string url(const std::string& prefix, std::string_view query = {}, int db = 0);

// A raw connection to the test server (db 0 unless given).
std::unique_ptr<kelp::redis::RespClient> raw(int db = 0);
// One command on `client`, waiting at most 5 s.
kelp::redis::Reply command(kelp::redis::RespClient& client,
                           std::initializer_list<std::string_view> args);
// The reply as text, integer, or list of texts.
std::string text(const kelp::redis::Reply& reply);
std::int64_t integer(const kelp::redis::Reply& reply);
std::vector<std::string> texts(const kelp::redis::Reply& reply);

// Kombu's envelope for a body, as a Kombu 5.2.4 publisher writes it.
std::string kombu_envelope(std::string_view body, std::string_view exchange,
                           std::string_view routing_key, int priority = 0,
                           std::string_view tag = {});

// Runs the connection's Hub until done() or the budget passes.
bool drain_until(kelp::Connection& conn, const std::function<bool()>& done,
                 Clock::duration budget = 10s);
// Polls `done` (a Redis check) every few ms until it holds or the budget passes.
bool eventually(const std::function<bool()>& done, Clock::duration budget = 5s);

}  // namespace redis_test
