#!/usr/bin/env bash
# One of three origin servers killed and restarted under a miss-heavy load:
# the errors clients see and the throughput, caching-proxy against nginx's
# upstream with max_fails (see bench/servers.py).
#
#   bench/servers.sh                  # 2 rounds x 12 s per target
#   ROUNDS=3 DURATION=15 bench/servers.sh
#
# Writes bench/results/<date>-servers.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages nginx:nginx-light wrk:wrk

cargo build --release --quiet
exec python3 bench/servers.py "$@"
