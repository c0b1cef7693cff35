#!/usr/bin/env bash
# A throw-away RabbitMQ node and MariaDB server speaking TLS, beside (not
# replacing) the machine's own, with certificates made here by a private CA:
# for testing order-sync over amqps:// and require_ssl. Nothing here is for
# production.
#
#   deploy/tls/local-tls.sh start   # prints CA=, AMQPS=, AMQP=, MYSQL= lines
#   deploy/tls/local-tls.sh stop    # stops both, removes $DIR
#   deploy/tls/local-tls.sh certs   # only the CA and a localhost certificate, in $DIR/certs
#
# RabbitMQ: TLS on BASE+2 (and plain AMQP on BASE+1, for test clients);
# MariaDB: BASE+3, user `tls` (password `tls`) that must connect over TLS.
# Needs openssl, rabbitmq-server and mariadb-server (apt-get installs them
# where missing).
set -euo pipefail
BASE=${BASE:-5690}
DIR=${DIR:-/tmp/order-sync-tls-$BASE}
NODE=ostls$BASE@localhost

need() {
  command -v "$1" >/dev/null && return
  echo "local-tls.sh: installing $2" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

certs() {
  mkdir -p "$DIR/certs"
  cd "$DIR/certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=order-sync test CA" \
    -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out server.pem 2>/dev/null
  chmod 644 ./*.pem ./*.key
  cd - >/dev/null
}

rabbit_env() {
  local d="$DIR/rabbit"
  mkdir -p "$d"
  echo "[]." > "$d/enabled_plugins"
  cat > "$d/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:$((BASE + 1))
listeners.ssl.local = 127.0.0.1:$((BASE + 2))
ssl_options.cacertfile = $DIR/certs/ca.pem
ssl_options.certfile = $DIR/certs/server.pem
ssl_options.keyfile = $DIR/certs/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
loopback_users = none
CONF
  export RABBITMQ_NODENAME="$NODE" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$((BASE + 1)) \
    RABBITMQ_DIST_PORT=$((BASE + 20000)) \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/pid" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
}

start() {
  need openssl openssl
  need rabbitmq-server rabbitmq-server
  need mariadb-install-db mariadb-server
  rm -rf "$DIR"
  mkdir -p "$DIR"
  certs
  # The servers drop to their own users when started as root.
  if [ "$(id -u)" = 0 ]; then
    id rabbitmq >/dev/null 2>&1 && chown -R rabbitmq: "$DIR/certs"
  fi
  ( rabbit_env
    if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq: "$DIR/rabbit"; fi
    rabbitmq-server -detached )
  local my="$DIR/mysql"
  mkdir -p "$my"
  local user=()
  if [ "$(id -u)" = 0 ]; then
    id mysql >/dev/null 2>&1 && chown -R mysql: "$my" && chmod 755 "$DIR" "$DIR/certs" && user=(--user=mysql)
  fi
  mariadb-install-db --no-defaults "${user[@]}" --datadir="$my/data" \
    --auth-root-authentication-method=normal >"$my/install.log" 2>&1
  mariadbd --no-defaults "${user[@]}" --datadir="$my/data" --port=$((BASE + 3)) \
    --bind-address=127.0.0.1 --socket="$my/mysqld.sock" --pid-file="$my/mysqld.pid" \
    --skip-log-bin --log-error="$my/error.log" \
    --ssl-ca="$DIR/certs/ca.pem" --ssl-cert="$DIR/certs/server.pem" \
    --ssl-key="$DIR/certs/server.key" >/dev/null 2>&1 &
  for _ in $(seq 60); do
    mariadb --no-defaults --socket="$my/mysqld.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
  done
  mariadb --no-defaults --socket="$my/mysqld.sock" -uroot -e "
    DELETE FROM mysql.global_priv WHERE User = '';
    FLUSH PRIVILEGES;
    CREATE USER 'tls'@'%' IDENTIFIED BY 'tls' REQUIRE SSL;
    CREATE USER 'tls'@'localhost' IDENTIFIED BY 'tls' REQUIRE SSL;
    GRANT ALL PRIVILEGES ON *.* TO 'tls'@'%';
    GRANT ALL PRIVILEGES ON *.* TO 'tls'@'localhost';" \
    || { echo "MariaDB did not start; see $my/error.log" >&2; exit 1; }
  for _ in $(seq 120); do
    rabbitmqctl -n "$NODE" await_startup --timeout 5 >/dev/null 2>&1 && break
    sleep 1
  done
  rabbitmqctl -n "$NODE" await_startup --timeout 5 >/dev/null \
    || { echo "RabbitMQ did not start; see $DIR/rabbit/log" >&2; exit 1; }
  echo "CA=$DIR/certs/ca.pem"
  echo "AMQPS=amqps://guest:guest@localhost:$((BASE + 2))/%2f"
  echo "AMQP=amqp://guest:guest@127.0.0.1:$((BASE + 1))/%2f"
  echo "MYSQL=mysql://tls:tls@localhost:$((BASE + 3))"
}

stop() {
  rabbitmqctl -n "$NODE" stop >/dev/null 2>&1 || true
  if [ -f "$DIR/mysql/mysqld.pid" ]; then
    kill "$(cat "$DIR/mysql/mysqld.pid")" 2>/dev/null || true
    for _ in $(seq 40); do
      kill -0 "$(cat "$DIR/mysql/mysqld.pid" 2>/dev/null)" 2>/dev/null || break
      sleep 0.25
    done
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  certs) need openssl openssl; mkdir -p "$DIR"; certs; echo "CERTS=$DIR/certs" ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop|certs" >&2; exit 2 ;;
esac
