// TLS for rediss://: OpenSSL over a socket we connected ourselves, so the
// RESP client keeps its own non-blocking I/O (hiredis 0.14 has no TLS).
//
// Thread rules: a TLS stream belongs to one thread at a time; OpenSSL's
// library state is initialised once, thread-safely.
#pragma once

#include <memory>

#include "stream.hpp"

namespace kelp::redis {

// Runs the TLS handshake on a connected socket before `deadline` and returns
// the stream. The server certificate is checked as `endpoint.tls_settings`
// says (Python's ssl_cert_reqs, ssl_ca_certs, ...). Throws ConnectionError
// naming what failed (certificate, handshake, timeout).
std::unique_ptr<Stream> connect_tls(UniqueFd fd, const Endpoint& endpoint,
                                    Clock::time_point deadline);

}  // namespace kelp::redis
