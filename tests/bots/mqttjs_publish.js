// One QoS 1 publish with MQTT.js over MQTT 5; prints "ok" or "refused <reason code>".
// Usage: node mqttjs_publish.js mqtt://127.0.0.1:PORT TOPIC PAYLOAD
"use strict";
const path = require("path");
const mqtt = require(path.join(__dirname, "..", "node", "node_modules", "mqtt"));
const [url, topic, payload] = process.argv.slice(2);
const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0 });
client.on("connect", () => {
  client.publish(topic, payload, { qos: 1 }, (err, packet) => {
    const code = err ? (err.code ?? (packet && packet.reasonCode)) : (packet && packet.reasonCode) || 0;
    console.log(code >= 0x80 ? `refused ${code}` : "ok");
    client.end();
  });
});
client.on("error", (err) => { console.log(`error ${err.message}`); process.exit(1); });
