#!/usr/bin/env bash
# Soak: 10 minutes of mixed hits, misses, purges, reloads and faulty
# origins at saturation (bench/soak.py); fails on any wrong body or on
# growing RSS or file descriptors.
#
#   bench/soak.sh
#   DURATION=60 bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages nginx:nginx-light wrk:wrk

cargo build --release --quiet
exec python3 bench/soak.py "$@"
