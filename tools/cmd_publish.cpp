// kelp publish: send one message, N copies, or one message per stdin line.
#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include <kelp/compression.hpp>

#include "common.hpp"

namespace kelp::cli {
namespace {

// Reported in full up to this many; beyond it only counted, so an
// unroutable --count 100000 does not flood the terminal.
constexpr std::uint64_t returns_shown = 5;

// On a network transport a basic.return can arrive after basic_publish has
// returned; this is how long a --mandatory publish waits for stragglers.
constexpr auto return_grace = std::chrono::milliseconds(500);

std::string check_compression(const std::string& method) {
    // Compressing nothing is the cheapest way to ask the library, and its
    // error names what is missing (an unknown method, or the package to
    // install for one this build lacks).
    try {
        (void)kelp::compress(method, {});
    } catch (const kelp::Error& e) {
        throw UsageError("--compression " + method + ": " + e.what());
    }
    return method;
}

kelp::Table headers_from(const Args& args) {
    kelp::Table headers;  // null: no headers at all, as the library expects
    for (const auto& text : args.values("header")) {
        const auto eq = text.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw UsageError("--header: expected KEY=VALUE, got '" + text + "'");
        }
        if (!headers.is_object()) headers = kelp::Table::object();
        headers[text.substr(0, eq)] = text.substr(eq + 1);
    }
    return headers;
}

std::string describe_target(const Topology& topology) {
    const std::string exchange = topology.exchange ? topology.exchange->name : "";
    return fmt::format("exchange '{}' with routing key '{}'", exchange, topology.routing_key);
}

}  // namespace

ArgParser publish_parser() {
    ArgParser parser{"publish", "URL [options] BODY|-",
                     "Publish a message. BODY is sent as given; '-' reads the body from stdin\n"
                     "(all of it, or one message per line with --lines). The body is sent as\n"
                     "bytes: set --content-type to say what it is."};
    parser.positional("URL", "broker URL: memory://name, redis://host:6379/0, amqp://...")
        .positional("BODY", "the message body, or - for stdin");
    add_topology_options(parser, "declare this queue (bound to --exchange) before publishing");
    parser.option("header", "K=V", "an application header with a string value", true)
        .option("content-type", "TYPE", "MIME type of the body (default application/data)")
        .option("content-encoding", "ENC",
                "encoding of the body (default utf-8 for json and text\ntypes, else binary)")
        .option("priority", "N", "message priority, 0-255")
        .option("expiration", "MS", "per-message time to live in milliseconds")
        .flag("persistent", "delivery mode 2: survives a broker restart (default)")
        .flag("transient", "delivery mode 1")
        .option("compression", "METHOD", "compress the body: zlib, bz2, lzma or zstd")
        .flag("mandatory",
              "ask the broker to return unroutable messages; any\nreturned message means exit 4")
        .option("correlation-id", "ID", "the correlation_id property")
        .option("reply-to", "NAME", "the reply_to property")
        .option("message-id", "ID", "the message_id property")
        .option("count", "N", "publish each body N times (default 1)")
        .flag("lines", "with BODY '-': one message per stdin line (empty lines\nare skipped)")
        .flag("quiet", "no summary line on stderr", 'q')
        .epilog(
            "examples:\n"
            "  kelp publish redis://localhost:6379/0 --queue tasks 'hello'\n"
            "  kelp publish amqp://localhost --exchange logs --type topic \\\n"
            "      --routing-key app.error --content-type application/json '{\"msg\":\"x\"}'\n"
            "  seq 10 | kelp publish redis:// --queue numbers --lines -");
    return parser;
}

int run_publish(const Args& args) {
    const std::string url = args.positional("URL");
    const std::string body_arg = args.positional("BODY");
    const bool from_stdin = body_arg == "-";
    const bool lines = args.has("lines");
    if (lines && !from_stdin) throw UsageError("--lines needs BODY '-' (stdin)");
    if (args.has("persistent") && args.has("transient")) {
        throw UsageError("--persistent and --transient exclude each other");
    }

    const Topology topology = topology_from(args);
    kelp::PublishOptions options;
    options.content_type = args.value_or("content-type", "");
    options.content_encoding = args.value_or("content-encoding", "");
    options.headers = headers_from(args);
    if (auto priority = args.integer("priority", 0, 255)) {
        options.priority = static_cast<std::uint8_t>(*priority);
    }
    if (auto expiration = args.integer("expiration", 0, INT64_MAX)) {
        options.expiration = std::chrono::milliseconds(*expiration);
    }
    if (args.has("persistent")) options.delivery_mode = kelp::DeliveryMode::persistent;
    if (args.has("transient")) options.delivery_mode = kelp::DeliveryMode::transient;
    if (auto method = args.value("compression")) options.compression = check_compression(*method);
    options.mandatory = args.has("mandatory");
    options.correlation_id = args.value_or("correlation-id", "");
    options.reply_to = args.value_or("reply-to", "");
    options.message_id = args.value_or("message-id", "");
    if (topology.queue) options.declare.push_back(*topology.queue);
    const auto count = static_cast<std::uint64_t>(args.integer_or("count", 1, 1, INT64_MAX));
    const bool quiet = args.has("quiet");

    if (!topology.exchange) {
        // The default exchange routes by queue name only: without one the
        // message would vanish without a word.
        if (topology.routing_key.empty()) {
            throw UsageError("nothing to route to: give --queue, --routing-key or --exchange");
        }
        if (topology.queue && topology.routing_key != topology.queue->name) {
            fmt::print(stderr,
                       "kelp publish: note: on the default exchange, routing key '{}' does not "
                       "reach queue '{}'\n",
                       topology.routing_key, topology.queue->name);
        }
    }

    kelp::Connection conn{url};
    require_exchange_type(conn, topology);
    require(conn, !options.priority || conn.capabilities().priorities, "honour --priority");
    require(conn, !options.expiration || conn.capabilities().message_ttl,
            "honour --expiration (per-message TTL)");
    interrupts::install();

    std::uint64_t returned = 0;
    kelp::ProducerOptions producer_options;
    // The producer declares its exchange when it is made (auto_declare).
    if (topology.exchange) producer_options.exchange = *topology.exchange;
    producer_options.routing_key = topology.routing_key;
    if (options.mandatory) {
        producer_options.on_return = [&returned](kelp::ReturnedMessage& message) {
            if (++returned <= returns_shown) {
                fmt::print(stderr,
                           "kelp publish: returned unroutable: {} {} (exchange '{}', routing "
                           "key '{}')\n",
                           message.reply_code, message.reply_text, message.exchange,
                           message.routing_key);
            }
        };
    }
    kelp::Producer producer{conn, std::move(producer_options)};

    std::uint64_t published = 0;
    auto send = [&](std::string_view body) {
        for (std::uint64_t i = 0; i < count && !interrupts::requested(); ++i) {
            producer.publish_bytes(body, options);
            ++published;
        }
    };

    if (!from_stdin) {
        send(body_arg);
    } else if (!lines) {
        std::string body{std::istreambuf_iterator<char>(std::cin), {}};
        if (!interrupts::requested()) send(body);
    } else {
        std::string line;
        while (!interrupts::requested() && std::getline(std::cin, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (!line.empty()) send(line);
        }
    }
    if (std::cin.bad() && !interrupts::requested()) {
        throw kelp::Error("reading stdin failed after " + std::to_string(published) +
                          " message(s)");
    }

    if (options.mandatory && conn.capabilities().network) {
        const auto deadline = kelp::Hub::Clock::now() + return_grace;
        for (auto now = kelp::Hub::Clock::now(); now < deadline; now = kelp::Hub::Clock::now())
            conn.hub().run_once(deadline - now);
    }
    // Closing is what flushes: whatever the transport still buffers goes out
    // before the link is shut.
    conn.close();

    if (!quiet) {
        fmt::print(stderr, "kelp publish: published {} message{} to {}{}\n", published,
                   published == 1 ? "" : "s", describe_target(topology),
                   returned != 0 ? fmt::format("; {} returned as unroutable", returned) : "");
    }
    if (interrupts::requested()) return exit_interrupted;
    return returned != 0 ? exit_check_failed : exit_ok;
}

}  // namespace kelp::cli
