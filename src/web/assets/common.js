// Shared by the dashboard and the overlays: API calls, the /ws/events stream with resume,
// one-line descriptions of events, and readable summaries of what bots publish.
"use strict";
const OW = (() => {
  const params = new URLSearchParams(location.search);
  // A page opened with ?token=... (from another machine) passes it on to every request.
  const token = params.get("token");

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.Authorization = "Bearer " + token;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, Object.assign({}, options, { headers }));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { status: response.status });
    return body;
  }

  // Turns the topic_root template into a filter prefix ("{channel}" matches any channel).
  function filter(root, suffix) {
    return root.split("{channel}").join("+") + "/" + suffix;
  }

  // Keeps a /ws/events connection open, starting after `since` when given; after a drop it
  // resumes with since=<last seq seen>, so nothing is missed or shown twice.
  function stream(topics, onEvent, onState, since = null) {
    let lastSeq = since;
    let delay = 500;
    function connect() {
      const query = new URLSearchParams();
      query.set("topics", topics.join(","));
      if (lastSeq !== null) query.set("since", String(lastSeq));
      if (token) query.set("token", token);
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const socket = new WebSocket(`${scheme}://${location.host}/ws/events?${query}`);
      socket.onopen = () => { delay = 500; onState && onState("live"); };
      socket.onmessage = (message) => {
        let frame;
        try { frame = JSON.parse(message.data); } catch (e) { return; }
        if (typeof frame.seq !== "number") return;
        lastSeq = frame.seq;
        onEvent(frame);
      };
      socket.onclose = (close) => {
        onState && onState(close.code === 1008 ? "too slow, reconnecting" : "reconnecting");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    connect();
  }

  const money = (amount, currency) =>
    currency === "bits" ? `${amount} bits` : `${amount}${currency ? " " + currency : ""}`;

  // One line a person reads, e.g. "alinsa_vix cheered 2490 bits".
  function describe(event) {
    const who = event.display_name || event.user || "someone";
    switch (event.type) {
      case "cheer": return `${who} cheered ${money(event.amount, "bits")}`;
      case "tip": return `${who} tipped ${money(event.amount, event.currency)}`;
      case "sub": return `${who} subscribed (tier ${event.tier})`;
      case "resub": return `${who} resubscribed for ${event.months} months (tier ${event.tier})`;
      case "gift": return `${event.anonymous ? "An anonymous gifter" : who} gifted ${event.count} sub${event.count === 1 ? "" : "s"}`;
      case "follow": return `${who} followed`;
      case "raid": return `${who} raided with ${event.viewers} viewers`;
      case "redemption": return `${who} redeemed ${event.reward_title || event.title || "a reward"}`;
      case "chat": return `${who}: ${event.message || ""}`;
      case "online": return "stream went live";
      case "offline": return "stream went offline";
      case "hypetrain": return `hype train ${event.phase || ""} level ${event.level ?? ""}`;
      case "poll": return `poll ${event.phase || ""}: ${event.title || ""}`;
      case "prediction": return `prediction ${event.phase || ""}: ${event.title || ""}`;
      case "goal": return `${event.goal_type || ""} goal ${event.phase || ""}: ${plain(event.current_amount, 1)} of ${plain(event.target_amount, 1)}`;
      case "charity_campaign": return `charity campaign ${event.phase || ""}: ${money(event.current_amount, event.currency)} of ${money(event.target_amount, event.currency)} for ${event.charity_name || "a charity"}`;
      case "sub_end": return `${who}'s subscription ended`;
      case "moderation": return `${event.action || "moderation"}${event.user ? " " + who : ""}`;
      case "hype": return `hype level ${event.level}`;
      case "totals": {
        const tips = Object.entries(event.tips || {}).map(([c, v]) => `${plain(v, 1)} ${c}`).join(", ") || "no tips";
        return `totals ${event.channel}: ${plain(event.bits ?? 0, 1)} bits, ${tips}, ${plain(event.subs ?? 0, 1)} subs, ` +
          `${plain(event.gifts ?? 0, 1)} gifts, ${plain(event.follows ?? 0, 1)} follows, ${plain(event.raids ?? 0, 1)} raids`;
      }
      case "provider_state": return `${event.provider}: ${event.state}`;
      case "system": return `ongwatch ${event.state}`;
      default:
        if (event.type) return `${event.type}${event.user ? " " + who : ""}`;
        return summarize(event);
    }
  }

  // An event in the contract's shape (section 4), as ongwatch publishes them. Anything else on
  // the bus is a bot's payload, which may be any JSON value or plain text.
  function isEvent(payload) {
    return payload !== null && typeof payload === "object" && !Array.isArray(payload) &&
      typeof payload.type === "string" && typeof payload.time === "string" && "v" in payload;
  }

  // Numbers stay numbers: no quotes, no exponent for everyday sizes, at most 3 decimals.
  const numberFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3, useGrouping: false });
  const SUMMARY_MAX = 160;
  const NEST_MAX = 4;
  const clip = (text, max) => (text.length > max ? text.slice(0, max - 1) + "…" : text);

  // One line for any payload: a number or text as it is, an object as "key: value" pairs
  // (nested keys joined with dots), never raw JSON, "undefined" or "NaN".
  function summarize(payload, max = SUMMARY_MAX) {
    return clip(plain(payload, 0), max);
  }
  function plain(value, depth) {
    if (value === null || value === undefined) return "none";
    if (typeof value === "number") return Number.isFinite(value) ? numberFormat.format(value) : "none";
    if (typeof value === "string") return value.trim() === "" ? "(empty)" : value.replace(/\s+/g, " ");
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (Array.isArray(value)) return value.length ? value.map((v) => plain(v, depth + 1)).join(", ") : "(none)";
    if (typeof value === "object") {
      if (depth > NEST_MAX) return "…";
      const pairs = flatten(value, "", depth);
      return pairs.length ? pairs.map(([k, v]) => `${k}: ${v}`).join(" · ") : "(empty)";
    }
    return String(value);
  }
  function flatten(object, prefix, depth) {
    const pairs = [];
    for (const [key, value] of Object.entries(object)) {
      const name = prefix + key;
      if (value && typeof value === "object" && !Array.isArray(value) && depth < NEST_MAX) pairs.push(...flatten(value, name + ".", depth + 1));
      else pairs.push([name, plain(value, depth + 1)]);
    }
    return pairs;
  }
  const finite = (v) => (typeof v === "number" || (typeof v === "string" && v.trim() !== "")) && Number.isFinite(Number(v)) ? Number(v) : null;

  // What a hype display shows for whatever is on R/synthetic/hype: the meter's {level, score},
  // or a bot's value (a number, text, or any object). `text` is null when there is nothing to
  // show (no payload, or a cleared retained message); `score` (a number or null) fills the bar.
  function hypeView(payload) {
    if (payload === null || payload === undefined || payload === "") return { text: null, score: null };
    const number = typeof payload === "string" ? finite(payload) : null;
    if (typeof payload === "number" || number !== null) {
      const n = number ?? payload;
      return Number.isFinite(n) ? { text: numberFormat.format(n), score: n } : { text: null, score: null };
    }
    if (typeof payload === "object" && !Array.isArray(payload)) {
      const score = finite(payload.score);
      if (payload.level !== undefined && payload.level !== null) return { text: `level ${plain(payload.level, 1)}`, score };
      if (score !== null) return { text: `score ${numberFormat.format(score)}`, score };
    }
    return { text: summarize(payload, 60), score: null };
  }

  // Long texts (a bot's object summarized) get a smaller font than a level or a number.
  const LONG_HYPE = 12;
  function showHype(node, view) {
    node.textContent = view.text ?? "–";
    node.classList.toggle("long", (view.text || "").length > LONG_HYPE);
  }

  return { params, token, api, filter, stream, describe, isEvent, summarize, hypeView, showHype };
})();
