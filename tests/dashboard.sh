#!/usr/bin/env bash
# The dashboard as people see it (run by .ci/run): the admin listener's
# page in headless Chromium (tests/dashboard/browser.py), and
# `caching-proxy top` in tmux, each against a running proxy with traffic.
# Both write the screenshots docs/ shows (docs/dashboard.png, docs/top.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages chromium:chromium chromedriver:chromium-driver tmux:tmux curl:curl
cargo build --quiet
bin=target/debug/caching-proxy

work=$(mktemp -d)
pids=()
cleanup() {
    tmux kill-session -t caching-proxy-top-test 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*" >&2; exit 1; }

origin=$(free_port)
python3 tests/support/origin.py "$origin" "$work/origin.log" &
pids+=($!)
port=$(free_port)
admin=$(free_port)
"$bin" --port "$port" --origin "http://127.0.0.1:$origin" --admin "127.0.0.1:$admin" \
    --cache-file "$work/cache.json" 2>"$work/proxy.log" &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/readyz" && break; sleep 0.1; done

echo "== the dashboard in headless Chromium"
python3 tests/dashboard/browser.py "$port" "$admin" docs/dashboard.png

echo "== caching-proxy top in tmux"
tmux new-session -d -s caching-proxy-top-test -x 132 -y 42 "$bin top --admin 127.0.0.1:$admin"
for _ in $(seq 50); do
    curl -s -o /dev/null -H 'Host: top.test' "http://127.0.0.1:$port/top-hot"
done
curl -s -o /dev/null -H 'Host: top.test' "http://127.0.0.1:$port/top-miss"
screen=
for _ in $(seq 100); do
    screen=$(tmux capture-pane -p -t caching-proxy-top-test)
    if grep -q "top.test/top-hot" <<<"$screen" && grep -q "routes, last minute" <<<"$screen"; then
        break
    fi
    sleep 0.1
done
grep -q "routes, last minute" <<<"$screen" || fail "top shows no route table: $screen"
grep -q "default" <<<"$screen" || fail "top shows no route"
grep -q "top.test/top-hot" <<<"$screen" || fail "top shows no top URL: $screen"
printf '%s\n' "$screen" >docs/top.txt
echo "top: routes and top URLs shown (docs/top.txt)"
tmux send-keys -t caching-proxy-top-test q
for _ in $(seq 50); do tmux has-session -t caching-proxy-top-test 2>/dev/null || break; sleep 0.1; done
tmux has-session -t caching-proxy-top-test 2>/dev/null && fail "q did not quit top"
echo "top: q quits"
