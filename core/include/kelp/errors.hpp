// kelp's exception hierarchy: one small tree so callers can catch by intent.
//
// Every message says what went wrong and what to do about it. `ConnectionError`
// is the recoverable family (retry, reconnect); the others are programming or
// data errors that a retry will not fix.
//
// Thread rules: plain value types, safe to copy and throw from any thread.
#pragma once

#include <stdexcept>
#include <string>

namespace kelp {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The broker or socket failed; retrying or reconnecting may succeed.
class ConnectionError : public Error {
  public:
    using Error::Error;
};

// A channel-level failure reported by the broker (e.g. precondition failed).
class ChannelError : public Error {
  public:
    using Error::Error;
};

// A passive declare or an operation on an entity that does not exist.
class NotFound : public ChannelError {
  public:
    using ChannelError::ChannelError;
};

// A message whose content type is not in the consumer's accept list.
class ContentDisallowed : public Error {
  public:
    using Error::Error;
};

// A message body or envelope that cannot be decoded.
class DecodeError : public Error {
  public:
    using Error::Error;
};

// A deadline passed before the operation completed.
class TimeoutError : public Error {
  public:
    using Error::Error;
};

// A malformed URL, an unknown scheme or an unknown or ill-typed option.
class UrlError : public Error {
  public:
    using Error::Error;
};

// The URL's scheme belongs to a transport module the program does not link.
class TransportNotLinked : public Error {
  public:
    using Error::Error;
};

// A message settled twice (ack after ack, reject after ack, ...).
class MessageStateError : public Error {
  public:
    using Error::Error;
};

// The Hub or a poller was misused or the OS refused a poller operation.
class HubError : public Error {
  public:
    using Error::Error;
};

}  // namespace kelp
