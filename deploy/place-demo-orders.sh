#!/usr/bin/env bash
# Places N demo orders (default 1) in the demo Magento database the way
# checkout does (order, items, addresses, payment in one transaction), for a
# pipeline started otherwise (`order-sync run --config deploy/local.toml`).
#
#   deploy/place-demo-orders.sh 5
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -q -- --config deploy/local.toml demo-orders --orders "${1:-1}" --rate 20
