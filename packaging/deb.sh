#!/usr/bin/env bash
# Builds the Debian package: the release binary, the completions and the
# man page it generates from its own flags, then `cargo deb`.
#
#   packaging/deb.sh        # -> target/debian/caching-proxy_<version>-1_amd64.deb
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
    cargo install --locked --quiet cargo-deb@3.6.2
fi
cargo build --release --locked --quiet
bin=target/release/caching-proxy
mkdir -p target/assets
"$bin" generate man | gzip -9n >target/assets/caching-proxy.1.gz
"$bin" generate completions bash >target/assets/caching-proxy.bash
"$bin" generate completions zsh >target/assets/_caching-proxy
"$bin" generate completions fish >target/assets/caching-proxy.fish
cargo deb --no-build --no-strip --quiet
ls target/debian/caching-proxy_*.deb
