#!/usr/bin/env bash
# Runs the public HTTP cache test suite (https://cache-tests.fyi, the
# http-tests/cache-tests repository) against caching-proxy and writes
# bench/results/<date>-cache-tests.md: passes per kind (required, optimal,
# check) and every required or optimal test that does not pass.
#
# The suite is not vendored: pass a checkout of it with its dependencies
# installed (git clone https://github.com/http-tests/cache-tests; cd
# cache-tests; npm install). Its npm package lags the repository.
#
# usage: bench/cache-tests.sh /path/to/cache-tests
#
# Each test is judged on its own (the suite's determineTestResult without
# dependencies): the proxy stores responses without freshness information
# for ever by default (the specified behaviour of the single-origin tool),
# which fails the suite's `freshness-none` check that half the tests
# depend on, though their own assertions pass.
set -euo pipefail
suite=${1:?usage: bench/cache-tests.sh /path/to/cache-tests}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ -d "$suite/node_modules" ] || { echo "run npm install in $suite first" >&2; exit 2; }

cargo build --release --manifest-path "$root/Cargo.toml" >&2
work=$(mktemp -d)
origin_port=${ORIGIN_PORT:-18000}
proxy_port=${PROXY_PORT:-18001}
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true # the proxy writes its snapshot as it stops
    rm -rf "$work"
}
trap cleanup EXIT

# node itself, not `npm run`: npm's child would outlive the kill below.
(cd "$suite" && npm_config_protocol=http npm_config_port="$origin_port" \
    npm_config_pidfile="$work/origin.pid" \
    exec node test-engine/server/server.mjs >"$work/origin.log" 2>&1) &
pids+=($!)
(cd "$work" && exec "$root/target/release/caching-proxy" --port "$proxy_port" \
    --origin "http://127.0.0.1:$origin_port" >"$work/proxy.log" 2>&1) &
pids+=($!)
for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$proxy_port/" && break
    sleep 0.1
done

(cd "$suite" && npm run --silent cli --base="http://127.0.0.1:$proxy_port") >"$work/results.json"
summary=$(DEPS=0 node "$here/cache-tests/summary.mjs" "$suite" "$work/results.json")
counts=$(head -1 <<<"$summary")

out="$root/bench/results/$(date -u +%Y-%m-%d-%H%M)-cache-tests.md"
{
    echo "# HTTP cache test suite, $(date -u +%Y-%m-%d)"
    echo
    echo "Suite: http-tests/cache-tests at $(git -C "$suite" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
        "proxy: caching-proxy $(git -C "$root" rev-parse --short HEAD), default settings" \
        "(\`--port $proxy_port --origin http://127.0.0.1:$origin_port\`). Each test judged on its own."
    echo
    echo '```'
    echo "$counts"
    echo '```'
    echo
    echo "Not passed (kind, result, id, name):"
    echo
    grep -v '^check' <<<"$summary" | tail -n +2 | sed 's/^/- /'
} >"$out"
echo "$counts"
echo "wrote $out"
