#!/usr/bin/env bash
# The Debian package, built and exercised on a clean Debian (run by
# .ci/run; needs root and podman): `apt-get install ./caching-proxy_*.deb`
# in a fresh bookworm container, the files, the system user and the state
# directory checked, the systemd unit verified (`systemd-analyze verify`)
# and its hardening scored, the binary run from the package as its user,
# then `apt-get purge` leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
need_packages podman:podman runc:runc debootstrap:debootstrap systemd-analyze:systemd
podman=(podman --runtime runc --cgroup-manager cgroupfs)
docker/base-images.sh >/dev/null

echo "== building the package"
deb=$(packaging/deb.sh | tail -1)
echo "$deb: $(du -h "$deb" | cut -f1)"
dpkg-deb --info "$deb" | grep -E '^ (Package|Version|Depends|Section):'

echo "== the unit's hardening (systemd-analyze security)"
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
dpkg-deb -x "$deb" "$unit_dir"
systemd-analyze security --offline=true "$(find "$unit_dir" -name caching-proxy.service)" | tail -1

echo "== install, check, run, purge in a clean bookworm container"
"${podman[@]}" run --rm --network host -v "$(pwd)/$deb:/tmp/caching-proxy.deb:ro" \
    docker.io/library/debian:bookworm bash -euo pipefail -c '
fail() { echo "FAIL: $*" >&2; exit 1; }
apt-get update -qq
# systemd for `systemd-analyze verify` (the unit, checked where the
# package put it) and the package'"'"'s dependencies come first: the purge
# must remove what the package brought, not what apt installed for it.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd procps passwd >/dev/null
before=$(mktemp); after=$(mktemp)
find / -xdev \( -path /proc -o -path /run -o -path /tmp -o -path /var/lib/apt/lists -o -path /var/cache \
    -o -path /var/log -o -path /var/lib/dpkg \) -prune -o -print | sort >"$before"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/caching-proxy.deb >/dev/null
for f in /usr/bin/caching-proxy /etc/caching-proxy/proxy.toml /lib/systemd/system/caching-proxy.service \
    /usr/share/man/man1/caching-proxy.1.gz /usr/share/bash-completion/completions/caching-proxy \
    /usr/share/zsh/vendor-completions/_caching-proxy /usr/share/fish/vendor_completions.d/caching-proxy.fish \
    /usr/share/doc/caching-proxy/proxy.example.toml; do
    [ -e "$f" ] || fail "$f is missing"
done
grep -qx /etc/caching-proxy/proxy.toml /var/lib/dpkg/info/caching-proxy.conffiles || fail "proxy.toml is not a conffile"
getent passwd caching-proxy | grep -q ":/usr/sbin/nologin$" || fail "no caching-proxy system user"
[ "$(stat -c %U:%G:%a /var/lib/caching-proxy)" = caching-proxy:caching-proxy:750 ] || fail "state directory: $(stat -c %U:%G:%a /var/lib/caching-proxy)"
zcat /usr/share/man/man1/caching-proxy.1.gz | grep -qF -- "clear\\-cache" || fail "the man page lacks --clear-cache"
grep -q clear-cache /usr/share/bash-completion/completions/caching-proxy || fail "bash completion"
caching-proxy --version
systemd-analyze verify --man=no /lib/systemd/system/caching-proxy.service || fail "systemd-analyze verify"
echo "systemd-analyze verify: clean"
caching-proxy --config /etc/caching-proxy/proxy.toml --check-config >/dev/null || fail "the packaged config is invalid"
# As the service runs it: its user, its config, its state directory.
su -s /bin/sh caching-proxy -c "caching-proxy --config /etc/caching-proxy/proxy.toml >/tmp/run.log 2>&1 & echo \$! >/tmp/pid" 
for _ in $(seq 50); do caching-proxy --health-check http://127.0.0.1:9901/readyz >/dev/null 2>&1 && break; sleep 0.1; done
caching-proxy --health-check http://127.0.0.1:9901/readyz >/dev/null || fail "the packaged service does not start: $(cat /tmp/run.log)"
kill -TERM "$(cat /tmp/pid)"
for _ in $(seq 100); do [ -f /var/lib/caching-proxy/cache.json ] && break; sleep 0.1; done
[ -f /var/lib/caching-proxy/cache.json ] || fail "no snapshot in the state directory at stop"
echo "installed: files, conffile, user, state directory, man page, completions; the service runs as its user"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq caching-proxy >/dev/null
getent passwd caching-proxy >/dev/null && fail "the user is left after purge"
find / -xdev \( -path /proc -o -path /run -o -path /tmp -o -path /var/lib/apt/lists -o -path /var/cache \
    -o -path /var/log -o -path /var/lib/dpkg \) -prune -o -print | sort >"$after"
left=$(comm -13 "$before" "$after")
[ -z "$left" ] || fail "left after purge: $left"
echo "purged: nothing left behind"
'
