// Opens one of the browser examples (examples/browser) in Debian's headless Chromium with
// playwright-core, for tests/examples.rs.
// usage: node examples.js <url> <expected text>...
// Prints "websocket <url>" for every WebSocket the page opens, "ready" once the page says it is
// connected (body[data-connected=true]), then "shown <text>" as each expected text appears on the
// page, in order, and finally "text <the page's text>" and "ok". Failures print "fail: ..." and
// exit 1.
"use strict";
const path = require("path");
const { launch } = require(path.join(__dirname, "chromium.js"));

const [url, ...expected] = process.argv.slice(2);
const PATIENCE = 120000; // only a hang reaches it

async function main() {
  const browser = await launch();
  const problems = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("websocket", (ws) => console.log(`websocket ${ws.url()}`));
    await page.goto(url);
    await page.waitForSelector("body[data-connected=true]", { state: "attached", timeout: PATIENCE });
    console.log("ready");
    for (const text of expected) {
      await page.waitForFunction((text) => document.body.innerText.includes(text), text, { timeout: PATIENCE });
      console.log(`shown ${text}`);
    }
    const text = await page.evaluate(() => document.body.innerText);
    console.log(`text ${JSON.stringify(text)}`);
    if (problems.length) throw new Error(problems.join("\n"));
    console.log("ok");
  } catch (e) {
    console.log(`fail: ${e.message}\n${problems.join("\n")}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
main();
