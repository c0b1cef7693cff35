#!/usr/bin/env bash
# Runs order-sync on this machine without Docker: makes sure RabbitMQ and
# MariaDB run (deploy/services.sh), creates a demo Magento database with the
# real Magento 2 sales schema if it is missing, and starts `order-sync run`
# with deploy/local.toml (consumers `erp` and `wms`). Stop it with Ctrl-C.
#
#   deploy/run-local.sh
#
# Then place orders:  deploy/place-demo-orders.sh 5
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/services.sh

if ! mariadb -h127.0.0.1 -uorder_sync -porder_sync -e "USE magento_demo; SELECT 1 FROM sales_order LIMIT 1" >/dev/null 2>&1; then
  echo "run-local.sh: creating the demo Magento database magento_demo"
  mariadb -h127.0.0.1 -uorder_sync -porder_sync -e "CREATE DATABASE IF NOT EXISTS magento_demo CHARACTER SET utf8mb4"
  mariadb -h127.0.0.1 -uorder_sync -porder_sync magento_demo < deploy/magento/magento2-sales-schema.sql
fi

exec cargo run --release --locked -- --config deploy/local.toml run
