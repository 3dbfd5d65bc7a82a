#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the test dependencies, then runs every
# test (unit, integration against real mosquitto / Socket.IO / MQTT.js, doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
cargo test --all-targets "$@"
