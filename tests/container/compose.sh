#!/usr/bin/env bash
# The compose example of docs/scale-out.md, run as written with
# podman-compose: the files are taken from the document (the code blocks
# after its `<!-- compose: NAME -->` markers), the image is the one just
# built. Checks that the balancer answers and that six requests for one URL
# over three instances reach the origin once.
#
# usage: tests/container/compose.sh IMAGE WORKDIR
set -euo pipefail
image=$1
dir=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
podman=(podman --runtime runc --cgroup-manager cgroupfs)
mkdir -p "$dir"
python3 - "$root/docs/scale-out.md" "$dir" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
found = re.findall(r"<!-- compose: (\S+) -->\n```\w*\n(.*?)```", text, re.S)
assert {name for name, _ in found} == {"docker-compose.yml", "lb.conf"}, found
for name, body in found:
    open(f"{sys.argv[2]}/{name}", "w").write(body)
PY
"${podman[@]}" tag "$image" localhost/caching-proxy:latest
compose=(podman-compose --podman-args="--runtime runc --cgroup-manager cgroupfs" -p caching-proxy-ci -f "$dir/docker-compose.yml")
down() { "${compose[@]}" down -t 5 >/dev/null 2>&1 || true; }
trap down EXIT
"${compose[@]}" up -d >"$dir/up.log" 2>&1 || { tail -30 "$dir/up.log" >&2; exit 1; }

# Up when the origin's own 404 for an unknown path comes back through
# the balancer and an instance (a 502 means a link is not up yet).
answered=
for _ in $(seq 150); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/ready)" = 404 ]; then
        answered=1
        break
    fi
    sleep 0.2
done
[ -n "$answered" ] || { "${compose[@]}" logs >&2 || true; echo "FAIL: the balancer does not answer" >&2; exit 1; }
statuses=()
for _ in 1 2 3 4 5 6; do
    statuses+=("$(curl -s -D - -o /dev/null http://127.0.0.1:8080/index.html | tr -d '\r' | grep -i '^x-cache:' | cut -d' ' -f2)")
done
echo "six GET /index.html through the balancer: ${statuses[*]}"
fetched=$("${podman[@]}" exec caching-proxy-ci_origin_1 sh -c 'grep -c "GET /index.html " /var/log/nginx/access.log' || true)
[ "$fetched" = 1 ] || { echo "FAIL: the origin was asked $fetched times, not once for the fleet" >&2; exit 1; }
[ "${statuses[0]}" = MISS ] && [ "$(printf '%s\n' "${statuses[@]:1}" | sort -u)" = HIT ] ||
    { echo "FAIL: expected MISS then HITs" >&2; exit 1; }
echo "compose: three instances share one fetch through Redis"
