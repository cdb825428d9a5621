#!/usr/bin/env bash
# Memory bound: peak RSS against --cache-size during fills, snapshot
# writes and a restart on a full snapshot (bench/memory.py).
#
#   bench/memory.sh
#   LARGE_FILLS=300 SMALL_FILLS=50000 bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages nginx:nginx-light

cargo build --release --quiet
exec python3 bench/memory.py "$@"
