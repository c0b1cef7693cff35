#!/usr/bin/env bash
# A throw-away MariaDB server with the binary log on (ROW format), beside (not
# replacing) the machine's own: for testing `capture.mode = "binlog"`. Its
# settings are the ones docs/binlog.md asks of a shop's server. Nothing here
# is for production.
#
#   deploy/mariadb/local-binlog.sh start   # prints MYSQL=mysql://order_sync:order_sync@127.0.0.1:PORT
#   deploy/mariadb/local-binlog.sh stop    # stops it, removes $DIR
#
# BASE (default 3407) is its port; DIR (default /tmp/order-sync-binlog-$BASE)
# holds its data. EXTRA (optional) adds mariadbd options, e.g.
# EXTRA="--auto-increment-increment=3 --auto-increment-offset=2".
# User `order_sync` (password `order_sync`) has every privilege, replication
# ones included. Needs mariadb-server (apt-get installs it where missing).
set -euo pipefail
BASE=${BASE:-3407}
DIR=${DIR:-/tmp/order-sync-binlog-$BASE}
EXTRA=${EXTRA:-}

need() {
  command -v "$1" >/dev/null && return
  echo "local-binlog.sh: installing $2" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

start() {
  need mariadb-install-db mariadb-server
  stop
  # Each server its own tmpdir: installs running side by side otherwise
  # collide on temporary table names in /tmp.
  mkdir -p "$DIR/tmp"
  local user=()
  # The server drops to its own user when started as root.
  if [ "$(id -u)" = 0 ] && id mysql >/dev/null 2>&1; then
    chown -R mysql: "$DIR" && user=(--user=mysql)
  fi
  mariadb-install-db --no-defaults "${user[@]}" --datadir="$DIR/data" --tmpdir="$DIR/tmp" \
    --auth-root-authentication-method=normal --skip-test-db >"$DIR/install.log" 2>&1 \
    || { echo "mariadb-install-db failed:" >&2; head -5 "$DIR/install.log" >&2; stop; exit 1; }
  # shellcheck disable=SC2086 # EXTRA is a list of options
  mariadbd --no-defaults "${user[@]}" --datadir="$DIR/data" --port="$BASE" \
    --bind-address=127.0.0.1 --socket="$DIR/mysqld.sock" --pid-file="$DIR/mysqld.pid" \
    --log-error="$DIR/error.log" --tmpdir="$DIR/tmp" --server-id=1 \
    --log-bin="$DIR/data/binlog" --binlog-format=ROW --binlog-row-image=FULL \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=64M --innodb-flush-log-at-trx-commit=2 \
    --sync-binlog=0 --max-connections=200 $EXTRA >/dev/null 2>&1 &
  for _ in $(seq 120); do
    mariadb --no-defaults --socket="$DIR/mysqld.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.25
  done
  mariadb --no-defaults --socket="$DIR/mysqld.sock" -uroot -e "
    DELETE FROM mysql.global_priv WHERE User = '';
    FLUSH PRIVILEGES;
    CREATE USER 'order_sync'@'%' IDENTIFIED BY 'order_sync';
    GRANT ALL PRIVILEGES ON *.* TO 'order_sync'@'%' WITH GRANT OPTION;" \
    || { echo "MariaDB did not start:" >&2; tail -5 "$DIR/error.log" >&2; stop; exit 1; }
  echo "MYSQL=mysql://order_sync:order_sync@127.0.0.1:$BASE"
}

stop() {
  if [ -f "$DIR/mysqld.pid" ]; then
    local pid
    pid=$(cat "$DIR/mysqld.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 80); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
