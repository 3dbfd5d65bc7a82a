#!/usr/bin/env bash
# Installs what the tests need that is not a crate, idempotently: Debian's mosquitto and its
# clients (MQTT interop), Node's MQTT.js (the browser-style MQTT-over-WebSocket client), and
# the Python Socket.IO 2 server used as the Streamlabs/StreamElements counterpart.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from Debian"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian package starts a system mosquitto on 1883; the tests start their own on free ports.

if [ ! -d tests/node/node_modules/mqtt ]; then
  echo "setup: installing MQTT.js for the WebSocket client test"
  (cd tests/node && npm ci --no-audit --no-fund --silent)
fi

if [ -x scripts/setup-socketio-venv.sh ]; then
  scripts/setup-socketio-venv.sh
fi
