#!/usr/bin/env bash
# Creates the Python venv that runs tests/support/socketio_server.py, a real Socket.IO 2 /
# Engine.IO 3 server (python-socketio 4.x), because no maintained Rust server speaks EIO 3 and
# the Streamlabs/StreamElements client must be tested against an implementation we did not write.
# aiohttp is its websocket-capable async mode (the threading mode has no websocket transport).
# paho-mqtt is the Python MQTT client bots are written with (tests/bots/seed_bot.py,
# examples/python). datamodel-code-generator generates examples/types/ongwatch_types.py from the
# JSON Schema and mypy type-checks it (tests/types.rs).
#
# Idempotent: a venv whose pinned packages import is left alone. Override the location with
# SOCKETIO_VENV (tests/socketio_providers.rs reads the same variable).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SOCKETIO_VENV:-$root/target/socketio-venv}"
python="${PYTHON:-python3}"

check() {
    "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
assert m.version("python-socketio") == "4.6.1"
assert m.version("python-engineio") == "3.14.2"
assert m.version("aiohttp") == "3.9.5"
assert m.version("paho-mqtt") == "2.1.0"
assert m.version("datamodel-code-generator") == "0.97.0"
assert m.version("mypy") == "2.4.1"
import aiohttp, socketio, engineio, paho.mqtt.client, datamodel_code_generator, mypy  # noqa: F401
PY
}

if [ -x "$venv/bin/python" ] && check; then
    echo "socketio venv ready: $venv"
    exit 0
fi

if ! "$python" -m venv --help >/dev/null 2>&1; then
    echo "error: '$python -m venv' is unavailable; install python3-venv (apt-get install python3-venv)" >&2
    exit 1
fi

# A working venv that only lacks a newly pinned package gets it added, not rebuilt.
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "" 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "python-socketio==4.6.1" "python-engineio==3.14.2" "aiohttp==3.9.5" "paho-mqtt==2.1.0" \
    "datamodel-code-generator==0.97.0" "mypy==2.4.1"
check
echo "socketio venv ready: $venv"
