// A browser-style MQTT client (MQTT.js over WebSocket, as an OBS overlay would use it).
// Usage: node ws_client.js ws://127.0.0.1:PORT/mqtt 'stream/#' [protocolVersion]
// Prints "subscribed" once the broker confirmed, then one "topic payload" line per message.
const mqtt = require("mqtt");
const [url, filter, version] = process.argv.slice(2);
const client = mqtt.connect(url, { protocolVersion: Number(version || 4), reconnectPeriod: 0 });
client.on("connect", () => {
  client.subscribe(filter, { qos: 1 }, (err) => {
    if (err) {
      console.error(`subscribe failed: ${err.message}`);
      process.exit(1);
    }
    console.log("subscribed");
  });
});
client.on("message", (topic, payload) => console.log(`${topic} ${payload.toString()}`));
client.on("error", (err) => {
  console.error(`mqtt error: ${err.message}`);
  process.exit(1);
});
