#include "args.hpp"

#include <algorithm>
#include <limits>

#include "kelp/options.hpp"
#include "kelp/url.hpp"

namespace kelp::cli {
namespace {

std::string dashed(std::string_view name) {
    return "--" + std::string(name);
}

// Help lines are "  --name METAVAR   text", with the text column aligned and
// long left columns getting their text on the next line.
void append_entry(std::string& out, const std::string& left, const std::string& help) {
    constexpr std::size_t column = 26;
    out += "  " + left;
    if (left.size() + 2 < column - 1) {
        out.append(column - 2 - left.size(), ' ');
    } else {
        out += "\n" + std::string(column, ' ');
    }
    // Continuation lines of a multi-line help text line up with its first.
    for (char c : help) {
        out += c;
        if (c == '\n') out.append(column, ' ');
    }
    out += '\n';
}

}  // namespace

ArgParser::ArgParser(std::string command, std::string synopsis, std::string summary)
    : command_(std::move(command)), synopsis_(std::move(synopsis)), summary_(std::move(summary)) {
    specs_.push_back({"help", "", "show this help and exit", 'h', false, false});
}

ArgParser& ArgParser::positional(std::string name, std::string help, bool required) {
    positionals_.push_back({std::move(name), std::move(help), required});
    return *this;
}

ArgParser& ArgParser::flag(std::string name, std::string help, char short_name) {
    specs_.push_back({std::move(name), "", std::move(help), short_name, false, false});
    return *this;
}

ArgParser& ArgParser::option(std::string name, std::string metavar, std::string help,
                             bool repeatable) {
    specs_.push_back({std::move(name), std::move(metavar), std::move(help), 0, true, repeatable});
    return *this;
}

ArgParser& ArgParser::epilog(std::string text) {
    epilog_ = std::move(text);
    return *this;
}

const ArgParser::Spec* ArgParser::find(std::string_view name) const {
    auto it = std::find_if(specs_.begin(), specs_.end(),
                           [&](const Spec& spec) { return spec.name == name; });
    return it == specs_.end() ? nullptr : &*it;
}

const ArgParser::Spec* ArgParser::find_short(char short_name) const {
    auto it = std::find_if(specs_.begin(), specs_.end(),
                           [&](const Spec& spec) { return spec.short_name == short_name; });
    return it == specs_.end() ? nullptr : &*it;
}

void ArgParser::unknown_option(std::string_view word) const {
    std::string message = "unknown option '" + std::string(word) + "'";
    std::vector<std::string_view> names;
    std::vector<std::string> storage;
    storage.reserve(specs_.size());
    for (const Spec& spec : specs_)
        storage.push_back(dashed(spec.name));
    for (const auto& name : storage)
        names.push_back(name);
    const std::string_view bare = word.substr(0, word.find('='));
    if (auto near = kelp::closest_match(bare, names)) message += " (did you mean '" + *near + "'?)";
    throw UsageError(message);
}

Args ArgParser::parse(const std::vector<std::string>& words) const {
    Args args;
    // Help wins over every other problem: `kelp publish --help` must work
    // without a URL, and so must `kelp publish --bad --help`.
    for (const auto& word : words) {
        if (word == "--") break;
        if (word == "-h" || word == "--help") {
            args.help_requested = true;
            return args;
        }
    }

    std::vector<std::string> loose;
    bool options_done = false;
    for (std::size_t i = 0; i < words.size(); ++i) {
        const std::string& word = words[i];
        if (options_done || word == "-" || word.empty() || word[0] != '-') {
            loose.push_back(word);
            continue;
        }
        if (word == "--") {
            options_done = true;
            continue;
        }

        const Spec* spec = nullptr;
        std::optional<std::string> inline_value;
        if (word.rfind("--", 0) == 0) {
            const auto eq = word.find('=');
            const std::string name = word.substr(2, eq == std::string::npos ? eq : eq - 2);
            spec = find(name);
            if (eq != std::string::npos) inline_value = word.substr(eq + 1);
        } else if (word.size() == 2) {
            spec = find_short(word[1]);
        }
        if (spec == nullptr) unknown_option(word);

        const std::string shown = dashed(spec->name);
        if (!spec->repeatable && args.has(spec->name)) {
            throw UsageError(shown + " given more than once");
        }
        if (!spec->takes_value) {
            if (inline_value) throw UsageError(shown + " takes no value");
            args.options_.emplace_back(spec->name, "");
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= words.size()) throw UsageError(shown + " needs a value " + spec->metavar);
            inline_value = words[++i];
        }
        args.options_.emplace_back(spec->name, std::move(*inline_value));
    }

    std::size_t next = 0;
    for (const auto& positional : positionals_) {
        if (next < loose.size()) {
            args.positionals_.emplace_back(positional.name, loose[next++]);
        } else if (positional.required) {
            throw UsageError("missing " + positional.name);
        }
    }
    if (next < loose.size()) throw UsageError("unexpected argument '" + loose[next] + "'");
    return args;
}

std::string ArgParser::usage() const {
    return "usage: kelp " + command_ + " " + synopsis_;
}

std::string ArgParser::help() const {
    std::string out = usage() + "\n\n" + summary_ + "\n";
    if (!positionals_.empty()) {
        out += "\narguments:\n";
        for (const auto& positional : positionals_)
            append_entry(out, positional.name, positional.help);
    }
    out += "\noptions:\n";
    for (const Spec& spec : specs_) {
        std::string left;
        if (spec.short_name != 0) left = std::string("-") + spec.short_name + ", ";
        left += dashed(spec.name);
        if (spec.takes_value) left += " " + spec.metavar;
        append_entry(out, left, spec.help + (spec.repeatable ? " (repeatable)" : ""));
    }
    if (!epilog_.empty()) out += "\n" + epilog_ + "\n";
    return out;
}

bool Args::has(std::string_view name) const {
    return std::any_of(options_.begin(), options_.end(),
                       [&](const auto& entry) { return entry.first == name; });
}

std::optional<std::string> Args::value(std::string_view name) const {
    for (auto it = options_.rbegin(); it != options_.rend(); ++it) {
        if (it->first == name) return it->second;
    }
    return std::nullopt;
}

std::string Args::value_or(std::string_view name, std::string fallback) const {
    auto found = value(name);
    return found ? *found : std::move(fallback);
}

std::vector<std::string> Args::values(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [key, text] : options_) {
        if (key == name) out.push_back(text);
    }
    return out;
}

std::string Args::positional(std::string_view name) const {
    for (const auto& [key, text] : positionals_) {
        if (key == name) return text;
    }
    return {};
}

std::optional<std::int64_t> Args::integer(std::string_view name, std::int64_t min,
                                          std::int64_t max) const {
    const auto text = value(name);
    if (!text) return std::nullopt;
    const auto number = kelp::parse_integer(*text);
    if (!number || *number < min || *number > max) {
        const std::string range =
            max == std::numeric_limits<std::int64_t>::max()
                ? "of at least " + std::to_string(min)
                : "from " + std::to_string(min) + " to " + std::to_string(max);
        throw UsageError(dashed(name) + ": expected a whole number " + range + ", got '" + *text +
                         "'");
    }
    return number;
}

std::int64_t Args::integer_or(std::string_view name, std::int64_t fallback, std::int64_t min,
                              std::int64_t max) const {
    return integer(name, min, max).value_or(fallback);
}

std::optional<std::chrono::nanoseconds> Args::duration(std::string_view name) const {
    const auto text = value(name);
    if (!text) return std::nullopt;
    const auto parsed = kelp::parse_duration(*text);
    if (!parsed || parsed->count() < 0) {
        throw UsageError(dashed(name) +
                         ": expected a duration such as 1.5 (seconds), 250ms or 2m, got '" + *text +
                         "'");
    }
    return parsed;
}

std::uint64_t Args::size_or(std::string_view name, std::uint64_t fallback, std::uint64_t min,
                            std::uint64_t max) const {
    const auto text = value(name);
    if (!text) return fallback;
    const auto parsed = kelp::parse_size(*text);
    if (!parsed || *parsed < min || *parsed > max) {
        throw UsageError(dashed(name) + ": expected a size from " + std::to_string(min) + " to " +
                         std::to_string(max) + " bytes (units B, KiB, MiB, KB, MB), got '" + *text +
                         "'");
    }
    return *parsed;
}

}  // namespace kelp::cli
