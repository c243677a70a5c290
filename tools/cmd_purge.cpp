// kelp purge: empty a queue and print how many messages it held.
#include <fmt/core.h>

#include <string>

#include "common.hpp"

namespace kelp::cli {

ArgParser purge_parser() {
    ArgParser parser{"purge", "URL --queue Q",
                     "Remove every message waiting in a queue and print how many there were.\n"
                     "Messages delivered to a consumer and not yet acknowledged are not waiting,\n"
                     "so they are not removed. A queue that does not exist is an error (exit 1)."};
    parser.positional("URL", "broker URL: memory://name, redis://host:6379/0, amqp://...")
        .option("queue", "Q", "the queue to purge (required)")
        .epilog("example:\n  kelp purge redis://localhost:6379/0 --queue tasks");
    return parser;
}

int run_purge(const Args& args) {
    const std::string url = args.positional("URL");
    const auto queue = args.value("queue");
    if (!queue) throw UsageError("missing --queue");
    if (queue->empty()) throw UsageError("--queue needs a non-empty name");

    kelp::Connection conn{url};
    const std::uint64_t purged = conn.default_channel().queue_purge(*queue);
    conn.close();
    fmt::print("{}\n", purged);
    return exit_ok;
}

}  // namespace kelp::cli
