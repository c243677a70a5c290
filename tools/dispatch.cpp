// The command table and dispatch of the `kelp` tool: finds the command,
// parses its arguments, and maps errors to the documented exit codes
// (docs/cli.md). Separate from main.cpp so the tests can run commands in
// process, where memory:// queues are shared between publish and consume.
#include <fmt/core.h>

#include <array>
#include <exception>
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp::cli {
namespace {

constexpr std::array commands{
    Command{"publish", "send messages (body from the command line or stdin)", publish_parser,
            run_publish},
    Command{"consume", "receive messages and print them as JSON lines", consume_parser,
            run_consume},
    Command{"purge", "remove every message waiting in a queue", purge_parser, run_purge},
    Command{"info", "show the transport, its capabilities and URL options", info_parser, run_info},
    Command{"bench", "measure publish and consume rates, checking for loss", bench_parser,
            run_bench},
};

std::string top_help() {
    std::string out =
        "usage: kelp COMMAND URL [options]\n"
        "       kelp COMMAND --help\n\n"
        "The kelp messaging tool: one command line for every linked transport.\n\n"
        "commands:\n";
    for (const auto& command : commands)
        out += fmt::format("  {:<10}{}\n", command.name, command.summary);
    out += "\nlinked transports: ";
    const auto schemes = kelp::linked_schemes();
    for (std::size_t i = 0; i < schemes.size(); ++i)
        out += (i == 0 ? "" : ", ") + schemes[i] + "://";
    out +=
        "\n\nexit codes: 0 ok, 1 broker or I/O error, 2 usage error, 3 consume --count not\n"
        "reached, 4 check failed (publish: returned; bench: lost or doubled), 130 interrupted.\n"
        "See docs/cli.md for the details.\n";
    return out;
}

const Command* find_command(std::string_view name) {
    for (const auto& command : commands) {
        if (command.name == name) return &command;
    }
    return nullptr;
}

[[noreturn]] void unknown_command(std::string_view name) {
    std::vector<std::string_view> names;
    for (const auto& command : commands)
        names.push_back(command.name);
    std::string message = "unknown command '" + std::string(name) + "'";
    if (auto near = kelp::closest_match(name, names)) message += " (did you mean '" + *near + "'?)";
    throw UsageError(message);
}

int run_command(const Command& command, const std::vector<std::string>& words) {
    const ArgParser parser = command.parser();
    try {
        const Args args = parser.parse(words);
        if (args.help_requested) {
            fmt::print("{}", parser.help());
            return exit_ok;
        }
        return command.run(args);
    } catch (const UsageError& e) {
        fmt::print(stderr, "kelp {}: {}\n{}\nrun 'kelp {} --help' for the options\n", command.name,
                   e.what(), parser.usage(), command.name);
        return exit_usage;
    } catch (const kelp::UrlError& e) {
        fmt::print(stderr, "kelp {}: {}\n", command.name, e.what());
        return exit_usage;
    } catch (const kelp::TransportNotLinked& e) {
        fmt::print(stderr, "kelp {}: {}\n", command.name, e.what());
        return exit_usage;
    } catch (const std::exception& e) {
        fmt::print(stderr, "kelp {}: error: {}\n", command.name, e.what());
        return exit_failure;
    }
}

}  // namespace

int run(std::vector<std::string> words) {
    if (words.empty()) {
        fmt::print(stderr, "kelp: missing COMMAND\n{}", top_help());
        return exit_usage;
    }
    const std::string first = words.front();
    if (first == "-h" || first == "--help") {
        fmt::print("{}", top_help());
        return exit_ok;
    }
    if (first == "--version") {
        fmt::print("kelp {}\n", KELP_VERSION);
        return exit_ok;
    }
    try {
        if (first == "help") {
            if (words.size() == 1) {
                fmt::print("{}", top_help());
                return exit_ok;
            }
            const Command* command = find_command(words[1]);
            if (command == nullptr) unknown_command(words[1]);
            fmt::print("{}", command->parser().help());
            return exit_ok;
        }
        const Command* command = find_command(first);
        if (command == nullptr) unknown_command(first);
        words.erase(words.begin());
        return run_command(*command, words);
    } catch (const UsageError& e) {
        fmt::print(stderr, "kelp: {}\nrun 'kelp --help' for the commands\n", e.what());
        return exit_usage;
    }
}

}  // namespace kelp::cli
