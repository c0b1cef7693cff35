#!/usr/bin/env bash
# Makes sure RabbitMQ and MariaDB are installed and running on this machine
# (Debian or Ubuntu; installs them with apt-get where missing), and that the
# MariaDB user order-sync's local runs and tests use exists.
#
#   deploy/services.sh
#
# Idempotent: on a machine where both already run, it only checks them.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name seconds
  for _ in $(seq 1 "$3"); do
    if port_open "$1"; then return 0; fi
    sleep 1
  done
  echo "services.sh: $2 is not listening on 127.0.0.1:$1 after $3s" >&2
  return 1
}

missing=()
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "services.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! port_open 3306; then
  echo "services.sh: starting MariaDB"
  $SUDO service mariadb start >/dev/null 2>&1 \
    || { $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
         $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; }
  wait_port 3306 MariaDB 60
fi

if ! port_open 5672; then
  echo "services.sh: starting RabbitMQ"
  $SUDO service rabbitmq-server start >/dev/null 2>&1 || $SUDO rabbitmq-server -detached
  wait_port 5672 RabbitMQ 90
fi

# One MariaDB user for local runs and tests. Root often logs in only through
# the socket (unix_socket auth), which a TCP client cannot use. The grants are
# the databases order-sync's local runs and tests create: order_sync* (ledgers),
# magento_demo (the demo shop), ost* (one pair per test, dropped after it) and
# bench* (the benchmark's, dropped after it).
$SUDO mariadb -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'order_sync'@'localhost' IDENTIFIED BY 'order_sync';
CREATE USER IF NOT EXISTS 'order_sync'@'127.0.0.1' IDENTIFIED BY 'order_sync';
GRANT ALL PRIVILEGES ON `order\_sync%`.* TO 'order_sync'@'localhost', 'order_sync'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `magento\_demo`.* TO 'order_sync'@'localhost', 'order_sync'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `ost%`.* TO 'order_sync'@'localhost', 'order_sync'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `bench%`.* TO 'order_sync'@'localhost', 'order_sync'@'127.0.0.1';
SQL

echo "services.sh: MariaDB on 127.0.0.1:3306 (user order_sync) and RabbitMQ on 127.0.0.1:5672 are up."
