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
  const TIME = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };

  let status = await OW.api("/api/status");
  const root = status.topic_root;

  // Providers, from the retained R/system/providers/* states on the bus.
  const providers = Object.assign({}, status.providers);
  function renderProviders() {
    const rows = Object.entries(providers).map(([name, p]) => {
      const subs = (p.subscriptions || []).map((s) =>
        el("div", {}, [badge(s.status), ` ${s.type}`,
          el("span", { className: "muted", textContent: s.last_event ? ` last event ${new Date(s.last_event).toLocaleTimeString([], TIME)}` : "" }),
          // A subscription Twitch refused for a missing scope names the scope to grant.
          (s.missing_scopes || []).length
            ? el("span", { className: "missing-scope", textContent: ` missing scope: ${s.missing_scopes.join(" ")}` }) : "",
          el("span", { className: "muted", textContent: s.last_error ? ` ${s.last_error}` : "" })]));
      return el("tr", {}, [
        el("td", {}, [el("strong", { textContent: name }), el("br"), badge(p.state || "unknown")]),
        el("td", {}, [el("div", { textContent: p.detail || "" }),
          el("div", { className: "muted", textContent: p.since ? `since ${new Date(p.since).toLocaleString()}` : "" }),
          el("div", { className: "subscriptions" }, subs)]),
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

  // Hype: the built-in meter's {level, score} or whatever a bot that took R/synthetic/hype over
  // publishes there (OW.hypeView), with where it came from underneath.
  let hypeTopic = OW.filter(root, "synthetic/hype").replace("+", status.default_channel);
  let hype = null;
  function renderHype() {
    const view = OW.hypeView(hype);
    OW.showHype($("hype-level"), view);
    $("hype-bar").style.width = `${Math.min(100, Math.max(0, view.score ?? 0))}%`;
    let source = "";
    if (OW.isEvent(hype)) source = `hype meter · ${hype.channel}`;
    else if (view.text !== null) {
      const owner = [...bots.values()].sort((a, b) => (b.state === "online") - (a.state === "online")).find((b) => (b.owns || []).some((f) => matches(f, hypeTopic)));
      source = owner ? `from bot ${owner.client_id}` : "from a bot";
    }
    $("hype-source").textContent = source;
  }

  // Session totals per channel: the demo, triggered test events and each configured channel
  // count separately, so one card per channel rather than whichever published last.
  const totals = new Map();
  function keepTotals(payload) {
    if (!OW.isEvent(payload) || payload.type !== "totals") return false;
    const kept = totals.get(payload.channel || "");
    if (kept && kept.time > payload.time) return false;
    totals.set(payload.channel || "", payload);
    return true;
  }
  function renderTotals() {
    const own = status.default_channel;
    const channels = [...totals.keys()].sort((a, b) => (b === own) - (a === own) || a.localeCompare(b));
    if (!channels.length) {
      $("totals").replaceChildren(el("div", { className: "muted", textContent: "Nothing counted yet." }));
      return;
    }
    $("totals").replaceChildren(...channels.map((channel) => {
      const t = totals.get(channel);
      const tips = Object.entries(t.tips || {}).map(([c, v]) => `${OW.summarize(v)} ${c}`).join(", ") || "0";
      const cells = [["bits", t.bits], ["tips", tips], ["subs", t.subs], ["gifts", t.gifts], ["follows", t.follows], ["raids", t.raids]];
      const box = el("div", { className: "channel-totals" }, [
        el("div", {}, [el("strong", { textContent: channel || "(no channel)" }),
          el("span", { className: "muted", textContent: channel === own ? " · this channel" : "" })]),
        el("div", { className: "muted", textContent: t.session_started_at ? `stream since ${new Date(t.session_started_at).toLocaleString()}` : "no stream session seen; everything counted" }),
        el("div", { className: "totals" }, cells.map(([k, v]) => el("div", {}, [
          el("div", { className: "muted", textContent: k }), el("strong", { textContent: typeof v === "string" ? v : OW.summarize(v ?? 0) })]))),
      ]);
      box.dataset.channel = channel;
      return box;
    }));
  }

  // Bots: every MQTT client on the bus that is not ongwatch's own, from GET /api/bots (which
  // adds each bot's refusals) and live from the retained R/system/bots/<client id> states.
  const bots = new Map();
  const BOTS_OFFLINE_SHOWN = 10;
  let botsApi = true;
  async function loadBots() {
    if (!botsApi) return;
    try {
      const answer = await OW.api("/api/bots");
      bots.clear();
      for (const bot of answer.bots || []) if (bot && typeof bot.client_id === "string") bots.set(bot.client_id, bot);
    } catch (e) {
      // A daemon without bot presence has no such endpoint: the panel just stays empty.
      if (e.status === 404) botsApi = false;
      return;
    }
    renderBots();
  }
  function keepBot(id, payload) {
    if (payload && typeof payload === "object" && !Array.isArray(payload)) bots.set(id, Object.assign({}, bots.get(id), payload, { client_id: id }));
    else bots.delete(id); // an empty retained message clears the state
  }
  const shortTime = (time) => (time ? new Date(time).toLocaleTimeString([], TIME) : "");
  function renderBots() {
    const all = [...bots.values()].sort((a, b) => (b.state === "online") - (a.state === "online") ||
      String(b.since || "").localeCompare(String(a.since || "")) || a.client_id.localeCompare(b.client_id));
    const online = all.filter((b) => b.state === "online");
    const offline = all.filter((b) => b.state !== "online");
    const shown = online.concat(offline.slice(0, BOTS_OFFLINE_SHOWN));
    const rows = shown.map((b) => {
      const row = el("tr", {}, [
        el("td", {}, [el("strong", { textContent: b.client_id }), el("br"), badge(b.state === "online" ? "online" : "offline")]),
        el("td", {}, [
          el("div", { textContent: b.login ? `login ${b.login}` : "no login" }),
          el("div", { textContent: (b.owns || []).length ? `owns ${b.owns.join(", ")}` : "owns no topic" }),
          el("div", { className: "muted", textContent: `published ${OW.summarize(b.published ?? 0)} · refused ${OW.summarize(b.refused ?? 0)}` +
            (b.last_publish ? ` · last ${shortTime(b.last_publish)}` : "") }),
          el("div", { className: "muted", textContent: b.since ? `${b.state === "online" ? "online" : "offline"} since ${new Date(b.since).toLocaleString()}` : "" }),
          ...(b.refusals || []).map((r) => el("div", { className: "refusal", textContent: `refused ${r.topic} ×${OW.summarize(r.count ?? 1)}: ${r.rule}` })),
        ]),
      ]);
      row.dataset.bot = b.client_id;
      return row;
    });
    if (offline.length > BOTS_OFFLINE_SHOWN) rows.push(el("tr", {}, [el("td", { className: "muted", colSpan: 2, textContent: `and ${offline.length - BOTS_OFFLINE_SHOWN} more offline` })]));
    if (!rows.length) rows.push(el("tr", {}, [el("td", { className: "muted", textContent: "No bots yet." })]));
    $("bots").replaceChildren(...rows);
    renderHype(); // its "from bot <client id>" comes from the owned topics
  }

  // MQTT filter matching, for the topic filters bots own.
  function matches(filter, topic) {
    const f = filter.split("/"), t = topic.split("/");
    for (let i = 0; i < f.length; i++) {
      if (f[i] === "#") return true;
      if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
    }
    return f.length === t.length;
  }

  function renderBus() {
    const rows = [["MQTT", status.mqtt.mode + (status.mqtt.bridge ? (status.mqtt.bridge.connected ? " · connected" : " · disconnected") : "")]];
    if (status.mqtt.bridge) rows.push(["MQTT reconnects", status.mqtt.bridge.reconnects]);
    rows.push(["events accepted", status.hub.accepted], ["duplicates dropped", status.hub.duplicates],
      ["WebSocket clients", status.websocket.clients]);
    for (const [name, q] of Object.entries(status.outputs)) rows.push([`${name} queue`, `${q.depth}/${q.capacity}, ${q.dropped} dropped`]);
    // Supervised tasks that ended early: restarted, or stopping the daemon (docs/ARCHITECTURE.md).
    const troubled = new Set();
    for (const [name, t] of Object.entries(status.tasks || {})) {
      if (!t.restarts && t.state === "running") continue;
      rows.push([`task ${name}`, `${t.state}, restarted ${t.restarts}×${t.last_failure ? " · " + t.last_failure : ""}`]);
      troubled.add(rows.length - 1);
    }
    $("bus").replaceChildren(...rows.map(([k, v], i) => el("tr", { className: troubled.has(i) ? "task-failed" : "" }, [el("td", { className: "muted", textContent: k }), el("td", { textContent: String(v) })])));
    $("version").textContent = `v${status.version}`;
    $("uptime").textContent = `up ${Math.floor(status.uptime_seconds / 60)} min`;
  }

  // Support per minute over the last hour: bits, tips, subs.
  const buckets = new Map();
  const minuteOf = (time) => Math.floor(new Date(time).getTime() / 60000);
  function count(event) {
    if (!OW.isEvent(event)) return false;
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
    history.events.forEach((f) => { if (OW.isEvent(f.event) && minuteOf(f.event.time) >= start) count(f.event); });
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

  // Feed lines are in bus order (seq), newest on top. An event shows its own time; a bot's
  // payload carries none, so a live one shows when it arrived (never earlier than the line
  // before it), and one from the log the time of the line before it, marked "≈".
  let lastTime = null;
  function lineOf(frame, live) {
    const event = frame.event;
    const suffix = suffixOf(frame.topic);
    if (OW.isEvent(event)) {
      const time = new Date(event.time);
      // Shared chat: a partner channel's event is marked, so it is not taken for ours.
      const partner = event.source_channel || event.source_channel_id;
      const what = [OW.describe(event) + (event.test ? " (test)" : "")];
      if (partner) what.unshift(el("span", { className: "partner", title: "from a partner channel of a shared chat session; not counted here", textContent: `[${event.source_channel || "partner " + event.source_channel_id}] ` }));
      return { kind: event.type, time: isNaN(time) ? lastTime : time, approx: isNaN(time), partner: !!partner, what };
    }
    const time = live ? new Date(Math.max(Date.now(), lastTime ? lastTime.getTime() : 0)) : lastTime;
    const line = { kind: suffix.startsWith("system/") ? "system" : "bot", time, approx: !live };
    if (suffix.startsWith("system/bots/") && event && typeof event === "object") {
      const id = suffix.slice("system/bots/".length);
      line.what = [`bot ${id} ${event.state || "changed"}${event.login ? ` (login ${event.login})` : ""}`];
    } else {
      line.what = [el("span", { className: "short", textContent: suffix || frame.topic }), " ", OW.summarize(event)];
    }
    return line;
  }
  function addToFeed(frame, live) {
    if ([...feed.children].some((item) => Number(item.dataset.seq) === frame.seq)) return;
    const line = lineOf(frame, live);
    if (line.time && (!lastTime || line.time > lastTime)) lastTime = line.time;
    const when = el("span", { className: "muted when", textContent: line.time ? (line.approx ? "≈" : "") + line.time.toLocaleTimeString([], TIME) : "" });
    if (line.approx) when.title = "bot payloads carry no time: received after the line below";
    const item = el("li", {}, [
      when,
      el("span", { className: "what" }, line.what),
      el("span", { className: "topic", textContent: `${frame.topic} · #${frame.seq}` }),
    ]);
    item.dataset.kind = line.kind;
    if (line.partner) item.dataset.partner = "1";
    item.dataset.seq = frame.seq;
    if (line.time) item.dataset.time = line.time.toISOString();
    item.hidden = !visible(item);
    const after = [...feed.children].find((other) => Number(other.dataset.seq) < frame.seq);
    feed.insertBefore(item, after || null);
    while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  }

  // The feed starts with the latest events from the log and goes on live right after them.
  // Totals of every channel start from the log too (the status holds only the latest one).
  let since = null;
  try {
    const recent = await OW.api(`/api/events?limit=50&topic=${encodeURIComponent(OW.filter(root, "#"))}`);
    recent.events.forEach((frame) => { if (!isCommand(frame)) addToFeed(frame, false); });
    since = recent.next_since;
    const sessions = await OW.api(`/api/events?limit=500&topic=${encodeURIComponent(OW.filter(root, "synthetic/totals"))}`);
    sessions.events.forEach((frame) => keepTotals(frame.event));
  } catch (e) {
    $("test-result").textContent = `history unavailable: ${e.message}`;
  }

  keepTotals(status.totals);
  await loadBots();
  hype = status.hype;
  renderProviders(); renderAccounts(); renderHype(); renderTotals(); renderBots(); renderBus();

  OW.stream([OW.filter(root, "#")], (frame) => {
    const suffix = suffixOf(frame.topic);
    const event = frame.event;
    if (suffix.startsWith("system/providers/") && event && typeof event === "object") {
      providers[event.provider || suffix.slice("system/providers/".length)] = event;
      renderProviders();
    } else if (suffix.startsWith("system/bots/")) {
      keepBot(suffix.slice("system/bots/".length), event);
      renderBots();
    } else if (suffix === "synthetic/hype") {
      hypeTopic = frame.topic;
      hype = event;
      renderHype();
    } else if (suffix === "synthetic/totals" && keepTotals(event)) renderTotals();
    if (count(event)) redraw();
    if (!isCommand(frame)) addToFeed(frame, true);
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

  setInterval(async () => {
    try { status = await OW.api("/api/status"); renderBus(); renderAccounts(); } catch (e) { /* shown by the stream badge */ }
    await loadBots();
  }, 5000);
  document.body.dataset.ready = "true";
})().catch((e) => {
  document.body.prepend(Object.assign(document.createElement("p"), { className: "placeholder", textContent: `ongwatch: ${e.message}` }));
});
