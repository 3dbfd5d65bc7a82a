#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the test dependencies, then runs every
# test (unit, integration against real mosquitto, ngircd, redis, nats, Socket.IO, Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
# Benchmarks first, as short smoke runs (each notices it was not started with --bench), so
# the run ends with the test harness's own summary.
cargo test --benches "$@"
cargo test --lib --bins --tests "$@"
