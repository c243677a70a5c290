// The anchors: Python Kombu's Redis transport (kombu_redis.py in a
// subprocess) and redis-benchmark on the same server. Kombu being absent is
// reported, not fatal; Kombu running and miscounting is fatal, like any other
// miscount. redis-benchmark is part of redis-tools, which run.sh's server
// comes with: its absence is fatal.

#include <hiredis/hiredis.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp_bench {

namespace {

// The "rps" column of redis-benchmark --csv for `test`; 0 when absent.
double csv_rate(const std::string& text, const std::string& test) {
    std::istringstream lines(text);
    std::string line;
    const std::string prefix = "\"" + test + "\",\"";
    while (std::getline(lines, line)) {
        if (line.rfind(prefix, 0) != 0) continue;
        return std::stod(line.substr(prefix.size()));
    }
    return 0;
}

struct ContextDeleter {
    void operator()(redisContext* context) const { redisFree(context); }
};

// Reads one reply; a missing or error reply fails the run.
void expect_reply(redisContext* context, const char* what) {
    void* raw = nullptr;
    if (redisGetReply(context, &raw) != REDIS_OK || raw == nullptr) {
        fail(std::string("hiredis anchor: ") + what + ": " + context->errstr);
    }
    auto* reply = static_cast<redisReply*>(raw);
    const bool error = reply->type == REDIS_REPLY_ERROR;
    const std::string text = error ? std::string(reply->str, reply->len) : std::string();
    freeReplyObject(reply);
    if (error) fail(std::string("hiredis anchor: ") + what + ": " + text);
}

}  // namespace

Run hiredis_lpush_one_write_each(const Options& options, const std::string& queue,
                                 std::uint64_t count, std::size_t value_size) {
    std::unique_ptr<redisContext, ContextDeleter> context(
        redisConnect(options.host.c_str(), options.port));
    if (!context || context->err) {
        fail("hiredis anchor: cannot connect to " + options.url() + ": " +
             (context ? context->errstr : "out of memory"));
    }
    const std::string value(value_size, 'v');
    constexpr std::uint64_t read_every = 1024;
    std::uint64_t unread = 0;

    const std::int64_t wall0 = wall_ns();
    const std::int64_t cpu0 = process_cpu_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
        redisAppendCommand(context.get(), "LPUSH %b %b", queue.data(), queue.size(), value.data(),
                           value.size());
        int done = 0;
        while (!done) {
            if (redisBufferWrite(context.get(), &done) != REDIS_OK) {
                fail(std::string("hiredis anchor: write failed: ") + context->errstr);
            }
        }
        if (++unread == read_every) {
            for (; unread > 0; --unread)
                expect_reply(context.get(), "LPUSH");
        }
    }
    for (; unread > 0; --unread)
        expect_reply(context.get(), "LPUSH");
    const Run run{count, wall_ns() - wall0, process_cpu_ns() - cpu0};

    redisReply* length = static_cast<redisReply*>(
        redisCommand(context.get(), "LLEN %b", queue.data(), queue.size()));
    const bool complete = length != nullptr && length->type == REDIS_REPLY_INTEGER &&
                          static_cast<std::uint64_t>(length->integer) == count;
    if (length != nullptr) freeReplyObject(length);
    if (!complete)
        fail("hiredis anchor: the list does not hold its " + std::to_string(count) + " values");
    freeReplyObject(redisCommand(context.get(), "DEL %b", queue.data(), queue.size()));
    return run;
}

KombuRun kombu_run(const Options& options, const char* step, const std::string& queue) {
    KombuRun result;
    const std::string python = options.python.empty() ? default_python() : options.python;
    const std::string script =
        options.kombu_script.empty() ? KELP_BENCH_KOMBU_SCRIPT : options.kombu_script;

    // Asked first, so a missing Kombu reads as "not installed", not as a
    // failed run.
    const Output probe = run_capturing({python, "-c", "import kombu, redis"});
    if (probe.status != 0) {
        result.why_not =
            probe.spawn_error.empty()
                ? python +
                      " cannot import kombu and redis (apt install python3-kombu python3-redis)"
                : probe.spawn_error;
        return result;
    }

    const Output out =
        run_capturing({python, script, "--url", options.url(), "--queue", queue, "--step", step,
                       "--messages", std::to_string(options.kombu_messages)});
    if (!out.spawn_error.empty()) fail("Kombu anchor: " + out.spawn_error);
    if (out.status != 0) {
        fail("Kombu anchor (" + script + " --step " + step + ") exited with status " +
             std::to_string(out.status) + "; see its messages above");
    }
    const auto at = out.stdout_text.find("kombu_result ");
    if (at == std::string::npos) fail("Kombu anchor printed no result line: " + out.stdout_text);
    const std::string line = out.stdout_text.substr(at, out.stdout_text.find('\n', at) - at);
    const std::string messages = field(line, "messages");
    const std::string wall = field(line, "wall_ns");
    const std::string cpu = field(line, "cpu_ns");
    if (messages.empty() || wall.empty() || cpu.empty()) fail("Kombu anchor: bad line: " + line);
    if (std::stoull(messages) != options.kombu_messages) {
        fail("Kombu anchor counted " + messages + " messages, not " +
             std::to_string(options.kombu_messages));
    }
    result.available = true;
    result.version = "kombu " + field(line, "kombu") + ", Python " + field(line, "python");
    result.run = Run{options.kombu_messages, std::stoll(wall), std::stoll(cpu)};
    return result;
}

Ceiling redis_benchmark(const Options& options, const char* test, std::uint64_t requests,
                        int clients, int pipeline, std::size_t value_size) {
    const std::vector<std::string> argv{options.redis_benchmark,
                                        "-h",
                                        options.host,
                                        "-p",
                                        std::to_string(options.port),
                                        "-t",
                                        test,
                                        "-n",
                                        std::to_string(requests),
                                        "-c",
                                        std::to_string(clients),
                                        "-P",
                                        std::to_string(pipeline),
                                        "-d",
                                        std::to_string(value_size),
                                        "--csv"};
    Ceiling ceiling;
    for (std::size_t i = 1; i < argv.size(); ++i)
        ceiling.command_line += (i > 1 ? " " : "") + argv[i];
    ceiling.command_line = "redis-benchmark " + ceiling.command_line;
    const std::int64_t wall0 = wall_ns();
    const Output out = run_capturing(argv);
    const std::int64_t wall = wall_ns() - wall0;
    if (!out.spawn_error.empty()) fail("redis-benchmark: " + out.spawn_error);
    if (out.status != 0) {
        fail(ceiling.command_line + " exited with status " + std::to_string(out.status));
    }
    std::string name = test;
    for (char& c : name)
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    const double rate = csv_rate(out.stdout_text, name);
    if (rate <= 0) fail(ceiling.command_line + " printed no rate: " + out.stdout_text);
    // Its own rate (requests over its own timing), as a Run of that length;
    // the process's wall time includes start-up and is only a sanity bound.
    ceiling.run = Run{requests, static_cast<std::int64_t>(1e9 * double(requests) / rate), 0};
    if (ceiling.run.wall_ns > wall) {
        fail(ceiling.command_line + " reported " + std::to_string(rate) +
             " requests/s: more time than its whole process took");
    }
    return ceiling;
}

}  // namespace kelp_bench
