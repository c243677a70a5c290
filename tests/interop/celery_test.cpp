// kelp calls Python Celery tasks: examples/celery_client (this is its smoke
// test) sends Celery task protocol 2 messages to a real `celery worker`
// (Celery 5.2.6, --pool=solo, tasks in interop_tasks.py), started and
// stopped here, with the test redis-server as broker and result backend.
// What the worker computed is read back from the result backend directly.
#include <signal.h>
#include <sys/wait.h>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace interop;
using kelp::Json;

namespace {

struct ClientRun {
    std::string out;
    std::string err;
    int exit_code = -1;
    std::string task_id;  // from "sent <task>[<id>] ..."
};

ClientRun run_client(const TempDir& dir, const std::vector<std::string>& arguments) {
    std::vector<std::string> argv{KELP_CELERY_CLIENT, redis_url()};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    Child client(argv, dir.file("client.err"));
    ClientRun run;
    run.out = client.read_rest(60s);
    const auto status = client.wait(10s);
    run.err = dir.read("client.err");
    REQUIRE_MESSAGE(status.has_value(), "celery_client did not finish; it said: " << run.err);
    REQUIRE_MESSAGE(WIFEXITED(*status), "celery_client " << describe_status(*status));
    run.exit_code = WEXITSTATUS(*status);
    if (const auto open = run.out.find('['), close = run.out.find(']');
        open != std::string::npos && close != std::string::npos && open < close) {
        run.task_id = run.out.substr(open + 1, close - open - 1);
    }
    return run;
}

// celery-task-meta-<id> as the worker stored it.
Json stored_result(RedisProbe& probe, const std::string& task_id) {
    const Json text = probe.command({"GET", "celery-task-meta-" + task_id});
    REQUIRE_MESSAGE(text.is_string(), "no result stored for task " << task_id);
    return kelp::parse_json(text.get<std::string>());
}

}  // namespace

TEST_SUITE("celery") {
    TEST_CASE("examples/celery_client runs tasks on a real Celery worker") {
        RedisProbe probe;
        probe.flush();
        TempDir dir;

        // No worker yet: the client says so, and what to start.
        const ClientRun lonely = run_client(dir, {"interop_tasks.add", "[2, 3]", "{}", "1"});
        INFO("celery_client said: " << lonely.out << lonely.err);
        CHECK(lonely.exit_code == 2);
        CHECK(lonely.err.find("no Celery worker answered within 1 s") != std::string::npos);
        CHECK(lonely.err.find("celery -A") != std::string::npos);
        probe.flush();  // that task is not for the worker below

        {
            Child check({python, "-c", "import celery, redis"}, dir.file("import.err"));
            const auto status = check.wait(30s);
            REQUIRE_MESSAGE((status && *status == 0),
                            "/usr/bin/python3 cannot import celery: install the Debian packages "
                            "python3-celery and python3-redis (scripts/install-deps test): "
                                << dir.read("import.err"));
        }
        Child worker({python, "-m", "celery", "-A", "interop_tasks", "worker", "--pool=solo",
                      "--loglevel=INFO", "--hostname=kelp-interop@%h", "--without-gossip",
                      "--without-mingle", "--without-heartbeat", "--queues=celery"},
                     dir.file("worker.log"),
                     {"KELP_INTEROP_REDIS_URL=" + redis_url(), "PYTHONPATH=" KELP_INTEROP_DIR,
                      "PYTHONDONTWRITEBYTECODE=1"},
                     dir.file(""));
        INFO("the Celery worker (python3-celery) logged: " << dir.read("worker.log"));

        {  // a result computed from kelp's arguments
            const ClientRun run = run_client(dir, {"interop_tasks.add", "[2, 3]"});
            INFO("celery_client said: " << run.out << run.err);
            CHECK(run.exit_code == 0);
            CHECK(run.out.find("SUCCESS: 5\n") != std::string::npos);
            const Json result = stored_result(probe, run.task_id);
            CHECK(result["status"] == "SUCCESS");
            CHECK(result["result"] == 5);
            CHECK(result["task_id"] == run.task_id);
        }
        {  // arguments of every JSON type arrive as sent
            const Json args =
                Json::array({"h\xC3\xA9 \xE2\x98\x83 \xF0\x9F\x98\x80", 1.5, nullptr,
                             Json::array({1, {{"a", true}}}), std::int64_t{1} << 62, ""});
            const Json kwargs = {{"k", {{"nested", Json::array({1, 2})}}}, {"flag", false}};
            const ClientRun run = run_client(
                dir, {"interop_tasks.echo", kelp::dump_json(args), kelp::dump_json(kwargs)});
            INFO("celery_client said: " << run.out << run.err);
            CHECK(run.exit_code == 0);
            const Json result = stored_result(probe, run.task_id);
            CHECK(result["status"] == "SUCCESS");
            CHECK(result["result"] == Json{{"args", args}, {"kwargs", kwargs}});
        }
        {  // a task the worker does not know fails clearly
            const ClientRun run = run_client(dir, {"interop_tasks.missing", "[]"});
            INFO("celery_client said: " << run.out << run.err);
            CHECK(run.exit_code == 1);
            CHECK(run.err.find("FAILURE: NotRegistered") != std::string::npos);
            const Json result = stored_result(probe, run.task_id);
            CHECK(result["status"] == "FAILURE");
            CHECK(result["result"]["exc_type"] == "NotRegistered");
        }

        // Warm shutdown, as a supervisor would ask.
        worker.kill(SIGTERM);
        const auto status = worker.wait(20s);
        REQUIRE_MESSAGE(status.has_value(), "the Celery worker did not stop on SIGTERM");
        CHECK(describe_status(*status) == "exited with 0");
    }
}
