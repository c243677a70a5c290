// Kombu's unacked-hash record.
#include "wire/unacked.hpp"

#include "kelp/errors.hpp"
#include "kelp/json.hpp"
#include "wire/json_text.hpp"

namespace kelp::redis {
namespace {

[[noreturn]] void reject(std::string_view record, const std::string& problem) {
    throw DecodeError("cannot read an unacked record: " + problem +
                      ". Kombu writes [<envelope object>, \"<exchange>\", \"<routing_key>\"] "
                      "in the unacked hash; a record of another shape cannot be restored, "
                      "delete its field (and its unacked_index entry); " +
                      std::to_string(record.size()) + " bytes starting " + preview(record));
}

}  // namespace

std::string encode_unacked(std::string_view payload, std::string_view exchange,
                           std::string_view routing_key) {
    // A JSON reader skips these around a whole value (nlohmann skips a
    // leading BOM too), but inside the array they would break the record.
    if (payload.starts_with("\xEF\xBB\xBF")) payload.remove_prefix(3);
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!payload.empty() && blank(payload.front()))
        payload.remove_prefix(1);
    while (!payload.empty() && blank(payload.back()))
        payload.remove_suffix(1);
    std::string out;
    out.reserve(payload.size() + exchange.size() + routing_key.size() + 12);
    out += '[';
    out += payload;
    out += ", ";
    append_json_string(out, exchange);
    out += ", ";
    append_json_string(out, routing_key);
    out += ']';
    return out;
}

UnackedRecord decode_unacked(std::string_view record) {
    // One level more than a message may have: the record's own array.
    ParsedJson parsed = parse_kombu_json(record, "an unacked record", kMaxJsonDepth + 1);
    kelp::Json& value = parsed.value;
    if (!value.is_array() || value.size() != 3) reject(record, "it is not an array of three");
    if (!value[0].is_object()) reject(record, "its first item is not an envelope object");
    if (!value[1].is_string() || !value[2].is_string())
        reject(record, "its exchange and routing key are not strings");

    // The envelope's own text, not a re-serialisation: key order and number
    // spelling stay the publisher's.
    const std::string_view text = parsed.was_repaired ? std::string_view(parsed.repaired) : record;
    const std::size_t begin = text.find('{');
    const std::size_t end = json_value_end(text, begin);
    return {std::string(text.substr(begin, end - begin)), value[1].get<std::string>(),
            value[2].get<std::string>()};
}

}  // namespace kelp::redis
