#!/usr/bin/env bash
# Starts and stops the rabbitmq-server the tests talk to: its own node name,
# its own AMQP, distribution and epmd ports on loopback, data, logs, config
# and Erlang cookie under the build tree, no plugins. A broker that cannot
# start is an error, never a skipped test.
#
#   rabbitmq-server.sh start <dir> <amqp port>   # dist port = port + 20000, epmd = port + 1
#   rabbitmq-server.sh stop <dir>
#   rabbitmq-server.sh restart <dir> <amqp port> # stop, then start (tests of reconnection)
#
# Start-up takes about 6-8 s on this kind of machine (the Erlang VM), so the
# suites start it once per ctest run through a fixture.
set -euo pipefail

die() {
  echo "rabbitmq-server.sh: $*" >&2
  exit 1
}

setup_env() {
  local dir=$1 port=$2
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  export HOME=$dir/home
  export RABBITMQ_NODENAME=kelp$port@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$port
  export RABBITMQ_DIST_PORT=$((port + 20000))
  export ERL_EPMD_PORT=$((port + 1))
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE=$dir/mnesia
  export RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_PID_FILE=$dir/rabbitmq.pid
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  # rabbitmqctl reads the same variables; keep it quiet about the locale.
  export LC_ALL=C.UTF-8
  echo "[]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  cat > "$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = 127.0.0.1:$port
loopback_users = none
log.console = false
log.file.level = warning
vm_memory_high_watermark.relative = 0.6
disk_free_limit.absolute = 50MB
CONF
}

stop_server() {
  local dir=$1
  [[ -f $dir/rabbitmq.pid ]] || return 0
  local pid
  pid=$(cat "$dir/rabbitmq.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"  # beam.smp shuts down gracefully on SIGTERM (about 1 s)
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$dir/rabbitmq.pid"
  # The node's own epmd (its port is private to this build tree).
  if [[ -f $dir/epmd.port ]]; then
    local epmd_port
    epmd_port=$(cat "$dir/epmd.port")
    ERL_EPMD_PORT=$epmd_port epmd -kill >/dev/null 2>&1 || true
    rm -f "$dir/epmd.port"
  fi
}

start_server() {
  local dir=$1 port=$2
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] ||
    die "rabbitmq-server is not installed; run scripts/install-deps test (Debian package rabbitmq-server)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  stop_server "$dir"  # one left over by an interrupted run
  setup_env "$dir" "$port"
  echo "$ERL_EPMD_PORT" > "$dir/epmd.port"
  # The lib/ script directly: the /usr/sbin wrapper switches user and logs to /var/log.
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server > "$dir/log/stdout.log" 2>&1 < /dev/null &
  local launcher=$!
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      # The AMQP listener opens at the end of the boot ("Server startup
      # complete"); rabbitmqctl would add seconds of its own VM start-up.
      echo "rabbitmq-server ($RABBITMQ_NODENAME) answers on 127.0.0.1:$port ($SECONDS s)"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  tail -n 40 "$dir/log/stdout.log" >&2 || true
  stop_server "$dir"
  die "rabbitmq-server did not come up on port $port within 60 s (another program on that port? set -DKELP_TEST_AMQP_PORT=<free port>); logs in $dir/log"
}

case "${1:-}" in
  start) [[ $# -ge 3 ]] || die "usage: rabbitmq-server.sh start <dir> <port>"; start_server "$2" "$3" ;;
  stop) [[ $# -ge 2 ]] || die "usage: rabbitmq-server.sh stop <dir>"; stop_server "$2" ;;
  restart) [[ $# -ge 3 ]] || die "usage: rabbitmq-server.sh restart <dir> <port>"; stop_server "$2"; start_server "$2" "$3" ;;
  *) die "usage: rabbitmq-server.sh start <dir> <port> | stop <dir> | restart <dir> <port>" ;;
esac
