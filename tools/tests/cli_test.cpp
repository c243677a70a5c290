// The kelp commands run in process, so that memory:// queues carry messages
// from `publish` to `consume` (across processes each would see its own
// broker). Covers what the out-of-process ctest checks cannot: the JSON lines
// of consume, peeking with --requeue, stdin publishing, routing flags.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <kelp/kelp.hpp>

#include "../args.hpp"
#include "../common.hpp"

namespace {

struct Result {
    int code = -1;
    std::string out;
    std::vector<kelp::Json> lines() const {
        std::vector<kelp::Json> parsed;
        std::istringstream stream(out);
        for (std::string line; std::getline(stream, line);)
            parsed.push_back(kelp::Json::parse(line));
        return parsed;
    }
};

// Runs `kelp WORDS...` with stdout captured and, when given, stdin fed.
Result kelp_run(std::vector<std::string> words, const std::string* input = nullptr) {
    std::fflush(stdout);
    FILE* out = std::tmpfile();
    REQUIRE(out != nullptr);
    const int saved_out = ::dup(STDOUT_FILENO);
    ::dup2(::fileno(out), STDOUT_FILENO);

    FILE* in = nullptr;
    int saved_in = -1;
    if (input != nullptr) {
        in = std::tmpfile();
        REQUIRE(in != nullptr);
        std::fwrite(input->data(), 1, input->size(), in);
        std::fflush(in);
        std::rewind(in);
        saved_in = ::dup(STDIN_FILENO);
        ::dup2(::fileno(in), STDIN_FILENO);
        std::clearerr(stdin);
        std::cin.clear();
    }

    Result result;
    result.code = kelp::cli::run(std::move(words));

    std::fflush(stdout);
    ::dup2(saved_out, STDOUT_FILENO);
    ::close(saved_out);
    if (in != nullptr) {
        ::dup2(saved_in, STDIN_FILENO);
        ::close(saved_in);
        std::fclose(in);
        std::clearerr(stdin);
        std::cin.clear();
    }
    std::rewind(out);
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, out)) > 0;)
        result.out.append(buffer, n);
    std::fclose(out);
    return result;
}

std::string purge(const std::string& url, const std::string& queue) {
    const Result result = kelp_run({"purge", url, "--queue", queue});
    REQUIRE(result.code == 0);
    return result.out;
}

}  // namespace

TEST_CASE("consume prints one JSON object per message with every field") {
    const std::string url = "memory://cli-json";
    REQUIRE(
        kelp_run({"publish", url, "--queue", "q", "--header", "k=v", "--priority", "3",
                  "--content-type", "text/plain", "--correlation-id", "c-1", "-q", "h\xc3\xa9llo"})
            .code == 0);
    {
        // Bytes that are not UTF-8: a lone 0xff, and an overlong NUL.
        kelp::Connection conn{url};
        kelp::Producer producer{conn};
        producer.publish(std::string("\xff\x00\x01\x02", 4), {.routing_key = "q"});
        producer.publish(std::string("\xc0\x80"), {.routing_key = "q"});
    }
    REQUIRE(kelp_run({"publish", url, "--queue", "q", "--compression", "zlib", "-q",
                      std::string(200, 'z')})
                .code == 0);

    const Result result =
        kelp_run({"consume", url, "--queue", "q", "--count", "4", "--timeout", "5"});
    CHECK(result.code == 0);
    const auto lines = result.lines();
    REQUIRE(lines.size() == 4);

    CHECK(lines[0]["body"] == "h\xc3\xa9llo");
    CHECK(lines[0]["body_encoding"] == "utf-8");
    CHECK(lines[0]["headers"] == kelp::Json{{"k", "v"}});
    CHECK(lines[0]["properties"]["content_type"] == "text/plain");
    CHECK(lines[0]["properties"]["priority"] == 3);
    CHECK(lines[0]["properties"]["delivery_mode"] == 2);
    CHECK(lines[0]["properties"]["correlation_id"] == "c-1");
    const auto& info = lines[0]["delivery_info"];
    CHECK(info["queue"] == "q");
    CHECK(info["routing_key"] == "q");
    CHECK(info["exchange"] == "");
    CHECK(info["redelivered"] == false);
    CHECK(info["delivery_tag"].is_number_unsigned());
    CHECK(info["consumer_tag"].get<std::string>().rfind("kelp-cli", 0) == 0);

    CHECK(lines[1]["body_encoding"] == "base64");
    CHECK(lines[1]["body"] == "/wABAg==");
    CHECK(lines[1]["headers"] == kelp::Json::object());
    CHECK(lines[2]["body_encoding"] == "base64");
    CHECK(lines[2]["body"] == "wIA=");

    CHECK(lines[3]["body"] == std::string(200, 'z'));
    CHECK(lines[3]["headers"]["compression"] == "application/x-gzip");

    CHECK(purge(url, "q") == "0\n");  // all four were acked
}

TEST_CASE("--raw prints a compressed body as it travelled") {
    const std::string url = "memory://cli-raw";
    REQUIRE(kelp_run({"publish", url, "--queue", "q", "--compression", "zlib", "-q", "abc"}).code ==
            0);
    const auto lines =
        kelp_run({"consume", url, "--queue", "q", "--count", "1", "--timeout", "5", "--raw"})
            .lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["body"] != "abc");
}

TEST_CASE("--requeue peeks: the same messages come again, in order, redelivered") {
    const std::string url = "memory://cli-peek";
    for (const char* body : {"one", "two", "three"})
        REQUIRE(kelp_run({"publish", url, "--queue", "q", "-q", body}).code == 0);

    const auto peeked =
        kelp_run({"consume", url, "--queue", "q", "--count", "2", "--requeue", "--timeout", "5"})
            .lines();
    REQUIRE(peeked.size() == 2);
    CHECK(peeked[0]["body"] == "one");
    CHECK(peeked[1]["body"] == "two");

    const auto taken =
        kelp_run({"consume", url, "--queue", "q", "--count", "3", "--timeout", "5"}).lines();
    REQUIRE(taken.size() == 3);
    CHECK(taken[0]["body"] == "one");
    CHECK(taken[0]["delivery_info"]["redelivered"] == true);
    CHECK(taken[1]["body"] == "two");
    CHECK(taken[2]["body"] == "three");
    CHECK(purge(url, "q") == "0\n");
}

TEST_CASE("--count stops at N and leaves the rest queued; a short count exits 3") {
    const std::string url = "memory://cli-count";
    REQUIRE(kelp_run({"publish", url, "--queue", "q", "--count", "5", "-q", "m"}).code == 0);
    auto result = kelp_run({"consume", url, "--queue", "q", "--count", "2", "--timeout", "5"});
    CHECK(result.code == 0);
    CHECK(result.lines().size() == 2);

    result = kelp_run({"consume", url, "--queue", "q", "--count", "10", "--timeout", "0.3"});
    CHECK(result.code == 3);
    CHECK(result.lines().size() == 3);
    CHECK(purge(url, "q") == "0\n");  // the three that came were acked
}

TEST_CASE("--no-ack removes messages as they are sent") {
    const std::string url = "memory://cli-noack";
    REQUIRE(kelp_run({"publish", url, "--queue", "q", "--count", "2", "-q", "m"}).code == 0);
    const auto result =
        kelp_run({"consume", url, "--queue", "q", "--no-ack", "--count", "2", "--timeout", "5"});
    CHECK(result.code == 0);
    CHECK(result.lines().size() == 2);
    CHECK(purge(url, "q") == "0\n");
}

TEST_CASE("publish reads stdin: whole, or one message per line") {
    const std::string url = "memory://cli-stdin";
    const std::string text = "alpha\n\nbeta\r\ngamma";
    REQUIRE(kelp_run({"publish", url, "--queue", "lines", "--lines", "-q", "-"}, &text).code == 0);
    const auto lines =
        kelp_run({"consume", url, "--queue", "lines", "--count", "3", "--timeout", "5"}).lines();
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["body"] == "alpha");
    CHECK(lines[1]["body"] == "beta");
    CHECK(lines[2]["body"] == "gamma");

    REQUIRE(kelp_run({"publish", url, "--queue", "whole", "-q", "-"}, &text).code == 0);
    const auto whole =
        kelp_run({"consume", url, "--queue", "whole", "--count", "1", "--timeout", "5"}).lines();
    REQUIRE(whole.size() == 1);
    CHECK(whole[0]["body"] == text);
}

TEST_CASE("exchanges: topic routing, headers bindings, mandatory returns") {
    const std::string url = "memory://cli-routing";
    // Declaring the bound queue with the first publish; the second routes
    // through the binding alone.
    REQUIRE(kelp_run({"publish", url, "--exchange", "logs", "--type", "topic", "--queue", "errors",
                      "--routing-key", "*.error", "-q", "first"})
                .code == 0);
    REQUIRE(kelp_run({"publish", url, "--exchange", "logs", "--type", "topic", "--routing-key",
                      "db.error", "-q", "second"})
                .code == 0);
    CHECK(kelp_run({"publish", url, "--exchange", "logs", "--type", "topic", "--routing-key",
                    "db.info", "--mandatory", "-q", "lost"})
              .code == 4);
    const auto lines =
        kelp_run({"consume", url, "--queue", "errors", "--count", "2", "--timeout", "5"}).lines();
    REQUIRE(lines.size() == 2);
    CHECK(lines[1]["delivery_info"]["exchange"] == "logs");
    CHECK(lines[1]["delivery_info"]["routing_key"] == "db.error");

    REQUIRE(kelp_run({"consume", url, "--exchange", "h", "--type", "headers", "--queue", "hq",
                      "--bind-header", "kind=a", "--timeout", "0"})
                .code == 0);
    CHECK(kelp_run({"publish", url, "--exchange", "h", "--type", "headers", "--header", "kind=a",
                    "--mandatory", "-q", "match"})
              .code == 0);
    CHECK(kelp_run({"publish", url, "--exchange", "h", "--type", "headers", "--header", "kind=b",
                    "--mandatory", "-q", "no match"})
              .code == 4);
    CHECK(purge(url, "hq") == "1\n");
}

TEST_CASE("a closed stdout stops consume without acking the unprinted message") {
    const std::string url = "memory://cli-closed";
    REQUIRE(kelp_run({"publish", url, "--queue", "q", "--count", "3", "-q", "m"}).code == 0);

    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    ::close(fds[0]);  // nobody reads: the first write fails with EPIPE
    std::fflush(stdout);
    const int saved = ::dup(STDOUT_FILENO);
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[1]);
    const int code =
        kelp::cli::run({"consume", url, "--queue", "q", "--count", "3", "--timeout", "5"});
    ::dup2(saved, STDOUT_FILENO);
    ::close(saved);
    std::clearerr(stdout);

    CHECK(code == 1);
    CHECK(purge(url, "q") == "3\n");
}

TEST_CASE("consume --passive refuses a queue that does not exist") {
    const auto result = kelp_run(
        {"consume", "memory://cli-passive", "--queue", "absent", "--passive", "--timeout", "0"});
    CHECK(result.code == 1);
}

TEST_CASE("usage errors exit 2") {
    CHECK(kelp_run({"publish", "memory://", "--type", "topic", "x"}).code == 2);  // no --exchange
    CHECK(kelp_run({"publish", "memory://", "--persistent", "--transient", "x"}).code == 2);
    CHECK(kelp_run({"publish", "memory://", "--lines", "x"}).code == 2);
    CHECK(kelp_run({"publish", "memory://", "--header", "novalue", "x"}).code == 2);
    CHECK(kelp_run({"publish", "memory://", "--compression", "brotli", "x"}).code == 2);
    CHECK(kelp_run({"publish", "memory://", "--count", "0", "x"}).code == 2);
    CHECK(kelp_run({"publish", "memory://", "--queue", "a", "--queue", "b", "x"}).code == 2);
    CHECK(kelp_run({"consume", "memory://"}).code == 2);  // no --queue
    CHECK(kelp_run({"consume", "memory://", "--queue", "q", "--timeout", "soon"}).code == 2);
    CHECK(kelp_run({"consume", "memory://", "--queue", "q", "--requeue", "--no-ack"}).code == 2);
    CHECK(kelp_run({"purge", "memory://", "extra", "--queue", "q"}).code == 2);
    CHECK(kelp_run({"bench", "memory://", "--messages", "-5"}).code == 2);
    CHECK(kelp_run({"info", "memory://", "--check=yes"}).code == 2);
}

TEST_CASE("ArgParser grammar") {
    using kelp::cli::ArgParser;
    using kelp::cli::UsageError;
    ArgParser parser{"t", "A [B]", "test"};
    parser.positional("A", "a").positional("B", "b", false);
    parser.flag("on", "a flag", 'o')
        .option("name", "N", "an option")
        .option("tag", "T", "tags", true);

    auto args = parser.parse({"--name=x", "-o", "first", "--tag", "1", "--tag", "2"});
    CHECK(args.value("name") == "x");
    CHECK(args.has("on"));
    CHECK(args.positional("A") == "first");
    CHECK(args.positional("B") == "");
    CHECK(args.values("tag") == std::vector<std::string>{"1", "2"});

    // A value option takes the next word whatever it looks like.
    args = parser.parse({"a", "--name", "--on"});
    CHECK(args.value("name") == "--on");
    CHECK_FALSE(args.has("on"));

    // After "--" everything is positional; "-" is always one.
    args = parser.parse({"--", "--on", "-"});
    CHECK(args.positional("A") == "--on");
    CHECK(args.positional("B") == "-");

    CHECK(parser.parse({"--bogus", "--help"}).help_requested);
    CHECK_THROWS_WITH_AS(parser.parse({"a", "--nme", "x"}),
                         "unknown option '--nme' (did you mean '--name'?)", UsageError);
    CHECK_THROWS_WITH_AS(parser.parse({"a", "--name"}), "--name needs a value N", UsageError);
    CHECK_THROWS_WITH_AS(parser.parse({"a", "--on=1"}), "--on takes no value", UsageError);
    CHECK_THROWS_WITH_AS(parser.parse({}), "missing A", UsageError);
    CHECK_THROWS_WITH_AS(parser.parse({"a", "b", "c"}), "unexpected argument 'c'", UsageError);
    CHECK_THROWS_WITH_AS(parser.parse({"a", "--name", "1", "--name", "2"}),
                         "--name given more than once", UsageError);

    ArgParser numbers{"n", "", "numbers"};
    numbers.option("n", "N", "").option("d", "D", "").option("s", "S", "");
    args = numbers.parse({"--n", "+7", "--d", "250ms", "--s", "2KiB"});
    CHECK(args.integer("n", 0, 10) == 7);
    CHECK(args.duration("d") == std::chrono::milliseconds(250));
    CHECK(args.size_or("s", 0, 0, 1 << 20) == 2048);
    CHECK_THROWS_AS(args.integer("n", 0, 5), UsageError);
    CHECK(args.integer_or("missing", 42, 0, 100) == 42);
}
