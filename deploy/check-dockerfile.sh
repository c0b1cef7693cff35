#!/usr/bin/env bash
# Runs what deploy/Dockerfile runs, natively, where no Docker engine is at
# hand (CI): copies exactly what the build stage COPYs into an empty context,
# runs the build stage's RUN command there, and starts the built binary with
# the environment docker-compose.yml gives the order-sync service. A COPY
# missing a file the build needs, or a broken release build, fails here.
# The runtime stage's apt-get/useradd lines are not run (they would change
# this machine); its binary is this one.
#
#   deploy/check-dockerfile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# The build stage: everything between the first and the second FROM.
stage=$(awk '/^FROM /{n++} n==1' deploy/Dockerfile)
while read -r -a words; do
  [ "${words[0]:-}" = COPY ] || continue
  dest="${words[-1]}"
  for src in "${words[@]:1:${#words[@]}-2}"; do
    if [ -d "$src" ]; then
      mkdir -p "$ctx/$dest" && cp -r "$src/." "$ctx/$dest/"
    else
      mkdir -p "$ctx/$dest" && cp "$src" "$ctx/$dest/"
    fi
  done
done <<< "$stage"
run=$(sed -n 's/^RUN //p' <<< "$stage")
echo "check-dockerfile.sh: in a context holding only the COPYed files: $run"
(cd "$ctx" && CARGO_TARGET_DIR="$root/target/docker-check" bash -c "$run")

bin="$root/target/docker-check/release/order-sync"
"$bin" --version
# The image's configuration: the compose service's environment, nothing else
# (compose has no default API token; this check supplies one).
export ORDER_SYNC_API_TOKEN="${ORDER_SYNC_API_TOKEN:-check-dockerfile-token-0123456789}"
mapfile -t envs < <(python3 - <<'PY'
import subprocess, yaml
cfg = yaml.safe_load(subprocess.run(["docker-compose", "config"], check=True, capture_output=True, text=True).stdout)
for k, v in cfg["services"]["order-sync"]["environment"].items():
    print(f"{k}={v}")
PY
)
env -i PATH="$PATH" "${envs[@]}" "$bin" check-config >/dev/null
echo "check-dockerfile.sh: the release binary starts with the compose configuration."
