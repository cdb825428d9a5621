#!/usr/bin/env bash
# One command: caching-proxy against nginx proxy_cache and Varnish (and a
# static nginx, the ceiling of this machine), interleaved over several
# rounds, with the load generator and the origin on core 0 and the proxy
# under test alone on core 1.
#
#   bench/run.sh                 # 3 rounds of 10 s per scenario and target
#   ROUNDS=1 DURATION=5 bench/run.sh
#   ONLY=no-store,miss bench/run.sh   # scenarios whose names contain these
#
# Writes bench/results/<date>.md and prints a one-line summary of ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages nginx:nginx-light varnishd:varnish wrk:wrk h2load:nghttp2-client openssl:openssl

cargo build --release --quiet
cargo bench --quiet --bench snapshot -- --quiet > "${TMPDIR:-/tmp}/caching-proxy-snapshot-bench.txt"
exec python3 bench/run.py "$@"
