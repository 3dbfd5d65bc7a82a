// The dashboard: status from /api/status, everything live from /ws/events.
"use strict";
(async () => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, children = []) => {
    const node = Object.assign(document.createElement(tag), props);
    for (const child of children) node.append(child);
    return node;
  };
  const badge = (text) => el("span", { className: "badge " + text, textContent: text });
  const FEED_MAX = 300;
  const MINUTES = 60;

  let status = await OW.api("/api/status");
  const root = status.topic_root;

  // Providers, from the retained R/system/providers/* states on the bus.
  const providers = Object.assign({}, status.providers);
  function renderProviders() {
    const rows = Object.entries(providers).map(([name, p]) => {
      const subs = (p.subscriptions || []).map((s) =>
        el("div", {}, [badge(s.status), ` ${s.type}`,
          el("span", { className: "muted", textContent: s.last_event ? ` last event ${new Date(s.last_event).toLocaleTimeString()}` : "" }),
          el("span", { className: "muted", textContent: s.last_error ? ` ${s.last_error}` : "" })]));
      return el("tr", {}, [
        el("td", {}, [el("strong", { textContent: name }), el("br"), badge(p.state || "unknown")]),
        el("td", {}, [el("div", { textContent: p.detail || "" }),
          el("div", { className: "muted", textContent: p.since ? `since ${new Date(p.since).toLocaleString()}` : "" }), ...subs]),
      ]);
    });
    if (rows.length) $("providers").replaceChildren(...rows);
  }

  // Accounts, and the Twitch device-code login started from here. Each account's login box
  // is made once and moved into every re-render, so a code on screen survives a refresh.
  const loginBoxes = {};
  function loginBox(account) {
    if (loginBoxes[account]) return loginBoxes[account];
    const result = el("div", { className: "login-result" });
    result.dataset.testid = `login-${account}`;
    const button = el("button", { type: "button", textContent: "Log in with Twitch" });
    button.dataset.testid = `twitch-login-${account}`;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const started = await OW.api("/api/auth/twitch/start", { method: "POST", body: JSON.stringify({ account }) });
        const code = el("code", { textContent: started.user_code });
        code.dataset.testid = `login-code-${account}`;
        result.replaceChildren("Open ", el("a", { href: started.verification_uri, target: "_blank", rel: "noopener", textContent: started.verification_uri }),
          " and enter the code ", code, ` (valid ${Math.round(started.expires_in / 60)} min). Waiting for Twitch…`);
        await waitForLogin(account, result);
      } catch (e) {
        result.textContent = `Login failed: ${e.message}`;
      } finally {
        button.disabled = false;
      }
    });
    loginBoxes[account] = el("div", {}, [button, result]);
    return loginBoxes[account];
  }
  async function waitForLogin(account, result) {
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      const flow = (await OW.api("/api/auth/twitch")).flows[account] || { state: "idle" };
      if (flow.state === "pending") continue;
      if (flow.state === "done") result.textContent = `Logged in as ${flow.login} (user id ${flow.user_id}).`;
      else result.textContent = `Login failed: ${flow.error || flow.state}`;
      status = await OW.api("/api/status");
      renderAccounts();
      return;
    }
  }
  function renderAccounts() {
    const rows = (status.accounts || []).map((a) => el("tr", {}, [
      el("td", {}, [el("strong", { textContent: `${a.provider} ${a.account}` }), el("br"),
        badge(!a.logged_in ? "missing" : a.problem ? "unauthorized" : "connected")]),
      el("td", {}, [
        el("div", { textContent: a.logged_in ? `${a.login} (user id ${a.user_id})` : "" }),
        el("div", { className: "muted", textContent: a.expires_at ? `${a.expired ? "expired" : "expires"} ${new Date(a.expires_at).toLocaleString()}` : "" }),
        el("div", { className: "muted scopes", textContent: a.scopes.length ? `scopes: ${a.scopes.join(" ")}` : "" }),
        el("div", { textContent: a.problem || "" }),
        loginBox(a.account),
      ]),
    ]));
    $("accounts").replaceChildren(el("table", {}, [el("tbody", {}, rows)]));
  }

  function renderHype(hype) {
    if (!hype) return;
    $("hype-level").textContent = `level ${hype.level}`;
    $("hype-bar").style.width = `${Math.min(100, Math.max(0, (Number(hype.score) || 0)))}%`;
  }
  function renderTotals(totals) {
    if (!totals) return;
    const tips = Object.entries(totals.tips || {}).map(([c, v]) => `${v} ${c}`).join(", ") || "0";
    const cells = [["bits", totals.bits], ["tips", tips], ["subs", totals.subs], ["gifts", totals.gifts],
      ["follows", totals.follows], ["raids", totals.raids]];
    $("totals").replaceChildren(...cells.map(([k, v]) => el("div", {}, [el("div", { className: "muted", textContent: k }), el("strong", { textContent: String(v ?? 0) })])));
  }

  function renderBus() {
    const rows = [["MQTT", status.mqtt.mode + (status.mqtt.bridge ? (status.mqtt.bridge.connected ? " · connected" : " · disconnected") : "")]];
    if (status.mqtt.bridge) rows.push(["MQTT reconnects", status.mqtt.bridge.reconnects]);
    rows.push(["events accepted", status.hub.accepted], ["duplicates dropped", status.hub.duplicates],
      ["WebSocket clients", status.websocket.clients]);
    for (const [name, q] of Object.entries(status.outputs)) rows.push([`${name} queue`, `${q.depth}/${q.capacity}, ${q.dropped} dropped`]);
    $("bus").replaceChildren(...rows.map(([k, v]) => el("tr", {}, [el("td", { className: "muted", textContent: k }), el("td", { textContent: String(v) })])));
    $("version").textContent = `v${status.version}`;
    $("uptime").textContent = `up ${Math.floor(status.uptime_seconds / 60)} min`;
  }

  // Support per minute over the last hour: bits, tips, subs.
  const buckets = new Map();
  const minuteOf = (time) => Math.floor(new Date(time).getTime() / 60000);
  function count(event) {
    if (!event || !event.time) return false;
    const m = minuteOf(event.time);
    const b = buckets.get(m) || { bits: 0, tips: 0, subs: 0 };
    if (event.type === "cheer") b.bits += Number(event.amount) || 0;
    else if (event.type === "tip") b.tips += Number(event.amount) || 0;
    else if (event.type === "sub" || event.type === "resub") b.subs += 1;
    else if (event.type === "gift") b.subs += Number(event.count) || 1;
    else return false;
    buckets.set(m, b);
    return true;
  }
  function series() {
    const now = minuteOf(new Date());
    const x = [], bits = [], tips = [], subs = [];
    for (let m = now - MINUTES + 1; m <= now; m++) {
      const b = buckets.get(m) || { bits: 0, tips: 0, subs: 0 };
      x.push(m * 60); bits.push(b.bits); tips.push(b.tips); subs.push(b.subs);
    }
    return [x, bits, tips, subs];
  }
  const chartBox = $("chart");
  const chart = new uPlot({
    width: chartBox.clientWidth || 320, height: 220,
    axes: [{ stroke: "#9aa3b2" }, { stroke: "#9aa3b2", scale: "y" }, { side: 1, stroke: "#9aa3b2", scale: "n", grid: { show: false } }],
    scales: { x: { time: true } },
    series: [{}, { label: "bits", stroke: "#9b7bff", width: 2, scale: "y" },
      { label: "tips", stroke: "#3ecf8e", width: 2, scale: "y" },
      { label: "subs", stroke: "#f5a524", width: 2, scale: "n" }],
  }, series(), chartBox);
  const redraw = () => chart.setData(series());
  new ResizeObserver(() => chart.setSize({ width: chartBox.clientWidth || 320, height: 220 })).observe(chartBox);
  setInterval(redraw, 30000);
  try {
    const history = await OW.api(`/api/events?limit=5000&topic=${encodeURIComponent(OW.filter(root, "support/#"))}`);
    const start = Date.now() / 60000 - MINUTES;
    history.events.forEach((f) => { if (minuteOf(f.event.time) >= start) count(f.event); });
    redraw();
  } catch (e) {
    $("test-result").textContent = `history unavailable: ${e.message}`;
  }

  // The live feed.
  const feed = $("feed");
  function visible(item) {
    const text = $("feed-filter").value.trim().toLowerCase();
    const kind = item.dataset.kind;
    if (!$("feed-chat").checked && kind === "chat") return false;
    if (!$("feed-system").checked && (kind === "system" || kind === "provider_state")) return false;
    return !text || item.textContent.toLowerCase().includes(text);
  }
  function refilter() { for (const item of feed.children) item.hidden = !visible(item); }
  for (const id of ["feed-filter", "feed-chat", "feed-system"]) $(id).addEventListener("input", refilter);
  const suffixOf = (topic) => topic.split("/").slice(root.split("/").length).join("/");
  const isCommand = (frame) => suffixOf(frame.topic).startsWith("command/");
  function addToFeed(frame) {
    const event = frame.event || {};
    const time = event.time ? new Date(event.time) : new Date();
    const item = el("li", {}, [
      el("span", { className: "muted", textContent: time.toLocaleTimeString() }),
      el("span", { className: "what", textContent: OW.describe(event) + (event.test ? " (test)" : "") }),
      el("span", { className: "topic", textContent: `${frame.topic} · #${frame.seq}` }),
    ]);
    item.dataset.kind = event.type || "";
    item.dataset.seq = frame.seq;
    item.hidden = !visible(item);
    feed.prepend(item);
    while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  }

  // The feed starts with the latest events from the log and goes on live right after them.
  let since = null;
  try {
    const recent = await OW.api(`/api/events?limit=50&topic=${encodeURIComponent(OW.filter(root, "#"))}`);
    recent.events.forEach((frame) => { if (!isCommand(frame)) addToFeed(frame); });
    since = recent.next_since;
  } catch (e) {
    $("test-result").textContent = `history unavailable: ${e.message}`;
  }

  OW.stream([OW.filter(root, "#")], (frame) => {
    const suffix = suffixOf(frame.topic);
    const event = frame.event;
    if (suffix.startsWith("system/providers/") && event && typeof event === "object") {
      providers[event.provider || suffix.slice("system/providers/".length)] = event;
      renderProviders();
    } else if (suffix === "synthetic/hype") renderHype(event);
    else if (suffix === "synthetic/totals") renderTotals(event);
    if (count(event)) redraw();
    if (!isCommand(frame)) addToFeed(frame);
  }, (state) => {
    $("stream-state").textContent = state;
    $("stream-state").className = "badge " + state.split(" ")[0];
  }, since);

  // Test buttons: one per trigger kind, through POST /api/trigger.
  for (const kind of status.trigger_kinds) {
    const button = el("button", { textContent: kind, type: "button" });
    button.dataset.testid = `trigger-${kind}`;
    button.addEventListener("click", async () => {
      const request = { type: kind };
      const user = $("test-user").value.trim();
      const amount = $("test-amount").value.trim();
      const message = $("test-message").value;
      if (user) request.user = user;
      if (amount) request.amount = Number(amount);
      if (message) request.message = message;
      try {
        await OW.api("/api/trigger", { method: "POST", body: JSON.stringify(request) });
        $("test-result").textContent = `${kind} sent`;
      } catch (e) {
        $("test-result").textContent = `${kind} failed: ${e.message}`;
      }
    });
    $("test-buttons").append(button);
  }

  renderProviders(); renderAccounts(); renderHype(status.hype); renderTotals(status.totals); renderBus();
  setInterval(async () => {
    try { status = await OW.api("/api/status"); renderBus(); renderAccounts(); } catch (e) { /* shown by the stream badge */ }
  }, 5000);
  document.body.dataset.ready = "true";
})().catch((e) => {
  document.body.prepend(Object.assign(document.createElement("p"), { className: "placeholder", textContent: `ongwatch: ${e.message}` }));
});
