// A small command-line parser for the `kelp` tool.
//
// Each command describes its arguments once (positionals, boolean flags,
// options with a value) and gets both the parse and its --help text from
// that description, so the two cannot drift apart.
//
//   ArgParser parser{"purge", "URL --queue Q", "Remove every message from a queue."};
//   parser.positional("URL", "broker URL").option("queue", "Q", "the queue to purge");
//   Args args = parser.parse(argv_after_command);   // throws UsageError
//
// Grammar: `--name value` and `--name=value`; `-h`/`--help`; `--` ends the
// options; a lone `-` is a positional (stdin). An option that takes a value
// takes the next word whatever it looks like, so `--priority -1` reaches the
// range check instead of being read as an unknown option. Giving a
// non-repeatable option twice is an error rather than "last one wins": on a
// messaging tool, a silently dropped `--queue` sends messages somewhere else.
//
// Thread rules: plain values; no global state.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kelp::cli {

// Bad command-line arguments: reported with the command's usage, exit code 2.
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class Args;

class ArgParser {
  public:
    // `command` is the sub-command ("publish"), `synopsis` what follows it in
    // the usage line, `summary` one or more sentences for --help.
    ArgParser(std::string command, std::string synopsis, std::string summary);

    ArgParser& positional(std::string name, std::string help, bool required = true);
    // A boolean switch: --name.
    ArgParser& flag(std::string name, std::string help, char short_name = 0);
    // An option with a value: --name METAVAR.
    ArgParser& option(std::string name, std::string metavar, std::string help,
                      bool repeatable = false);
    // Free text shown at the end of --help (examples, notes).
    ArgParser& epilog(std::string text);

    // Throws UsageError naming the problem. With -h/--help anywhere before
    // `--`, returns at once with Args::help_requested set and nothing checked.
    Args parse(const std::vector<std::string>& words) const;

    const std::string& command() const { return command_; }
    std::string usage() const;  // "usage: kelp publish URL [options] BODY|-"
    std::string help() const;

  private:
    friend class Args;
    struct Spec {
        std::string name;
        std::string metavar;  // empty for flags
        std::string help;
        char short_name = 0;
        bool takes_value = false;
        bool repeatable = false;
    };
    struct Positional {
        std::string name;
        std::string help;
        bool required = true;
    };

    const Spec* find(std::string_view name) const;
    const Spec* find_short(char short_name) const;
    [[noreturn]] void unknown_option(std::string_view word) const;

    std::string command_;
    std::string synopsis_;
    std::string summary_;
    std::string epilog_;
    std::vector<Spec> specs_;
    std::vector<Positional> positionals_;
};

// The result of a parse. Getters for numbers check the text and the range
// and throw UsageError with the option's name, so each command states its
// limits in one place.
class Args {
  public:
    bool help_requested = false;

    bool has(std::string_view name) const;
    // The value of a value option, if given.
    std::optional<std::string> value(std::string_view name) const;
    std::string value_or(std::string_view name, std::string fallback) const;
    // Every value of a repeatable option, in order.
    std::vector<std::string> values(std::string_view name) const;
    // A positional by the name it was declared with; "" when an optional one
    // was not given (required ones are checked by the parse).
    std::string positional(std::string_view name) const;

    // An integer option within [min, max]; `fallback` when not given.
    std::optional<std::int64_t> integer(std::string_view name, std::int64_t min,
                                        std::int64_t max) const;
    std::int64_t integer_or(std::string_view name, std::int64_t fallback, std::int64_t min,
                            std::int64_t max) const;
    // A duration: "1.5" (seconds), "250ms", "2s", "1m"; must not be negative.
    std::optional<std::chrono::nanoseconds> duration(std::string_view name) const;
    // A byte size: "100", "4KiB", "1MB"; within [min, max].
    std::uint64_t size_or(std::string_view name, std::uint64_t fallback, std::uint64_t min,
                          std::uint64_t max) const;

  private:
    friend class ArgParser;
    std::vector<std::pair<std::string, std::string>> options_;  // (name, value or "")
    std::vector<std::pair<std::string, std::string>> positionals_;
};

}  // namespace kelp::cli
