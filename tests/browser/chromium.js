// Debian's headless Chromium through playwright-core, launched one way for every browser test
// (run.js for tests/browser.rs, examples.js for tests/examples.rs).
"use strict";
const path = require("path");
const { chromium } = require(path.join(__dirname, "..", "node", "node_modules", "playwright-core"));

function launch() {
  return chromium.launch({
    executablePath: process.env.ONGWATCH_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // The machine has no network beyond loopback: keep Chromium from trying.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

module.exports = { launch };
