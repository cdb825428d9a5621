#!/usr/bin/env bash
# The fleet benchmark: three instances sharing one redis-server. Origin
# requests per distinct URL, second-tier against first-tier hits, and the
# latency Redis adds while it is stopped (see bench/fleet.py).
#
#   bench/fleet.sh                    # 3000 URLs, 5 s per wrk run
#   URLS=10000 DURATION=10 bench/fleet.sh
#
# Writes bench/results/<date>-fleet.md and prints a one-line summary.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages nginx:nginx-light wrk:wrk redis-server:redis-server

cargo build --release --quiet
exec python3 bench/fleet.py "$@"
