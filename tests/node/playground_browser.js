// Drives the forge playground in Debian's Chromium (headless, through playwright-core):
// /forge help, /forge health, /forge dlq list email --limit 2 (a table block; Next shows page 2 in place),
// /forge dlq clear email confirmed in the modal, approved by another user;
// then an incident's report, whose timeline PNG must show as a picture on the page;
// the Declare incident shortcut with its component picker, and the Home tab.
// Usage: node playground_browser.js <playground URL> <screenshot dir>. Prints one JSON line; exit 1 on failure.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.FORGE_CHROMIUM || "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync"];
const WAIT = 20000;

const started = Date.now();
const timings = {}; // milliseconds since start, per screenshot

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

async function scenario(page, url, dir, shots) {
  await page.goto(url);
  await page.waitForSelector("#who option[value=U0OPS]", { state: "attached", timeout: WAIT });
  await page.selectOption("#who", "U0OPS");
  await page.click('[data-channel="C0OPS"]');
  await page.waitForFunction(() => document.querySelector("#grant").textContent.includes("operator"));

  await slash(page, "/forge help");
  await page.locator(".msg", { hasText: "help — ok" }).first().waitFor({ timeout: WAIT });
  await shoot(page, dir, "01-help.png", shots);

  await slash(page, "/forge health");
  await page.locator(".msg", { hasText: /health — (ok|warning|critical)/ }).first().waitFor({ timeout: WAIT });
  await shoot(page, dir, "02-health.png", shots);

  await slash(page, "/forge dlq list email --limit 2");
  const listing = page.locator(".msg", { hasText: "dlq list email" }).first();
  await listing.locator("table.table").waitFor({ timeout: WAIT });
  const cells = (rows) => rows.map((row) => Array.from(row.children, (cell) => `${cell.tagName}:${cell.textContent}`));
  const tableRows = await listing.locator("table.table tr").evaluateAll(cells);
  await shoot(page, dir, "02-table.png", shots);
  await listing.getByRole("button", { name: "Next ▶" }).click();
  await listing.locator("text=page 2 of 2 · 2 per page").waitFor({ timeout: WAIT });
  const nextRows = await listing.locator("table.table tr").evaluateAll(cells);
  const listings = await page.locator(".msg", { hasText: "dlq list email" }).count();

  await slash(page, "/forge dlq clear email");
  await page.locator("#modal", { hasText: "Would remove" }).waitFor({ timeout: WAIT });
  await page.fill("#modal input", "email");
  await shoot(page, dir, "03-confirm.png", shots);
  await page.click("#modal-submit");
  await page.locator("#modal").waitFor({ state: "hidden", timeout: WAIT });
  const card = page.locator(".msg", { hasText: "Approval needed" }).first();
  await card.locator("text=Waiting for an approver").waitFor({ timeout: WAIT });
  await shoot(page, dir, "04-requested.png", shots);

  await page.selectOption("#who", "U0LEAD");
  await page.waitForFunction(() => document.querySelector("#grant").textContent.includes("approver"));
  await card.getByRole("button", { name: "Approve" }).click();
  await card.locator("text=done").waitFor({ timeout: WAIT });
  await card.locator(".thread .msg", { hasText: "dlq clear" }).first().waitFor({ timeout: WAIT });
  await shoot(page, dir, "05-approved.png", shots);
  const approved = (await card.innerText()).replace(/\s+/g, " ");

  await page.selectOption("#who", "U0OPS");
  await slash(page, "/forge incident declare P3 Browser picture check");
  await page.locator(".msg", { hasText: "Declared INC-1" }).first().waitFor({ timeout: WAIT });
  await slash(page, "/forge incident report INC-1");
  const picture = page.locator('img.picture[alt*="timeline"]').first();
  await picture.waitFor({ timeout: WAIT });
  await page.waitForFunction(() => [...document.querySelectorAll("img.picture")]
    .some((img) => img.complete && img.naturalWidth > 0), null, { timeout: WAIT });
  await picture.scrollIntoViewIfNeeded();
  await shoot(page, dir, "06-picture.png", shots);
  const width = await picture.evaluate((img) => img.naturalWidth);
  const home = await shortcutAndHome(page, dir, shots);
  return { card: approved, pictureWidth: width, tableRows, nextRows, listings, ...home };
}

async function shortcutAndHome(page, dir, shots) {
  await page.selectOption("#who", "U0OPS");
  await page.waitForFunction(() => document.querySelector("#grant").textContent.includes("operator"));
  const onMessage = await page.locator(".msg-more").first().locator("option").allInnerTexts();
  await page.selectOption("#shortcuts", "forge_declare_incident");
  await page.locator("#modal", { hasText: "Declare an incident" }).waitFor({ timeout: WAIT });
  await page.fill("#modal input[name='title/value']", "Search results are stale");
  await page.fill("#modal .external .filter", "sea");
  await page.locator("#modal .external select option[value=search]").waitFor({ state: "attached", timeout: WAIT });
  await page.selectOption("#modal .external select", "search");
  await shoot(page, dir, "06-declare-shortcut.png", shots);
  await page.click("#modal-submit");
  await page.locator("#modal").waitFor({ state: "hidden", timeout: WAIT });
  await page.click('[data-channel="C0INCIDENTS"]');
  await page.locator(".msg", { hasText: "Search results are stale" }).first().waitFor({ timeout: WAIT });
  await page.click("#home-link");
  const home = page.locator(".home");
  await home.locator("text=Search results are stale").waitFor({ timeout: WAIT });
  await home.locator("text=Queues, worst first").waitFor({ timeout: WAIT });
  await shoot(page, dir, "07-home.png", shots);
  const homeText = (await home.innerText()).replace(/\s+/g, " ");
  const ran = await runFromHome(page, dir, shots);
  return { home: homeText, onMessage, ran };
}

async function runFromHome(page, dir, shots) {
  await page.locator(".home").getByRole("button", { name: "Run a command" }).click();
  await page.locator("#modal", { hasText: "Run a command" }).waitFor({ timeout: WAIT });
  await page.fill("#modal .external .filter", "queue health");
  await page.locator("#modal .external select option[value='queue health']").waitFor({ state: "attached", timeout: WAIT });
  await page.selectOption("#modal .external select", "queue health");
  await page.click("#modal-submit");
  await page.locator("#modal", { hasText: "Post the answer in" }).waitFor({ timeout: WAIT });
  await page.locator("#modal .external select option[value=email]").waitFor({ state: "attached", timeout: WAIT });
  await page.selectOption("#modal .external select", "email");
  await page.selectOption("#modal select[name='where/value']", "C0OPS");
  await shoot(page, dir, "08-run-arguments.png", shots);
  await page.click("#modal-submit");
  await page.locator("#modal").waitFor({ state: "hidden", timeout: WAIT });
  await page.click('[data-channel="C0OPS"]');
  const answer = page.locator(".msg", { hasText: /queue health — (ok|warning|critical)/ }).last();
  await answer.waitFor({ timeout: WAIT });
  return (await answer.innerText()).replace(/\s+/g, " ");
}

async function main() {
  const [url, dir] = process.argv.slice(2);
  fs.mkdirSync(dir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "forge-chromium-"));
  timings.launch = Date.now() - started;
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
  const page = context.pages()[0] || await context.newPage();
  timings.launched = Date.now() - started;
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  const shots = [];
  try {
    const report = await scenario(page, url, dir, shots);
    console.log(JSON.stringify({ ok: true, ...report, shots, consoleErrors, timings }));
  } catch (error) {
    await shoot(page, dir, "failure.png", shots).catch(() => {});
    console.log(JSON.stringify({ ok: false, error: String(error), shots, consoleErrors }));
    process.exitCode = 1;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main();
