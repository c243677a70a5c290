// Base64 as Kombu's envelope carries bodies (properties.body_encoding
// "base64"): the standard RFC 4648 alphabet with '=' padding.
//
// Writing gives exactly Python's base64.b64encode. Reading takes what
// Python's base64.b64decode takes from any real producer: ASCII whitespace
// (MIME line breaks) is skipped and padding bits that are not zero are
// ignored. Where Python is silently lossy, kelp refuses: a character outside
// the alphabet (Python drops it) and data after the padding (Python drops it)
// are errors, since either means the producer is broken and the body would
// not be the one it sent.
//
// Thread rules: pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace kelp::redis {

std::string base64_encode(std::string_view bytes);
// The same, appended to `out` (no temporary string on the publish path).
void base64_append(std::string& out, std::string_view bytes);

// Throws kelp::DecodeError saying where the text stops being base64 and why.
std::string base64_decode(std::string_view text);

}  // namespace kelp::redis
