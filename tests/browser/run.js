// Drives Debian's headless Chromium with playwright-core for tests/browser.rs.
// usage: node run.js <dashboard|missing_scope|alerts|alerts_partner|hype|login|overflow|bot_payloads|seed_bot|obs> <base url> <screenshot dir> [expected text...]
// Prints "ready" once the page is connected (the Rust test then makes something happen) and
// "ok" when the page showed it; any failure prints "fail: ..." and exits 1, after a screenshot.
"use strict";
const path = require("path");
const { launch } = require(path.join(__dirname, "chromium.js"));

const [scenario, base, shots, ...expected] = process.argv.slice(2);
// Generous: only a hang reaches it.
const PATIENCE = 60000;

async function main() {
  const browser = await launch();
  const problems = [];
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Every page of the context, so a scenario's second page is watched too.
    context.on("page", (watched) => watch(watched, problems));
    page = await context.newPage();
    await scenarios[scenario](page, context);
    if (problems.length) throw new Error(problems.join("\n"));
    console.log("ok");
  } catch (e) {
    if (page) await page.screenshot({ path: path.join(shots, `${scenario}-failure.png`) }).catch(() => {});
    console.log(`fail: ${e.message}\n${problems.join("\n")}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

function watch(page, problems) {
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure() && r.failure().errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
}

// Which dashboard cards (main > section) are wider or taller inside than their box, or have a
// descendant reaching out of the card or clipped sideways. Content scrolled inside a scrolling
// box (the live feed) counts only if it is clipped sideways.
function cardOverflows() {
  const problems = [];
  for (const card of document.querySelectorAll("main > section")) {
    const name = card.querySelector("h2").textContent;
    if (card.scrollWidth > card.clientWidth + 1 || card.scrollHeight > card.clientHeight + 1) {
      problems.push(`${name}: content ${card.scrollWidth}x${card.scrollHeight}px in a ${card.clientWidth}x${card.clientHeight}px card`);
    }
    const box = card.getBoundingClientRect();
    for (const node of card.querySelectorAll("*")) {
      const style = getComputedStyle(node);
      if (style.display === "none" || node.closest("[hidden]")) continue;
      if (style.overflowX !== "visible" && node.scrollWidth > node.clientWidth + 1) {
        problems.push(`${name}: <${node.tagName.toLowerCase()} class="${node.className}"> clips ${node.scrollWidth - node.clientWidth}px sideways`);
      }
      let scrolled = false;
      for (let up = node.parentElement; up && up !== card; up = up.parentElement) {
        if (["auto", "scroll"].includes(getComputedStyle(up).overflowY)) scrolled = true;
      }
      const r = node.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.left < box.left - 1 || r.right > box.right + 1 || (!scrolled && (r.top < box.top - 1 || r.bottom > box.bottom + 1))) {
        problems.push(`${name}: <${node.tagName.toLowerCase()}> "${node.textContent.slice(0, 40)}" reaches out of the card`);
      }
    }
  }
  return problems;
}

// Whether the hype bar with this id has slid to its width (it has a CSS transition).
function barSettled(id) {
  const bar = document.getElementById(id);
  return bar.style.width && Math.abs(bar.getBoundingClientRect().width - parseFloat(bar.style.width) / 100 * bar.parentElement.clientWidth) < 2;
}

const scenarios = {
  // A subscription Twitch refused for a missing scope: its row in the Providers card names it.
  async missing_scope(page) {
    const [type, scope] = expected;
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: PATIENCE });
    await page.waitForFunction(([type, scope]) => [...document.querySelectorAll("#providers .subscriptions > div")]
      .some((row) => row.textContent.includes(type) && row.querySelector(".missing-scope")
        && row.querySelector(".missing-scope").textContent.includes(`missing scope: ${scope}`)), [type, scope], { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "dashboard-missing-scope.png"), fullPage: true });
  },

  // The seed's paho-mqtt bot (the Rust test runs it and triggers a cheer): the dashboard's hype
  // meter shows the bot's level, names the bot, and the Bots panel lists it online.
  async seed_bot(page) {
    const [client, level] = expected;
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: PATIENCE });
    console.log("ready");
    await page.waitForFunction((level) => document.querySelector("[data-testid=hype-level]").textContent === `level ${level}`, level, { timeout: PATIENCE });
    await page.waitForFunction((client) => document.getElementById("hype-source").textContent === `from bot ${client}`, client, { timeout: PATIENCE });
    await page.waitForFunction((client) => {
      const row = document.querySelector(`[data-testid=bots] [data-bot="${client}"]`);
      return row && /online/.test(row.textContent) && row.textContent.includes("stream/synthetic/hype");
    }, client, { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "dashboard-seed-bot.png"), fullPage: true });
  },

  async dashboard(page, context) {
    const [user, amount] = expected;
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: PATIENCE });
    await page.waitForFunction(() => document.getElementById("stream-state").textContent === "live", null, { timeout: PATIENCE });
    await page.fill("#test-user", user);
    await page.fill("#test-amount", amount);
    await page.click("[data-testid=trigger-cheer]");
    const line = `${user} cheered ${amount} bits`;
    await page.waitForFunction((line) => [...document.querySelectorAll("#feed li .what")].some((n) => n.textContent.includes(line)), line, { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "dashboard.png"), fullPage: true });

    const phone = await context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${base}/`);
    await phone.waitForSelector("body[data-ready=true]", { timeout: PATIENCE });
    // The feed of a newly opened page starts from the event log.
    await phone.waitForFunction((line) => [...document.querySelectorAll("#feed li .what")].some((n) => n.textContent.includes(line)), line, { timeout: PATIENCE });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await phone.screenshot({ path: path.join(shots, "dashboard-phone.png"), fullPage: true });
    if (overflow > 1) throw new Error(`the dashboard is ${overflow}px wider than a phone screen`);
  },

  async alerts(page) {
    const [user, amount] = expected;
    await page.goto(`${base}/overlay/alerts?kinds=cheer,tip&duration=60&min_amount=100`);
    await page.waitForSelector("body[data-stream=live]", { timeout: PATIENCE });
    const transparent = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (transparent !== "rgba(0, 0, 0, 0)") throw new Error(`overlay background is ${transparent}, not transparent`);
    console.log("ready");
    await page.waitForFunction(([user, amount]) => {
      const box = document.getElementById("alert");
      return !box.hidden && document.getElementById("alert-user").textContent === user &&
        document.getElementById("alert-amount").textContent === `${amount} bits`;
    }, [user, amount], { timeout: PATIENCE });
    // Let the entry animation finish so the screenshot shows the alert as viewers see it.
    await page.waitForFunction(() => getComputedStyle(document.getElementById("alert")).opacity === "1", null, { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "overlay-alerts.png"), omitBackground: true });
  },

  // Records every alert the overlay shows; a partner channel's cheer (shared chat) must never
  // show, the own channel's cheer after it must.
  async alerts_partner(page) {
    const [partner, own] = expected;
    await page.goto(`${base}/overlay/alerts?kinds=cheer&duration=1`);
    await page.waitForSelector("body[data-stream=live]", { timeout: PATIENCE });
    await page.evaluate(() => {
      window.shown = [];
      const user = document.getElementById("alert-user");
      new MutationObserver(() => window.shown.push(user.textContent)).observe(user, { childList: true, characterData: true, subtree: true });
    });
    console.log("ready");
    await page.waitForFunction((own) => window.shown.includes(own), own, { timeout: PATIENCE });
    const shown = await page.evaluate(() => window.shown);
    if (shown.includes(partner)) throw new Error(`the partner channel's cheer was alerted: ${JSON.stringify(shown)}`);
  },

  async hype(page) {
    const [level] = expected;
    await page.goto(`${base}/overlay/hype`);
    await page.waitForFunction(() => document.querySelector("[data-testid=mqtt-state]").textContent === "connected", null, { timeout: PATIENCE });
    console.log("ready");
    await page.waitForFunction((level) => document.querySelector("[data-testid=hype-level]").textContent === `level ${level}`, level, { timeout: PATIENCE });
    // The bar slides to the score; screenshot it once it got there.
    await page.waitForFunction(barSettled, "bar", { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "overlay-hype.png"), omitBackground: true });
  },

  // No dashboard card overflows at each viewport width given (a daemon with --demo and a
  // logged-in Twitch, so every card has content, the providers their subscription lists).
  async overflow(page) {
    for (const width of expected.map(Number)) {
      await page.setViewportSize({ width, height: 900 });
      await page.goto(`${base}/`);
      await page.waitForSelector("body[data-ready=true]", { timeout: PATIENCE });
      await page.waitForFunction(() => document.querySelectorAll("#providers .badge.enabled").length > 0 &&
        document.querySelector("#totals [data-channel]") && document.querySelectorAll("#feed li").length > 0, null, { timeout: PATIENCE });
      await page.screenshot({ path: path.join(shots, `dashboard-${width}.png`), fullPage: true });
      const problems = await page.evaluate(cardOverflows);
      if (problems.length) throw new Error(`at ${width}px:\n${problems.join("\n")}`);
    }
  },

  // A bot's payloads on R/synthetic/hype and another topic, published by a real MQTT client
  // (the Rust test): each expected hype text must show on the dashboard's hype meter and on the
  // MQTT.js overlay (prints "shown <text>" for the next one), and a bot line on
  // stream/synthetic/bpm as a readable summary in the live feed, in time order.
  async bot_payloads(page, context) {
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: PATIENCE });
    await page.waitForFunction(() => document.getElementById("stream-state").textContent === "live", null, { timeout: PATIENCE });
    const overlay = await context.newPage();
    await overlay.goto(`${base}/overlay/hype`);
    await overlay.waitForFunction(() => document.querySelector("[data-testid=mqtt-state]").textContent === "connected", null, { timeout: PATIENCE });
    console.log("ready");
    for (const text of expected) {
      for (const shown of [page, overlay]) {
        await shown.waitForFunction((text) => document.querySelector("[data-testid=hype-level]").textContent === text, text, { timeout: PATIENCE });
      }
      console.log(`shown ${text}`);
    }
    // The Bots panel lists the bot (mosquitto_pub: gone again, but the topic stays its own for
    // 60 s) with the topic it owns, and the hype card names it.
    await page.waitForFunction(() => {
      const row = document.querySelector('[data-testid=bots] [data-bot="hype-bot"]');
      return row && row.textContent.includes("stream/synthetic/hype") && row.textContent.includes("published 3");
    }, null, { timeout: PATIENCE });
    await page.waitForFunction(() => document.getElementById("hype-source").textContent === "from bot hype-bot", null, { timeout: PATIENCE });
    const summary = "synthetic/bpm bpm: 128 · source: midi";
    await page.waitForFunction((summary) => [...document.querySelectorAll("#feed li .what")].some((n) => n.textContent === summary), summary, { timeout: PATIENCE });
    await page.waitForFunction(barSettled, "hype-bar", { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "dashboard-bot-payloads.png"), fullPage: true });
    await overlay.waitForFunction(barSettled, "bar", { timeout: PATIENCE });
    await overlay.screenshot({ path: path.join(shots, "overlay-hype-bot.png"), omitBackground: true });
    // System lines (provider states, ongwatch online) are hidden while "system" is unticked.
    const shownSystem = await page.evaluate(() => [...document.querySelectorAll("#feed li")]
      .filter((li) => ["system", "provider_state"].includes(li.dataset.kind) && li.getClientRects().length).map((li) => li.textContent));
    if (shownSystem.length) throw new Error(`system lines shown with "system" unticked: ${shownSystem.join("; ")}`);
    // Payloads no test publishes: every shape a bot may send reads as words and numbers.
    const odd = await page.evaluate(() => [{ level: 3 }, 42, "high", { value: 0.7 }, null, "", true, [1, "a", { b: 2 }],
      { level: null, score: "x" }, { a: { b: { c: { d: { e: 1 } } } } }, { n: NaN }, { list: [] }, {}, 1e21, -0.123456]
      .map((payload) => [JSON.stringify(payload), OW.hypeView(payload).text ?? "–", OW.summarize(payload)]));
    for (const [payload, hype, summary] of odd) {
      if (/undefined|NaN|\{|\[object/.test(hype + summary)) throw new Error(`${payload} shows as ${JSON.stringify(hype)} / ${JSON.stringify(summary)}`);
    }
    const feed = await page.evaluate(() => [...document.querySelectorAll("#feed li")].map((li) => ({
      seq: Number(li.dataset.seq), time: li.dataset.time, text: li.textContent })));
    const text = await page.evaluate(() => document.querySelector("main").innerText);
    for (const bad of ["undefined", "NaN", "{\"", "[object"]) {
      if (text.includes(bad)) throw new Error(`the dashboard shows ${JSON.stringify(bad)}:\n${text}`);
    }
    for (let i = 1; i < feed.length; i++) {
      const [newer, older] = [feed[i - 1], feed[i]];
      if (!(newer.seq > older.seq)) throw new Error(`feed out of seq order: #${newer.seq} above #${older.seq}`);
      // Producers stamp their own time before the hub numbers the record: a millisecond or two
      // of inversion between two producers is real, a line from another minute is not.
      if (newer.time && older.time && Date.parse(newer.time) + 1000 < Date.parse(older.time)) throw new Error(`feed out of time order: ${newer.text} (${newer.time}) above ${older.text} (${older.time})`);
    }
  },

  // The OBS card: connected, scene "Main", then switches to the scene given as argument.
  async obs(page) {
    const [target] = expected;
    await page.goto(`${base}/`);
    await page.waitForSelector("[data-testid=obs-card][data-ready=true]:not([hidden])", { timeout: PATIENCE });
    await page.waitForFunction(() => document.querySelector("[data-testid=obs-state]").textContent === "connected", null, { timeout: PATIENCE });
    await page.waitForFunction(() => document.querySelector("[data-testid=obs-scene]").textContent === "Main", null, { timeout: PATIENCE });
    await page.waitForFunction(() => document.querySelector("[data-testid=obs-frames]").textContent.includes("dropped"), null, { timeout: PATIENCE });
    await page.waitForFunction((target) => [...document.querySelectorAll("[data-testid=obs-scenes] option")].some((o) => o.value === target), target, { timeout: PATIENCE });
    await page.selectOption("[data-testid=obs-scenes]", target);
    await page.click("[data-testid=obs-switch]");
    await page.waitForFunction((target) => document.querySelector("[data-testid=obs-result]").textContent === `switched to ${target}`, target, { timeout: PATIENCE });
    await page.waitForFunction((target) => document.querySelector("[data-testid=obs-scene]").textContent === target, target, { timeout: PATIENCE });
    await page.locator("[data-testid=obs-card]").screenshot({ path: path.join(shots, "dashboard-obs.png") });
  },

  // The Twitch device-code login from the dashboard: prints "code <user code>" once the page
  // shows it (the Rust test approves it at the fake Twitch), then waits for "Logged in as".
  async login(page) {
    const [login] = expected;
    await page.goto(`${base}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: PATIENCE });
    await page.click("[data-testid=twitch-login-broadcaster]");
    const code = await page.waitForSelector("[data-testid=login-code-broadcaster]", { timeout: PATIENCE });
    console.log(`code ${await code.textContent()}`);
    await page.screenshot({ path: path.join(shots, "dashboard-login-code.png"), fullPage: true });
    await page.waitForFunction((login) => document.getElementById("accounts").textContent.includes(`Logged in as ${login}`), login, { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "dashboard-login-done.png"), fullPage: true });
  },
};

if (!scenarios[scenario]) {
  console.log(`fail: unknown scenario ${scenario}`);
  process.exit(2);
}
main();
