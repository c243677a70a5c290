// Commands as RespClient writes them (append_resp_command): byte for byte
// what hiredis's redisFormatCommandArgv writes, which it replaced.
#include <hiredis/hiredis.h>

#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "client.hpp"

namespace {

std::string hiredis_format(const std::vector<std::string_view>& command) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string_view part : command) {
        argv.push_back(part.data());
        lengths.push_back(part.size());
    }
    char* formatted = nullptr;
    const int length = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()),
                                              argv.data(), lengths.data());
    REQUIRE(length >= 0);
    std::string out(formatted, static_cast<std::size_t>(length));
    redisFreeCommand(formatted);
    return out;
}

}  // namespace

TEST_SUITE("redis resp format") {
    TEST_CASE("commands are written as hiredis writes them") {
        const std::string binary("a\0b\r\n\xff", 6);
        const std::string big(100000, 'x');
        const std::vector<std::vector<std::string_view>> commands = {
            {"PING"},
            {"LPUSH", "q", "m"},
            {"SET", "", ""},
            {"HSET", "h", binary, big},
            {"EVALSHA", "0123456789abcdef0123456789abcdef01234567", "0", "a", "b", "c", "d", "e",
             "f", "g", "h", "i", "j", "k"},
        };
        for (const auto& command : commands) {
            std::string out = "prefix";
            kelp::redis::append_resp_command(out, command);
            CHECK(out == "prefix" + hiredis_format(command));
        }
        std::string exact;
        kelp::redis::append_resp_command(exact, kelp::redis::args({"LPUSH", "q", "hello"}));
        CHECK(exact == "*3\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n$5\r\nhello\r\n");
    }
}
