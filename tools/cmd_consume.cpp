// kelp consume: receive messages and print each as one JSON object per line.
#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <kelp/compression.hpp>

#include "common.hpp"

namespace kelp::cli {
namespace {

using OrderedJson = nlohmann::ordered_json;

// The prefetch when --count is not given: enough to keep a network link
// busy, small enough that an interrupted run hands few messages back.
constexpr std::uint32_t default_prefetch = 100;
// AMQP's prefetch-count is 16 bits; keep every transport within it.
constexpr std::int64_t max_prefetch = 65535;

bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto byte = static_cast<unsigned char>(text[i]);
        std::size_t extra = 0;
        std::uint32_t code = 0;
        if (byte < 0x80) {
            ++i;
            continue;
        } else if ((byte & 0xE0) == 0xC0) {
            extra = 1;
            code = byte & 0x1Fu;
        } else if ((byte & 0xF0) == 0xE0) {
            extra = 2;
            code = byte & 0x0Fu;
        } else if ((byte & 0xF8) == 0xF0) {
            extra = 3;
            code = byte & 0x07u;
        } else {
            return false;
        }
        if (i + extra >= text.size()) return false;  // truncated sequence
        for (std::size_t k = 1; k <= extra; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80) return false;
            code = (code << 6) | (next & 0x3Fu);
        }
        // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not
        // UTF-8 even when the bit pattern fits; JSON readers reject them.
        static constexpr std::uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
        if (code < smallest[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
            return false;
        }
        i += extra + 1;
    }
    return true;
}

std::string base64(std::string_view data) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < data.size(); i += 3) {
        const std::uint32_t n =
            (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16) |
            (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8) |
            static_cast<unsigned char>(data[i + 2]);
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += alphabet[n & 63];
    }
    const std::size_t rest = data.size() - i;
    if (rest > 0) {
        std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
        if (rest == 2)
            n |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += rest == 2 ? alphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

OrderedJson properties_json(const kelp::Properties& p) {
    OrderedJson out = OrderedJson::object();
    out["content_type"] = p.content_type;
    out["content_encoding"] = p.content_encoding;
    out["delivery_mode"] = static_cast<int>(p.delivery_mode);
    // The rest only when set, so a line shows what the sender actually gave.
    if (p.priority) out["priority"] = *p.priority;
    if (p.expiration) out["expiration"] = p.expiration->count();
    if (!p.correlation_id.empty()) out["correlation_id"] = p.correlation_id;
    if (!p.reply_to.empty()) out["reply_to"] = p.reply_to;
    if (!p.message_id.empty()) out["message_id"] = p.message_id;
    if (p.timestamp) out["timestamp"] = *p.timestamp;
    if (!p.type.empty()) out["type"] = p.type;
    if (!p.user_id.empty()) out["user_id"] = p.user_id;
    if (!p.app_id.empty()) out["app_id"] = p.app_id;
    return out;
}

std::string format_message(const kelp::Message& message, bool raw) {
    std::string body = message.body();
    const kelp::Table& headers = message.headers();
    if (!raw && headers.is_object() && headers.contains("compression") &&
        headers["compression"].is_string()) {
        const auto mime = headers["compression"].get<std::string>();
        try {
            body = kelp::decompress(mime, body);
        } catch (const kelp::Error& e) {
            // Still print it: a peek must show what is in the queue, even
            // when it is broken.
            fmt::print(stderr, "kelp consume: message {}: {}; body printed as received\n",
                       message.delivery_tag(), e.what());
        }
    }

    OrderedJson line = OrderedJson::object();
    if (valid_utf8(body)) {
        line["body"] = std::move(body);
        line["body_encoding"] = "utf-8";
    } else {
        line["body"] = base64(body);
        line["body_encoding"] = "base64";
    }
    line["headers"] = headers.is_object() ? OrderedJson(headers) : OrderedJson::object();
    line["properties"] = properties_json(message.properties());
    const kelp::DeliveryInfo& info = message.delivery_info();
    line["delivery_info"] = OrderedJson{{"exchange", info.exchange},
                                        {"routing_key", info.routing_key},
                                        {"queue", info.queue},
                                        {"delivery_tag", info.delivery_tag},
                                        {"redelivered", info.redelivered},
                                        {"consumer_tag", info.consumer_tag}};
    // Header strings come from the wire and may not be UTF-8; replacing bad
    // bytes keeps the line valid JSON instead of failing the whole message.
    return line.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

}  // namespace

ArgParser consume_parser() {
    ArgParser parser{"consume", "URL --queue Q [options]",
                     "Receive messages from a queue and print one JSON object per message and\n"
                     "line on stdout. Each message is acknowledged after its line is written.\n"
                     "The queue is declared first (bound to --exchange if given) unless\n"
                     "--passive is set."};
    parser.positional("URL", "broker URL: memory://name, redis://host:6379/0, amqp://...");
    add_topology_options(parser, "the queue to consume from (required)");
    parser.option("count", "N", "stop after N messages (exit 3 if --timeout ends first)")
        .option("timeout", "SECONDS",
                "stop after this long in total (1.5, 250ms, 2m); default:\nwait forever")
        .flag("no-ack", "let the broker forget each message as it is sent")
        .option("prefetch", "N", "unacked messages in flight (default --count if given,\nelse 100)")
        .flag("requeue",
              "peek: print messages but give them all back at the end\ninstead of acking")
        .flag("passive", "only check that the queue exists; never declare it")
        .flag("raw", "print compressed bodies as received (default: decompress)")
        .epilog(
            "output, one line per message:\n"
            "  {\"body\": \"...\", \"body_encoding\": \"utf-8\"|\"base64\", \"headers\": {...},\n"
            "   \"properties\": {...}, \"delivery_info\": {\"exchange\", \"routing_key\", "
            "\"queue\",\n"
            "   \"delivery_tag\", \"redelivered\", \"consumer_tag\"}}\n"
            "exit: 0 when --count messages came, or at --timeout without --count; 3 when\n"
            "--timeout ends before --count messages came; 130 on Ctrl-C.\n\n"
            "examples:\n"
            "  kelp consume redis://localhost:6379/0 --queue tasks --count 1\n"
            "  kelp consume amqp:// --queue tasks --requeue --count 10 --timeout 2 | jq .body");
    return parser;
}

int run_consume(const Args& args) {
    const std::string url = args.positional("URL");
    if (!args.has("queue")) throw UsageError("missing --queue");
    const Topology topology = topology_from(args);
    const auto count = args.integer("count", 1, INT64_MAX);
    const auto timeout = args.duration("timeout");
    const bool no_ack = args.has("no-ack");
    const bool requeue = args.has("requeue");
    const bool raw = args.has("raw");
    const bool passive = args.has("passive");
    if (requeue && no_ack) throw UsageError("--requeue and --no-ack exclude each other");
    if (requeue && args.has("prefetch")) {
        // Peeked messages stay unacked until the end, so a prefetch below the
        // count would stall the peek; --requeue chooses the prefetch itself.
        throw UsageError("--requeue sets the prefetch itself (--count, or no limit)");
    }
    std::uint32_t prefetch = default_prefetch;
    if (requeue) {
        prefetch = count ? static_cast<std::uint32_t>(std::min(*count, max_prefetch)) : 0;
    } else if (auto given = args.integer("prefetch", 0, max_prefetch)) {
        prefetch = static_cast<std::uint32_t>(*given);
    } else if (count) {
        prefetch = static_cast<std::uint32_t>(std::min(*count, max_prefetch));
    }

    // The Hub outlives the connection that is registered with it.
    kelp::Hub hub;
    kelp::Connection conn{url};
    require_exchange_type(conn, topology);
    conn.register_with_event_loop(hub);
    interrupts::install();

    std::exception_ptr failure;
    hub.set_error_handler([&](std::exception_ptr error) {
        if (!failure) failure = error;
        hub.stop();
    });

    if (passive) {
        conn.default_channel().queue_declare(*topology.queue, /*passive=*/true);
    } else {
        // A headers queue names its exchange only in its bindings.
        if (topology.exchange) conn.maybe_declare(*topology.exchange);
        conn.maybe_declare(*topology.queue);
    }

    std::uint64_t received = 0;
    bool done = false;
    bool interrupted = false;
    std::vector<kelp::Message> held;  // --requeue: given back when the channel closes
    kelp::Consumer* self = nullptr;

    auto handle = [&](kelp::Message& message) {
        // Deliveries already in flight when the count was reached stay
        // unsettled and go back to the queue when the channel closes.
        if (done) return;
        const std::string line = format_message(message, raw) + "\n";
        if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() ||
            std::fflush(stdout) != 0) {
            throw kelp::Error("cannot write to stdout; message " +
                              std::to_string(message.delivery_tag()) + " left unacknowledged");
        }
        if (requeue) {
            held.push_back(std::move(message));
        } else if (!no_ack) {
            message.ack();
        }
        ++received;
        if (count && received >= static_cast<std::uint64_t>(*count)) {
            done = true;
            self->cancel();
            hub.stop();
        }
    };

    kelp::ConsumerOptions options;
    options.no_ack = no_ack;
    options.prefetch_count = prefetch;
    // A tool that shows what is in a queue must not refuse or drop any of it:
    // accept every content type, and print messages that fail to decode.
    options.accept = kelp::AcceptList::all();
    options.on_decode_error = [&](kelp::Message& message, std::exception_ptr) { handle(message); };
    options.auto_declare = false;
    options.tag_prefix = "kelp-cli";
    kelp::Consumer consumer{conn, {*topology.queue}, handle, std::move(options)};
    self = &consumer;

    StopOnInterrupt stop_on_interrupt{hub, interrupted};
    kelp::Handle deadline;
    if (timeout) {
        deadline = hub.call_later(*timeout, [&hub] { hub.stop(); });
    }
    consumer.consume();
    if (!done) hub.run_forever();
    deadline.cancel();

    consumer.cancel();
    // Closing the channel returns what is unacked: peeked messages (in their
    // order, marked redelivered) and any delivered after the count.
    consumer.channel().close();
    held.clear();
    if (failure) std::rethrow_exception(failure);

    if (interrupted) return exit_interrupted;
    if (count && received < static_cast<std::uint64_t>(*count)) {
        fmt::print(stderr, "kelp consume: {} of {} message{} before the timeout\n", received,
                   *count, *count == 1 ? "" : "s");
        return exit_incomplete;
    }
    return exit_ok;
}

}  // namespace kelp::cli
