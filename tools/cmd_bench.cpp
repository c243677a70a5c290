// kelp bench: publish N messages, then consume and ack them all, printing the
// rate of each phase and checking that every message came back exactly once.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

constexpr auto progress_interval = std::chrono::milliseconds(500);
// How often the publish loop looks at the clock, the Hub and Ctrl-C; a
// power of two so the check is a mask.
constexpr std::uint64_t check_every = 256;

// The live progress line on stderr: rewritten in place on a terminal, one
// line per update otherwise (so logs stay readable).
class Progress {
  public:
    Progress(bool enabled, std::string_view phase, std::uint64_t total)
        : enabled_(enabled), tty_(is_tty(STDERR_FILENO)), phase_(phase), total_(total) {}

    void update(Clock::time_point now, std::uint64_t done) {
        if (!enabled_ || now - last_ < progress_interval) return;
        const double seconds = Seconds(now - last_).count();
        const auto rate = static_cast<std::uint64_t>(static_cast<double>(done - last_done_) /
                                                     std::max(seconds, 1e-9));
        last_ = now;
        last_done_ = done;
        const double percent = 100.0 * static_cast<double>(done) / static_cast<double>(total_);
        std::string line =
            fmt::format("{}: {}/{} ({:.0f}%)  {} msg/s", phase_, with_thousands(done),
                        with_thousands(total_), percent, with_thousands(rate));
        if (tty_) {
            // Padding rubs out the tail of a longer previous line.
            line.resize(std::max<std::size_t>(line.size(), 72), ' ');
            fmt::print(stderr, "\r{}", line);
        } else {
            fmt::print(stderr, "{}\n", line);
        }
        printed_ = true;
    }

    void finish() {
        if (enabled_ && tty_ && printed_) fmt::print(stderr, "\r{:72}\r", "");
    }

  private:
    bool enabled_;
    bool tty_;
    std::string phase_;
    std::uint64_t total_;
    Clock::time_point last_ = Clock::now();
    std::uint64_t last_done_ = 0;
    bool printed_ = false;
};

// Bodies start with "kelp-bench RUN SEQ " so the consumer can tell each
// message apart (doubles) and from strays of another run (foreign).
std::string_view body_prefix(char* buffer, std::size_t size, std::string_view run,
                             std::uint64_t sequence) {
    const auto result = fmt::format_to_n(buffer, size, "kelp-bench {} {} ", run, sequence);
    return {buffer, result.size};
}

std::optional<std::uint64_t> sequence_of(std::string_view body, std::string_view run) {
    constexpr std::string_view tag = "kelp-bench ";
    if (body.substr(0, tag.size()) != tag) return std::nullopt;
    body.remove_prefix(tag.size());
    if (body.substr(0, run.size()) != run || body.size() <= run.size() || body[run.size()] != ' ') {
        return std::nullopt;
    }
    body.remove_prefix(run.size() + 1);
    std::uint64_t sequence = 0;
    const auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), sequence);
    if (ec != std::errc{} || end == body.data() || end == body.data() + body.size() ||
        *end != ' ') {
        return std::nullopt;
    }
    return sequence;
}

std::string rate_line(std::string_view phase, std::uint64_t count, Seconds took) {
    const double seconds = std::max(took.count(), 1e-9);
    return fmt::format(
        "{:<9}{:>12} in {:.3f} s = {:>12} msg/s", std::string(phase) + ":", with_thousands(count),
        took.count(),
        with_thousands(static_cast<std::uint64_t>(static_cast<double>(count) / seconds)));
}

std::string make_run_id() {
    std::random_device random;
    return fmt::format("{:08x}", random());
}

}  // namespace

ArgParser bench_parser() {
    ArgParser parser{
        "bench", "URL [options]",
        "Measure a transport: publish N messages to a queue (live rate on stderr), then\n"
        "consume and ack them one by one, print both rates, and check that every\n"
        "message arrived exactly once. The queue is purged before the run and deleted\n"
        "after it: never point --queue at a queue that holds messages you need.\n"
        "memory:// works too: publisher and consumer share this process."};
    parser.positional("URL", "broker URL: memory://name, redis://host:6379/0, amqp://...")
        .option("messages", "N", "messages to send (default 100000)")
        .option("size", "BYTES",
                "body size (default 100; 1KiB, 1MB allowed); bodies are at\nleast as long as "
                "their 'kelp-bench RUN SEQ ' tag")
        .option("prefetch", "N", "consumer prefetch, 0 for no limit (default 1000)")
        .option("queue", "Q", "the queue to use (default kelp.bench)")
        .option("timeout", "SECONDS",
                "give up consuming after this long without a message\n(default 30)")
        .flag("persistent",
              "a durable queue and delivery mode 2 (default: non-durable\nqueue, transient "
              "messages)")
        .flag("quiet", "no progress line", 'q')
        .epilog(
            "exit: 0 when every message came back once; 4 when any was lost, doubled or\n"
            "foreign; 1 on a broker error; 130 on Ctrl-C.\n\n"
            "examples:\n"
            "  kelp bench memory://\n"
            "  kelp bench redis://localhost:6379/0 --messages 50000 --size 1KiB");
    return parser;
}

int run_bench(const Args& args) {
    const std::string url = args.positional("URL");
    const auto total =
        static_cast<std::uint64_t>(args.integer_or("messages", 100'000, 1, 100'000'000));
    const std::uint64_t size = args.size_or("size", 100, 1, std::uint64_t{64} << 20);
    const auto prefetch = static_cast<std::uint32_t>(args.integer_or("prefetch", 1000, 0, 65535));
    const std::string queue_name = args.value_or("queue", "kelp.bench");
    if (queue_name.empty()) throw UsageError("--queue needs a non-empty name");
    const auto idle_limit = args.duration("timeout").value_or(std::chrono::seconds(30));
    const bool quiet = args.has("quiet");

    kelp::Hub hub;  // outlives the connection registered with it
    kelp::Connection conn{url};
    conn.register_with_event_loop(hub);
    interrupts::install();
    std::exception_ptr failure;
    hub.set_error_handler([&](std::exception_ptr error) {
        if (!failure) failure = error;
        hub.stop();
    });
    bool interrupted = false;
    StopOnInterrupt stop_on_interrupt{hub, interrupted};

    kelp::QueueOptions queue_options;
    queue_options.durable = args.has("persistent");
    const kelp::Queue queue{queue_name, queue_options};
    conn.default_channel().queue_declare(queue);
    if (const auto stale = conn.default_channel().queue_purge(queue_name); stale != 0) {
        fmt::print(stderr, "kelp bench: purged {} old message{} from '{}'\n", stale,
                   stale == 1 ? "" : "s", queue_name);
    }

    const std::string run = make_run_id();
    fmt::print("kelp bench {}: {} messages of {} bytes, prefetch {}, queue '{}'\n",
               conn.url().redacted(), with_thousands(total), size,
               prefetch == 0 ? std::string("unlimited") : std::to_string(prefetch), queue_name);
    std::fflush(stdout);

    // --- publish ---------------------------------------------------------------
    kelp::ProducerOptions producer_options;
    producer_options.routing_key = queue_name;
    producer_options.delivery_mode =
        args.has("persistent") ? kelp::DeliveryMode::persistent : kelp::DeliveryMode::transient;
    kelp::Producer producer{conn, std::move(producer_options)};
    const kelp::PublishOptions publish_options;

    std::string body(size, '.');
    char prefix_buffer[64];
    Progress publish_progress{!quiet, "publish", total};
    std::uint64_t published = 0;
    const auto publish_start = Clock::now();
    for (; published < total; ++published) {
        if (published % check_every == 0) {
            // Also lets network transports read replies and heartbeats
            // between publishes instead of only at the end.
            hub.run_once(Clock::duration::zero());
            if (interrupted || interrupts::requested() || failure) break;
            publish_progress.update(Clock::now(), published);
        }
        const std::string_view prefix =
            body_prefix(prefix_buffer, sizeof prefix_buffer, run, published);
        if (prefix.size() <= body.size()) {
            std::memcpy(body.data(), prefix.data(), prefix.size());
            producer.publish_bytes(body, publish_options);
        } else {
            producer.publish_bytes(prefix, publish_options);
        }
    }
    const Seconds publish_took = Clock::now() - publish_start;
    publish_progress.finish();
    if (failure) std::rethrow_exception(failure);
    if (interrupted || interrupts::requested()) {
        fmt::print("{}\ninterrupted while publishing\n",
                   rate_line("publish", published, publish_took));
        return exit_interrupted;
    }
    fmt::print("{}\n", rate_line("publish", published, publish_took));
    std::fflush(stdout);

    // --- consume -----------------------------------------------------------------
    std::vector<std::uint8_t> seen(total, 0);
    std::uint64_t unique = 0;
    std::uint64_t doubled = 0;
    std::uint64_t foreign = 0;
    std::uint64_t received = 0;

    kelp::ConsumerOptions consumer_options;
    consumer_options.prefetch_count = prefetch;
    consumer_options.auto_declare = false;
    consumer_options.tag_prefix = "kelp-bench";
    auto on_message = [&](kelp::Message& message) {
        ++received;
        const auto sequence = sequence_of(message.body(), run);
        if (!sequence || *sequence >= total) {
            ++foreign;
        } else if (seen[*sequence] != 0) {
            ++doubled;
        } else {
            seen[*sequence] = 1;
            ++unique;
        }
        message.ack();
        if (unique == total) hub.stop();
    };
    // A message the consumer cannot decode is still a message of the run.
    consumer_options.on_decode_error = [&](kelp::Message& message, std::exception_ptr) {
        on_message(message);
    };
    kelp::Consumer consumer{conn, {queue}, on_message, std::move(consumer_options)};

    Progress consume_progress{!quiet, "consume", total};
    bool stalled = false;
    std::uint64_t received_at_last_tick = 0;
    auto last_change = Clock::now();
    kelp::Handle ticker = hub.call_repeatedly(progress_interval / 5, [&] {
        const auto now = Clock::now();
        consume_progress.update(now, unique);
        if (received != received_at_last_tick) {
            received_at_last_tick = received;
            last_change = now;
        } else if (now - last_change >= idle_limit) {
            stalled = true;
            hub.stop();
        }
    });
    const auto consume_start = Clock::now();
    consumer.consume();
    hub.run_forever();
    const Seconds consume_took = Clock::now() - consume_start;
    ticker.cancel();
    consume_progress.finish();
    if (failure) std::rethrow_exception(failure);

    // A clean run leaves the queue empty; anything still there (after the
    // channel hands back what it held) was delivered twice or never came.
    consumer.cancel();
    consumer.channel().close();
    kelp::Channel& channel = conn.default_channel();
    const std::uint64_t left = channel.queue_declare(queue, /*passive=*/true).message_count;
    channel.queue_delete(queue_name);
    conn.close();

    fmt::print("{}\n", rate_line("consume", unique, consume_took));
    const std::uint64_t missing = total - unique;
    if (interrupted) {
        fmt::print("interrupted while consuming: {} of {} received\n", with_thousands(unique),
                   with_thousands(total));
        return exit_interrupted;
    }
    if (missing == 0 && doubled == 0 && foreign == 0 && left == 0) {
        fmt::print("check:   OK, all {} messages received exactly once\n", with_thousands(total));
        return exit_ok;
    }
    fmt::print(
        "check:   FAILED: {} missing, {} doubled, {} foreign, {} left in the queue{}\n",
        with_thousands(missing), with_thousands(doubled), with_thousands(foreign),
        with_thousands(left),
        stalled ? fmt::format(" (no message for {:.1f} s)", Seconds(idle_limit).count()) : "");
    return exit_check_failed;
}

}  // namespace kelp::cli
