// The Kombu anchor: runs kombu_memory.py in a subprocess and reads back its
// one result line. Kombu being absent is reported, not fatal; Kombu running
// and miscounting is fatal, like any other miscount.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"

extern char** environ;

namespace kelp_bench {

namespace {

std::string default_python() {
    // Debian's python3-kombu lives in the system interpreter; a python3
    // earlier on PATH (pyenv, a venv) may not have it.
    if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
    return "python3";
}

struct Output {
    int status = -1;  // exit status, or -1 when it did not exit normally
    std::string stdout_text;
    std::string spawn_error;
};

Output run_capturing(const std::vector<std::string>& argv) {
    Output out;
    int fds[2];
    if (::pipe(fds) != 0) {
        out.spawn_error = std::strerror(errno);
        return out;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<char*> args;
    for (const auto& arg : argv)
        args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        out.spawn_error = argv[0] + ": " + std::strerror(rc);
        return out;
    }
    char buffer[4096];
    while (true) {
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n > 0) {
            out.stdout_text.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    ::close(fds[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    out.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    return out;
}

// "key=value" out of the result line; empty when missing.
std::string field(const std::string& line, const std::string& key) {
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
        if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
    }
    return {};
}

}  // namespace

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
