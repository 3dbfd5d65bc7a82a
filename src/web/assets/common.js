// Shared by the dashboard and the overlays: API calls, the /ws/events stream with resume,
// and one-line descriptions of events.
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
    if (!response.ok) throw new Error(body.error || response.statusText);
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
      case "hype": return `hype level ${event.level}`;
      case "provider_state": return `${event.provider}: ${event.state}`;
      case "system": return `ongwatch ${event.state}`;
      default:
        if (event.type) return `${event.type}${event.user ? " " + who : ""}`;
        return JSON.stringify(event).slice(0, 160);
    }
  }

  return { params, token, api, filter, stream, describe };
})();
