// Drives `forge playground --demo` in Debian's Chromium (headless, through playwright-core): the page
// says demo, /forge health, the email DLQ alert arrives in #alerts, @ops requests `dlq clear email`,
// @lead approves, and the alert card resolves.
// Usage: node demo_browser.js <playground URL> <screenshot dir>. Prints one JSON line; exit 1 on failure.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.FORGE_CHROMIUM || "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync"];
const WAIT = 30000;
const ALERT_WAIT = 120000;

const started = Date.now();
const timings = {};

async function shoot(page, dir, name, shots) {
  const file = path.join(dir, name);
  await page.screenshot({ path: file });
  shots.push(file);
  timings[name] = Date.now() - started;
}

async function slash(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

async function become(page, user, grant) {
  await page.selectOption("#who", user);
  await page.waitForFunction((g) => document.querySelector("#grant").textContent.includes(g), grant);
}

async function scenario(page, url, dir, shots) {
  await page.goto(url);
  await page.waitForSelector("#who option[value=U0OPS]", { state: "attached", timeout: WAIT });
  await page.locator("#demo-bar", { hasText: "DEMO" }).waitFor({ timeout: WAIT });
  await page.locator("#tour", { hasText: "Health" }).waitFor({ timeout: WAIT });
  await become(page, "U0OPS", "operator");
  await page.click('[data-channel="C0OPS"]');

  await page.click("#tour-try");
  await page.press("#text", "Enter");
  const health = page.locator(".msg", { hasText: /health — (ok|warning|critical)/ }).first();
  await health.waitFor({ timeout: WAIT });
  // the demo's ClientForge API answers readiness; Elasticsearch is left out, and health says how to start it
  await health.locator("text=elasticsearch degraded (not part of the demo)").first().waitFor({ timeout: WAIT });
  await health.locator("text=docker compose up elasticsearch").first().waitFor({ timeout: WAIT });
  await shoot(page, dir, "demo-1-health.png", shots);
  await page.click("#tour-next");

  await page.click('[data-channel="C0ALERTS"]');
  const alert = page.locator(".msg", { hasText: "FIRING: QueueDLQJobsPresent" }).first();
  await alert.waitFor({ timeout: ALERT_WAIT });
  await alert.getByRole("button", { name: "dlq list email" }).waitFor({ timeout: WAIT });
  await shoot(page, dir, "demo-2-alert.png", shots);
  await page.click("#tour-next");

  await page.click('[data-channel="C0OPS"]');
  await slash(page, "/forge dlq clear email");
  await page.locator("#modal", { hasText: "Would remove" }).waitFor({ timeout: WAIT });
  await page.fill("#modal input", "email");
  await page.click("#modal-submit");
  await page.locator("#modal").waitFor({ state: "hidden", timeout: WAIT });
  const card = page.locator(".msg", { hasText: "Approval needed" }).first();
  await card.locator("text=Waiting for an approver").waitFor({ timeout: WAIT });
  await shoot(page, dir, "demo-3-requested.png", shots);
  await page.click("#tour-next");

  await become(page, "U0LEAD", "approver");
  await card.getByRole("button", { name: "Approve" }).click();
  await card.locator("text=done").waitFor({ timeout: WAIT });
  await shoot(page, dir, "demo-4-approved.png", shots);
  await page.click("#tour-next");

  await page.click('[data-channel="C0ALERTS"]');
  const resolved = page.locator(".msg", { hasText: "RESOLVED: QueueDLQJobsPresent" }).first();
  await resolved.waitFor({ timeout: WAIT });
  await page.locator("#tour", { hasText: "5/6" }).waitFor({ timeout: WAIT });
  await shoot(page, dir, "demo-5-resolved.png", shots);
  return (await resolved.innerText()).replace(/\s+/g, " ");
}

async function main() {
  const [url, dir] = process.argv.slice(2);
  fs.mkdirSync(dir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "forge-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 800 } });
  const page = context.pages()[0] || await context.newPage();
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  const shots = [];
  try {
    const card = await scenario(page, url, dir, shots);
    console.log(JSON.stringify({ ok: true, card, shots, consoleErrors, timings }));
  } catch (error) {
    await shoot(page, dir, "failure.png", shots).catch(() => {});
    console.log(JSON.stringify({ ok: false, error: String(error), shots, consoleErrors, timings }));
    process.exitCode = 1;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main();
