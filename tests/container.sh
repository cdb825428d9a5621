#!/usr/bin/env bash
# The container image, built from the project's Dockerfile and run for real
# with podman (run by .ci/run; needs root). Makes the base images from Debian
# packages first when they are missing (docker/base-images.sh), builds
# localhost/caching-proxy:ci, and checks what a user of the image relies on:
#
# - its size (printed; under 30 MB);
# - MISS then HIT on the published port;
# - the health check turns the container healthy;
# - read-only root, every capability dropped, an arbitrary uid in group 0
#   (OpenShift), only the volume writable;
# - the cache survives `podman restart` through the volume;
# - an edit of the mounted config, swapped as a Kubernetes ConfigMap is
#   (`..data`), applies live;
# - `podman exec ... caching-proxy --clear-cache` empties the running cache;
# - JSON logs when asked;
# - `podman stop` exits 0 within the grace period and leaves a valid
#   cache.json;
# - the compose example of docs/scale-out.md (three instances sharing Redis
#   behind nginx) answers, and a URL is fetched once for the fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

. bench/lib.sh
need_packages podman:podman buildah:buildah runc:runc debootstrap:debootstrap \
    podman-compose:podman-compose curl:curl
podman=(podman --runtime runc --cgroup-manager cgroupfs)
image=localhost/caching-proxy:ci

docker/base-images.sh
echo "== building $image from the Dockerfile"
started=$(date +%s)
"${podman[@]}" build --pull=never --network host --format docker -t "$image" -f Dockerfile . >/tmp/container-build.log 2>&1 ||
    { tail -30 /tmp/container-build.log >&2; exit 1; }
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "image built in $(($(date +%s) - started)) s; size $((size / 1000000)) MB ($size bytes)"
[ "$size" -lt 30000000 ] || { echo "FAIL: the image is over 30 MB" >&2; exit 1; }

work=$(mktemp -d)
containers=()
pids=()
cleanup() {
    for c in "${containers[@]}"; do "${podman[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    [ -f "$work/podman.log" ] && tail -5 "$work/podman.log" >&2
    exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# An origin that counts what it answers (one line per request in its log).
origin_port=$(free_port)
python3 tests/support/origin.py "$origin_port" "$work/origin.log" &
pids+=($!)
for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$origin_port/ready" && break; sleep 0.1; done
origin_hits() { grep -c " $1\$" "$work/origin.log" || true; }

# The config, laid out as a Kubernetes ConfigMap volume: proxy.toml ->
# ..data/proxy.toml, ..data -> ..<version>.
port=$(free_port)
admin=$(free_port)
config_dir="$work/config"
mkdir -p "$config_dir/..v1"
config() {
    cat <<EOF
[cache]
file = "/var/lib/caching-proxy/cache.json"

[[listeners]]
address = "0.0.0.0:3000"
$1
[[origins]]
name = "origin"
url = "http://host.containers.internal:$origin_port"

[admin]
address = "127.0.0.1:9901"
EOF
}
config "" >"$config_dir/..v1/proxy.toml"
ln -s ..v1 "$config_dir/..data"
ln -s ..data/proxy.toml "$config_dir/proxy.toml"
chmod -R a+rX "$config_dir"

# The volume: group 0 and group-writable, as OpenShift runs images with
# an arbitrary uid in group 0.
volume="$work/volume"
mkdir -p "$volume"
chgrp 0 "$volume"
chmod 2770 "$volume"

echo "== run: read-only, no capabilities, uid 100123 gid 0"
ctr=caching-proxy-ci-$$
containers+=("$ctr")
# No systemd here: podman's health timers cannot run (its complaints go to
# podman.log); the check is run by hand below.
"${podman[@]}" run -d --name "$ctr" --health-interval disable --read-only --cap-drop all --user 100123:0 \
    -p "127.0.0.1:$port:3000" \
    -v "$config_dir:/etc/caching-proxy:ro" -v "$volume:/var/lib/caching-proxy" \
    "$image" --config /etc/caching-proxy/proxy.toml --log-format json >/dev/null 2>>"$work/podman.log"
get() { curl -s -o "$work/body" -D "$work/head" "http://127.0.0.1:$port$1"; tr -d '\r' <"$work/head" | grep -i '^x-cache:' | cut -d' ' -f2; }
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.1; done

[ "$(get /a)" = MISS ] || fail "first GET /a is not a MISS"
[ "$(get /a)" = HIT ] || fail "second GET /a is not a HIT"
[ "$(cat "$work/body")" = "origin /a" ] || fail "the body of /a"
[ "$(origin_hits /a)" = 1 ] || fail "the origin saw /a $(origin_hits /a) times"
echo "published port: MISS then HIT"

"${podman[@]}" healthcheck run "$ctr" >/dev/null || fail "the health check fails"
[ "$("${podman[@]}" inspect --format '{{.State.Health.Status}}' "$ctr")" = healthy ] || fail "not healthy"
echo "health check: healthy"

"${podman[@]}" exec "$ctr" sh -c true 2>/dev/null && fail "the image has a shell"
echo "read-only, no capabilities, uid 100123:0: serving; no shell in the image"

"${podman[@]}" logs "$ctr" 2>&1 | python3 -c '
import json, sys
lines = [json.loads(line) for line in sys.stdin if line.strip()]
access = [l for l in lines if l.get("target") == "access"]
assert access and access[-1]["cache"] == "HIT" and access[-1]["path"] == "/a", access[-1:]
print(f"logs: {len(lines)} lines, every one JSON")' || fail "the logs are not JSON"

echo "== restart: the cache survives through the volume"
"${podman[@]}" restart -t 20 "$ctr" >/dev/null 2>>"$work/podman.log"
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.1; done
[ "$(get /a)" = HIT ] || fail "GET /a after the restart is not a HIT"
[ "$(origin_hits /a)" = 1 ] || fail "the origin was asked again after the restart"
echo "after podman restart: HIT, origin not asked"

echo "== a ConfigMap-style swap of the config applies live"
mkdir "$config_dir/..v2"
config "
[[listeners]]
address = \"0.0.0.0:3001\"
" >"$config_dir/..v2/proxy.toml"
chmod -R a+rX "$config_dir"
ln -s ..v2 "$config_dir/..data_tmp"
mv -T "$config_dir/..data_tmp" "$config_dir/..data"
# The new listener answers inside the container once the edit is applied.
reloaded=
for _ in $(seq 100); do
    if "${podman[@]}" exec "$ctr" caching-proxy --health-check http://127.0.0.1:3001/ready >/dev/null 2>&1; then
        reloaded=1
        break
    fi
    sleep 0.1
done
[ -n "$reloaded" ] || fail "the swapped config was not applied"
"${podman[@]}" logs "$ctr" 2>&1 | grep -F "configuration reloaded" | tail -1
echo "config swap: applied (a listener on 3001 answers)"

echo "== podman exec caching-proxy --clear-cache"
out=$("${podman[@]}" exec "$ctr" caching-proxy --clear-cache --cache-file /var/lib/caching-proxy/cache.json)
[ "$out" = "Cache cleared successfully" ] || fail "clear-cache said: $out"
[ "$(get /a)" = MISS ] || fail "GET /a after --clear-cache is not a MISS"
[ "$(origin_hits /a)" = 2 ] || fail "the origin was not asked after --clear-cache"
echo "clear-cache: the running instance was emptied"

echo "== podman stop"
get /b >/dev/null
stopping=$(date +%s%N)
"${podman[@]}" stop -t 10 "$ctr" >/dev/null 2>>"$work/podman.log"
took_ms=$((($(date +%s%N) - stopping) / 1000000))
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$ctr")
[ "$code" = 0 ] || fail "exit code $code after podman stop"
[ "$took_ms" -lt 10000 ] || fail "stop took $took_ms ms: the grace period ran out"
python3 - "$volume/cache.json" <<'EOF' || fail "cache.json is not a valid snapshot"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["version"] == 1, doc
keys = [e["key"] for e in doc["entries"]]
assert any(k.endswith("/b") for k in keys), keys
EOF
echo "podman stop: exit 0 in $took_ms ms, cache.json valid with the last entry"

echo "== the compose example of docs/scale-out.md"
tests/container/compose.sh "$image" "$work/compose"
