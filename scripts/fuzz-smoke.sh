#!/usr/bin/env bash
# Short fuzz runs of every target in fuzz/ (FUZZ_SECONDS each, default 30) on a scratch copy of
# the committed corpora, so the corpora stay as committed. Exits 0 with "skipped: <why>" when
# this machine cannot build libFuzzer targets; any crash or build error exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi
# Stable rustc refuses -Z flags unless RUSTC_BOOTSTRAP is set; probe before building.
export RUSTC_BOOTSTRAP=1
if ! echo 'fn main() {}' | rustc -Zsanitizer=address -o /dev/null - >/dev/null 2>&1; then
    echo "skipped: this rustc cannot build with -Zsanitizer=address even with RUSTC_BOOTSTRAP=1"
    exit 0
fi

cargo fuzz build -O
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target"
    echo "fuzz $target for ${seconds}s"
    status=0
    cargo fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$scratch/$target.log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|Done)' "$scratch/$target.log" || true
    if [ "$status" -ne 0 ]; then
        # The crash report and the reproducer path (fuzz/artifacts/<target>/) are in the log.
        tail -n 60 "$scratch/$target.log"
        exit "$status"
    fi
done
echo "fuzz smoke: every target ran ${seconds}s without a crash"
