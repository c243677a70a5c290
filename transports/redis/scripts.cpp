#include "scripts.hpp"

#include <openssl/evp.h>

#include <memory>
#include <optional>

#include "kelp/errors.hpp"

namespace kelp::redis {
namespace {

// --- whether a queue exists ----------------------------------------------------------
//
// For the default exchange: AMQP drops a message for a queue that does not
// exist, where Kombu's LPUSH would create a list nobody reads. A queue exists
// when kelp declared it, it holds messages, or Kombu bound it to an exchange
// of its own name (what Celery and SimpleQueue do).
constexpr std::string_view queue_library = R"lua(
local function queue_exists(prefix, sep, queues_key, binding_prefix, queue)
  if redis.call('HEXISTS', queues_key, queue) == 1 then return true end
  local lists = {prefix .. queue}
  for level = 1, 9 do lists[#lists + 1] = prefix .. queue .. sep .. level end
  if redis.call('EXISTS', unpack(lists)) > 0 then return true end
  local suffix = sep .. queue
  for _, member in ipairs(redis.call('SMEMBERS', binding_prefix .. queue)) do
    if string.sub(member, -#suffix) == suffix then return true end
  end
  return false
end
)lua";

// --- the routing library ---------------------------------------------------------
//
// The first seven arguments of every script that routes (the RouteContext,
// built by the transport):
//   ARGV[1] global_keyprefix      ARGV[5] queue declarations hash
//   ARGV[2] sep                   ARGV[6] binding set prefix ("<prefix>_kombu.binding.")
//   ARGV[3] priority steps "0,3,6,9"   ARGV[7] Kombu's deadletter_queue, or ''
//   ARGV[4] exchange declarations hash
//
// Routing follows AMQP 0-9-1 as core/virtual does (kelp/virtual/matching.hpp):
// topic words split on '.', '*' exactly one word, '#' zero or more; headers
// with x-match all/any(-with-x), null matching on presence. The exchange type
// comes from the caller, else from kelp's declaration record, else from the
// bindings themselves (a Kombu topic binding carries a regex, a direct one
// nothing), since Kombu keeps exchange types only in its own memory.
constexpr std::string_view routing_library = R"lua(
local ctx = {
  prefix = ARGV[1], sep = ARGV[2], exchanges_key = ARGV[4], queues_key = ARGV[5],
  binding_prefix = ARGV[6], deadletter = ARGV[7], steps = {}, max_priority = {},
}
for step in string.gmatch(ARGV[3], '%d+') do ctx.steps[#ctx.steps + 1] = tonumber(step) end

local function split_words(key)
  local words = {}
  if key == '' then return words end
  local start = 1
  while true do
    local dot = string.find(key, '.', start, true)
    if not dot then
      words[#words + 1] = string.sub(key, start)
      return words
    end
    words[#words + 1] = string.sub(key, start, dot - 1)
    start = dot + 1
  end
end

-- Which prefixes of the routing key each prefix of the binding key can match:
-- O(words * words), no backtracking.
local function topic_matches(binding_key, routing_words)
  local pattern = split_words(binding_key)
  local reach = {[0] = true}
  for i = 1, #pattern do
    local word = pattern[i]
    local next_reach = {}
    if word == '#' then
      local seen = false
      for j = 0, #routing_words do
        if reach[j] then seen = true end
        if seen then next_reach[j] = true end
      end
    else
      for j = 1, #routing_words do
        if reach[j - 1] and (word == '*' or word == routing_words[j]) then
          next_reach[j] = true
        end
      end
    end
    reach = next_reach
  end
  return reach[#routing_words] == true
end

local function same_value(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for key, value in pairs(a) do
    if not same_value(value, b[key]) then return false end
  end
  for key in pairs(b) do
    if a[key] == nil then return false end
  end
  return true
end

local function headers_match(arguments, headers)
  local mode = arguments['x-match']
  if mode ~= 'any' and mode ~= 'all-with-x' and mode ~= 'any-with-x' then mode = 'all' end
  local with_x = mode == 'all-with-x' or mode == 'any-with-x'
  local compared, matched = 0, 0
  for name, wanted in pairs(arguments) do
    if name ~= 'x-match' and (with_x or string.sub(name, 1, 2) ~= 'x-') then
      compared = compared + 1
      local present = headers[name]
      if present ~= nil and (wanted == cjson.null or same_value(wanted, present)) then
        matched = matched + 1
      end
    end
  end
  if mode == 'any' or mode == 'any-with-x' then return matched > 0 end
  return matched == compared
end

local function decode_object(text)
  if text == nil or text == '' then return {} end
  local ok, value = pcall(cjson.decode, text)
  if ok and type(value) == 'table' then return value end
  return {}
end

local function exchange_type(exchange, given)
  if given ~= '' then return given end
  local record = redis.call('HGET', ctx.exchanges_key, exchange)
  if record then
    local kind = decode_object(record)['type']
    if type(kind) == 'string' then return kind end
  end
  return ''
end

-- The queues a message goes to, each once, and whether the exchange is a
-- fanout (whose message is also PUBLISHed for Kombu's subscribers). A
-- restore (`returning`) goes back to its queue through the default exchange
-- whether or not that queue is known.
local function kelp_route(exchange, routing_key, given_type, headers_json, returning)
  if exchange == '' then
    if returning or queue_exists(ctx.prefix, ctx.sep, ctx.queues_key, ctx.binding_prefix,
                                 routing_key) then
      return {routing_key}, false
    end
    return {}, false
  end
  local declared = exchange_type(exchange, given_type)
  local members = redis.call('SMEMBERS', ctx.binding_prefix .. exchange)
  local queues, seen = {}, {}
  local fanout = declared == 'fanout'
  local routing_words, headers
  local sep = ctx.sep
  for _, member in ipairs(members) do
    local first = string.find(member, sep, 1, true)
    local second = first and string.find(member, sep, first + #sep, true)
    if second then
      local key = string.sub(member, 1, first - 1)
      local pattern = string.sub(member, first + #sep, second - 1)
      local queue = string.sub(member, second + #sep)
      local kind = declared
      if kind == '' then
        if pattern == '' then kind = 'direct'
        elseif pattern == FANOUT_MARK then kind = 'fanout'; fanout = true
        elseif string.sub(pattern, 1, #HEADERS_MARK) == HEADERS_MARK then kind = 'headers'
        else kind = 'topic' end
      end
      local hit
      if kind == 'fanout' then
        -- Only queues kelp consumes from their list; Kombu's fanout queues
        -- are served by PUBLISH alone, and a list pushed for them would grow
        -- for ever.
        hit = pattern == FANOUT_MARK
      elseif kind == 'topic' then
        routing_words = routing_words or split_words(routing_key)
        hit = topic_matches(key, routing_words)
      elseif kind == 'headers' then
        headers = headers or decode_object(headers_json)
        hit = string.sub(pattern, 1, #HEADERS_MARK) == HEADERS_MARK and
              headers_match(decode_object(string.sub(pattern, #HEADERS_MARK + 1)), headers)
      else
        hit = key == routing_key
      end
      if hit and not seen[queue] then
        seen[queue] = true
        queues[#queues + 1] = queue
      end
    end
  end
  return queues, fanout
end

-- The list of `queue` for `priority` (0..9): one bucket per level for a queue
-- kelp declared with x-max-priority, Kombu's steps otherwise.
local function bucket_key(queue, priority)
  local max_priority = ctx.max_priority[queue]
  if max_priority == nil then
    max_priority = false
    local record = redis.call('HGET', ctx.queues_key, queue)
    if record then
      local arguments = decode_object(record)['arguments']
      if type(arguments) == 'table' and type(arguments['x-max-priority']) == 'number' then
        max_priority = arguments['x-max-priority']
      end
    end
    ctx.max_priority[queue] = max_priority
  end
  local step = 0
  if max_priority then
    step = math.min(priority, max_priority)
  else
    for _, candidate in ipairs(ctx.steps) do
      if candidate <= priority then step = candidate end
    end
  end
  if step <= 0 then return ctx.prefix .. queue end
  return ctx.prefix .. queue .. ctx.sep .. string.format('%d', step)
end

-- Head: consumed next (RPUSH, consumers pop from the right); tail: LPUSH.
local function kelp_push(queues, priority, payload, head)
  for _, queue in ipairs(queues) do
    local key = bucket_key(queue, priority)
    if head then redis.call('RPUSH', key, payload) else redis.call('LPUSH', key, payload) end
  end
end
)lua";

// --- the scripts ---------------------------------------------------------------------

// KEYS: unacked hash, unacked index, then the list keys level-major (every
// queue's highest bucket, then every queue's next, ...).
// ARGV: queues, levels, first queue (round robin), max messages, max bytes,
// now (Unix seconds), record field prefix, one '1'/'0' per queue (record it).
// Returns {next first queue, field, key index, payload, field, ...}.
//
// The messages come out as if popped one at a time, each from the next
// non-empty queue of the highest non-empty level; but each list gives its
// share in one LRANGE + LTRIM (RPOP with a count, before Redis 6.2 too), and
// the records go in with one HMSET and one ZADD: per message, Redis runs no
// command of its own.
constexpr std::string_view pop_body = R"lua(
local queues, levels = tonumber(ARGV[1]), tonumber(ARGV[2])
local start, wanted, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now, field_prefix, record_flags = ARGV[6], ARGV[7], ARGV[8]
local out = {0}
local taken, bytes = 0, 0
local records, scores = {}, {}

local find, sub = string.find, string.sub

-- A JSON string's text from `first` to the next quote, when it needs no
-- escaping (cjson.encode would write it as is); and that quote's position.
local function plain_text(payload, first)
  local quote = find(payload, '"', first, true)
  if not quote then return nil end
  local text = sub(payload, first, quote - 1)
  if find(text, '\\', 1, true) or find(text, '/', 1, true) then return nil end
  return text, quote
end

-- The exchange and routing key of an envelope as kelp and Kombu write it,
-- read without decoding the JSON (which costs Redis more than the rest of
-- the pop): it ends with properties' delivery_info, priority, body_encoding
-- and delivery_tag, then '}}'. Unescaped quotes cannot sit inside a JSON
-- string, and nothing that could open an object or array lies between this
-- delivery_info and the final '}}', so it is the one in the envelope's last
-- member, its properties. nil for anything else (a redelivered message,
-- another layout): the caller decodes those.
local function delivery_info_of(payload)
  local at = find(payload, '"delivery_info": {"exchange": "', 1, true)
  if not at then return nil end
  local exchange, quote = plain_text(payload, at + 31)
  if not exchange or sub(payload, quote, quote + 18) ~= '", "routing_key": "' then return nil end
  local routing_key
  routing_key, quote = plain_text(payload, quote + 19)
  if not routing_key or sub(payload, quote, quote + 15) ~= '"}, "priority": ' then return nil end
  local comma = find(payload, ', "body_encoding": ', quote + 16, true)
  if not comma or comma - quote - 16 > 2 or not tonumber(sub(payload, quote + 16, comma - 1)) then
    return nil
  end
  local tag = find(payload, ', "delivery_tag": "', comma + 19, true)
  if not tag then return nil end
  local encoding = sub(payload, comma + 19, tag - 1)
  if encoding ~= '"base64"' and encoding ~= 'null' then return nil end
  quote = find(payload, '"', tag + 19, true)
  if not quote or quote + 2 ~= #payload or sub(payload, quote) ~= '"}}' then return nil end
  return exchange, routing_key
end

-- Kombu's record: [envelope, exchange, routing_key], the envelope embedded.
local function record_of(payload)
  -- The text the decoding path below writes for these envelopes (but for
  -- raw control characters, which JSON does not allow in a string anyway).
  local exchange, routing_key = delivery_info_of(payload)
  if exchange then
    return '[' .. payload .. ', "' .. exchange .. '", "' .. routing_key .. '"]'
  end
  local ok, message = pcall(cjson.decode, payload)
  if ok and type(message) == 'table' then
    local exchange, routing_key = '', ''
    local properties = message['properties']
    if type(properties) == 'table' and type(properties['delivery_info']) == 'table' then
      local info = properties['delivery_info']
      if type(info['exchange']) == 'string' then exchange = info['exchange'] end
      if type(info['routing_key']) == 'string' then routing_key = info['routing_key'] end
    end
    return '[' .. payload .. ', ' .. cjson.encode(exchange) .. ', ' ..
           cjson.encode(routing_key) .. ']'
  end
  -- Not an envelope: kept as a string, so nothing is lost.
  return '[' .. cjson.encode(payload) .. ', "", ""]'
end

-- One message out, from queue `queue` at KEYS[index], with its record.
local function deliver(queue, index, payload)
  taken = taken + 1
  bytes = bytes + #payload
  local field = ''
  if string.sub(record_flags, queue + 1, queue + 1) == '1' then
    field = field_prefix .. taken .. '/' .. KEYS[index]
    records[#records + 1] = field
    records[#records + 1] = record_of(payload)
    scores[#scores + 1] = now
    scores[#scores + 1] = field
  end
  out[#out + 1] = field
  out[#out + 1] = index - 2
  out[#out + 1] = payload
end

-- The `count` messages at the consuming end of a list, in list order: the
-- next one to consume is the last.
local function take(key, count)
  local items = redis.call('LRANGE', key, -count, -1)
  redis.call('LTRIM', key, 0, -count - 1)
  return items
end

-- Pairs of arguments, a thousand at a time (Lua's unpack has a limit).
local function call_in_chunks(command, key, list)
  for first = 1, #list, 1000 do
    redis.call(command, key, unpack(list, first, math.min(first + 999, #list)))
  end
end

for level = 0, levels - 1 do
  if taken >= wanted or bytes >= max_bytes then break end
  local base = 3 + level * queues
  local lengths, total = {}, 0
  for queue = 0, queues - 1 do
    lengths[queue] = redis.call('LLEN', KEYS[base + queue])
    total = total + lengths[queue]
  end
  if total > 0 then
    -- The round robin, one message per non-empty queue in turn: the order
    -- the messages go out in, and so how many each queue gives.
    local counts, order = {}, {}
    for queue = 0, queues - 1 do counts[queue] = 0 end
    local share = math.min(wanted - taken, total)
    local queue = start
    while #order < share do
      if counts[queue] < lengths[queue] then
        counts[queue] = counts[queue] + 1
        order[#order + 1] = queue
      end
      queue = (queue + 1) % queues
    end
    local items, next_item = {}, {}
    for q = 0, queues - 1 do
      if counts[q] > 0 then
        items[q] = take(KEYS[base + q], counts[q])
        next_item[q] = #items[q]
      end
    end
    for _, q in ipairs(order) do
      if bytes >= max_bytes then break end
      deliver(q, base + q, items[q][next_item[q]])
      next_item[q] = next_item[q] - 1
      start = (q + 1) % queues
    end
    -- Past the byte limit: what was taken and not delivered goes back as it was.
    for q = 0, queues - 1 do
      if counts[q] > 0 and next_item[q] > 0 then
        redis.call('RPUSH', KEYS[base + q], unpack(items[q], 1, next_item[q]))
      end
    end
  end
end
if #records > 0 then
  call_in_chunks('HMSET', KEYS[1], records)
  call_in_chunks('ZADD', KEYS[2], scores)
end
out[1] = start
return out
)lua";

// ARGV after the context: exchange, routing key, exchange type or '',
// priority, payload, headers JSON or '', fanout channel.
// Returns {queues pushed, subscribers reached}.
constexpr std::string_view publish_body = R"lua(
local queues, fanout = kelp_route(ARGV[8], ARGV[9], ARGV[10], ARGV[13])
local subscribers = 0
if fanout and ARGV[14] ~= '' then subscribers = redis.call('PUBLISH', ARGV[14], ARGV[12]) end
if #queues == 0 and subscribers == 0 and ctx.deadletter ~= '' then queues = {ctx.deadletter} end
kelp_push(queues, tonumber(ARGV[11]), ARGV[12], false)
return {#queues, subscribers}
)lua";

// The default exchange at priority 0, without the routing library: the
// queue's base list when the queue exists, else the deadletter_queue or
// nothing, as publish decides. KEYS: the queue's base list, the queue
// declarations hash. ARGV: the queue, global_keyprefix, sep, the binding set
// prefix, Kombu's deadletter_queue or '', then one or more payloads in
// publish order. Returns publish's {queues pushed, subscribers reached}.
//
// Each redis.call costs Redis about as much as a plain command, so the
// common case is one: LPUSHX pushes when the base list exists, which proves
// the queue does. Only an empty queue takes the full existence check.
constexpr std::string_view publish_to_queue_body = R"lua(
local first_payload, last = 6, #ARGV
local key = KEYS[1]
local next_first = first_payload
if redis.call('LPUSHX', key, unpack(ARGV, first_payload, math.min(first_payload + 999, last))) > 0 then
  next_first = first_payload + 1000
elseif not queue_exists(ARGV[2], ARGV[3], KEYS[2], ARGV[4], ARGV[1]) then
  if ARGV[5] == '' then return {0, 0} end
  key = ARGV[2] .. ARGV[5]
end
for first = next_first, last, 1000 do
  redis.call('LPUSH', key, unpack(ARGV, first, math.min(first + 999, last)))
end
return {1, 0}
)lua";

// KEYS: unacked hash, unacked index. ARGV: 'head' or 'tail', then a
// (field, list key, payload) triple per delivery in delivery order; an empty
// field is a delivery with no record (no_ack). Returns how many were pushed.
constexpr std::string_view give_back_body = R"lua(
local head = ARGV[1] == 'head'
local count = (#ARGV - 1) / 3
local first, last, step = 1, count, 1
-- Head pushes go in reverse, so the first delivery ends up first in line.
if head then first, last, step = count, 1, -1 end
local pushed = 0
for i = first, last, step do
  local base = 2 + (i - 1) * 3
  local field, key, payload = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local owned = true
  if field ~= '' then
    owned = redis.call('HDEL', KEYS[1], field) == 1
    redis.call('ZREM', KEYS[2], field)
  end
  if owned then
    if head then redis.call('RPUSH', key, payload) else redis.call('LPUSH', key, payload) end
    pushed = pushed + 1
  end
end
return pushed
)lua";

// KEYS: unacked hash, unacked index. ARGV after the context: field, payload,
// dead-letter exchange, routing key, priority, headers JSON. Returns the
// number of queues reached, or -1 when the record was gone (restored
// elsewhere: the message lives on there).
constexpr std::string_view dead_letter_body = R"lua(
if ARGV[8] ~= '' then
  local owned = redis.call('HDEL', KEYS[1], ARGV[8]) == 1
  redis.call('ZREM', KEYS[2], ARGV[8])
  if not owned then return -1 end
end
local queues = kelp_route(ARGV[10], ARGV[11], '', ARGV[13])
kelp_push(queues, tonumber(ARGV[12]), ARGV[9], false)
return #queues
)lua";

// KEYS: unacked hash, unacked index. ARGV after the context: field, the
// record as read, the payload to push, the list key ('' to re-route),
// exchange, routing key, priority. Returns 1 restored, 0 gone already, -1
// changed since it was read, -2 no queue to route it to (left in place).
constexpr std::string_view restore_expired_body = R"lua(
local current = redis.call('HGET', KEYS[1], ARGV[8])
if not current then
  redis.call('ZREM', KEYS[2], ARGV[8])
  return 0
end
if current ~= ARGV[9] then return -1 end
if ARGV[11] ~= '' then
  redis.call('RPUSH', ARGV[11], ARGV[10])
else
  local queues = kelp_route(ARGV[12], ARGV[13], '', '', true)
  if #queues == 0 then return -2 end
  kelp_push(queues, tonumber(ARGV[14]), ARGV[10], true)
end
redis.call('HDEL', KEYS[1], ARGV[8])
redis.call('ZREM', KEYS[2], ARGV[8])
return 1
)lua";

// KEYS: queue declarations hash, then every list of the queue. ARGV: queue,
// declaration record, '1' for passive. Returns {1 ok | 0 missing | -1
// inequivalent, message count, the record on file or ''}.
constexpr std::string_view declare_queue_body = R"lua(
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local count, has_messages = 0, false
for i = 2, #KEYS do
  local length = redis.call('LLEN', KEYS[i])
  count = count + length
  if length > 0 then has_messages = true end
end
if ARGV[3] == '1' then
  if not existing and not has_messages then return {0, 0, ''} end
  return {1, count, existing or ''}
end
if existing and existing ~= ARGV[2] then return {-1, count, existing} end
if not existing then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return {1, count, ARGV[2]}
)lua";

// KEYS: exchange declarations hash, the exchange's binding set. ARGV: name,
// declaration record, '1' for passive. Returns {1 ok | 0 missing | -1
// inequivalent, the record on file or ''}.
constexpr std::string_view declare_exchange_body = R"lua(
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '1' then
  if existing then return {1, existing} end
  if redis.call('EXISTS', KEYS[2]) == 1 then return {1, ''} end
  return {0, ''}
end
if existing and existing ~= ARGV[2] then return {-1, existing} end
if not existing then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return {1, ARGV[2]}
)lua";

// KEYS: queue declarations hash, then every list of the queue. ARGV: queue,
// '1' for if_empty. Returns the messages deleted, or -1 (not empty).
constexpr std::string_view delete_queue_body = R"lua(
local count = 0
for i = 2, #KEYS do count = count + redis.call('LLEN', KEYS[i]) end
if ARGV[2] == '1' and count > 0 then return -1 end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('HDEL', KEYS[1], ARGV[1])
return count
)lua";

// KEYS: exchange declarations hash, binding set. ARGV: name, '1' for
// if_unused. Returns 1, or -1 (still has bindings).
constexpr std::string_view delete_exchange_body = R"lua(
if ARGV[2] == '1' and redis.call('SCARD', KEYS[2]) > 0 then return -1 end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
)lua";

// KEYS: every list of the queue. Returns the messages removed.
constexpr std::string_view purge_body = R"lua(
local count = 0
for i = 1, #KEYS do
  count = count + redis.call('LLEN', KEYS[i])
  redis.call('DEL', KEYS[i])
end
return count
)lua";

// KEYS: binding sets. ARGV: sep, queue. Removes the queue's bindings from
// them; returns how many.
constexpr std::string_view unbind_queue_body = R"lua(
local sep, queue, removed = ARGV[1], ARGV[2], 0
for i = 1, #KEYS do
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    local first = string.find(member, sep, 1, true)
    local second = first and string.find(member, sep, first + #sep, true)
    if second and string.sub(member, second + #sep) == queue then
      removed = removed + redis.call('SREM', KEYS[i], member)
    end
  end
end
return removed
)lua";

// KEYS: the mutex. ARGV: our token. Kombu's release: delete only our own lock.
constexpr std::string_view release_mutex_body = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

std::string lua_string(std::string_view text) {
    return "'" + std::string(text) + "'";
}

std::string with_routing(std::string_view body) {
    std::string library(routing_library);
    const auto replace = [&](std::string_view name, std::string_view value) {
        for (auto at = library.find(name); at != std::string::npos;
             at = library.find(name, at + value.size())) {
            library.replace(at, name.size(), value);
        }
    };
    replace("FANOUT_MARK", lua_string(fanout_list_mark));
    replace("HEADERS_MARK", lua_string(headers_mark));
    return std::string(queue_library) + library + std::string(body);
}

std::string sha1_hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha1(), nullptr) != 1) {
        throw Error("redis: cannot compute a script's SHA-1 (OpenSSL EVP_Digest failed)");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
        out.push_back(hex[digest[i] >> 4]);
        out.push_back(hex[digest[i] & 0xf]);
    }
    return out;
}

Script make(std::string_view name, std::string body) {
    std::string sha = sha1_hex(body);
    return Script{name, std::move(body), std::move(sha)};
}

const std::array<Script, static_cast<std::size_t>(ScriptId::count_)>& scripts() {
    static const std::array<Script, static_cast<std::size_t>(ScriptId::count_)> table = {
        make("pop", std::string(pop_body)),
        make("publish", with_routing(publish_body)),
        make("publish_to_queue", std::string(queue_library) + std::string(publish_to_queue_body)),
        make("give_back", std::string(give_back_body)),
        make("dead_letter", with_routing(dead_letter_body)),
        make("restore_expired", with_routing(restore_expired_body)),
        make("declare_queue", std::string(declare_queue_body)),
        make("declare_exchange", std::string(declare_exchange_body)),
        make("delete_queue", std::string(delete_queue_body)),
        make("delete_exchange", std::string(delete_exchange_body)),
        make("purge", std::string(purge_body)),
        make("unbind_queue", std::string(unbind_queue_body)),
        make("release_mutex", std::string(release_mutex_body)),
    };
    return table;
}

}  // namespace

const Script& script(ScriptId id) {
    return scripts()[static_cast<std::size_t>(id)];
}

void load_scripts(RespClient& client, Clock::time_point deadline) {
    std::vector<std::shared_ptr<std::optional<Reply>>> replies;
    {
        RespClient::Cork cork(client);
        for (const Script& entry : scripts()) {
            auto slot = std::make_shared<std::optional<Reply>>();
            client.send(args({"SCRIPT", "LOAD", entry.body}),
                        [slot](Reply reply) { *slot = std::move(reply); });
            replies.push_back(slot);
        }
    }
    client.drain(deadline);
    for (std::size_t i = 0; i < replies.size(); ++i) {
        const Script& entry = scripts()[i];
        const ReplyView view = (*replies[i])->view();
        if (view.is_error() || view.text() != entry.sha) {
            throw ConnectionError("redis: loading the '" + std::string(entry.name) +
                                  "' Lua script on " + client.peer() +
                                  " failed: " + view.describe() +
                                  "; kelp needs a Redis server with Lua scripting (2.6 or newer, "
                                  "6.2 or newer recommended)");
        }
    }
}

std::vector<std::string_view> eval_args(ScriptId id, std::span<const std::string_view> keys,
                                        std::span<const std::string_view> arguments, bool by_body,
                                        std::string& key_count_storage) {
    const Script& entry = script(id);
    key_count_storage = std::to_string(keys.size());
    std::vector<std::string_view> out;
    out.reserve(3 + keys.size() + arguments.size());
    out.push_back(by_body ? "EVAL" : "EVALSHA");
    out.push_back(by_body ? std::string_view(entry.body) : std::string_view(entry.sha));
    out.push_back(key_count_storage);
    out.insert(out.end(), keys.begin(), keys.end());
    out.insert(out.end(), arguments.begin(), arguments.end());
    return out;
}

bool is_noscript(const ReplyView& reply) {
    return reply.is_error() && reply.text().starts_with("NOSCRIPT");
}

}  // namespace kelp::redis
