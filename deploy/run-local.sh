#!/usr/bin/env bash
# Sees order-sync work on this machine without Docker: makes sure RabbitMQ and
# MariaDB run (deploy/services.sh, apt-get installs them where missing), then
# `order-sync demo` with deploy/local.toml: it creates a demo Magento database
# (magento_demo, the real Magento 2 sales schema), places an order a second,
# runs the pipeline, and runs demo sync services `erp` and `wms` that ack
# (failing one first attempt in ten on purpose, to show re-delivery).
#
#   deploy/run-local.sh              # Ctrl-C stops it
#   RATE=5 deploy/run-local.sh       # five orders a second
#
# Watch it: status page http://127.0.0.1:9464/ (sign in with the API token this
# prints: ORDER_SYNC__HTTP__API_TOKEN if set, else a new random one), `order-sync
# status`, and the RabbitMQ management UI (http://127.0.0.1:15672, guest/guest)
# for demo.* queues.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/services.sh
# The status page and API need a token (they show customers' data).
if [ -z "${ORDER_SYNC__HTTP__API_TOKEN:-}" ]; then
  ORDER_SYNC__HTTP__API_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  export ORDER_SYNC__HTTP__API_TOKEN
fi
listen=${ORDER_SYNC__HTTP__LISTEN:-127.0.0.1:9464}
echo "run-local.sh: status page http://$listen/ — API token: $ORDER_SYNC__HTTP__API_TOKEN"
# ORDER_SYNC_BIN: a binary already built (the test suite's), instead of cargo run.
if [ -n "${ORDER_SYNC_BIN:-}" ]; then
  exec "$ORDER_SYNC_BIN" --config deploy/local.toml demo --rate "${RATE:-1}"
fi
exec cargo run --release --locked -- --config deploy/local.toml demo --rate "${RATE:-1}"
