#include "reply.hpp"

#include <charconv>

#include "kelp/errors.hpp"

namespace kelp::redis {

std::int64_t ReplyView::integer() const {
    if (reply_->type == REDIS_REPLY_INTEGER) return reply_->integer;
    if (reply_->type == REDIS_REPLY_STRING) {
        std::int64_t value = 0;
        const char* end = reply_->str + reply_->len;
        const auto [where, error] = std::from_chars(reply_->str, end, value);
        if (error == std::errc() && where == end) return value;
    }
    throw Error("redis: expected an integer reply, got " + describe());
}

ReplyView ReplyView::operator[](std::size_t index) const {
    if (index >= size()) {
        throw Error("redis: reply element " + std::to_string(index) + " missing in " + describe());
    }
    return ReplyView(reply_->element[index]);
}

std::string ReplyView::describe() const {
    switch (reply_->type) {
        case REDIS_REPLY_ERROR:
            return "error '" + std::string(text()) + "'";
        case REDIS_REPLY_STRING:
            return "a string of " + std::to_string(reply_->len) + " bytes";
        case REDIS_REPLY_STATUS:
            return "status '" + std::string(text()) + "'";
        case REDIS_REPLY_INTEGER:
            return "integer " + std::to_string(reply_->integer);
        case REDIS_REPLY_NIL:
            return "nil";
        case REDIS_REPLY_ARRAY:
            return "an array of " + std::to_string(reply_->elements);
        default:
            return "reply type " + std::to_string(reply_->type);
    }
}

ReplyView Reply::view() const {
    if (!value_) {
        if (failure_) std::rethrow_exception(failure_);
        throw ConnectionError("redis: no reply");
    }
    return ReplyView(value_.get());
}

}  // namespace kelp::redis
