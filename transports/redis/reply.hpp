// Reply: one RESP2 reply as hiredis's reader parsed it, or the failure that
// stands in for it when the connection broke before it came.
//
// ReplyView reads a reply (or an element of an array reply) without copying.
//
// Thread rules: value types; a Reply belongs to one thread at a time.
#pragma once

#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

namespace kelp::redis {

struct ReplyDeleter {
    void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

class ReplyView {
  public:
    explicit ReplyView(const redisReply* reply) : reply_(reply) {}

    bool is_error() const { return reply_->type == REDIS_REPLY_ERROR; }
    bool is_nil() const { return reply_->type == REDIS_REPLY_NIL; }
    bool is_array() const { return reply_->type == REDIS_REPLY_ARRAY; }
    bool is_integer() const { return reply_->type == REDIS_REPLY_INTEGER; }
    // Bulk strings, status replies and errors.
    bool is_text() const {
        return reply_->type == REDIS_REPLY_STRING || reply_->type == REDIS_REPLY_STATUS ||
               reply_->type == REDIS_REPLY_ERROR;
    }

    // The bytes of a text reply; empty for other types.
    std::string_view text() const {
        return is_text() ? std::string_view(reply_->str, reply_->len) : std::string_view();
    }
    // An integer reply, or a bulk string holding a decimal integer (as Lua
    // scripts return numbers). Throws kelp::Error otherwise.
    std::int64_t integer() const;

    std::size_t size() const { return is_array() ? reply_->elements : 0; }
    // Element `index` of an array reply. Throws kelp::Error when out of range.
    ReplyView operator[](std::size_t index) const;

    // A short description for error messages: the error text, or the type.
    std::string describe() const;

  private:
    const redisReply* reply_;
};

class Reply {
  public:
    Reply() = default;
    explicit Reply(ReplyPtr value) : value_(std::move(value)) {}
    explicit Reply(std::exception_ptr failure) : failure_(std::move(failure)) {}

    // False when the connection broke before this reply came.
    bool ok() const { return value_ != nullptr; }
    const std::exception_ptr& failure() const { return failure_; }
    // The reply itself; rethrows the failure when there is none.
    ReplyView view() const;

  private:
    ReplyPtr value_;
    std::exception_ptr failure_;
};

}  // namespace kelp::redis
