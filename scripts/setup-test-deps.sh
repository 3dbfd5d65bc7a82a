#!/usr/bin/env bash
# Installs what the tests need that is not a crate, idempotently: Debian's mosquitto and its
# clients (MQTT interop), Node's MQTT.js (the browser-style MQTT-over-WebSocket client), the
# Python Socket.IO 2 server used as the Streamlabs/StreamElements counterpart, Debian's
# Chromium with playwright-core for the browser tests (no browser download: the system one),
# and Debian's OBS Studio with Xvfb for the OBS tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium chromium-driver)
# A real IRC server for the chat client's connect/ping/reconnect test (tests/chat.rs).
command -v ngircd >/dev/null 2>&1 || [ -x /usr/sbin/ngircd ] || need_apt+=(ngircd)
# Real servers for the Redis and NATS outputs (tests/outputs.rs starts its own on free ports).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
# A real OBS Studio (obs-websocket 5 built in), headless under Xvfb with Mesa's software
# renderer, for tests/obs.rs.
command -v obs >/dev/null 2>&1 || need_apt+=(obs-studio)
command -v Xvfb >/dev/null 2>&1 || need_apt+=(xvfb)
command -v xauth >/dev/null 2>&1 || need_apt+=(xauth)
[ -e /usr/share/doc/libgl1-mesa-dri ] || need_apt+=(libgl1-mesa-dri)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from Debian"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian package starts a system mosquitto on 1883; the tests start their own on free ports.

if [ ! -d tests/node/node_modules/mqtt ] || [ ! -d tests/node/node_modules/playwright-core ]; then
  echo "setup: installing MQTT.js and playwright-core for the WebSocket and browser tests"
  (cd tests/node && npm ci --no-audit --no-fund --silent)
fi

# The example bots' MQTT.js, and json-schema-to-typescript and typescript for the typed payloads
# (examples/types, tests/types.rs), pinned in examples/package-lock.json.
if [ ! -d examples/node_modules/mqtt ] || [ ! -d examples/node_modules/json-schema-to-typescript ] \
    || [ ! -d examples/node_modules/typescript ]; then
  echo "setup: installing the examples' node packages (MQTT.js, json-schema-to-typescript, typescript)"
  (cd examples && npm ci --no-audit --no-fund --silent)
fi

if [ -x scripts/setup-socketio-venv.sh ]; then
  scripts/setup-socketio-venv.sh
fi
