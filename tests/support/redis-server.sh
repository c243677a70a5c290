#!/usr/bin/env bash
# Starts and stops the redis-server the tests talk to: loopback only (IPv4,
# and IPv6 where the machine has it), its own port, a Unix socket and a TLS
# port, data under the build tree. A server that cannot start is an error,
# never a skipped test.
#
#   redis-server.sh start <dir> <port> [appendonly: yes|no]   # TLS on <port>+1
#   redis-server.sh stop <dir>
#
# <dir> gets redis.pid, redis.log, redis.sock, the data files and, for TLS, a
# throw-away CA and server certificate (ca.crt, server.crt, server.key).
set -euo pipefail

die() {
  echo "redis-server.sh: $*" >&2
  exit 1
}

stop_server() {
  local dir=$1
  [[ -f $dir/redis.pid ]] || return 0
  local pid
  pid=$(cat "$dir/redis.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$dir/redis.pid"
}

make_certificates() {
  local dir=$1
  [[ -f $dir/server.crt ]] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kelp test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > "$dir/san.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 3650 -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null
}

start_server() {
  local dir=$1 port=$2 appendonly=${3:-no}
  command -v redis-server >/dev/null ||
    die "redis-server is not installed; run scripts/install-deps test (Debian package redis-server)"
  command -v openssl >/dev/null ||
    die "openssl is not installed (needed for the TLS port); run scripts/install-deps test"
  mkdir -p "$dir"
  # Absolute: redis-server changes into --dir before it opens the other files.
  dir=$(cd "$dir" && pwd)
  stop_server "$dir"  # one left over by an interrupted run
  make_certificates "$dir"
  rm -f "$dir/redis.log"
  # "-::1": IPv6 loopback when the machine has it, no error when not.
  redis-server --port "$port" --bind "127.0.0.1 -::1" --protected-mode yes \
    --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
    --tls-port "$((port + 1))" --tls-cert-file "$dir/server.crt" \
    --tls-key-file "$dir/server.key" --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no \
    --dir "$dir" --save '' --appendonly "$appendonly" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" ||
    die "redis-server did not start on port $port; see $dir/redis.log"
  for _ in $(seq 1 200); do
    if [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; then
      echo "redis-server answers on 127.0.0.1:$port (TLS $((port + 1)), unix $dir/redis.sock)"
      return 0
    fi
    sleep 0.05
  done
  cat "$dir/redis.log" >&2 || true
  stop_server "$dir"
  die "redis-server did not answer PING on port $port within 10 s (another program on that port? set -DKELP_TEST_REDIS_PORT=<free port>)"
}

case "${1:-}" in
  start) [[ $# -ge 3 ]] || die "usage: redis-server.sh start <dir> <port> [yes|no]"; start_server "$2" "$3" "${4:-no}" ;;
  stop) [[ $# -ge 2 ]] || die "usage: redis-server.sh stop <dir>"; stop_server "$2" ;;
  *) die "usage: redis-server.sh start <dir> <port> [appendonly] | stop <dir>" ;;
esac
