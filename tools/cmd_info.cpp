// kelp info: what a URL resolves to in this build: transport, capabilities,
// the query options it accepts; optionally whether the broker answers.
#include <fmt/core.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <kelp/compression.hpp>

#include "common.hpp"

namespace kelp::cli {
namespace {

// Every Capabilities field, in declaration order. Listed by hand: the struct
// has no reflection, so a new field must be added here to be shown.
std::vector<std::pair<std::string_view, bool>> capability_flags(const kelp::Capabilities& c) {
    return {
        {"exchange_direct", c.exchange_direct},
        {"exchange_topic", c.exchange_topic},
        {"exchange_fanout", c.exchange_fanout},
        {"exchange_headers", c.exchange_headers},
        {"priorities", c.priorities},
        {"message_ttl", c.message_ttl},
        {"max_length", c.max_length},
        {"dead_letter", c.dead_letter},
        {"per_message_requeue", c.per_message_requeue},
        {"heartbeats", c.heartbeats},
        {"publisher_confirms", c.publisher_confirms},
        {"network", c.network},
    };
}

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items)
        out += (out.empty() ? "" : std::string(separator)) + item;
    return out;
}

// Connects once, without the retries a long-running program wants: a probe
// should answer quickly. Returns the error text, or empty on success.
std::string probe(kelp::Connection& conn, std::chrono::duration<double>& took) {
    const auto started = std::chrono::steady_clock::now();
    kelp::RetryPolicy once;
    once.max_retries = 0;
    std::string error;
    try {
        conn.ensure_connection(once);
    } catch (const kelp::ConnectionError& e) {
        error = e.what();
    }
    took = std::chrono::steady_clock::now() - started;
    conn.close();
    return error;
}

}  // namespace

ArgParser info_parser() {
    ArgParser parser{"info", "URL [--check] [--json]",
                     "Show the transport a URL selects in this build, the URL with its password\n"
                     "masked, the schemes linked in, every capability flag of the transport and\n"
                     "the URL query options it accepts. Nothing is sent to the broker unless\n"
                     "--check is given."};
    parser.positional("URL", "broker URL, or a ';'-separated failover list")
        .flag("check", "also connect once and report whether it worked (exit 1 if not)")
        .flag("json", "print one JSON object instead of text")
        .epilog(
            "examples:\n  kelp info memory://\n  kelp info 'redis://:secret@localhost:6379/0' "
            "--check");
    return parser;
}

int run_info(const Args& args) {
    const std::string url = args.positional("URL");
    kelp::Connection conn{url};
    const kelp::TransportFactory& factory = kelp::find_transport(conn.url().scheme);

    std::vector<std::string> urls;
    for (const auto& each : conn.urls())
        urls.push_back(each.redacted());
    std::vector<std::string> schemes = kelp::linked_schemes();
    const auto flags = capability_flags(conn.capabilities());
    std::vector<std::string> compressions;
    for (const char* method : {"zlib", "bz2", "lzma", "zstd"}) {
        if (kelp::compression_available(method)) compressions.emplace_back(method);
    }

    std::optional<std::string> check_error;
    std::chrono::duration<double> took{};
    if (args.has("check")) check_error = probe(conn, took);

    if (args.has("json")) {
        nlohmann::ordered_json out;
        out["transport"] = conn.transport_name();
        out["cmake_target"] = factory.cmake_target;
        out["urls"] = urls;
        out["linked_schemes"] = schemes;
        out["capabilities"] = nlohmann::ordered_json::object();
        for (const auto& [name, value] : flags)
            out["capabilities"][std::string(name)] = value;
        out["url_options"] = nlohmann::ordered_json::array();
        for (const auto& spec : factory.options) {
            out["url_options"].push_back({{"name", spec.name},
                                          {"type", kelp::to_string(spec.type)},
                                          {"default", spec.default_value},
                                          {"help", spec.help}});
        }
        out["compression"] = compressions;
        if (check_error) {
            out["check"] = {
                {"ok", check_error->empty()}, {"seconds", took.count()}, {"error", *check_error}};
        }
        fmt::print("{}\n", out.dump(2));
    } else {
        fmt::print("transport:       {} ({})\n", conn.transport_name(), factory.cmake_target);
        fmt::print("url:             {}\n", joined(urls, "\n                 "));
        for (auto& scheme : schemes)
            scheme += "://";
        fmt::print("linked schemes:  {}\n", joined(schemes, ", "));
        fmt::print("compression:     {}\n", joined(compressions, ", "));
        fmt::print("capabilities:\n");
        for (const auto& [name, value] : flags)
            fmt::print("  {:<22}{}\n", name, value ? "yes" : "no");
        fmt::print("url options:{}\n", factory.options.empty() ? " (none)" : "");
        for (const auto& spec : factory.options) {
            const std::string type(kelp::to_string(spec.type));
            const std::string fallback =
                spec.default_value.empty() ? "" : ", default " + spec.default_value;
            fmt::print("  {:<22}{}{}: {}\n", spec.name, type, fallback, spec.help);
        }
        if (check_error) {
            if (check_error->empty()) {
                fmt::print("check:           connected in {:.3f} s\n", took.count());
            } else {
                fmt::print("check:           FAILED after {:.3f} s: {}\n", took.count(),
                           *check_error);
            }
        }
    }
    return check_error && !check_error->empty() ? exit_failure : exit_ok;
}

}  // namespace kelp::cli
