#include "common.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace kelp::cli {
namespace interrupts {
namespace {

volatile std::sig_atomic_t signalled = 0;
int pipe_fds[2] = {-1, -1};

extern "C" void on_signal(int) {
    const int saved = errno;
    signalled = 1;
    const char byte = 1;
    // Nothing to do if the pipe is full: one byte already wakes the reader.
    if (pipe_fds[1] >= 0) (void)!::write(pipe_fds[1], &byte, 1);
    errno = saved;
}

}  // namespace

void install() {
    if (pipe_fds[0] >= 0) return;
    if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        pipe_fds[0] = pipe_fds[1] = -1;
    }
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    // No SA_RESTART: a blocking read of stdin must return on Ctrl-C so that
    // `kelp publish - --lines` stops between lines. SA_RESETHAND makes the
    // second Ctrl-C a hard kill.
    action.sa_flags = SA_RESETHAND;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    // A closed stdout (`kelp consume ... | head -1`) must be an error we can
    // handle, leaving the unprinted message unacked, not a silent death.
    std::signal(SIGPIPE, SIG_IGN);
}

bool requested() {
    return signalled != 0;
}

int fd() {
    return pipe_fds[0];
}

}  // namespace interrupts

StopOnInterrupt::StopOnInterrupt(kelp::Hub& hub, bool& interrupted) : hub_(hub) {
    if (interrupts::fd() < 0) return;
    hub_.add_reader(interrupts::fd(), [&hub, &interrupted] {
        char buffer[16];
        while (::read(interrupts::fd(), buffer, sizeof buffer) > 0) {
        }
        interrupted = true;
        hub.stop();
    });
}

StopOnInterrupt::~StopOnInterrupt() {
    if (interrupts::fd() >= 0) hub_.remove_reader(interrupts::fd());
}

void add_topology_options(ArgParser& parser, std::string_view queue_help) {
    parser.option("exchange", "NAME", "the exchange (default: the default exchange \"\")")
        .option("type", "TYPE",
                "exchange type: direct (default), topic, fanout or headers;\n"
                "needs --exchange")
        .option("routing-key", "KEY",
                "routing key; also the binding key of --queue\n"
                "(default: the queue's name, else \"\")")
        .option("queue", "Q", std::string(queue_help))
        .option("bind-header", "K=V",
                "for a headers exchange: a header the binding of --queue\n"
                "matches on (x-match=any|all is allowed too)",
                true);
}

namespace {

std::pair<std::string, std::string> split_pair(std::string_view option, const std::string& text) {
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
        throw UsageError("--" + std::string(option) + ": expected KEY=VALUE, got '" + text + "'");
    }
    return {text.substr(0, eq), text.substr(eq + 1)};
}

}  // namespace

Topology topology_from(const Args& args) {
    Topology topology;
    const auto exchange_name = args.value("exchange");
    const auto type_name = args.value("type");
    if (type_name && !exchange_name) throw UsageError("--type needs --exchange");

    kelp::ExchangeType type = kelp::ExchangeType::direct;
    if (type_name) {
        try {
            type = kelp::parse_exchange_type(*type_name);
        } catch (const kelp::Error& e) {
            throw UsageError(std::string("--type: ") + e.what());
        }
    }
    if (exchange_name && !exchange_name->empty()) {
        topology.exchange = kelp::Exchange{*exchange_name, type};
    } else if (type != kelp::ExchangeType::direct) {
        throw UsageError("--type " + *type_name + ": the default exchange is always direct");
    }

    const auto queue_name = args.value("queue");
    if (queue_name && queue_name->empty()) throw UsageError("--queue needs a non-empty name");
    topology.routing_key = args.value_or("routing-key", queue_name.value_or(""));

    const auto bind_headers = args.values("bind-header");
    if (!bind_headers.empty() && (type != kelp::ExchangeType::headers || !queue_name)) {
        throw UsageError("--bind-header needs --queue and --type headers");
    }
    if (queue_name) {
        if (!topology.exchange) {
            topology.queue = kelp::Queue{*queue_name};
        } else if (type == kelp::ExchangeType::headers) {
            // A headers binding is its arguments; with none it matches every
            // message, which is what a quick `kelp consume` wants.
            kelp::Table match = kelp::Table::object();
            for (const auto& text : bind_headers) {
                auto [key, value] = split_pair("bind-header", text);
                match[key] = value;
            }
            kelp::QueueOptions options;
            options.bindings.push_back({topology.exchange->name, topology.routing_key, match});
            kelp::Queue queue{*queue_name, std::move(options)};
            topology.queue = std::move(queue);
        } else {
            topology.queue = kelp::Queue{*queue_name, *topology.exchange, topology.routing_key};
        }
    }
    return topology;
}

void require(const kelp::Connection& conn, bool capable, std::string_view what) {
    if (capable) return;
    throw UsageError("the " + std::string(conn.transport_name()) + " transport cannot " +
                     std::string(what) + " (see 'kelp info " + conn.url().redacted() + "')");
}

void require_exchange_type(const kelp::Connection& conn, const Topology& topology) {
    if (!topology.exchange) return;
    const kelp::ExchangeType type = topology.exchange->type;
    require(conn, conn.capabilities().supports(type),
            "route through " + std::string(kelp::to_string(type)) + " exchanges");
}

bool is_tty(int fd) {
    return ::isatty(fd) == 1;
}

std::string with_thousands(std::uint64_t value) {
    std::string digits = std::to_string(value);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

}  // namespace kelp::cli
