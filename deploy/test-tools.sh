#!/usr/bin/env bash
# Installs what the test suite drives besides RabbitMQ and MariaDB, where it is
# missing (Debian or Ubuntu): headless Chromium and its WebDriver (status page
# test), PHP with php-amqplib (the PHP consumer, run), docker-compose (static check of
# docker-compose.yml; no Docker engine needed), for Python: pika (the Python
# consumer), jsonschema and PyYAML (the AsyncAPI contract check), and the
# official AsyncAPI parser (npm, pinned in tests/contract/package-lock.json).
#
#   deploy/test-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
command -v php >/dev/null 2>&1 || need+=(php-cli)
[ -f /usr/share/php/PhpAmqpLib/autoload.php ] || need+=(php-amqplib php-mbstring php-bcmath)
# The Magento bridges' tests (the bridge keeps what it synced in a table of
# Magento's database, through PDO).
command -v phpunit >/dev/null 2>&1 || need+=(phpunit)
php -m 2>/dev/null | grep -qi '^pdo_mysql$' || need+=(php-mysql)
# promtool, for the alert rules.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${#need[@]}" -gt 0 ]; then
  echo "test-tools.sh: installing ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! python3 -c "import pika, jsonschema, yaml, cloudevents.core" 2>/dev/null; then
  echo "test-tools.sh: installing pika, jsonschema, PyYAML and the CloudEvents SDK"
  reqs=(-r deploy/consumers/python/requirements.txt -r tests/contract/requirements.txt)
  # A pyenv or venv Python takes pip; Debian's own refuses it (PEP 668): use its packages.
  python3 -m pip install --quiet "${reqs[@]}" 2>/dev/null \
    || { $SUDO apt-get update -qq
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pika python3-jsonschema python3-yaml python3-pip >/dev/null
         # Debian has no package of the CloudEvents SDK.
         python3 -m pip install --quiet --break-system-packages "cloudevents>=2.2"; }
  python3 -c "import pika, jsonschema, yaml, cloudevents.core"
fi

if [ ! -d tests/contract/node_modules/@asyncapi/parser ]; then
  echo "test-tools.sh: installing the AsyncAPI parser (npm ci in tests/contract)"
  (cd tests/contract && npm ci --silent --no-audit --no-fund)
fi
