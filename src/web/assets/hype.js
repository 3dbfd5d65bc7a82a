// The hype meter over MQTT (MQTT.js over the broker's WebSocket listener), not /ws/events:
// an example of an overlay that speaks MQTT directly.
// Query string: mqtt=ws://host:9001/mqtt (default: the embedded broker from /api/status)
//               root=stream (default: topic_root from /api/status)
//               max=100 (the score that fills the bar)
//               user=NAME&password=SECRET (a [mqtt.users] login, for a listener that requires one)
"use strict";
(async () => {
  const p = OW.params;
  let url = p.get("mqtt");
  let root = p.get("root");
  if (!url || !root) {
    const status = await OW.api("/api/status");
    root = root || status.topic_root;
    if (!url && status.mqtt.ws_listen) {
      // The listener may be bound to all interfaces: use the host this page came from.
      const port = status.mqtt.ws_listen.split(":").pop();
      url = `ws://${location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname}:${port}${status.mqtt.ws_path}`;
    }
  }
  const state = document.getElementById("state");
  if (!url) { state.textContent = "no MQTT WebSocket: add ?mqtt=ws://host:port/mqtt"; return; }
  const max = Number(p.get("max")) || 100;
  const topic = OW.filter(root, "synthetic/hype");
  const login = p.get("user") ? { username: p.get("user"), password: p.get("password") || "" } : {};
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 2000, clientId: `ongwatch-hype-${Math.random().toString(16).slice(2, 10)}`, ...login });
  client.on("connect", () => {
    client.subscribe(topic, { qos: 1 }, (err) => { state.textContent = err ? `subscribe failed: ${err.message}` : "connected"; });
  });
  client.on("reconnect", () => { state.textContent = "reconnecting"; });
  client.on("error", (err) => { state.textContent = `error: ${err.message}`; });
  // The meter's {level, score}, or whatever a bot that took the topic over publishes: a
  // number, text, any JSON (OW.hypeView). An empty retained message clears the display.
  client.on("message", (_topic, payload) => {
    const text = payload.toString();
    let hype;
    try { hype = JSON.parse(text); } catch (e) { hype = text.trim(); }
    const view = OW.hypeView(hype);
    OW.showHype(document.getElementById("level"), view);
    document.getElementById("bar").style.width = `${Math.min(100, Math.max(0, (view.score ?? 0) / max * 100))}%`;
  });
})().catch((e) => { document.getElementById("state").textContent = e.message; });
