#!/usr/bin/env bash
# One command: caching-proxy against nginx proxy_cache and Varnish (and a
# static nginx, the ceiling of this machine), interleaved over several
# rounds, with the load generator and the origin on core 0 and the proxy
# under test alone on core 1.
#
#   bench/run.sh                 # 5 rounds of 10 s per scenario and target
#   ROUNDS=3 DURATION=5 bench/run.sh
#
# Writes bench/results/<date>.md and prints a one-line summary of ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v varnishd >/dev/null 2>&1 || need+=(varnish)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet
cargo bench --quiet --bench snapshot -- --quiet > "${TMPDIR:-/tmp}/caching-proxy-snapshot-bench.txt"
exec python3 bench/run.py "$@"
