// OBS alert box: shows one alert at a time from a queue.
// Query string: kinds=cheer,tip,sub,gift,raid,follow  duration=5 (seconds)
//               min_amount=0 (bits for cheers, money for tips)  test=1 (0 hides test events)
"use strict";
(async () => {
  const TOPICS = { cheer: "support/cheers", tip: "support/tips", sub: "support/subs",
    gift: "support/gifts", raid: "community/raids", follow: "community/follows" };
  const p = OW.params;
  const kinds = (p.get("kinds") || Object.keys(TOPICS).join(",")).split(",").map((k) => k.trim()).filter((k) => TOPICS[k]);
  const duration = Math.max(1, Number(p.get("duration")) || 5) * 1000;
  const minAmount = Number(p.get("min_amount")) || 0;
  const showTests = p.get("test") !== "0";
  const root = p.get("root") || (await OW.api("/api/status")).topic_root;

  const queue = [];
  let busy = false;
  const box = document.getElementById("alert");
  const set = (id, text) => { document.getElementById(id).textContent = text; };

  function wanted(event) {
    if (!OW.isEvent(event)) return false;
    const kind = event.type === "resub" ? "sub" : event.type;
    if (!kinds.includes(kind)) return false;
    if (event.test && !showTests) return false;
    // Support given in a partner channel of a Twitch shared chat session is not ours.
    if (event.source_channel || event.source_channel_id) return false;
    if ((kind === "cheer" || kind === "tip") && Number(event.amount) < minAmount) return false;
    return true;
  }

  function amountOf(e) {
    switch (e.type) {
      case "cheer": return `${e.amount} bits`;
      case "tip": return `${e.amount} ${e.currency || ""}`.trim();
      case "sub": return e.tier === "prime" ? "Prime" : `Tier ${e.tier}`;
      case "resub": return `${e.months} months`;
      case "gift": return `${e.count} gift sub${e.count === 1 ? "" : "s"}`;
      case "raid": return `${e.viewers} raiders`;
      default: return "";
    }
  }
  const TITLES = { cheer: "cheer", tip: "tip", sub: "new sub", resub: "resub", gift: "gift subs", raid: "raid", follow: "new follower" };

  function next() {
    const event = queue.shift();
    if (!event) { busy = false; return; }
    busy = true;
    set("alert-kind", TITLES[event.type] || event.type);
    set("alert-user", event.type === "gift" && event.anonymous ? "Anonymous" : (event.display_name || event.user || ""));
    set("alert-amount", amountOf(event));
    set("alert-message", event.message || "");
    box.hidden = false;
    box.className = "show";
    box.dataset.eventId = event.id || "";
    setTimeout(() => {
      box.className = "hide";
      setTimeout(() => { box.hidden = true; box.className = ""; next(); }, 450);
    }, duration);
  }

  OW.stream(kinds.map((k) => OW.filter(root, TOPICS[k])), (frame) => {
    if (!wanted(frame.event)) return;
    queue.push(frame.event);
    if (!busy) next();
  }, (state) => { document.body.dataset.stream = state; });
})().catch((e) => { document.body.dataset.error = e.message; });
