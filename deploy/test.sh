#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests against the real
# RabbitMQ and MariaDB on this machine (started or installed by
# deploy/services.sh where missing), a headless Chromium, and the Python and
# PHP consumers (their tools installed by deploy/test-tools.sh where missing).
# Each test makes and drops its own databases and broker names, so the suite
# runs in parallel and leaves nothing.
#
#   deploy/test.sh            # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/services.sh
deploy/test-tools.sh

export ORDER_SYNC_TEST_MYSQL="${ORDER_SYNC_TEST_MYSQL:-mysql://order_sync:order_sync@127.0.0.1:3306}"
export ORDER_SYNC_TEST_AMQP="${ORDER_SYNC_TEST_AMQP:-amqp://guest:guest@127.0.0.1:5672/%2f}"
exec cargo test --workspace --locked "$@"
