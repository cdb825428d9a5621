#!/usr/bin/env bash
# Instructions per request of the release binary, counted by callgrind: a
# figure that does not move with the machine's noise, for comparing one
# change with the next (bench/run.sh gives the throughput ratios).
#
#   bench/instructions.sh                  # hit 1 KiB, no-store, miss,
#                                          # miss of a page stored compressed
#   LOG=warn bench/instructions.sh         # without access-log lines
#
# An nginx origin and the proxy run on loopback (ports 18200-18201); wrk
# warms up, then callgrind counts a 5 s run (user-space instructions of
# every proxy thread, divided by the requests wrk completed).
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages nginx:nginx-light wrk:wrk valgrind:valgrind
# CACHING_PROXY_BIN measures another build (say, a commit's, to compare).
[ -n "${CACHING_PROXY_BIN:-}" ] || cargo build --release --quiet

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/www"
head -c 1024 /dev/urandom > "$work/www/1k"
# 8 KiB of markup: a text/html miss the proxy stores compressed (br).
for i in $(seq 400); do echo "<li class=\"item\">product $i</li>"; done > "$work/list"
head -c 8192 "$work/list" > "$work/www/page"
chmod 755 "$work" "$work/www" # nginx's workers run as nobody
chmod 644 "$work/www/1k" "$work/www/page"
cat > "$work/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/origin.err warn;
events { worker_connections 1024; }
http {
  # Bytes, not text: these responses are stored as they came.
  default_type application/octet-stream;
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:18200;
    root $work/www;
    location = /1k { add_header Cache-Control "public, max-age=3600"; }
    location /u/ { add_header Cache-Control "public, max-age=3600"; try_files /1k =404; }
    location = /nostore { add_header Cache-Control "no-store"; try_files /1k =404; }
    location /t/ { default_type text/html; add_header Cache-Control "public, max-age=3600"; try_files /page =404; }
  }
}
EOF
taskset -c 0 nginx -c "$work/origin.conf" 2>"$work/origin.out" &
pids+=($!)
for _ in $(seq 50); do
    curl -s -o /dev/null http://127.0.0.1:18200/1k && break
    kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/origin.out" >&2; exit 1; }
    sleep 0.1
done
cat > "$work/miss.lua" <<'EOF'
-- A prefix per wrk run, so that the counted run repeats none of the
-- warm-up's keys: every request is a miss.
local prefix = os.getenv("KEY_PREFIX") or ""
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/u/" .. prefix .. n)
end
EOF
sed -e 's|"/u/"|"/t/"|' -e 's|wrk.format("GET", \(.*\))$|wrk.format("GET", \1, { ["Accept-Encoding"] = "gzip, deflate, br, zstd" })|' \
    "$work/miss.lua" > "$work/miss-text.lua"

# The snapshot's write-behind is paced by time, not by requests: under
# callgrind's slowdown it would be counted as if each request paid for a
# write of the whole cache. It is held off here, so the figures are the
# request path's; the writer's own cost is `cargo bench --bench snapshot`.
cat > "$work/proxy.toml" <<EOF
[[listeners]]
address = "127.0.0.1:18201"

[[origins]]
name = "origin"
url = "http://127.0.0.1:18200"

[cache]
file = "$work/cache.json"
write_delay = "1h"
EOF

count() { # name path expected-log-fields [script]
    local name=$1 path=$2 expected=$3 script=${4:-}
    rm -f "$work"/cg.out* "$work/cache.json"
    RUST_LOG=${LOG:-info} valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$work/cg.out" "${CACHING_PROXY_BIN:-target/release/caching-proxy}" \
        --config "$work/proxy.toml" 2>"$work/proxy.log" &
    local pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:18201$path" && break
        sleep 0.2
    done
    local args=(-t1 -c16)
    [ -n "$script" ] && args+=(-s "$script")
    KEY_PREFIX=warm taskset -c 0 wrk "${args[@]}" -d2s "http://127.0.0.1:18201$path" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    local requests
    requests=$(KEY_PREFIX=run taskset -c 0 wrk "${args[@]}" -d5s "http://127.0.0.1:18201$path" |
        grep -oE '[0-9]+ requests in' | cut -d' ' -f1)
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    # wrk's last requests, cut off at the end of its run, are logged as 499.
    if [ "${LOG:-info}" = info ] && ! grep access "$work/proxy.log" | grep -v 'status=499' | tail -1 | grep -q "$expected"; then
        echo "$name: the last request was not '$expected':" >&2
        grep access "$work/proxy.log" | tail -1 >&2
        exit 1
    fi
    local instructions
    instructions=$(cat "$work"/cg.out* | awk '/^totals:/ { s += $2 } END { print s }')
    printf '%-10s %8d instructions per request (%d requests)\n' \
        "$name" $((instructions / requests)) "$requests"
}

count "hit 1 KiB" /1k 'status=200 cache="HIT"'
count "no-store" /nostore 'status=200 cache="MISS" reason="no-store"'
count "miss" / 'status=200 cache="MISS" reason="stored"' "$work/miss.lua"
count "miss, br" / 'status=200 cache="MISS" reason="stored"' "$work/miss-text.lua"
