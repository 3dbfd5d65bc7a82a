// The seed's lighting bot: the room's lights follow the stream. It combines three sources that
// ongwatch and other bots put on the bus, and drives lights that speak MQTT (a Zigbee2MQTT or
// Home Assistant bridge, or examples/browser/lights.html as a lamp on screen):
//   stream/synthetic/bpm       (retained, examples/js/bpm_bot.js)  → the pulse speed
//   stream/synthetic/hype      (retained, ongwatch's hype meter)    → brightness
//   stream/support/cheers|tips (events)                             → a gold flash
// and publishes house/lights/stream/set (retained state) and house/lights/stream/flash (events).
// house/... is outside ongwatch's topic root, so ongwatch only carries it.
//
// usage: node lights_bot.js [mqtt://host:port]   (or ONGWATCH_MQTT; default mqtt://127.0.0.1:1883)
"use strict";
const mqtt = require("mqtt");

const url = process.argv[2] || process.env.ONGWATCH_MQTT || "mqtt://127.0.0.1:1883";
const root = process.env.ONGWATCH_ROOT || "stream";
const lights = process.env.LIGHTS_TOPIC || "house/lights/stream";

const client = mqtt.connect(url, { protocolVersion: 5, clientId: "lights-bot", reconnectPeriod: 1000 });
const state = { bpm: 90, level: 0 };
const seen = new Set(); // event ids: delivery is at least once, a flash should happen once

function setLights() {
  const light = {
    color: ["#3050ff", "#7a3cff", "#ff3cc8", "#ff7a1a", "#ff2a2a"][Math.min(state.level, 4)],
    brightness: Math.min(1, 0.3 + state.level * 0.15),
    pulse_bpm: state.bpm,
  };
  client.publish(`${lights}/set`, JSON.stringify(light), { qos: 1, retain: true });
  console.log(`lights: set ${JSON.stringify(light)}`);
}

client.on("connect", () => {
  // Retained topics answer at once with their current value, so the lights start right.
  client.subscribe([`${root}/synthetic/bpm`, `${root}/synthetic/hype`, `${root}/support/cheers`, `${root}/support/tips`],
    { qos: 1 }, (err) => {
      if (err) return console.log(`lights: subscribe failed: ${err.message}`);
      console.log(`lights: listening on ${url}`);
      setLights();
    });
});

client.on("message", (topic, payload) => {
  let msg;
  try { msg = JSON.parse(payload.toString()); } catch { return; }
  if (topic.endsWith("/synthetic/bpm") && Number.isFinite(msg.bpm)) {
    state.bpm = msg.bpm;
    setLights();
  } else if (topic.endsWith("/synthetic/hype") && Number.isInteger(msg.level)) {
    state.level = msg.level;
    setLights();
  } else if (msg.id && !seen.has(msg.id)) {
    seen.add(msg.id);
    if (seen.size > 1000) seen.delete(seen.values().next().value);
    const who = msg.display_name || msg.user || "someone";
    const what = msg.type === "cheer" ? `${msg.amount} bits` : `${msg.amount} ${msg.currency}`;
    const flash = { color: "#ffd700", duration_ms: 1500, reason: `${who}: ${what}`, test: msg.test };
    client.publish(`${lights}/flash`, JSON.stringify(flash), { qos: 1 });
    console.log(`lights: flash for ${who} (${what})`);
  }
});
client.on("error", (err) => console.log(`lights: ${err.message}`));
