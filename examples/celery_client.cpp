// Calling a Python Celery task from C++: kelp sends the task message a Celery
// worker expects (Celery's task protocol 2, as `app.send_task` writes it)
// to the worker's queue on the broker (Redis or RabbitMQ), then reads the
// result from Celery's Redis result backend.
//
//   celery_client [--backend <redis-url>] <broker-url> <task-name>
//                 [<args-json> [<kwargs-json> [<timeout-s>]]]
//   celery_client redis://localhost:6379/0 tasks.add '[2, 3]'
//   celery_client --backend redis://localhost:6379/0 amqp://localhost// tasks.add '[2, 3]'
//
// The worker must use that broker and that Redis as result backend (the
// broker's URL when no --backend is given), and consume the default queue
// "celery":
//
//   app = Celery('tasks', broker='redis://localhost:6379/0',
//                backend='redis://localhost:6379/0')
//   $ celery -A tasks worker
//
// Prints "SUCCESS: <result as JSON>" and exits 0; exits 1 when the task
// failed, 2 when no worker answered in time, 3 on bad arguments or when
// the broker or Redis cannot be reached.
#include <fmt/core.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <kelp/kelp.hpp>
#include <kelp/serialization.hpp>

namespace {

using namespace std::chrono_literals;

// Celery task ids are uuid4 strings.
std::string uuid4() {
    std::random_device device;
    std::mt19937_64 random{(std::uint64_t{device()} << 32) ^ device()};
    const std::uint64_t high = (random() & 0xffffffffffff0fffULL) | 0x4000ULL;  // version 4
    const std::uint64_t low = (random() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", high >> 32, (high >> 16) & 0xffff,
                       high & 0xffff, low >> 48, low & 0xffffffffffffULL);
}

std::string host_name() {
    char name[256] = {};
    return ::gethostname(name, sizeof name - 1) == 0 ? name : "localhost";
}

// The headers Celery 5.2's send_task writes, in its order. argsrepr and
// kwargsrepr are only shown in the worker's logs; JSON stands in for
// Python's repr.
kelp::Json task_headers(const std::string& task, const std::string& id, const kelp::Json& args,
                        const kelp::Json& kwargs) {
    return kelp::Json{{"lang", "py"},
                      {"task", task},
                      {"id", id},
                      {"shadow", nullptr},
                      {"eta", nullptr},
                      {"expires", nullptr},
                      {"group", nullptr},
                      {"group_index", nullptr},
                      {"retries", 0},
                      {"timelimit", kelp::Json::array({nullptr, nullptr})},
                      {"root_id", id},
                      {"parent_id", nullptr},
                      {"argsrepr", kelp::dump_json(args)},
                      {"kwargsrepr", kelp::dump_json(kwargs)},
                      {"origin", fmt::format("gen{}@{}", ::getpid(), host_name())},
                      {"ignore_result", false}};
}

// The body: [args, kwargs, embed], embed naming no callbacks, chain or chord.
kelp::Json task_body(const kelp::Json& args, const kelp::Json& kwargs) {
    return kelp::Json::array(
        {args,
         kwargs,
         {{"callbacks", nullptr}, {"errbacks", nullptr}, {"chain", nullptr}, {"chord", nullptr}}});
}

// Celery's Redis result backend is plain Redis keys; any Redis client reads
// them (hiredis here, which kelp's redis:// transport already links).
class ResultBackend {
  public:
    explicit ResultBackend(const kelp::Url& url) {
        const timeval timeout{5, 0};
        context_ =
            redisConnectWithTimeout(url.host_or("localhost").c_str(), url.port_or(6379), timeout);
        if (context_ == nullptr || context_->err != 0) {
            throw kelp::ConnectionError(
                fmt::format("cannot reach the result backend at {}: {}", url.redacted(),
                            context_ != nullptr ? context_->errstr : "out of memory"));
        }
        if (!url.password.empty()) command({"AUTH", url.password});
        command({"SELECT", url.path_or("0")});  // the db number of redis://host:port/<db>
    }
    ~ResultBackend() { redisFree(context_); }
    ResultBackend(const ResultBackend&) = delete;
    ResultBackend& operator=(const ResultBackend&) = delete;

    // Celery writes celery-task-meta-<id> once the task is done (never while
    // it is pending).
    std::optional<kelp::Json> result(const std::string& id) {
        const std::optional<std::string> text = command({"GET", "celery-task-meta-" + id});
        if (!text) return std::nullopt;
        return kelp::parse_json(*text);
    }

  private:
    // One command; its string reply, or nullopt for nil.
    std::optional<std::string> command(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const auto& arg : args) {
            argv.push_back(arg.data());
            lengths.push_back(arg.size());
        }
        auto* reply = static_cast<redisReply*>(
            redisCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lengths.data()));
        if (reply == nullptr) {
            throw kelp::ConnectionError(fmt::format("result backend: {}", context_->errstr));
        }
        std::optional<std::string> out;
        const bool failed = reply->type == REDIS_REPLY_ERROR;
        if (reply->type == REDIS_REPLY_STRING || failed) out.emplace(reply->str, reply->len);
        freeReplyObject(reply);
        if (failed) throw kelp::Error(fmt::format("result backend {}: {}", args[0], *out));
        return out;
    }

    redisContext* context_ = nullptr;
};

int usage() {
    fmt::print(stderr,
               "usage: celery_client [--backend <redis-url>] <broker-url> <task-name> "
               "[<args-json> [<kwargs-json> "
               "[<timeout-seconds>]]]\n"
               "  e.g. celery_client redis://localhost:6379/0 tasks.add '[2, 3]'\n");
    return 3;
}

int run(int argc, char** argv, const std::string& backend_url) {
    const std::string url = argv[1];
    const std::string task = argv[2];
    const kelp::Json args = argc > 3 ? kelp::parse_json(argv[3]) : kelp::Json::array();
    const kelp::Json kwargs = argc > 4 ? kelp::parse_json(argv[4]) : kelp::Json::object();
    const auto timeout = std::chrono::seconds(argc > 5 ? std::stoi(argv[5]) : 30);
    if (!args.is_array() || !kwargs.is_object()) {
        fmt::print(stderr, "args must be a JSON array and kwargs a JSON object\n");
        return usage();
    }

    const std::string id = uuid4();
    kelp::Connection conn{url};
    kelp::Producer producer{conn};
    // The worker's queue as Celery declares it (a direct exchange of the same
    // name), declared first as send_task does: a task sent before any worker
    // ran then waits for one instead of being dropped as unroutable.
    const kelp::Queue queue{"celery", kelp::Exchange{"celery"}, "celery"};
    // Celery publishes tasks on the default exchange, routed by queue name.
    producer.publish(task_body(args, kwargs), {.routing_key = queue.name,
                                               .headers = task_headers(task, id, args, kwargs),
                                               .correlation_id = id,
                                               .declare = {queue}});
    conn.close();  // the publish is on the server once this returns
    fmt::print("sent {}[{}] to queue 'celery'\n", task, id);
    std::fflush(stdout);

    ResultBackend backend{backend_url.empty() ? conn.url() : kelp::Url::parse(backend_url)};
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (const auto result = backend.result(id)) {
            const std::string status = result->value("status", "");
            if (status == "SUCCESS") {
                fmt::print("SUCCESS: {}\n", kelp::dump_json((*result)["result"]));
                return 0;
            }
            if (status == "FAILURE" || status == "REVOKED") {
                const kelp::Json& error = (*result)["result"];
                fmt::print(stderr, "{}: {}: {}\n", status,
                           error.is_object() ? error.value("exc_type", "?") : "?",
                           error.is_object()
                               ? kelp::dump_json(error.value("exc_message", kelp::Json()))
                               : kelp::dump_json(error));
                return 1;
            }
            // RETRY or STARTED: not done yet.
        }
        std::this_thread::sleep_for(100ms);
    }
    fmt::print(stderr,
               "no Celery worker answered within {} s: {}[{}] is waiting in queue 'celery' on {}.\n"
               "Start a worker on that broker, with the result backend this client reads and "
               "the task registered, e.g.:\n  celery -A <your tasks module> worker\n",
               timeout.count(), task, id, conn.url().redacted());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string backend_url;
    if (argc > 2 && std::string_view(argv[1]) == "--backend") {
        backend_url = argv[2];
        argv[2] = argv[0];
        argv += 2;
        argc -= 2;
    }
    if (argc < 3 || argc > 6) return usage();
    try {
        return run(argc, argv, backend_url);
    } catch (const std::exception& error) {
        fmt::print(stderr, "celery_client: {}\n", error.what());
        return 3;
    }
}
