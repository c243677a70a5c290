// libFuzzer target: the Redis envelope decoder (kelp::redis::decode_message)
// and the unacked-record reader on arbitrary bytes.
//
// A bug is anything but a DecodeError: another exception (libFuzzer reports
// it as a crash), a crash, a leak, undefined behaviour (ASan/UBSan), or a
// message that does not survive being written back: what decodes must
// encode, decode again to the same message, and embed in an unacked record
// that gives the same text back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kelp/errors.hpp"
#include "wire/envelope.hpp"
#include "wire/json_text.hpp"
#include "wire/unacked.hpp"

namespace {

void check(bool holds) {
    if (!holds) __builtin_trap();
}

bool is_valid_utf8(std::string_view text) {
    return kelp::redis::replace_invalid_utf8(text) == text;
}

void fuzz_envelope(std::string_view payload) {
    kelp::redis::DecodedMessage decoded;
    try {
        decoded = kelp::redis::decode_message(payload);
    } catch (const kelp::DecodeError&) {
        return;
    }
    const std::string again = kelp::redis::encode_message(decoded.envelope, decoded.delivery);
    const kelp::redis::DecodedMessage back = kelp::redis::decode_message(again);
    check(back.envelope.body == decoded.envelope.body);
    check(back.delivery.delivery_tag == decoded.delivery.delivery_tag);
    check(back.delivery.exchange == decoded.delivery.exchange);
    check(back.delivery.routing_key == decoded.delivery.routing_key);
    check(back.delivery.priority == decoded.delivery.priority);
    check(back.delivery.redelivered == decoded.delivery.redelivered);
    check(kelp::redis::encode_message(back.envelope, back.delivery) == again);

    const std::string record = kelp::redis::encode_unacked(payload, decoded.delivery.exchange,
                                                           decoded.delivery.routing_key);
    const kelp::redis::UnackedRecord read = kelp::redis::decode_unacked(record);
    check(read.exchange == decoded.delivery.exchange);
    check(read.routing_key == decoded.delivery.routing_key);
    if (is_valid_utf8(payload))
        check(kelp::redis::decode_message(read.payload).delivery.delivery_tag ==
              decoded.delivery.delivery_tag);
}

void fuzz_unacked(std::string_view record) {
    try {
        const kelp::redis::UnackedRecord read = kelp::redis::decode_unacked(record);
        // The embedded text is one whole JSON object.
        check(!read.payload.empty() && read.payload.front() == '{' && read.payload.back() == '}');
    } catch (const kelp::DecodeError&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzz_envelope(input);
    fuzz_unacked(input);
    return 0;
}
