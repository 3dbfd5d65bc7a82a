// The dashboard's OBS card: connection, program scene, outputs and dropped frames from the
// retained R/obs/* state, and a scene switcher that publishes R/command/obs/scene. Kept apart
// from dashboard.js: the card shows only once OBS has reported ([obs] url is set).
"use strict";
(async () => {
  const $ = (id) => document.getElementById(id);
  const status = await OW.api("/api/status");
  const root = status.topic_root;
  // Commands go to the default channel's tree (a per-channel root needs a concrete topic).
  const commandTopic = (suffix) => root.split("{channel}").join(status.default_channel) + "/" + suffix;
  const suffixOf = (topic) => topic.split("/").slice(root.split("/").length).join("/");
  let scene = null;
  let scenesRequest = null;
  let switchRequest = null;

  function show() { $("obs-card").hidden = false; }
  function render(suffix, event) {
    if (!event || typeof event !== "object") return;
    if (suffix === "system/providers/obs") {
      show();
      $("obs-state").textContent = event.state;
      $("obs-state").className = "badge " + event.state;
      $("obs-detail").textContent = event.detail || "";
      if (event.state === "connected") requestScenes();
    } else if (suffix === "obs/scene") {
      show();
      scene = event.scene;
      $("obs-scene").textContent = event.scene;
      if ($("obs-scenes").value === "") $("obs-scenes").value = event.scene;
    } else if (suffix === "obs/outputs") {
      show();
      const on = [["streaming", event.streaming], ["recording", event.recording && !event.recording_paused],
        ["paused", event.recording_paused], ["replay buffer", event.replay_buffer], ["virtual cam", event.virtualcam]]
        .filter(([, active]) => active).map(([name]) => name);
      $("obs-outputs").textContent = on.length ? on.join(", ") : "nothing";
    } else if (suffix === "obs/stats") {
      $("obs-frames").textContent = `${event.output_skipped_frames} dropped (encoder), ${event.render_skipped_frames} skipped (render), ${Number(event.active_fps).toFixed(1)} fps`;
    } else if (suffix === "command/obs/request/result" && scenesRequest && event.id === scenesRequest) {
      const names = ((event.data && event.data.scenes) || []).map((s) => s.sceneName).reverse();
      $("obs-scenes").replaceChildren(...names.map((name) => Object.assign(document.createElement("option"), { value: name, textContent: name })));
      if (scene) $("obs-scenes").value = scene;
    } else if (suffix === "command/obs/scene/result" && switchRequest && event.id === switchRequest) {
      $("obs-result").textContent = event.ok ? `switched to ${event.scene}` : `OBS said: ${event.error}`;
    }
  }

  const publish = (suffix, payload) =>
    OW.api("/api/publish", { method: "POST", body: JSON.stringify({ topic: commandTopic(suffix), payload }) });
  async function requestScenes() {
    scenesRequest = `dashboard-${Math.random().toString(36).slice(2)}`;
    try { await publish("command/obs/request", { request_type: "GetSceneList", id: scenesRequest }); }
    catch (e) { $("obs-result").textContent = `cannot list scenes: ${e.message}`; }
  }
  $("obs-switch").addEventListener("click", async () => {
    const target = $("obs-scenes").value;
    if (!target) return;
    switchRequest = `dashboard-${Math.random().toString(36).slice(2)}`;
    $("obs-result").textContent = `switching to ${target}…`;
    try { await publish("command/obs/scene", { scene: target, id: switchRequest }); }
    catch (e) { $("obs-result").textContent = `switch failed: ${e.message}`; }
  });

  // The latest state from the event log, then live from right after it.
  let since = null;
  for (const suffix of ["system/providers/obs", "obs/scene", "obs/outputs", "obs/stats"]) {
    const latest = await OW.api(`/api/events?limit=1&topic=${encodeURIComponent(OW.filter(root, suffix))}`);
    latest.events.forEach((frame) => render(suffix, frame.event));
    if (latest.next_since !== null && latest.next_since !== undefined) since = Math.max(since ?? 0, latest.next_since);
  }
  OW.stream([OW.filter(root, "obs/#"), OW.filter(root, "system/providers/obs"), OW.filter(root, "command/obs/+/result")],
    (frame) => render(suffixOf(frame.topic), frame.event), null, since);
  $("obs-card").dataset.ready = "true";
})().catch((e) => {
  const detail = document.getElementById("obs-detail");
  if (detail) detail.textContent = `OBS card: ${e.message}`;
});
