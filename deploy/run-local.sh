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
# Watch it: status page http://127.0.0.1:9464/, `order-sync status`, and the
# RabbitMQ management UI (http://127.0.0.1:15672, guest/guest) for demo.* queues.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/services.sh
exec cargo run --release --locked -- --config deploy/local.toml demo --rate "${RATE:-1}"
