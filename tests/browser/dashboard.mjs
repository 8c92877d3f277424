// The dashboard in headless Chromium (Debian's, driven by playwright-core), against the local
// stack that tests/tests/dashboard_browser.rs starts. Every step asserts what the page shows;
// a failing step saves a screenshot of the moment it failed next to the others.
//
// Environment: DASHBOARD_URL, ADMIN_TOKEN, TENANT_TOKEN, TENANT_ID, SIM_BASE_URL,
// SIM_CONTROL_URL, DEVICE_ID, WEBHOOK_URL, HEALTH_INVOKE_URL, SCHEDULE_EVENT, ARTIFACTS,
// CHROMIUM.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const DASHBOARD_URL = env("DASHBOARD_URL");
const ADMIN_TOKEN = env("ADMIN_TOKEN");
const TENANT_TOKEN = env("TENANT_TOKEN");
const TENANT_ID = env("TENANT_ID");
const BACKUP_TENANT_ID = env("BACKUP_TENANT_ID");
const BACKUP_BASE_URL = env("BACKUP_BASE_URL");
const SIM_BASE_URL = env("SIM_BASE_URL");
const SIM_CONTROL_URL = env("SIM_CONTROL_URL");
const DEVICE_ID = env("DEVICE_ID");
// The tenant's webhook URL under cargo lambda watch (PUBLIC_WEBHOOK_BASE_URL + the route).
const WEBHOOK_URL = env("WEBHOOK_URL");
const HEALTH_INVOKE_URL = env("HEALTH_INVOKE_URL");
const SCHEDULE_EVENT = readFileSync(env("SCHEDULE_EVENT"), "utf8");
const ARTIFACTS = env("ARTIFACTS");
const WAIT = 20_000;

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  // Debian's Chromium as root in a sandbox-less container, and no background traffic to
  // hosts this machine cannot reach.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
// The copy buttons write to the clipboard; the test reads it back.
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(DASHBOARD_URL).origin });
const page = await context.newPage();
const consoleErrors = [];
page.on("console", (m) => {
  if (m.type() === "error") consoleErrors.push({ text: m.text(), url: m.location().url });
});
page.on("pageerror", (e) => consoleErrors.push({ text: String(e), url: "" }));
// Page loads that cargo lambda's emulator itself answered 500 (see loadPage).
let emulatorErrors = 0;
const failedResponses = [];
page.on("response", (r) => {
  if (r.status() >= 500) failedResponses.push(`${r.status()} ${r.request().method()} ${r.url()}`);
});
page.on("requestfailed", (r) => failedResponses.push(`failed ${r.request ? "" : ""}${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`));
// The page may only talk to its own origin.
const origin = new URL(DASHBOARD_URL).origin;
const foreign = [];
page.on("request", (r) => {
  if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) foreign.push(r.url());
});

let current = "start";
async function step(name, fn) {
  current = name;
  const t0 = Date.now();
  await fn();
  console.log(`ok  ${name} (${Date.now() - t0} ms)`);
}
const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
const text = async (sel) => ((await page.locator(sel).textContent()) || "").trim();
async function waitText(sel, re, timeout = WAIT) {
  await page.waitForFunction(
    ([s, src, flags]) => {
      const n = document.querySelector(s);
      return !!n && new RegExp(src, flags).test(n.textContent || "");
    },
    [sel, re.source, re.flags],
    { timeout },
  );
}
async function visible(sel) {
  await page.locator(sel).first().waitFor({ state: "visible", timeout: WAIT });
}
/** Loads the page (`how`: a goto or a reload) and returns its answer. cargo lambda's local
 *  front door sometimes answers a page load 500 itself, without invoking the function (seen
 *  at a reload in one of about 25 runs of this test here); that answer has neither the Content-Security-Policy every
 *  answer of the page carries nor the JSON body of the function's errors. Such a load is made
 *  again, at most twice, and said in the output; any other answer stands. */
async function loadPage(how) {
  for (let attempt = 1; ; attempt++) {
    const resp = await how();
    // The function answers the page with a CSP, and any error as JSON: neither is the emulator.
    const h = resp ? resp.headers() : {};
    const fromEmulator = resp && resp.status() >= 500 && !h["content-security-policy"] && !/json/.test(h["content-type"] || "");
    if (!fromEmulator) return resp;
    assert.ok(attempt < 3, `cargo lambda's emulator answered the page ${resp.status()} three times`);
    emulatorErrors += 1;
    console.log(`note: cargo lambda's emulator answered the page load ${resp.status()} without invoking the function; loading it again`);
    await page.waitForLoadState("networkidle");
  }
}
async function healthCheck() {
  // A bound, so a request cargo lambda's emulator leaves unanswered fails the step instead of
  // holding the test for ever (not sent again: a second run would change the counts).
  const r = await fetch(HEALTH_INVOKE_URL, { method: "POST", body: SCHEDULE_EVENT, headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(120_000) });
  const body = await r.text();
  assert.equal(r.status, 200, `health check invoke: ${body}`);
  return JSON.parse(body);
}
async function simDevice(state) {
  const r = await fetch(`${SIM_CONTROL_URL}/_sim/devices/${encodeURIComponent(DEVICE_ID)}`, { method: "PUT", body: JSON.stringify({ state }), headers: { "content-type": "application/json" } });
  assert.ok(r.ok, `sim device ${state}: ${r.status}`);
}
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
async function simDown(down) {
  const r = await fetch(`${SIM_CONTROL_URL}/_sim/down`, { method: "PUT", body: JSON.stringify({ down }), headers: { "content-type": "application/json" } });
  assert.ok(r.ok, `sim down=${down}: ${r.status}`);
}
async function signInWithKeyboard(token) {
  await visible("#view-signin");
  // The field has focus on arrival; fill by typing, submit with Enter.
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), "token");
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(token);
  await page.keyboard.press("Enter");
}
async function everyControlHasALabel() {
  const unlabeled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((n) => n.offsetParent !== null && n.labels.length === 0 && !n.getAttribute("aria-label"))
      .map((n) => n.id || n.name || n.outerHTML.slice(0, 60)),
  );
  assert.deepEqual(unlabeled, [], "inputs without a label");
}
async function noHorizontalScroll() {
  const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(sw <= w + 1, `the page is ${sw}px wide in a ${w}px viewport`);
}

// ---------------------------------------------------------------------------------------
// Issue 16: server kinds per endpoint (a Meta backup on a GOWA primary) and Meta's callback.
// Kept in its own block (the onboarding and fleet steps above belong to issue 15).
// ---------------------------------------------------------------------------------------
const KINDS_TENANT_ID = env("KINDS_TENANT_ID");
const KINDS_PRIMARY_URL = env("KINDS_PRIMARY_URL");
const KINDS_WEBHOOK_URL = env("KINDS_WEBHOOK_URL");
const META_BASE_URL = env("META_BASE_URL");
const META_TOKEN = env("META_TOKEN");
const META_PHONE_NUMBER_ID = env("META_PHONE_NUMBER_ID");
const META_APP_SECRET = "kinds-app-secret-7d2c";
const META_VERIFY_TOKEN = "kinds-verify-token-4e1a";

const options = (sel) => page.$$eval(sel + " option", (os) => os.map((o) => o.value));

async function kindsScenario() {
  await step("kinds: each endpoint offers only its kind's fields", async () => {
    // Signed in as the admin (the step before): a tenant without a configuration.
    await page.evaluate((t) => { location.hash = "#/tenant/" + encodeURIComponent(t) + "/settings"; }, KINDS_TENANT_ID);
    await visible("#view-settings");
    await waitText("#settings-intro", /no WhatsApp configuration yet/);
    assert.deepEqual(await options("#f-primary-kind"), ["gowa", "waha", "evolution", "meta"]);
    assert.equal(await page.inputValue("#f-primary-kind"), "gowa");
    await page.check("#has-backup");
    await visible("#f-backup-kind");
    // Each kind: its credential types, its fields, its name for the device.
    const want = {
      gowa: { types: ["basic", "none"], shown: ["username", "secret"], hidden: ["appSecret", "verifyToken", "cidrs"], device: "Device id", secret: "Password" },
      waha: { types: ["apiKey", "none"], shown: ["secret"], hidden: ["username", "appSecret", "verifyToken", "cidrs"], device: "Session", secret: "API key" },
      evolution: { types: ["apiKey"], shown: ["secret", "cidrs"], hidden: ["username", "appSecret", "verifyToken"], device: "Instance name", secret: "API key" },
      meta: { types: ["meta"], shown: ["secret", "appSecret", "verifyToken"], hidden: ["username", "cidrs"], device: "Phone number id", secret: "Access token" },
    };
    for (const [kind, w] of Object.entries(want)) {
      await page.selectOption("#f-backup-kind", kind);
      assert.deepEqual(await options("#f-backup-credType"), w.types, kind);
      for (const f of w.shown) assert.ok(await page.isVisible(`#f-backup-${f}`), `${kind}: ${f} shown`);
      for (const f of w.hidden) assert.ok(await page.isHidden(`#f-backup-${f}`), `${kind}: ${f} hidden`);
      assert.equal(await text('label[for="f-backup-deviceId"]'), w.device, kind);
      assert.equal(await text('label[for="f-backup-secret"]'), w.secret, kind);
    }
    // The primary is independent: still GOWA's fields.
    assert.equal(await page.inputValue("#f-primary-kind"), "gowa");
    assert.deepEqual(await options("#f-primary-credType"), ["basic", "none"]);
    assert.ok(await page.isHidden("#f-primary-appSecret"));
    await everyControlHasALabel();
  });

  await step("kinds: a Meta backup without its app secret is refused next to the field, nothing saved", async () => {
    await page.selectOption("#f-primary-credType", "none");
    await page.fill("#f-primary-baseUrl", KINDS_PRIMARY_URL);
    await page.fill("#f-primary-deviceId", DEVICE_ID);
    await page.fill("#f-webhook-secret", "kinds-webhook-secret-0b5f");
    await page.fill("#f-backup-baseUrl", META_BASE_URL);
    await page.fill("#f-backup-secret", META_TOKEN);
    await page.fill("#f-backup-verifyToken", META_VERIFY_TOKEN);
    await page.fill("#f-backup-deviceId", META_PHONE_NUMBER_ID);
    await page.click("#save-btn");
    await visible("#settings-errors");
    await waitText("#f-backup-appSecret-err", /is required/);
    assert.equal(await page.getAttribute("#f-backup-appSecret", "aria-invalid"), "true");
    await waitText("#settings-errors", /App secret \(backup server\)/);
    await waitText("#settings-errors strong", /nothing was saved/);
    const r = await fetch(`${new URL(DASHBOARD_URL).origin}${new URL(DASHBOARD_URL).pathname.replace(/\/dashboard$/, "")}/tenants/${KINDS_TENANT_ID}/whatsapp-config`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(r.status, 404, "nothing was stored");
    await shot("12-kinds-validation-error.png");
  });

  await step("kinds: saved with a Meta backup; the form shows it back, the callback to paste", async () => {
    await page.fill("#f-backup-appSecret", META_APP_SECRET);
    await page.click("#save-btn");
    await waitText("#flash", /Saved\. The configuration is now version \d+\./);
    await waitText("#settings-intro", /^Version \d+,/);
    assert.equal(await page.inputValue("#f-primary-kind"), "gowa");
    assert.equal(await page.inputValue("#f-backup-kind"), "meta");
    assert.equal(await page.inputValue("#f-backup-deviceId"), META_PHONE_NUMBER_ID);
    // Write-only: empty fields, each secret's fingerprint as its placeholder.
    for (const f of ["secret", "appSecret", "verifyToken"]) {
      assert.equal(await page.inputValue(`#f-backup-${f}`), "", f);
      assert.match(await page.getAttribute(`#f-backup-${f}`, "placeholder"), /^saved \(/, f);
    }
    // What to paste into Meta's console: the callback URL and the verify token; never verified yet.
    await visible("#meta-callback-field");
    assert.equal(await page.inputValue("#meta-callback-url"), KINDS_WEBHOOK_URL);
    assert.equal(await page.inputValue("#meta-verify-token-backup"), META_VERIFY_TOKEN);
    await waitText("#meta-callback-verified", /^Never verified/);
    const html = await page.content();
    assert.ok(!html.includes(META_APP_SECRET) && !html.includes(META_TOKEN), "the app secret or token is in the page");
    await everyControlHasALabel();
    await noHorizontalScroll();
    await shot("13-kinds-meta-backup-saved.png");
  });

  await step("kinds: Meta's handshake on the callback URL; the form says it is verified", async () => {
    const wrong = await fetch(`${KINDS_WEBHOOK_URL}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=77`);
    assert.equal(wrong.status, 403);
    await loadPage(() => page.reload());
    await visible("#meta-callback-field");
    await waitText("#meta-callback-verified", /^Never verified/);
    const ok = await fetch(`${KINDS_WEBHOOK_URL}?hub.mode=subscribe&hub.verify_token=${META_VERIFY_TOKEN}&hub.challenge=1158201444`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "1158201444");
    await loadPage(() => page.reload());
    await visible("#meta-callback-field");
    await waitText("#meta-callback-verified", /^Callback verified by Meta at /);
    await shot("14-kinds-meta-callback-verified.png");
    // The tenant view says so too.
    await page.evaluate((t) => { location.hash = "#/tenant/" + encodeURIComponent(t); }, KINDS_TENANT_ID);
    await visible("#view-tenant");
    await waitText("#meta-callback-status", /^verified by Meta /);
  });
}

try {
  await step("sign in: a bad token is refused with a clear message", async () => {
    await loadPage(() => page.goto(DASHBOARD_URL));
    await visible("#view-signin");
    await everyControlHasALabel();
    await signInWithKeyboard("not-a-token");
    await waitText("#signin-error", /not a JWT/);
    assert.equal(await page.getAttribute("#token", "aria-invalid"), "true");
    await page.fill("#token", "");
    await shot("01-signin.png");
  });

  await step("admin signs in by keyboard and sees the fleet", async () => {
    await signInWithKeyboard(ADMIN_TOKEN);
    await visible("#view-admin");
    assert.match(await text("#who"), /admin/);
    // The simulator's server, up, with its tenant counted.
    await waitText("#endpoints", new RegExp(SIM_BASE_URL.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    await waitText("#endpoints td .badge", /^up$/);
    await waitText("#tenants", new RegExp(TENANT_ID));
    await waitText("#tenants", /connected/);
    await waitText("#fleet-failovers", /No failover/);
    // The filter: nobody is down yet.
    await page.selectOption("#filter-status", "endpoint_down");
    await waitText("#tenants-count", /^0 of 2 tenants$/);
    await page.selectOption("#filter-status", "connected");
    await waitText("#tenants-count", /^2 of 2 tenants$/);
    await page.fill("#filter-text", "bet");
    await waitText("#tenants-count", /^1 of 2 tenants$/);
    await page.fill("#filter-text", "");
    await page.selectOption("#filter-status", "");
    await everyControlHasALabel();
    await shot("02-fleet.png");
  });

  await step("the tenant's status: connected, on its primary, with a latency chart", async () => {
    await page.click(`#tenants a[href="#/tenant/${TENANT_ID}"]`);
    await visible("#view-tenant");
    await waitText("#connection-status", /^connected$/);
    await waitText("#active-url", new RegExp(SIM_BASE_URL.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    await waitText("#status-facts", /primary/);
    // Two health-check runs before the page opened: a line with two points.
    await page.waitForFunction(() => document.querySelectorAll("#chart svg circle.dot-primary").length === 2, null, { timeout: WAIT });
    const d = await page.getAttribute("#chart svg path.line-primary", "d");
    assert.equal((d.match(/[ML]/g) || []).length, 2, `chart path ${d}`);
    // Latency to the microsecond: a loopback server answers in a fraction of a millisecond.
    await waitText("#chart-summary", /primary: \d+ checks, median [\d.]+ ms, server down in 0/);
    await waitText("#failures", /No failed checks/);
    await waitText("#sending", /^active$/);
    assert.ok(await page.isHidden("#status-advice"), "no advice for a connected tenant");
    // The endpoint replaced through the API before the page opened: what moved, never "?".
    await waitText("#switches", /replace endpoint/);
    const moved = await text("#switches .move");
    assert.match(moved, new RegExp(`^primary ${escapeRe(SIM_BASE_URL)} → primary ${escapeRe(SIM_BASE_URL)}$`));
    assert.doesNotMatch(await text("#switches"), /\?/);
    await shot("03-tenant-connected.png");
  });

  await step("the server goes down; after a health-check run the page says so", async () => {
    await simDown(true);
    const report = await healthCheck();
    assert.equal(report.serversProbed, 2);
    await page.click("#tenant-refresh");
    await waitText("#connection-status", /server down/);
    await waitText("#status-facts", /Latency—/);
    await page.locator("#chart svg circle.down").first().waitFor({ state: "attached", timeout: WAIT });
    await waitText("#chart-summary", /server down in 1/);
    await waitText("#failures", /primary/);
    await waitText("#sending", /^stopped: the server does not answer/);
    await waitText("#status-advice", /does not answer its health check/);
    await waitText("#failed-checks", /^1 \(server down\)$/);
    await shot("04-tenant-server-down.png");
  });

  await step("two more failed runs: the tenant with a backup fails over, the fleet shows it", async () => {
    for (let i = 0; i < 2; i++) await healthCheck();
    await page.click("#nav-admin");
    await visible("#view-admin");
    await waitText("#fleet-failovers", new RegExp(BACKUP_TENANT_ID));
    await waitText("#fleet-failovers", /failover/);
    await page.selectOption("#filter-status", "endpoint_down");
    await waitText("#tenants-count", /^1 of 2 tenants$/);
    await waitText("#tenants", new RegExp(TENANT_ID));
    await page.selectOption("#filter-status", "");
    await shot("04b-fleet-failover.png");
    await page.click(`#tenants a[href="#/tenant/${BACKUP_TENANT_ID}"]`);
    await visible("#view-tenant");
    await waitText("#connection-status", /^connected$/);
    await waitText("#active-url", new RegExp(BACKUP_BASE_URL.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    await waitText("#switches", /failover/);
    assert.match(await text("#switches .move"), new RegExp(`^primary ${escapeRe(SIM_BASE_URL)} → backup ${escapeRe(BACKUP_BASE_URL)}$`));
    await page.locator("#chart svg path.line-backup").first().waitFor({ state: "attached", timeout: WAIT });
    await shot("04c-tenant-on-backup.png");
    await page.click(`#nav-admin`);
    await visible("#view-admin");
    await page.click(`#tenants a[href="#/tenant/${TENANT_ID}"]`);
    await visible("#view-tenant");
    await waitText("#connection-status", /server down/);
  });

  await step("recent messages: listed with recipient, state and server; a key opens the record", async () => {
    await waitText("#messages", /order-4711/);
    await waitText("#messages", /\+6289685028129/);
    await waitText("#messages", /delivered/);
    await page.click("#messages button.message-open");
    await waitText("#lookup-facts", /State\s*delivered/);
    await waitText("#lookup-facts", /To\s*\+6289685028129/);
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), "lookup-result");
    assert.equal(await page.inputValue("#lookup-key"), "order-4711");
  });

  await step("traffic per endpoint: the delivered message counted, its latency, a bar in the hourly chart", async () => {
    await page.click(`#analytics-windows button:text-is("1h")`);
    assert.equal(await page.getAttribute(`#analytics-windows button:text-is("1h")`, "aria-pressed"), "true");
    const row = page.locator("#analytics tbody tr").nth(1);
    await row.waitFor({ timeout: WAIT });
    assert.match(await row.innerText(), new RegExp(escapeRe(SIM_BASE_URL)));
    assert.match(await row.innerText(), /gowa/);
    assert.match(await row.innerText(), /100 %/);
    assert.match(await row.innerText(), /42 ms/);
    await page.locator("#analytics-chart svg rect.bar-sent").first().waitFor({ state: "attached", timeout: WAIT });
    await waitText("#analytics-summary", /Last 24 h: 1 sent, 0 failed, 0 unknown/);
  });

  await step("message lookup: a delivered message, and an unknown key", async () => {
    await page.fill("#lookup-key", "order-4711");
    await page.press("#lookup-key", "Enter");
    await waitText("#lookup-facts", /State\s*delivered/);
    await waitText("#lookup-facts", /3EB0C4F1A2/);
    await page.fill("#lookup-key", "order-0000");
    await page.press("#lookup-key", "Enter");
    await waitText("#lookup-result", /No message with that key/);
  });

  await step("a logged-out device: every view says so and says what to do", async () => {
    // The server back and healthy (the failure streak ends), then the device logs out.
    await simDown(false);
    await healthCheck();
    await simDevice("connected"); // connected to WhatsApp's servers, not logged in
    const report = await healthCheck();
    assert.equal(report.serversProbed, 2);
    await page.click("#tenant-refresh");
    await waitText("#connection-status", /^logged out$/);
    await waitText("#sending", /^stopped: the device is not logged in/);
    await waitText("#failed-checks", /^1 \(device not logged in\)$/);
    // The failed check is listed (the server itself was up), not "No failed checks".
    await waitText("#failures", new RegExp(`device ${escapeRe(DEVICE_ID)} not logged in \\(1 failed check in a row\\)`));
    assert.doesNotMatch(await text("#failures"), /No failed checks/);
    await waitText("#chart-summary", /server up, but the device is not logged in/);
    await waitText("#status-advice", new RegExp(`“${escapeRe(DEVICE_ID)}”.*not logged in.*scan its QR code`));
    await shot("04d-tenant-logged-out.png");
    // Linked again: connected at the next check.
    await simDevice("logged_in");
    await healthCheck();
    await page.click("#tenant-refresh");
    await waitText("#connection-status", /^connected$/);
    assert.ok(await page.isHidden("#status-advice"));
  });

  await step("sign-out forgets the session: the next user sees nothing of it", async () => {
    // The admin's lookup is on screen.
    await page.fill("#lookup-key", "order-4711");
    await page.press("#lookup-key", "Enter");
    await waitText("#lookup-facts", /3EB0C4F1A2/);
    await page.click("#signout");
    await visible("#view-signin");
    for (const id of ["#lookup-result", "#status-facts", "#switches", "#failures", "#chart", "#endpoints", "#tenants", "#fleet-failovers"]) {
      assert.equal(await text(id), "", `${id} still shows the last session`);
    }
    assert.equal(await page.inputValue("#lookup-key"), "");
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await signInWithKeyboard(TENANT_TOKEN);
    await visible("#view-tenant");
    await waitText("#connection-status", /^connected$/);
    assert.equal(await text("#lookup-result"), "", "the previous user's message lookup");
    assert.equal(await page.inputValue("#lookup-key"), "");
    assert.equal(await text("#tenants"), "", "the admin's fleet");
  });

  await step("the device panel: wired, logged out, linked again by QR (the simulator scans), wired", async () => {
    await waitText("#device-state-primary", /^linked$/);
    // Both tenants share the simulator's one device here, so the last wiring may be the other
    // tenant's: the panel offers the repair, and one click wires it to this tenant.
    if (!/^webhook wired$/.test(await text("#webhook-state-primary"))) {
      await page.click("#wire-primary");
    }
    await waitText("#webhook-state-primary", /^webhook wired$/);
    await page.click("#logout-primary");
    await waitText("#device-state-primary", /^not linked$/);
    // cargo lambda's emulator sometimes answers a request with its own 500 (see loadPage): the
    // user clicks again, so does the test (at most three times).
    for (let attempt = 1; ; attempt++) {
      await page.click("#link-qr-primary");
      try {
        await page.locator("#qr-img-primary").waitFor({ state: "visible", timeout: WAIT / 2 });
        break;
      } catch (e) {
        if (attempt === 3) throw e;
      }
    }
    assert.match(await page.getAttribute("#qr-img-primary", "src"), /^data:image\/png;base64,iVBOR/);
    await waitText("#qr-expiry-primary", /expires in \d+ s/);
    await shot("10-device-qr.png");
    // The phone scans it: the panel turns "linked" by itself, its webhook still wired.
    const r = await fetch(`${SIM_CONTROL_URL}/_sim/devices/${encodeURIComponent(DEVICE_ID)}/scan`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    assert.ok(r.ok, `scan: ${r.status}`);
    await waitText("#device-state-primary", /^linked$/);
    await waitText("#webhook-state-primary", /^webhook wired$/);
    assert.ok(await page.isHidden("#qr-img-primary").catch(() => true), "the QR is gone once linked");
    await everyControlHasALabel();
    await shot("11-device-linked.png");
  });

  await step("a tenant signs in and tests its settings", async () => {
    assert.ok(await page.isHidden("#nav-admin"), "a tenant sees no fleet link");
    await page.click("#nav-settings");
    await visible("#view-settings");
    await page.waitForFunction((u) => document.querySelector("#f-primary-baseUrl").value === u, SIM_BASE_URL, { timeout: WAIT });
    // The saved password is write-only: an empty field with its fingerprint as placeholder.
    assert.equal(await page.inputValue("#f-primary-secret"), "");
    assert.match(await page.getAttribute("#f-primary-secret", "placeholder"), /^saved \(/);
    await waitText("#f-primary-secret-hint", /leave empty to keep the saved one/);
    // GOWA takes basic auth or none: nothing else is offered.
    assert.deepEqual(await page.$$eval("#f-primary-credType option", (os) => os.map((o) => o.value)), ["basic", "none"]);
    // The full webhook URL, copied with one click; it is the ingress (unsigned: 401).
    assert.equal(await page.inputValue("#webhook-url"), WEBHOOK_URL);
    await page.click("#webhook-url-copy");
    await waitText("#webhook-url-copied", /^Copied\.$/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), WEBHOOK_URL);
    const hook = await fetch(WEBHOOK_URL, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    assert.equal(hook.status, 401, "the webhook URL reaches the ingress");
    assert.equal((await hook.json()).error, "signature_missing");
    await everyControlHasALabel();
    await page.fill("#f-primary-region", "eu-west-1");
    await page.click("#test-btn");
    await visible("#test-report");
    await waitText("#test-results", /passed/);
    for (const name of ["reachable", "credentials", "device", "latency"]) {
      await waitText("#test-results", new RegExp(name));
    }
    assert.equal(await page.locator('#test-results li[data-outcome="fail"]').count(), 0);
    await shot("05-settings-tested.png");
  });

  // Versions: 1 created (its device wired in the same write), 2 the replacement through the
  // API, 3 the device panel's repair of the webhook (the other tenant's save had wired the
  // shared device to itself); then this save.
  await step("test and save stores version 4", async () => {
    await page.click("#save-btn");
    await waitText("#flash", /Saved\. The configuration is now version 4\./);
    await waitText("#settings-intro", /^Version 4,/);
    assert.equal(await page.inputValue("#f-primary-region"), "eu-west-1");
    await shot("06-settings-saved.png");
  });

  await step("rotate the webhook secret: the new one is shown once", async () => {
    assert.ok(await page.isHidden("#rotated"));
    await page.click("#rotate-secret-btn");
    await visible("#rotated");
    const secret = await page.inputValue("#rotated-secret");
    assert.match(secret, /^[0-9a-f]{64}$/);
    await waitText("#rotated-hint", /previous secret keeps working until/);
    // 5 the rotation, 6 the re-wiring of the device with a new wired secret.
    await waitText("#settings-intro", /^Version 6,/);
    await page.click("#rotated-copy");
    await waitText("#rotated-copied", /^Copied\.$/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
    await shot("06b-webhook-secret-rotated.png");
    // Shown once: gone as soon as the page leaves the settings, and not back with them.
    await page.click("#nav-tenant");
    await visible("#view-tenant");
    assert.ok(await page.isHidden("#rotated"));
    assert.equal(await page.inputValue("#rotated-secret"), "");
    await page.click("#nav-settings");
    await visible("#view-settings");
    // The form is filled again from the store before the next step edits it.
    await waitText("#settings-intro", /^Version 6,/);
    assert.ok(await page.isHidden("#rotated"));
    assert.equal(await page.inputValue("#rotated-secret"), "");
    assert.ok(!(await page.content()).includes(secret), "the secret is still in the page");
    await page.evaluate(() => navigator.clipboard.writeText(""));
  });

  await step("validation errors are shown next to their fields and nothing is saved", async () => {
    // Another server: the saved password does not follow the URL, so it is asked for.
    await page.fill("#f-primary-baseUrl", "ftp://wa.example.com");
    await page.click("#save-btn");
    await visible("#settings-errors");
    await waitText("#f-primary-secret-err", /^is required$/);
    assert.equal(await page.getAttribute("#f-primary-secret", "aria-invalid"), "true");
    // The summary took focus, so a screen reader announces it; the old "Saved" note is gone.
    assert.equal(await page.evaluate(() => document.activeElement.id), "settings-errors");
    assert.ok(await page.isHidden("#flash"), "a stale success message stays on screen");
    // With a password, the URL itself is refused: only http and https.
    await page.fill("#f-primary-secret", "another-server-password");
    await page.click("#save-btn");
    await waitText("#f-primary-baseUrl-err", /http/);
    await waitText('#settings-errors li[data-field="primary.baseUrl"]', /^Server URL \(primary server\): .*http/);
    await waitText("#settings-errors strong", /^One field needs attention; nothing was saved\.$/);
    assert.equal(await page.getAttribute("#f-primary-baseUrl", "aria-invalid"), "true");
    assert.equal(await page.getAttribute("#f-primary-secret", "aria-invalid"), null);
    // Nothing was saved: still version 6.
    await waitText("#settings-intro", /^Version 6,/);
    await shot("07-settings-validation-error.png");
  });

  await step("keyboard: the settings form is reachable with Tab in a sensible order", async () => {
    // No request in flight when the page goes away: cargo-lambda's emulator answers the next
    // invocation with a 500 when a client drops one mid-way (seen once in five runs).
    await page.waitForLoadState("networkidle");
    await loadPage(() => page.reload());
    await visible("#view-settings");
    await page.waitForFunction(() => document.querySelector("#f-primary-baseUrl").value !== "", null, { timeout: WAIT });
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const order = [];
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press("Tab");
      order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.textContent.trim()));
    }
    for (const id of ["f-primary-baseUrl", "f-primary-credType", "f-primary-secret", "has-backup", "f-failback", "test-btn", "save-btn"]) {
      assert.ok(order.includes(id), `Tab never reaches #${id}: ${order.join(", ")}`);
    }
    assert.ok(order.indexOf("f-primary-baseUrl") < order.indexOf("test-btn"), "fields come before the buttons");
  });

  await step("phone width: readable, no sideways scrolling", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click("#nav-tenant");
    await visible("#view-tenant");
    await waitText("#connection-status", /server down|connected/);
    await noHorizontalScroll();
    await shot("08-tenant-phone.png");
    await page.click("#nav-settings");
    await visible("#view-settings");
    await noHorizontalScroll();
    await shot("09-settings-phone.png");
  });

  await step("a new tenant's form: nothing saved to keep, GOWA's credential kinds only", async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.click("#signout");
    await signInWithKeyboard(ADMIN_TOKEN);
    await visible("#view-admin");
    await page.evaluate(() => { location.hash = "#/tenant/newco/settings"; });
    await visible("#view-settings");
    await waitText("#settings-intro", /no WhatsApp configuration yet/);
    assert.equal(await page.inputValue("#f-primary-baseUrl"), "");
    assert.doesNotMatch(await text("#view-settings"), /leave empty to keep/i);
    await waitText("#f-primary-secret-hint", /stored sealed, never shown again/);
    assert.equal(await page.getAttribute("#f-primary-secret", "placeholder"), "");
    assert.deepEqual(await page.$$eval("#f-primary-credType option", (os) => os.map((o) => o.value)), ["basic", "none"]);
    assert.ok(await page.isHidden("#webhook-url-field"), "no URL before the tenant exists");
    assert.ok(await page.isHidden("#rotate-field"), "nothing to rotate yet");
    assert.ok(await page.isVisible("#webhook-secret-field"));
    await page.check("#has-backup");
    assert.doesNotMatch(await text("#view-settings"), /leave empty to keep/i);
  });

  // Issue 15 item 8: a tenant onboarded from nothing (its own block, below).
  await onboardingScenario();
  await kindsScenario();

  assert.deepEqual(foreign, [], "requests to another origin");
  // 4xx answers are the page's own business (a 404 lookup, a 400 validation); each page load
  // the emulator answered 500 itself (loadPage) left one console line, and only those go.
  let emulatorLines = emulatorErrors;
  const unexpected = consoleErrors.filter((e) => {
    if (/status of 4\d\d/.test(e.text)) return false;
    if (emulatorLines > 0 && /status of 500/.test(e.text)) {
      emulatorLines -= 1;
      return false;
    }
    return true;
  });
  assert.deepEqual(unexpected.map((e) => e.text), [], "errors in the browser console");
  console.log("all steps passed");
} catch (e) {
  console.error(`FAILED at step "${current}": ${e.stack || e}`);
  console.error(`browser console errors: ${JSON.stringify(consoleErrors)}`);
  console.error(`failed responses: ${JSON.stringify(failedResponses)}`);
  try {
    await shot(`failed-${current.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}.png`);
  } catch (_) {
    /* the browser may be gone */
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}

// ---------------------------------------------------------------------------------------------
// Issue 15 item 8: a new tenant onboarded as a tenant would, from nothing: config saved from the
// form, device created and linked by QR (the simulator's control API plays the phone), webhook
// wired, webhook secret rotated with events still accepted, a backup linked by pairing code and
// "backup ready" (tenant and fleet views), the primary down and the failover landing on the
// ready backup, and a message sent through it. Its own simulators (ONB_*), its own tenant.
// Environment: ONB_TENANT_ID, ONB_PRIMARY_URL, ONB_PRIMARY_CONTROL, ONB_BACKUP_URL,
// ONB_BACKUP_CONTROL, ONB_USER, ONB_PASSWORD, SENDER_INVOKE_URL.
// ---------------------------------------------------------------------------------------------
async function onboardingScenario() {
  const T = env("ONB_TENANT_ID");
  const P_URL = env("ONB_PRIMARY_URL");
  const P_CTL = env("ONB_PRIMARY_CONTROL");
  const B_URL = env("ONB_BACKUP_URL");
  const B_CTL = env("ONB_BACKUP_CONTROL");
  const SENDER_INVOKE_URL = env("SENDER_INVOKE_URL");
  const P_DEV = `${T}-1`;
  const B_DEV = `${T}-2`;
  const control = async (base, method, route, body) => {
    const r = await fetch(`${base}${route}`, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { "content-type": "application/json" } });
    const text = await r.text();
    assert.ok(r.ok, `simulator ${method} ${route}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const fleetRow = (tenant) => page.locator(`#tenants tr:has(a[href="#/tenant/${tenant}"])`);
  /** Saves the form: the connection test fails while the device does not exist on the server
   *  yet, so the explicit "save without a passing test" is used then. */
  async function saveForm(version) {
    await page.click("#save-btn");
    await page.waitForFunction(() => !document.querySelector("#save-anyway").hidden || /Saved\./.test(document.querySelector("#flash").textContent || ""), null, { timeout: WAIT });
    if (await page.isVisible("#save-anyway")) {
      await waitText("#test-results", /device/);
      await page.click("#save-anyway");
    }
    await waitText("#flash", new RegExp(`Saved\\. The configuration is now version ${version}\\.`));
  }

  await step("onboard: a new tenant's config saved from the form, its device not on the server yet", async () => {
    await page.evaluate((t) => { location.hash = `#/tenant/${t}/settings`; }, T);
    await visible("#view-settings");
    await waitText("#settings-intro", /no WhatsApp configuration yet/);
    if (await page.isChecked("#has-backup")) await page.uncheck("#has-backup");
    await page.fill("#f-primary-baseUrl", P_URL);
    await page.selectOption("#f-primary-credType", "basic");
    await page.fill("#f-primary-username", env("ONB_USER"));
    await page.fill("#f-primary-secret", env("ONB_PASSWORD"));
    await page.fill("#f-primary-deviceId", P_DEV);
    await page.fill("#f-webhook-secret", "onboard-own-forwarding-secret");
    await saveForm(1);
    await waitText("#settings-intro", /^Version 1,/);
    assert.equal(await page.inputValue("#f-primary-secret"), "", "the password is write-only");
  });

  await step("onboard: the device is created and linked by QR (the phone scans), its webhook wired", async () => {
    await page.click("#nav-tenant");
    await visible("#view-tenant");
    await waitText("#device-state-primary", /^no device on the server$/);
    await page.click("#create-device-primary");
    await waitText("#device-state-primary", /^not linked$|^waiting for the phone$/);
    for (let attempt = 1; ; attempt++) {
      await page.click("#link-qr-primary");
      try {
        await page.locator("#qr-img-primary").waitFor({ state: "visible", timeout: WAIT / 2 });
        break;
      } catch (e) {
        if (attempt === 3) throw e;
      }
    }
    assert.match(await page.getAttribute("#qr-img-primary", "src"), /^data:image\/png;base64,iVBOR/);
    await shot("12-onboard-qr.png");
    await control(P_CTL, "POST", `/_sim/devices/${encodeURIComponent(P_DEV)}/scan`, {});
    await waitText("#device-state-primary", /^linked$/);
    await waitText("#webhook-state-primary", /^webhook wired$/);
    // The server holds the device's own webhook: the tenant's ingress URL.
    const devices = await control(P_CTL, "GET", "/_sim/devices");
    const dev = devices.find((d) => d.id === P_DEV) || {};
    const hookUrl = (dev.webhook && dev.webhook.url) || "";
    assert.ok(hookUrl.endsWith(`/webhooks/whatsapp/${T}`), `the device's webhook on the server: ${hookUrl}`);
    await shot("13-onboard-linked-wired.png");
  });

  let beforeRotation;
  await step("onboard: the webhook secret is rotated and the device's events are still accepted", async () => {
    // An event before the rotation, signed with the device's wired secret: accepted.
    const before = await control(P_CTL, "POST", "/_sim/incoming", { device_id: P_DEV, from: "+6281230000001", text: "hello before the rotation" });
    assert.equal(before.deliveries.length, 1, JSON.stringify(before));
    assert.ok(before.deliveries[0].delivered, `before the rotation: ${JSON.stringify(before.deliveries[0]).slice(0, 300)}`);
    beforeRotation = before.deliveries[0].signature;
    await page.click("#nav-settings");
    await visible("#view-settings");
    await waitText("#settings-intro", /^Version \d+,/);
    await page.click("#rotate-secret-btn");
    await visible("#rotated");
    await waitText("#rotated-hint", /previous secret keeps working until/);
    // The device got a new wired secret (read back): the next event is signed with it.
    const after = await control(P_CTL, "POST", "/_sim/incoming", { device_id: P_DEV, from: "+6281230000001", text: "hello after the rotation" });
    assert.equal(after.deliveries.length, 1, JSON.stringify(after));
    assert.ok(after.deliveries[0].delivered, `after the rotation the ingress refused the device's event: ${JSON.stringify(after.deliveries[0]).slice(0, 300)}`);
    assert.ok(/\/webhooks\/whatsapp\//.test(after.deliveries[0].url));
    assert.notEqual(after.deliveries[0].signature, beforeRotation, "signed with another secret than before");
    await page.click("#nav-tenant");
    await visible("#view-tenant");
    await waitText("#webhook-state-primary", /^webhook wired$/);
    await shot("14-onboard-rotated-events-accepted.png");
  });

  await step("onboard: a backup added and linked by pairing code: backup ready", async () => {
    await page.click("#nav-settings");
    await visible("#view-settings");
    await waitText("#settings-intro", /^Version \d+,/);
    const version = Number((await text("#settings-intro")).match(/^Version (\d+),/)[1]);
    await page.check("#has-backup");
    await page.fill("#f-backup-baseUrl", B_URL);
    await page.selectOption("#f-backup-credType", "none");
    await page.fill("#f-backup-deviceId", B_DEV);
    await saveForm(version + 1);
    await page.click("#nav-tenant");
    await visible("#view-tenant");
    await waitText("#device-state-backup", /^no device on the server$/);
    await page.click("#create-device-backup");
    await waitText("#device-state-backup", /^not linked$|^waiting for the phone$/);
    await page.fill("#pair-phone-backup", "+6281234567891");
    await page.press("#pair-phone-backup", "Enter");
    await waitText("#pair-code-backup", /^[A-Z0-9]{4}-?[A-Z0-9]{4}$/);
    await control(B_CTL, "POST", `/_sim/devices/${encodeURIComponent(B_DEV)}/scan`, {});
    await waitText("#device-state-backup", /^linked$/);
    await waitText("#webhook-state-backup", /^webhook wired$/);
    // The status's live standby readiness (a new config version is read at once).
    for (let attempt = 1; ; attempt++) {
      await page.click("#tenant-refresh");
      try {
        await waitText("#backup-ready", /^ready$/, WAIT / 4);
        break;
      } catch (e) {
        if (attempt === 4) throw e;
      }
    }
    await shot("15-onboard-backup-ready.png");
  });

  await step("onboard: the fleet shows the backup ready (as the health check recorded it)", async () => {
    const report = await healthCheck();
    assert.ok(report.serversProbed >= 3, JSON.stringify(report));
    await page.click("#nav-admin");
    await visible("#view-admin");
    await fleetRow(T).waitFor({ timeout: WAIT });
    await page.waitForFunction((t) => {
      const row = document.querySelector(`#tenants tr:has(a[href="#/tenant/${t}"])`);
      // innerText keeps the cells apart (textContent runs them together).
      return !!row && /(^|\s)ready(\s|$)/.test(row.innerText) && !/not ready|not checked/.test(row.innerText);
    }, T, { timeout: WAIT });
    // A tenant without a backup says so.
    assert.match(await fleetRow(TENANT_ID).innerText(), /no backup/);
    await shot("16-fleet-backup-ready.png");
  });

  await step("onboard: the primary goes down; after three runs the tenant fails over to its ready backup", async () => {
    await control(P_CTL, "PUT", "/_sim/down", { down: true });
    for (let i = 0; i < 3; i++) await healthCheck();
    await page.evaluate((t) => { location.hash = `#/tenant/${t}`; }, T);
    await visible("#view-tenant");
    await page.click("#nav-admin");
    await visible("#view-admin");
    await waitText("#fleet-failovers", new RegExp(T));
    await page.click(`#tenants a[href="#/tenant/${T}"]`);
    await visible("#view-tenant");
    await waitText("#active-url", new RegExp(escapeRe(B_URL)));
    await waitText("#connection-status", /^connected$/);
    await waitText("#switches", /failover/);
    assert.match(await text("#switches .move"), new RegExp(`^primary ${escapeRe(P_URL)} → backup ${escapeRe(B_URL)}$`));
    // The newly active backup's webhook still wired (re-verified after the failover).
    await waitText("#webhook-state-backup", /^webhook wired$/);
    await shot("17-onboard-failed-over.png");
  });

  await step("onboard: a message sent through the backup reaches the backup's server", async () => {
    const key = `${T}-welcome-1`;
    const body = JSON.stringify({ tenantId: T, idempotencyKey: key, to: "6281234567890", content: { type: "text", body: "Welcome aboard" } });
    const event = {
      Records: [{
        messageId: "5b0a6f7e-0000-4000-8000-000000000001",
        receiptHandle: "onboard-1",
        body,
        attributes: { ApproximateReceiveCount: "1", SentTimestamp: String(Date.now()), MessageGroupId: T, MessageDeduplicationId: `${T}#${key}`, ApproximateFirstReceiveTimestamp: String(Date.now()) },
        messageAttributes: {},
        md5OfBody: "",
        eventSource: "aws:sqs",
        eventSourceARN: "arn:aws:sqs:us-east-1:123456789012:wagate-local-outbound.fifo",
        awsRegion: "us-east-1",
      }],
    };
    const r = await fetch(SENDER_INVOKE_URL, { method: "POST", body: JSON.stringify(event), headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(600_000) });
    const answer = await r.text();
    assert.equal(r.status, 200, `sender invoke: ${answer}`);
    assert.deepEqual(JSON.parse(answer).batchItemFailures || [], [], answer);
    const sends = (await control(B_CTL, "GET", "/_sim/requests")).filter((q) => /\/send\/message$/.test(q.path || q.uri || ""));
    assert.equal(sends.length, 1, `the backup's server got ${sends.length} send(s)`);
    assert.ok(JSON.stringify(sends[0]).includes("Welcome aboard"));
    await page.evaluate((t) => { location.hash = `#/tenant/${t}`; }, T);
    await visible("#view-tenant");
    await page.click("#tenant-refresh");
    await waitText("#messages", new RegExp(escapeRe(key)));
    await waitText("#messages", new RegExp(escapeRe(B_URL)));
    await waitText("#device-state-backup", /^linked$/);
    await shot("18-onboard-sent-via-backup.png");
  });

  await step("onboard: a server answering another secret on read-back: the panel says so, the repair's error is shown", async () => {
    await control(B_CTL, "PUT", "/_sim/faults", { device_webhook: "other_secret" });
    await page.click("#tenant-refresh");
    await waitText("#webhook-state-backup", /^webhook secret mismatch$/);
    const answer = page.waitForResponse((r) => r.url().endsWith(`/tenants/${T}/devices/backup/webhook`) && r.request().method() === "POST", { timeout: WAIT });
    await page.click("#wire-backup");
    const r = await answer;
    assert.equal(r.status(), 424);
    assert.equal((await r.json()).error, "read_back_mismatch");
    await page.locator("#flash.bad").waitFor({ state: "visible", timeout: WAIT });
    assert.doesNotMatch(await text("#webhook-state-backup"), /^webhook wired$/);
    await shot("19-onboard-wiring-error.png");
    // The server fixed: one click wires it again.
    await control(B_CTL, "PUT", "/_sim/faults", {});
    await page.click("#tenant-refresh");
    await page.locator("#device-state-backup").waitFor({ timeout: WAIT });
    await waitText("#device-state-backup", /^linked$/);
    if (!/^webhook wired$/.test(await text("#webhook-state-backup"))) await page.click("#wire-backup");
    await waitText("#webhook-state-backup", /^webhook wired$/);
  });
}

