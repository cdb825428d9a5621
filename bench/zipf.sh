#!/usr/bin/env bash
# A Zipf workload over 10,000 URLs with browsers' Accept-Encoding headers
# and tracking parameters: hit ratio and bytes to clients, caching-proxy
# against nginx (gzip on) and Varnish (do_gzip) in one run (see
# bench/zipf.py).
#
#   bench/zipf.sh                      # 2 rounds x 15 s per target
#   ROUNDS=3 DURATION=20 bench/zipf.sh
#
# Writes bench/results/<date>-zipf.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages nginx:nginx-light wrk:wrk varnishd:varnish

cargo build --release --quiet
exec python3 bench/zipf.py "$@"
