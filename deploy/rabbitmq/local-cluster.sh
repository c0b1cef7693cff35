#!/usr/bin/env bash
# A throw-away 3-node RabbitMQ cluster on this machine, beside (not joined to)
# the machine's own broker: nodes ostc1..3@localhost on AMQP ports BASE+1..3
# (BASE defaults to 5680), data under $DIR. For testing what order-sync does
# when a cluster node is lost; quorum queues replicate across the three.
#
#   deploy/rabbitmq/local-cluster.sh start    # prints the three AMQP URLs
#   deploy/rabbitmq/local-cluster.sh stop     # stops the nodes, removes $DIR
#   deploy/rabbitmq/local-cluster.sh kill N   # hard-kills node N (1..3)
#   deploy/rabbitmq/local-cluster.sh members  # each queue and its replicas' nodes
#
# Needs rabbitmq-server (apt-get install rabbitmq-server) run as the user whose
# Erlang cookie the nodes share.
set -euo pipefail
BASE=${BASE:-5680}
DIR=${DIR:-/tmp/order-sync-cluster-$BASE}
PREFIX=${PREFIX:-ostc$BASE}
HOST=localhost

node_env() {
  local i=$1 d="$DIR/n$1"
  mkdir -p "$d"
  echo "[]." > "$d/enabled_plugins"
  cat > "$d/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:$((BASE + i))
loopback_users = none
CONF
  export RABBITMQ_NODENAME="$PREFIX-$i@$HOST" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$((BASE + i)) \
    RABBITMQ_DIST_PORT=$((BASE + 20000 + i)) \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/pid" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
}

ctl() { local i=$1; shift; rabbitmqctl -n "$PREFIX-$i@$HOST" "$@"; }

case "${1:-}" in
  start)
    command -v rabbitmq-server >/dev/null || { echo "rabbitmq-server is not installed: apt-get install -y rabbitmq-server" >&2; exit 1; }
    for i in 1 2 3; do
      ( node_env "$i"
        # The server script drops to the rabbitmq user when started as root.
        if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq: "$DIR"; fi
        rabbitmq-server -detached )
    done
    for i in 1 2 3; do
      for _ in $(seq 120); do
        ctl "$i" await_startup --timeout 5 >/dev/null 2>&1 && break
        sleep 1
      done
      ctl "$i" await_startup --timeout 5 >/dev/null || { echo "node $i did not start; see $DIR/n$i/log" >&2; exit 1; }
    done
    for i in 2 3; do
      # (start_app logs harmless errors about the node that is joining.)
      ctl "$i" stop_app >/dev/null
      ctl "$i" join_cluster "$PREFIX-1@$HOST" >/dev/null
      ctl "$i" start_app >/dev/null 2>&1
    done
    # Queues declared from now on get a replica on each node only if all three are up.
    ctl 1 await_online_nodes 3 --timeout 120 >/dev/null
    for i in 1 2 3; do echo "amqp://guest:guest@127.0.0.1:$((BASE + i))/%2f"; done
    ;;
  members)
    # Each queue with the nodes holding a replica (quorum queues).
    ctl 1 list_queues -q --no-table-headers name members
    ;;
  kill)
    kill -9 "$(cat "$DIR/n$2/pid")"
    ;;
  stop)
    for i in 1 2 3; do ctl "$i" stop >/dev/null 2>&1 || true; done
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: $0 start|stop|kill N|members" >&2; exit 2 ;;
esac
