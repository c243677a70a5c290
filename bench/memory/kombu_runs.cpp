// The Kombu anchor: runs kombu_memory.py in a subprocess and reads back its
// one result line. Kombu being absent is reported, not fatal; Kombu running
// and miscounting is fatal, like any other miscount.
#include <string>
#include <vector>

#include "common.hpp"

namespace kelp_bench {

KombuRun kombu_run(const Options& options, const char* shape) {
    KombuRun result;
    const std::string python = options.python.empty() ? default_python() : options.python;
    const std::string script =
        options.kombu_script.empty() ? KELP_BENCH_KOMBU_SCRIPT : options.kombu_script;

    // Asked first, so a missing Kombu reads as "not installed", not as a
    // failed run.
    const Output probe = run_capturing({python, "-c", "import kombu"});
    if (probe.status != 0) {
        result.why_not = probe.spawn_error.empty()
                             ? python + " cannot import kombu (apt install python3-kombu)"
                             : probe.spawn_error;
        return result;
    }

    const Output out = run_capturing({python, script, "--shape", shape, "--api", options.kombu_api,
                                      "--messages", std::to_string(options.kombu_messages),
                                      "--batch", std::to_string(options.batch)});
    if (!out.spawn_error.empty()) fail("Kombu anchor: " + out.spawn_error);
    if (out.status != 0) {
        fail("Kombu anchor (" + script + " --shape " + shape + ") exited with status " +
             std::to_string(out.status) + "; see its messages above");
    }
    const auto at = out.stdout_text.find("kombu_result ");
    if (at == std::string::npos) fail("Kombu anchor printed no result line: " + out.stdout_text);
    const std::string line = out.stdout_text.substr(at, out.stdout_text.find('\n', at) - at);
    const std::string messages = field(line, "messages");
    const std::string wall = field(line, "wall_ns");
    const std::string cpu = field(line, "cpu_ns");
    if (messages.empty() || wall.empty() || cpu.empty()) fail("Kombu anchor: bad line: " + line);
    if (std::stoull(messages) != options.kombu_messages) {
        fail("Kombu anchor counted " + messages + " messages, not " +
             std::to_string(options.kombu_messages));
    }
    result.available = true;
    result.version = "kombu " + field(line, "kombu") + ", Python " + field(line, "python") +
                     ", api " + field(line, "api");
    result.run = Run{options.kombu_messages, std::stoll(wall), std::stoll(cpu)};
    return result;
}

}  // namespace kelp_bench
