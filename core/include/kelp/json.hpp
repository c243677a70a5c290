// kelp's dynamic value type: message headers, queue and exchange arguments,
// and decoded JSON payloads are nlohmann::json values.
//
// Thread rules: a value type; share read-only or copy.
#pragma once

#include <nlohmann/json.hpp>

namespace kelp {

using Json = nlohmann::json;
// A field table (AMQP) or header map: a Json object, or null for "empty".
using Table = Json;

}  // namespace kelp
