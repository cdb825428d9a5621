#!/usr/bin/env bash
# Runs every test: installs what the tests start themselves when it is
# missing (redis-server, for the shared-tier tests; Debian's package),
# then `cargo test` with any arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (the shared-tier tests start their own)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
exec cargo test "$@"
