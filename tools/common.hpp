// What the `kelp` commands share: exit codes, the command table, Ctrl-C
// handling, and the exchange/queue flags that publish and consume both take.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kelp/kelp.hpp>

#include "args.hpp"

namespace kelp::cli {

// The exit codes are part of the tool's interface (docs/cli.md): scripts
// branch on them, so each number keeps its meaning across commands.
enum ExitCode : int {
    exit_ok = 0,
    exit_failure = 1,       // broker, connection or I/O error
    exit_usage = 2,         // bad arguments, bad URL, transport not linked
    exit_incomplete = 3,    // consume --count not reached before --timeout
    exit_check_failed = 4,  // publish: messages returned; bench: lost or doubled
    exit_interrupted = 130,
};

// Runs the tool with the words after the program name; returns the exit code.
int run(std::vector<std::string> words);

struct Command {
    std::string_view name;
    std::string_view summary;
    ArgParser (*parser)();
    int (*run)(const Args&);
};

ArgParser publish_parser();
int run_publish(const Args& args);
ArgParser consume_parser();
int run_consume(const Args& args);
ArgParser purge_parser();
int run_purge(const Args& args);
ArgParser info_parser();
int run_info(const Args& args);
ArgParser bench_parser();
int run_bench(const Args& args);

// SIGINT and SIGTERM set a flag and make a file descriptor readable, so both
// busy loops (publishing) and Hub-driven waits (consuming) can stop cleanly
// and let the connection hand unacked messages back. A second signal kills
// the process the default way, for when the clean stop itself hangs.
namespace interrupts {
void install();
bool requested();
// Readable once a signal came; put it on a Hub with add_reader.
int fd();
}  // namespace interrupts

// Registers the interrupt fd on `hub` so a signal stops it; the returned
// guard removes the reader again.
class StopOnInterrupt {
  public:
    StopOnInterrupt(kelp::Hub& hub, bool& interrupted);
    ~StopOnInterrupt();
    StopOnInterrupt(const StopOnInterrupt&) = delete;
    StopOnInterrupt& operator=(const StopOnInterrupt&) = delete;

  private:
    kelp::Hub& hub_;
};

// The exchange and queue named by --exchange/--type/--routing-key/--queue.
struct Topology {
    std::optional<kelp::Exchange> exchange;
    std::optional<kelp::Queue> queue;
    std::string routing_key;  // --routing-key, else the queue's name, else ""
};
Topology topology_from(const Args& args);
void add_topology_options(ArgParser& parser, std::string_view queue_help);

// Throws UsageError when the connection's transport lacks a capability the
// command line asks for: an option the transport cannot honour is refused
// before anything is sent.
void require(const kelp::Connection& conn, bool capable, std::string_view what);
void require_exchange_type(const kelp::Connection& conn, const Topology& topology);

bool is_tty(int fd);

// "12,345" for humans reading rates.
std::string with_thousands(std::uint64_t value);

}  // namespace kelp::cli
