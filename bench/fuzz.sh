#!/usr/bin/env bash
# Fuzzes the parsers that read network and file bytes (fuzz/fuzz_targets:
# cache_control, http_date, cache_key, snapshot, wire) with cargo-fuzz and
# libFuzzer, each for a bounded time. Not run by CI. libFuzzer needs
# nightly compiler flags; the machine's one stable toolchain is told to
# allow them (RUSTC_BOOTSTRAP=1), as no nightly can be installed here.
#
#   bench/fuzz.sh                 # 120 s per target
#   SECONDS_PER_TARGET=600 bench/fuzz.sh snapshot
#
# A crash leaves its input in fuzz/artifacts/<target>/; commit it as a
# regression test beside the parser's unit tests.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
per_target=${SECONDS_PER_TARGET:-120}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(cache_control http_date cache_key snapshot wire)

report="../bench/results/$(date -u +%Y-%m-%d-%H%M)-fuzz.md"
{
    echo "# Fuzzing $(date -u '+%Y-%m-%d %H:%M') UTC (commit $(git rev-parse --short HEAD))"
    echo
    echo "\`bench/fuzz.sh\`: cargo-fuzz (libFuzzer, AddressSanitizer), ${per_target} s per target."
    echo
    echo "| target | runs | outcome |"
    echo "| --- | ---: | --- |"
} > "$report"
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target (${per_target} s)"
    if cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$per_target" -max_len=4096 -rss_limit_mb=2048 2>"$target.log"; then
        done_line=$(grep -E "^Done" "$target.log" | tail -1)
        echo "$done_line"
        echo "| $target | $(echo "$done_line" | awk '{print $2}') | no crash |" >> "$report"
    else
        status=1
        tail -30 "$target.log"
        echo "| $target | | **crashed**: see fuzz/artifacts/$target/ |" >> "$report"
    fi
done
echo "report: bench/results/$(basename "$report")"
exit $status
