// kelp and Python Kombu (py-amqp) on a real RabbitMQ (fixture
// rabbitmq_server), both directions: header values of each AMQP type
// (64-bit integers, which py-amqp writes as 'L'), basic properties,
// priorities on an x-max-priority queue and per-message expiration.
#include <signal.h>
#include <sys/wait.h>

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include <doctest/doctest.h>

#include "support.hpp"
#include "wire/base64.hpp"

using namespace interop;
using kelp::Json;
using kelp::redis::base64_decode;

namespace {

// Names no earlier run left behind on the shared broker.
std::string fresh(std::string_view stem) {
    static std::mt19937_64 random{std::random_device{}()};
    return "interop." + std::string(stem) + "." + std::to_string(random() % 1000000000);
}

Json kombu_queue(std::string_view name, Json extra = Json::object()) {
    extra["name"] = name;
    return extra;
}

std::string body_of(const Json& report_entry) {
    return base64_decode(report_entry["body_b64"].get<std::string>());
}

// Header values of every type both sides carry: 64-bit integers either side
// of the 32-bit range, doubles, strings, booleans, null, arrays, tables.
Json typed_headers() {
    return Json{
        {"small", 7},
        {"negative", -42},
        {"int32_max", std::numeric_limits<std::int32_t>::max()},
        {"above_int32", std::int64_t{1} << 40},
        {"below_int32", -(std::int64_t{1} << 40)},
        {"int64_max", std::numeric_limits<std::int64_t>::max()},
        {"int64_min", std::numeric_limits<std::int64_t>::min()},
        {"float", 1.5},
        {"text", "caf\xC3\xA9 \xE2\x98\x83"},
        {"empty", ""},
        {"yes", true},
        {"no", false},
        {"none", nullptr},
        {"list", Json::array({1, "a", std::int64_t{1} << 35, Json::array({false})})},
        {"table", {{"deep", {{"wide", std::int64_t{-1} << 50}}}, {"k", "v"}}},
    };
}

}  // namespace

TEST_SUITE("amqp_interop") {
    TEST_CASE("kelp -> Kombu over amqp: typed headers, properties, priority, expiration") {
        const std::string queue = fresh("k2k");
        kelp::Connection conn{amqp_url()};
        // Declared as Kombu declares it (durable, x-max-priority 10).
        conn.maybe_declare(kelp::Queue{queue, kelp::QueueOptions{.max_priority = 10}});
        kelp::Producer producer{conn};
        const Json headers = typed_headers();
        producer.publish(Json{{"n", 1}}, {.routing_key = queue,
                                          .headers = headers,
                                          .priority = 4,
                                          .expiration = std::chrono::milliseconds(60000),
                                          .delivery_mode = kelp::DeliveryMode::transient,
                                          .correlation_id = "corr-1",
                                          .reply_to = "reply.q",
                                          .message_id = "mid-1",
                                          .type = "mytype",
                                          .app_id = "myapp",
                                          .user_id = "guest",
                                          .timestamp = 1700000000});
        // Priorities: queued before Kombu consumes, served highest first.
        for (const std::uint8_t priority : std::initializer_list<std::uint8_t>{2, 9, 0, 5})
            producer.publish("p" + std::to_string(priority),
                             {.routing_key = queue, .priority = priority});
        // Expired on the broker before anyone asks: never delivered.
        producer.publish("expired", {.routing_key = queue, .expiration = 1ms});
        conn.close();
        std::this_thread::sleep_for(200ms);

        const Json report = kombu_consume(
            Json{{"url", amqp_url()},
                 {"queues", Json::array({kombu_queue(queue, {{"max_priority", 10}})})},
                 {"count", 5},
                 {"linger", 0.5},
                 {"timeout", 20}});
        REQUIRE(report.size() == 5);
        std::vector<std::string> order;
        for (const auto& entry : report)
            order.push_back(body_of(entry));
        // Highest priority first; the properties message (4) among them.
        CHECK(order == std::vector<std::string>{"p9", "p5", "{\"n\": 1}", "p2", "p0"});
        const Json& first = report[2];
        // Python's json.dumps(sort_keys=True) of what py-amqp decoded equals
        // kelp's text of what it sent only if every value and type survived.
        CHECK(first["headers_json"].get<std::string>() == kelp::dump_json(headers));
        const Json& properties = first["properties"];
        CHECK(properties["correlation_id"] == "corr-1");
        CHECK(properties["reply_to"] == "reply.q");
        CHECK(properties["message_id"] == "mid-1");
        CHECK(properties["timestamp"] == 1700000000);
        CHECK(properties["type"] == "mytype");
        CHECK(properties["app_id"] == "myapp");
        CHECK(properties["user_id"] == "guest");
        CHECK(properties["delivery_mode"] == 1);
        CHECK(properties["priority"] == 4);
        CHECK(properties["expiration"] == "60000");
        CHECK(first["content_type"] == "application/json");
        CHECK(first["content_encoding"] == "utf-8");
        CHECK(first["decoded"]["json_text"] == "{\"n\": 1}");
        CHECK(report[0]["properties"]["priority"] == 9);
        CHECK(report[0]["properties"]["delivery_mode"] == 2);

        kelp::Connection cleanup{amqp_url()};
        cleanup.default_channel().queue_delete(queue);
    }

    TEST_CASE("Kombu -> kelp over amqp: py-amqp's 'L' integers, properties, priority, expiration") {
        const std::string queue = fresh("k2kelp");
        const Json headers = typed_headers();
        const Json message_headers = Json{{"x", "y"}};
        auto message = [&](std::string_view text, Json options) {
            options["routing_key"] = queue;
            options["body"] = Json{{"text", text}};
            return options;
        };
        // Kombu declares the queue (x-max-priority) and queues everything
        // before kelp consumes, so the broker orders by priority.
        kombu_publish(
            Json{{"url", amqp_url()},
                 {"queues", Json::array({kombu_queue(queue, {{"max_priority", 10}})})},
                 {"messages", Json::array({
                                  message("typed", {{"headers", headers},
                                                    {"priority", 3},
                                                    {"expiration", 60},
                                                    {"delivery_mode", 1},
                                                    {"properties",
                                                     {{"correlation_id", "corr-2"},
                                                      {"reply_to", "reply.k"},
                                                      {"message_id", "mid-2"},
                                                      {"type", "ktype"},
                                                      {"app_id", "kapp"},
                                                      {"user_id", "guest"},
                                                      {"timestamp", 1700000001}}}}),
                                  message("p8", {{"priority", 8}, {"headers", message_headers}}),
                                  message("p1", {{"priority", 1}}),
                                  message("expired", {{"expiration", 0.001}}),
                              })}});
        std::this_thread::sleep_for(200ms);

        kelp::Connection conn{amqp_url()};
        KelpConsumer kelp_side(conn, {kelp::Queue{queue, kelp::QueueOptions{.max_priority = 10}}});
        const auto& received = kelp_side.collect(3, 20s, 500ms);
        REQUIRE(received.size() == 3);
        CHECK(received[0].envelope.body == "p8");
        CHECK(received[0].envelope.properties.priority == std::uint8_t{8});
        CHECK(received[0].envelope.headers == message_headers);
        CHECK(received[1].envelope.body == "typed");
        CHECK(received[2].envelope.body == "p1");

        const auto& typed = received[1].envelope;
        // Every header with its value and type: 64-bit integers from 'L',
        // 1.5 a double, None a null, lists and nested tables.
        CHECK(typed.headers == headers);
        CHECK(typed.headers["above_int32"].is_number_integer());
        CHECK(typed.headers["int64_min"] == std::numeric_limits<std::int64_t>::min());
        CHECK(typed.headers["float"].is_number_float());
        const auto& properties = typed.properties;
        CHECK(properties.content_type == "text/plain");
        CHECK(properties.content_encoding == "utf-8");
        CHECK(properties.priority == std::uint8_t{3});
        CHECK(properties.expiration == std::chrono::milliseconds(60000));
        CHECK(properties.delivery_mode == kelp::DeliveryMode::transient);
        CHECK(properties.correlation_id == "corr-2");
        CHECK(properties.reply_to == "reply.k");
        CHECK(properties.message_id == "mid-2");
        CHECK(properties.type == "ktype");
        CHECK(properties.app_id == "kapp");
        CHECK(properties.user_id == "guest");
        CHECK(properties.timestamp == std::int64_t{1700000001});
        CHECK(received[1].payload == "typed");
        CHECK(received[1].routing_key == queue);
        CHECK(received[1].exchange.empty());
        CHECK(!received[1].redelivered);

        conn.default_channel().queue_delete(queue);
    }
}

TEST_SUITE("celery_amqp") {
    TEST_CASE("examples/celery_client sends a task over amqp:// to a real Celery worker") {
        RedisProbe probe;  // the result backend
        probe.flush();
        TempDir dir;
        {
            // Tasks left in the durable queue "celery" by an earlier run
            // would reach this worker first.
            kelp::Connection conn{amqp_url()};
            const kelp::Queue celery{"celery", kelp::Exchange{"celery"}, "celery"};
            conn.maybe_declare(celery);
            conn.default_channel().queue_purge(celery.name);
        }
        {
            Child check({python, "-c", "import celery, amqp, redis"}, dir.file("import.err"));
            const auto status = check.wait(30s);
            REQUIRE_MESSAGE((status && *status == 0),
                            "/usr/bin/python3 cannot import celery with py-amqp: install the "
                            "Debian packages python3-celery, python3-amqp and python3-redis: "
                                << dir.read("import.err"));
        }
        Child worker(
            {python, "-m", "celery", "-A", "interop_tasks", "worker", "--pool=solo",
             "--loglevel=INFO", "--hostname=kelp-interop-amqp@%h", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "--queues=celery"},
            dir.file("worker.log"),
            {"KELP_INTEROP_REDIS_URL=" + redis_url(), "KELP_INTEROP_BROKER_URL=" + amqp_url(),
             "PYTHONPATH=" KELP_INTEROP_DIR, "PYTHONDONTWRITEBYTECODE=1"},
            dir.file(""));
        INFO("the Celery worker (python3-celery) logged: " << dir.read("worker.log"));

        auto run_client = [&](const std::vector<std::string>& arguments) {
            std::vector<std::string> argv{KELP_CELERY_CLIENT, "--backend", redis_url(), amqp_url()};
            argv.insert(argv.end(), arguments.begin(), arguments.end());
            Child client(argv, dir.file("client.err"));
            std::string out = client.read_rest(90s);
            const auto status = client.wait(10s);
            const std::string err = dir.read("client.err");
            INFO("celery_client said: " << out << err);
            REQUIRE(status.has_value());
            REQUIRE(WIFEXITED(*status));
            CHECK(WEXITSTATUS(*status) == 0);
            return out;
        };
        // The worker may still be starting: the task waits in the queue.
        CHECK(run_client({"interop_tasks.add", "[2, 3]", "{}", "60"}).find("SUCCESS: 5\n") !=
              std::string::npos);
        const Json args = Json::array(
            {"h\xC3\xA9", 1.5, nullptr, std::int64_t{1} << 62, Json::array({1, {{"a", true}}})});
        const Json kwargs = {{"k", {{"nested", Json::array({1, 2})}}}};
        const std::string out =
            run_client({"interop_tasks.echo", kelp::dump_json(args), kelp::dump_json(kwargs)});
        const auto at = out.find("SUCCESS: ");
        REQUIRE(at != std::string::npos);
        CHECK(kelp::parse_json(out.substr(at + 9)) == Json{{"args", args}, {"kwargs", kwargs}});

        worker.kill(SIGTERM);
        const auto status = worker.wait(30s);
        REQUIRE_MESSAGE(status.has_value(), "the Celery worker did not stop on SIGTERM");
        CHECK(describe_status(*status) == "exited with 0");
    }
}
