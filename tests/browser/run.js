// Drives Debian's headless Chromium with playwright-core for tests/browser.rs.
// usage: node run.js <dashboard|alerts|hype|login|obs> <base url> <screenshot dir> [expected text...]
// Prints "ready" once the page is connected (the Rust test then makes something happen) and
// "ok" when the page showed it; any failure prints "fail: ..." and exits 1, after a screenshot.
"use strict";
const path = require("path");
const { chromium } = require(path.join(__dirname, "..", "node", "node_modules", "playwright-core"));

const [scenario, base, shots, ...expected] = process.argv.slice(2);
// Generous: only a hang reaches it.
const PATIENCE = 60000;

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.ONGWATCH_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // The machine has no network beyond loopback: keep Chromium from trying.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure() && r.failure().errorText}`));
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
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

const scenarios = {
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

  async hype(page) {
    const [level] = expected;
    await page.goto(`${base}/overlay/hype`);
    await page.waitForFunction(() => document.querySelector("[data-testid=mqtt-state]").textContent === "connected", null, { timeout: PATIENCE });
    console.log("ready");
    await page.waitForFunction((level) => document.querySelector("[data-testid=hype-level]").textContent === `level ${level}`, level, { timeout: PATIENCE });
    // The bar slides to the score; screenshot it once it got there.
    await page.waitForFunction(() => {
      const bar = document.getElementById("bar");
      return bar.style.width && Math.abs(bar.getBoundingClientRect().width - parseFloat(bar.style.width) / 100 * bar.parentElement.clientWidth) < 2;
    }, null, { timeout: PATIENCE });
    await page.screenshot({ path: path.join(shots, "overlay-hype.png"), omitBackground: true });
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
