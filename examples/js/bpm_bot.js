// A bot that owns its topic by configuration: it logs in as "bpm", and ongwatch.toml's
// [bots.bpm] publish = ["stream/synthetic/bpm"] makes it the only client that may publish there.
// It publishes a (simulated) heart rate, retained, once a second.
//
// usage: node bpm_bot.js [mqtt://host:port]
//   ONGWATCH_MQTT       broker URL (default mqtt://127.0.0.1:1883)
//   ONGWATCH_BOT_USER   login (default "bpm"), ONGWATCH_BOT_PASSWORD its password from
//                       credentials.toml [mqtt.users] (default: the examples' one)
"use strict";
const mqtt = require("mqtt");

const url = process.argv[2] || process.env.ONGWATCH_MQTT || "mqtt://127.0.0.1:1883";
const root = process.env.ONGWATCH_ROOT || "stream"; // [bus] topic_root
const topic = `${root}/synthetic/bpm`;
const intervalMs = Number(process.env.BPM_INTERVAL_MS || 1000);

const client = mqtt.connect(url, {
  protocolVersion: 5, // MQTT 5 tells a publisher when the broker refuses; 3.1.1 drops silently
  clientId: "bpm-bot",
  username: process.env.ONGWATCH_BOT_USER || "bpm",
  password: process.env.ONGWATCH_BOT_PASSWORD || "example-bpm-password",
  reconnectPeriod: 1000, // MQTT.js reconnects by itself
});

let beat = 0;
function publish() {
  // A slow wave between 60 and 140, as a heart rate monitor or a music tempo would send it.
  const bpm = Math.round(100 + 40 * Math.sin(beat++ / 5));
  // Retained: the lights bot, a dashboard or an overlay that starts later gets the current bpm.
  client.publish(topic, JSON.stringify({ bpm }), { qos: 1, retain: true }, (err) => {
    if (err) {
      // 135 = Not authorized: the login is not [bots.bpm], or another bot owns the topic.
      console.log(`bpm bot: refused (${err.code ?? err.message}); check [bots.bpm] and [mqtt.users] bpm`);
    } else {
      console.log(`bpm bot: published ${bpm} on ${topic}`);
    }
  });
}

let timer;
client.on("connect", () => {
  console.log(`bpm bot: connected to ${url} as ${client.options.username}`);
  clearInterval(timer);
  publish();
  timer = setInterval(publish, intervalMs);
});
client.on("close", () => clearInterval(timer));
// A wrong password ends in "Bad user name or password" here, and MQTT.js tries again.
client.on("error", (err) => console.log(`bpm bot: ${err.message}`));
