#!/usr/bin/env bash
# Makes, from Debian packages, the base images the Dockerfile names, for
# machines that reach no container registry (CI here); on others, `podman
# build` pulls the public ones and this script is not needed. Each image is
# made only when missing:
#
#   docker.io/library/debian:bookworm        debootstrap --variant=minbase
#   docker.io/library/rust:1.95-slim-bookworm  that, with gcc and make, and
#                                             this machine's Rust toolchain
#   gcr.io/distroless/cc-debian12:nonroot     glibc and libgcc only (as
#                                             distroless's cc image), user
#                                             nonroot (65532)
#   docker.io/library/redis:7, nginx:stable   the compose example's others,
#                                             from docker/base/
#
# usage: docker/base-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN=docker.io/library/debian:bookworm
RUST=docker.io/library/rust:1.95-slim-bookworm
RUNTIME=gcr.io/distroless/cc-debian12:nonroot
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=${BASE_IMAGES_WORK:-/var/tmp/caching-proxy-base-images}
podman=(podman --runtime runc --cgroup-manager cgroupfs)

mkdir -p "$work"
conf=/etc/containers/containers.conf
if ! grep -qs '^default_ulimits *= *\[\]' "$conf"; then
    # Raising limits is not permitted on these machines.
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = []\n' >>"$conf"
fi

if ! "${podman[@]}" image exists "$DEBIAN"; then
    rootfs="$work/bookworm"
    if [ ! -f "$rootfs/.complete" ]; then
        rm -rf "$rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
            { tail -20 "$work/debootstrap.log" >&2; exit 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        touch "$rootfs/.complete"
    fi
    tar -C "$rootfs" --exclude=./.complete -c . |
        "${podman[@]}" import --change 'CMD ["/bin/bash"]' - "$DEBIAN" >/dev/null
    echo "made $DEBIAN"
fi

if ! "${podman[@]}" image exists "$RUST"; then
    # This machine's toolchain, without its docs and sources: cargo, rustc,
    # their libraries and the x86_64 standard library and linker wrapper.
    sysroot=$(rustc --print sysroot)
    context="$work/rust-context"
    rm -rf "$context"
    mkdir -p "$context/rust/bin" "$context/rust/lib/rustlib"
    cp "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$context/rust/bin/"
    cp -a "$sysroot"/lib/*.so* "$context/rust/lib/"
    cp -a "$sysroot/lib/rustlib/x86_64-unknown-linux-gnu" "$context/rust/lib/rustlib/"
    # This machine's trust, so that cargo reaches crates.io as it does here
    # (through whatever TLS inspection the network does).
    cp /etc/ssl/certs/ca-certificates.crt "$context/"
    cat >"$context/Containerfile" <<EOF
FROM $DEBIAN
RUN apt-get update \\
    && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    CARGO_HOME=/usr/local/cargo
EOF
    "${podman[@]}" build --pull=never --network host -q -t "$RUST" "$context" >/dev/null
    rm -rf "$context"
    echo "made $RUST ($(rustc --version))"
fi

if ! "${podman[@]}" image exists "$RUNTIME"; then
    rootfs="$work/bookworm"
    [ -f "$rootfs/.complete" ] || { echo "debootstrap's tree is gone: remove $DEBIAN and run again" >&2; exit 1; }
    tree="$work/distroless"
    rm -rf "$tree"
    mkdir -p "$tree"/{etc,tmp,home/nonroot,lib64,usr/lib/x86_64-linux-gnu}
    chmod 1777 "$tree/tmp"
    chown 65532:65532 "$tree/home/nonroot"
    ln -s usr/lib "$tree/lib"
    cp -L "$rootfs/lib64/ld-linux-x86-64.so.2" "$tree/lib64/"
    for lib in libc.so.6 libm.so.6 libgcc_s.so.1 libdl.so.2 libpthread.so.0 librt.so.1; do
        cp -L "$rootfs/usr/lib/x86_64-linux-gnu/$lib" "$tree/usr/lib/x86_64-linux-gnu/"
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$tree/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$tree/etc/group"
    printf 'hosts: files dns\n' >"$tree/etc/nsswitch.conf"
    tar -C "$tree" -c . |
        "${podman[@]}" import --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' - "$RUNTIME" >/dev/null
    rm -rf "$tree"
    echo "made $RUNTIME"
fi

# The compose example's other images (docs/scale-out.md).
for pair in "docker.io/library/redis:7 redis" "docker.io/library/nginx:stable nginx"; do
    set -- $pair
    if ! "${podman[@]}" image exists "$1"; then
        "${podman[@]}" build --pull=never --network host -q -t "$1" "docker/base/$2" >/dev/null
        echo "made $1"
    fi
done
