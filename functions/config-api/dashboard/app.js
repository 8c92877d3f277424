// wagate dashboard: plain JavaScript, no dependencies. Talks to the config API it is served
// by (same origin, same path prefix), with the token the user signs in with. Everything the
// API returns is put on the page as text (never as HTML).
"use strict";

// The API lives next to the page: …/dashboard -> … (a stage or cargo lambda's /lambda-url/x).
const BASE = location.pathname.replace(/\/dashboard(\/.*)?$/, "");
const TOKEN_KEY = "wagate.token";
const STATUS_TEXT = {
  connected: "connected",
  logged_out: "logged out",
  endpoint_down: "server down",
  unknown: "unknown",
};
const STATUS_CLASS = { connected: "ok", logged_out: "warn", endpoint_down: "bad", unknown: "unk" };

// `testing`: the endpoint a connection test is running for (its errors name `candidate.*`).
// `gen`: bumped at every sign-in and sign-out; an answer that arrives for an older
// generation is dropped, so nothing of one session lands in the next one's views.
const state = { token: null, claims: null, settings: null, testing: null, gen: 0 };
// Issue 16: the server kinds an endpoint may be, and the credential types each takes (as the
// API validates them): only what a kind supports is offered.
const KINDS = ["gowa", "waha", "evolution", "meta"];
const KIND_LABELS = {
  gowa: "GOWA (go-whatsapp-web-multidevice)",
  waha: "WAHA",
  evolution: "Evolution API v2",
  meta: "Meta WhatsApp Cloud API",
};
const CREDENTIAL_KINDS = { gowa: ["basic", "none"], waha: ["apiKey", "none"], evolution: ["apiKey"], meta: ["meta"] };
const CREDENTIAL_LABELS = {
  basic: "user name and password (basic)",
  none: "none",
  apiKey: "API key",
  bearer: "bearer token",
  meta: "access token, app secret and verify token",
};
// Per kind: the hints of the fields whose meaning changes with it.
const KIND_TEXT = {
  gowa: {
    baseUrl: "The GOWA server this endpoint sends through.",
    credType: "GOWA supports HTTP basic auth (its --basic-auth user:password) or none.",
    device: ["Device id", "The WhatsApp device (X-Device-Id) on that server; empty: the server's only one."],
  },
  waha: {
    baseUrl: "The WAHA server this endpoint sends through.",
    credType: "WAHA's X-Api-Key (its WAHA_API_KEY), or none.",
    device: ["Session", "The WAHA session; empty: default."],
  },
  evolution: {
    baseUrl: "The Evolution API server this endpoint sends through.",
    credType: "Evolution's apikey header (its AUTHENTICATION_API_KEY or the instance's token).",
    device: ["Instance name", "The Evolution instance (required)."],
  },
  meta: {
    baseUrl: "Meta's Graph API, normally https://graph.facebook.com.",
    credType: "A system user access token, the app secret and a verify token of your choice.",
    device: ["Phone number id", "The WhatsApp Business phone number id (digits, required)."],
  },
};
// The name of the main secret of each credential type, as the API calls it.
const SECRET_NAME = { basic: "password", apiKey: "key", bearer: "token", meta: "token" };
const SECRET_LABEL = { basic: "Password", apiKey: "API key", bearer: "Token", meta: "Access token" };

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** el("td", {class: "num", "data-label": "Latency"}, "12 ms") — children are text or nodes. */
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") n.textContent = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return n;
}

function svg(tag, attrs, ...kids) {
  const n = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined) continue;
    n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return n;
}

function fill(id, ...nodes) {
  const n = $(id);
  n.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  return n;
}

function badge(status) {
  return el("span", { class: "badge " + (STATUS_CLASS[status] || "unk") }, STATUS_TEXT[status] || status);
}

function upBadge(up) {
  return el("span", { class: "badge " + (up ? "ok" : "bad") }, up ? "up" : "down");
}

function when(iso) {
  if (!iso) return "never";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const s = Math.round((Date.now() - t.getTime()) / 1000);
  let ago;
  if (s < 5) ago = "just now";
  else if (s < 90) ago = s + " s ago";
  else if (s < 5400) ago = Math.round(s / 60) + " min ago";
  else if (s < 172800) ago = Math.round(s / 3600) + " h ago";
  else ago = Math.round(s / 86400) + " days ago";
  return el("time", { datetime: iso, title: t.toISOString() }, ago);
}

/** Milliseconds to the microsecond, shown with the digits that matter: 0.412 ms, 3.27 ms,
 *  41.5 ms, 1204 ms. */
function ms(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return "—";
  const n = Number(v);
  const digits = n < 10 ? (n < 1 ? 3 : 2) : n < 100 ? 1 : 0;
  return +n.toFixed(digits) + " ms";
}

function table(columns, rows, empty) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  return el(
    "table",
    { class: "stack" },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : null }, c.title)))),
    el(
      "tbody",
      {},
      rows.map((r) =>
        el(
          "tr",
          {},
          columns.map((c) => el("td", { "data-label": c.title, class: c.num ? "num" : null }, c.value(r))),
        ),
      ),
    ),
  );
}

function flash(message, bad) {
  const f = $("flash");
  f.textContent = message;
  f.classList.toggle("bad", !!bad);
  f.hidden = !message;
}

/** The token's claims, unverified: only to choose what to show (the API checks it). */
function decodeClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch (_) {
    return null;
  }
}

function isAdmin() {
  return !!state.claims && String(state.claims.scope || "").split(" ").includes("wagate/admin");
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "HTTP " + status);
    this.status = status;
    this.body = body || {};
  }
}

/** An answer for a session that has ended (signed out, or another sign-in): dropped. */
class StaleAnswer extends Error {}

async function api(method, path, body) {
  const gen = state.gen;
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    if (gen !== state.gen) throw new StaleAnswer();
    throw new ApiError(0, { error: "network", message: "The config API cannot be reached: " + e.message });
  }
  if (gen !== state.gen) throw new StaleAnswer();
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
  }
  if (gen !== state.gen) throw new StaleAnswer();
  if (res.status === 401) {
    signOut((data && data.message) || "Your session ended; sign in again.");
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------
// Sign in and routing
// ---------------------------------------------------------------------------------------

function showView(name) {
  for (const v of ["signin", "tenant", "settings", "admin"]) $("view-" + v).hidden = v !== name;
  for (const a of document.querySelectorAll("#nav a")) a.removeAttribute("aria-current");
  const current = { admin: "nav-admin", tenant: "nav-tenant", settings: "nav-settings" }[name];
  if (current) $(current).setAttribute("aria-current", "page");
}

function signIn(token) {
  const claims = decodeClaims(token);
  if (!claims) return "That is not a JWT (three dot-separated parts).";
  const scopes = String(claims.scope || "").split(" ");
  if (!scopes.includes("wagate/admin") && !scopes.includes("wagate/tenant")) {
    return "This token has neither the wagate/tenant nor the wagate/admin scope.";
  }
  if (claims.exp && claims.exp * 1000 < Date.now()) return "This token has expired.";
  // A new session starts with nothing of the last one.
  state.gen += 1;
  resetViews();
  state.token = token;
  state.claims = claims;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("who").textContent = isAdmin() ? "admin · " + (claims.sub || "") : "tenant " + claims.tenant_id;
  $("signout").hidden = false;
  $("nav").hidden = false;
  $("nav-admin").hidden = !isAdmin();
  return null;
}

function signOut(message) {
  state.gen += 1;
  state.token = null;
  state.claims = null;
  sessionStorage.removeItem(TOKEN_KEY);
  resetViews();
  $("who").textContent = "";
  $("signout").hidden = true;
  $("nav").hidden = true;
  $("token").value = "";
  $("signin-error").textContent = message || "";
  if (location.hash !== "#/signin") location.hash = "#/signin";
  else route();
}

/** Every view back to empty and every piece of state forgotten: after a sign-out (or a new
 *  sign-in) nothing of the previous session is on the page or in memory. */
function resetViews() {
  state.settings = null;
  state.testing = null;
  currentTenant = null;
  fleetTenants = [];
  messageRows = [];
  messagesCursor = null;
  $("messages-more").hidden = true;
  $("tenant-title").textContent = "Tenant";
  stopQr();
  for (const id of ["devices", "status-facts", "chart", "failures", "switches", "messages", "lookup-result", "endpoints", "tenants", "fleet-failovers", "test-results"]) {
    fill(id);
  }
  for (const id of ["chart-summary", "tenants-count", "settings-intro"]) $(id).textContent = "";
  $("status-advice").textContent = "";
  $("status-advice").hidden = true;
  clearLookup();
  $("filter-status").value = "";
  $("filter-text").value = "";
  $("settings-title").textContent = "WhatsApp settings";
  fillSettings(null);
  flash("");
}

function homeHash() {
  return isAdmin() ? "#/admin" : "#/tenant/" + enc(state.claims.tenant_id);
}

function setTenantNav(tenant) {
  $("nav-tenant").href = "#/tenant/" + enc(tenant);
  $("nav-settings").href = "#/tenant/" + enc(tenant) + "/settings";
  $("nav-tenant").hidden = false;
  $("nav-settings").hidden = false;
}

async function route() {
  flash("");
  // A rotated webhook secret is shown once: any navigation (even back to the settings)
  // takes it off the page at once.
  hideRotated();
  if (!state.token) {
    showView("signin");
    $("token").focus();
    return;
  }
  const hash = location.hash || "";
  let m;
  if ((m = hash.match(/^#\/tenant\/([^/]+)\/settings$/))) {
    const t = decodeURIComponent(m[1]);
    setTenantNav(t);
    showView("settings");
    await loadSettings(t);
  } else if ((m = hash.match(/^#\/tenant\/([^/]+)$/))) {
    const t = decodeURIComponent(m[1]);
    setTenantNav(t);
    showView("tenant");
    await loadTenant(t);
  } else if (hash === "#/admin" && isAdmin()) {
    $("nav-tenant").hidden = true;
    $("nav-settings").hidden = true;
    showView("admin");
    await loadAdmin();
  } else {
    location.hash = homeHash();
  }
}

// ---------------------------------------------------------------------------------------
// Tenant status
// ---------------------------------------------------------------------------------------

let currentTenant = null;

async function loadTenant(tenant) {
  const gen = state.gen;
  // Another tenant's page starts without the last one's message lookup.
  if (tenant !== currentTenant) clearLookup();
  currentTenant = tenant;
  $("tenant-title").textContent = "Tenant " + tenant;
  fill("status-facts", el("dt", {}, "Status"), el("dd", {}, "loading…"));
  $("status-advice").hidden = true;
  loadAnalytics(tenant);
  const [status, history] = await Promise.allSettled([
    api("GET", "/tenants/" + enc(tenant) + "/status"),
    api("GET", "/tenants/" + enc(tenant) + "/history?hours=24"),
  ]);
  if (gen !== state.gen || tenant !== currentTenant) return;
  if (status.status === "rejected") {
    const e = status.reason;
    fill(
      "status-facts",
      el("dt", {}, "Status"),
      el("dd", {}, e.status === 404 ? "No WhatsApp configuration yet. Open Settings to add one." : e.message),
    );
    fill("chart");
    fill("failures");
    fill("switches");
    $("chart-summary").textContent = "";
    loadMessages(tenant, null);
    return;
  }
  loadMessages(tenant, null);
  const s = status.value;
  renderStatus(s);
  renderUnusableSecrets(s);
  renderStandby(s);
  renderSilence(s);
  loadDevices(tenant, s);
  if (history.status === "fulfilled") {
    renderChart(history.value, s);
    renderFailures(s, history.value);
  } else {
    fill("chart", el("p", { class: "error" }, "History unavailable: " + history.reason.message));
    renderFailures(s, null);
  }
  renderSwitches(s.recentSwitches || []);
}

/** The endpoint the tenant sends through. */
function activeEndpoint(s) {
  return (s.endpoints || []).find((e) => e.active) || { role: s.activeEndpoint, baseUrl: s.activeBaseUrl };
}

/** Whether the tenant's messages go out, in a few words, from the same facts as the badge. */
function sendingText(s) {
  if (!s.isActive) return "paused: the tenant is inactive";
  const hasBackup = (s.endpoints || []).some((e) => e.role === "backup");
  switch (s.connectionStatus) {
    case "connected":
      return "active";
    case "logged_out":
      return hasBackup
        ? "stopped on this server: its device is not logged in (sends try the other server)"
        : "stopped: the device is not logged in (messages are retried, then dead-lettered)";
    case "endpoint_down":
      return hasBackup
        ? "stopped on this server: it does not answer (sends try the other server)"
        : "stopped: the server does not answer (messages are retried, then dead-lettered)";
    default:
      return s.lastCheckAt ? "unknown: the last check could not tell" : "active (not checked yet)";
  }
}

/** The failed checks in a row of the active server, with what failed. */
function failedChecksText(s) {
  const n = Number(s.consecutiveFailures) || 0;
  if (!n) return "0";
  const what = { logged_out: "device not logged in", endpoint_down: "server down" }[s.connectionStatus];
  return n + (what ? " (" + what + ")" : "");
}

/** What the tenant should do about its status, or null when nothing. */
function adviceFor(s) {
  const a = activeEndpoint(s);
  const server = a.baseUrl || "the server";
  const hasBackup = (s.endpoints || []).some((e) => e.role === "backup");
  if (!s.isActive) {
    return { bad: false, text: "This tenant is inactive: it neither sends nor receives messages. Tick “Active” in Settings to turn it back on." };
  }
  if (s.connectionStatus === "logged_out") {
    const device = a.deviceId ? "The WhatsApp device “" + a.deviceId + "”" : "The WhatsApp device";
    return {
      bad: true,
      text: device + " on " + server + " is not logged in, so messages cannot be sent. Link it again: open the server's device page and scan its QR code with the phone (WhatsApp → Linked devices), or use a pairing code. The status turns connected at the first health check after that (they run every minute).",
    };
  }
  if (s.connectionStatus === "endpoint_down") {
    return {
      bad: true,
      text: "The server " + server + " does not answer its health check. Check that it runs and that AWS can reach it. " +
        (hasBackup
          ? "After a few failed checks in a row the tenant fails over to its backup server by itself."
          : "Add a backup server in Settings to fail over by itself next time."),
    };
  }
  if (s.connectionStatus === "unknown" && !s.lastCheckAt) {
    return { bad: false, text: "Not checked yet: the health check looks at every server once a minute." };
  }
  return null;
}

function renderStatus(s) {
  const a = activeEndpoint(s);
  const facts = [
    [
      "Status",
      el(
        "span",
        {},
        el("span", { id: "connection-status" }, badge(s.connectionStatus)),
        s.connectionStatus !== "connected" && s.connectionStatusAt ? [" since ", when(s.connectionStatusAt)] : null,
      ),
    ],
    ["Sending", el("span", { id: "sending" }, sendingText(s))],
    [
      "Active server",
      el("span", {}, el("strong", {}, s.activeEndpoint), " · ", el("code", { id: "active-url" }, s.activeBaseUrl)),
    ],
    ["Device", a.deviceId ? el("code", {}, a.deviceId) : "the server's only session"],
    ["Last check", when(s.lastCheckAt)],
    ["Latency", ms(s.latencyMs)],
    ["Failed checks in a row", el("span", { id: "failed-checks" }, failedChecksText(s))],
    ["Config version", String(s.version)],
  ];
  for (const e of s.endpoints || []) {
    if (!e.active && e.health) {
      facts.push([e.role === "backup" ? "Backup server" : "Primary server", el("span", {}, upBadge(e.health.up), " ", el("code", {}, e.baseUrl))]);
    } else if (!e.active) {
      facts.push([e.role === "backup" ? "Backup server" : "Primary server", el("span", {}, "not probed yet · ", el("code", {}, e.baseUrl))]);
    }
  }
  // Issue 16: a tenant with a Meta endpoint: whether Meta's callback handshake ever passed.
  if ("callbackVerifiedAt" in s) {
    facts.push([
      "Meta callback",
      el(
        "span",
        { id: "meta-callback-status" },
        s.callbackVerifiedAt ? ["verified by Meta ", when(s.callbackVerifiedAt)] : "never verified: paste the callback URL and verify token (Settings) in Meta's console",
      ),
    ]);
  }
  fill("status-facts", facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const advice = adviceFor(s);
  const box = $("status-advice");
  box.textContent = advice ? advice.text : "";
  box.classList.toggle("bad", !!(advice && advice.bad));
  box.hidden = !advice;
}

/** Stored secrets KMS refuses to open (status `unusableSecrets`): named, with what to do. */
function renderUnusableSecrets(s) {
  const bad = s.unusableSecrets || [];
  if (!bad.length) return;
  $("status-facts").append(
    el("dt", {}, "Unusable secrets"),
    el(
      "dd",
      { id: "unusable-secrets" },
      el("span", { class: "badge bad" }, "cannot be opened"),
      " ",
      bad.map((f) => el("code", {}, f.field)).flatMap((c, i) => (i ? [", ", c] : [c])),
      " · set each again in Settings (or rotate the webhook secret); tests and switches that need it are refused until then",
    ),
  );
}

/** A line chart of latency per server over the window; down points as red dots. `status`
 *  adds what the server's points cannot show: a device that is not logged in. */
function renderChart(h, status) {
  // Drawn at the size it is shown, so labels stay readable on a phone.
  const W = Math.round(Math.max(300, Math.min(1100, $("chart").clientWidth || 720)));
  const H = W < 500 ? 200 : 240;
  const pad = { l: 48, r: 12, t: 10, b: 28 };
  const since = new Date(h.since).getTime();
  const now = Date.now();
  const series = h.endpoints.map((e) => ({
    role: e.role,
    url: e.baseUrl,
    active: e.active,
    points: e.points.map((p) => ({ t: new Date(p.at).getTime(), up: p.up, ms: p.latencyMs, error: p.error })),
  }));
  const all = series.flatMap((s) => s.points);
  if (!all.length) {
    fill("chart", el("p", { class: "empty" }, "No health checks recorded in the last 24 h yet."));
    $("chart-summary").textContent = "";
    return;
  }
  // A nice scale: 4 steps of 1, 2 or 5 times a power of ten (latencies are fractions of a
  // millisecond on a near server).
  const maxMs = Math.max(0.1, ...all.filter((p) => p.up && p.ms != null).map((p) => p.ms));
  const raw = maxMs / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const stepMs = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw);
  const yMax = stepMs * 4;
  // The time axis spans the data (at least 15 min), within the 24 h window.
  const first = Math.min(...all.map((p) => p.t));
  const span = Math.min(now - since, Math.max(15 * 60e3, (now - first) * 1.05));
  const start = now - span;
  const x = (t) => pad.l + ((t - start) / span) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = stepMs * i;
    parts.push(svg("line", { class: "grid-line", x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }));
    parts.push(svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" }, ms(v)));
  }
  const ago = (d) => (d === 0 ? "now" : d >= 3600e3 ? "-" + +(d / 3600e3).toFixed(1) + " h" : "-" + Math.round(d / 60e3) + " min");
  for (let i = 4; i >= 0; i--) {
    const d = (span / 4) * i;
    parts.push(svg("text", { x: x(now - d), y: H - 8, "text-anchor": i === 4 ? "start" : i === 0 ? "end" : "middle" }, ago(d)));
  }
  parts.push(svg("line", { class: "axis", x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }));
  for (const s of series) {
    // Break the line where the server was down.
    let d = "";
    let pen = false;
    for (const p of s.points) {
      if (p.up && p.ms != null) {
        d += (pen ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.ms).toFixed(1) + " ";
        pen = true;
      } else {
        pen = false;
      }
    }
    if (d) parts.push(svg("path", { class: "line-" + s.role, d }));
    for (const p of s.points) {
      if (p.up && p.ms != null) {
        parts.push(svg("circle", { class: "dot-" + s.role, cx: x(p.t), cy: y(p.ms), r: 2.5 }, svg("title", {}, s.role + ": " + ms(p.ms) + " at " + new Date(p.t).toLocaleString())));
      }
    }
    for (const p of s.points) {
      if (!p.up) {
        parts.push(
          svg("circle", { class: "down", cx: x(p.t), cy: H - pad.b, r: 4 }, svg("title", {}, s.role + " down: " + (p.error || "no answer") + " at " + new Date(p.t).toLocaleString())),
        );
      }
    }
  }
  const summary = series
    .map((s) => {
      const up = s.points.filter((p) => p.up && p.ms != null).map((p) => p.ms).sort((a, b) => a - b);
      const down = s.points.filter((p) => !p.up).length;
      const med = up.length ? up[Math.floor(up.length / 2)] : null;
      // The server's own health; the tenant's device is another matter, said next to it.
      let text = s.role + ": " + s.points.length + " checks, median " + ms(med) + ", server down in " + down;
      if (s.active && status && status.connectionStatus === "logged_out") text += " (server up, but the device is not logged in)";
      return text;
    })
    .join("; ");
  const chart = svg(
    "svg",
    { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Latency of the tenant's servers over the last 24 hours. " + summary },
    parts,
  );
  const legend = el(
    "div",
    { class: "legend" },
    series.map((s) => el("span", {}, el("span", { class: "swatch " + s.role }), s.role + " ", el("code", {}, s.url))),
    el("span", {}, el("span", { class: "swatch down" }), "down"),
  );
  fill("chart", chart, legend);
  $("chart-summary").textContent = summary;
}

// ---- Analytics per endpoint (issue 16) --------------------------------------------------
// GET /tenants/{id}/analytics: counts, rates and latency percentiles per window (1h, 24h,
// 7d) for the tenant and each endpoint, and the last 24 h by hour, drawn here as inline SVG.

const analyticsState = { data: null, window: "24h" };

function pct(v) {
  return v === null || v === undefined ? "—" : +(v * 100).toFixed(1) + " %";
}

async function loadAnalytics(tenant) {
  const gen = state.gen;
  fill("analytics", el("p", { class: "empty" }, "loading…"));
  fill("analytics-chart");
  $("analytics-summary").textContent = "";
  let a;
  try {
    a = await api("GET", "/tenants/" + enc(tenant) + "/analytics");
  } catch (e) {
    if (gen !== state.gen || tenant !== currentTenant) return;
    fill("analytics", el("p", { class: "error" }, "Analytics unavailable: " + e.message));
    fill("analytics-windows");
    return;
  }
  if (gen !== state.gen || tenant !== currentTenant) return;
  analyticsState.data = a;
  renderAnalytics();
}

function renderAnalytics() {
  const a = analyticsState.data;
  if (!a) return;
  fill(
    "analytics-windows",
    a.windows.map((w) =>
      el(
        "button",
        {
          type: "button",
          class: "quiet",
          "aria-pressed": w.window === analyticsState.window ? "true" : "false",
          onclick: () => {
            analyticsState.window = w.window;
            renderAnalytics();
          },
        },
        w.window,
      ),
    ),
  );
  const w = a.windows.find((x) => x.window === analyticsState.window) || a.windows[0];
  const rows = [{ label: "All endpoints", stats: w.tenant }].concat(
    w.endpoints.map((e) => ({ label: e.endpoint, kind: e.kind, role: e.role, stats: e })),
  );
  const n = (k) => (r) => String(r.stats[k]);
  fill(
    "analytics",
    table(
      [
        { title: "Endpoint", value: (r) => (r.kind ? [el("code", {}, r.label), " " + r.kind + (r.role ? ", " + r.role : "")] : r.role ? [el("code", {}, r.label), " " + r.role] : r.label) },
        { title: "Sent", num: true, value: n("sent") },
        { title: "Failed", num: true, value: n("failed") },
        { title: "Unknown", num: true, value: n("unknown") },
        { title: "Delivered", num: true, value: (r) => pct(r.stats.deliveryRate) },
        { title: "Read", num: true, value: (r) => pct(r.stats.readRate) },
        { title: "p50", num: true, value: (r) => ms(r.stats.latencyMs.p50) },
        { title: "p90", num: true, value: (r) => ms(r.stats.latencyMs.p90) },
        { title: "p99", num: true, value: (r) => ms(r.stats.latencyMs.p99) },
      ],
      w.tenant.sent + w.tenant.failed + w.tenant.unknown + w.tenant.pending ? rows : [],
      "No messages in the last " + w.window + ".",
    ),
    a.truncated ? el("p", { class: "hint" }, "Only the newest " + a.maxRecords + " messages of the last 7 days are counted.") : null,
  );
  renderHourlyChart(a.hourly);
}

/** The last 24 h by hour: stacked bars of sent, failed and unknown. */
function renderHourlyChart(hours) {
  const total = hours.reduce((t, h) => t + h.sent + h.failed + h.unknown, 0);
  if (!total) {
    fill("analytics-chart");
    $("analytics-summary").textContent = "No messages in the last 24 h.";
    return;
  }
  const W = Math.round(Math.max(300, Math.min(1100, $("analytics-chart").clientWidth || 720)));
  const H = 180;
  const pad = { l: 40, r: 8, t: 8, b: 24 };
  const peak = Math.max(1, ...hours.map((h) => h.sent + h.failed + h.unknown));
  const step = Math.max(1, Math.ceil(peak / 4));
  const yMax = step * 4;
  const bw = (W - pad.l - pad.r) / hours.length;
  const y = (v) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    parts.push(svg("line", { class: "grid-line", x1: pad.l, x2: W - pad.r, y1: y(step * i), y2: y(step * i) }));
    parts.push(svg("text", { x: pad.l - 6, y: y(step * i) + 4, "text-anchor": "end" }, step * i));
  }
  hours.forEach((h, i) => {
    let base = 0;
    const x = pad.l + i * bw + 1;
    const label = new Date(h.from).toLocaleString() + ": " + h.sent + " sent, " + h.failed + " failed, " + h.unknown + " unknown";
    for (const k of ["sent", "failed", "unknown"]) {
      if (!h[k]) continue;
      parts.push(svg("rect", { class: "bar-" + k, x, width: Math.max(1, bw - 2), y: y(base + h[k]), height: y(base) - y(base + h[k]) }, svg("title", {}, label)));
      base += h[k];
    }
  });
  for (const [i, text] of [[0, "-24 h"], [12, "-12 h"], [24, "now"]]) {
    parts.push(svg("text", { x: pad.l + i * bw, y: H - 6, "text-anchor": i === 0 ? "start" : i === 24 ? "end" : "middle" }, text));
  }
  parts.push(svg("line", { class: "axis", x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }));
  const sum = (k) => hours.reduce((t, h) => t + h[k], 0);
  const summary = "Last 24 h: " + sum("sent") + " sent, " + sum("failed") + " failed, " + sum("unknown") + " unknown.";
  const chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Messages per hour over the last 24 hours. " + summary }, parts);
  const legend = el(
    "div",
    { class: "legend" },
    ["sent", "failed", "unknown"].map((k) => el("span", {}, el("span", { class: "swatch bar-" + k }), k)),
  );
  fill("analytics-chart", chart, legend);
  $("analytics-summary").textContent = summary;
}

function renderFailures(status, history) {
  const rows = [];
  if (history) {
    for (const e of history.endpoints) {
      for (const p of e.points) if (!p.up) rows.push({ at: p.at, role: e.role, url: e.baseUrl, error: p.error || "no answer" });
    }
  }
  rows.sort((a, b) => (a.at < b.at ? 1 : -1));
  if (!rows.length) {
    for (const f of status.recentFailures || []) rows.push({ at: f.at, role: "", url: f.baseUrl, error: f.error });
  }
  // Checks the tenant failed on a server that is up (its device): the server's points do not
  // show them, so they are listed from the status, first, as they are the current problem.
  const n = Number(status.consecutiveFailures) || 0;
  if (n > 0 && status.connectionStatus !== "endpoint_down") {
    const a = activeEndpoint(status);
    const what = status.connectionStatus === "logged_out"
      ? "device " + (a.deviceId ? a.deviceId + " " : "") + "not logged in"
      : "not usable";
    rows.unshift({ at: status.connectionStatusAt, role: a.role, url: a.baseUrl, error: what + " (" + n + (n === 1 ? " failed check" : " failed checks") + " in a row)" });
  }
  fill(
    "failures",
    table(
      [
        { title: "When", value: (r) => when(r.at) },
        { title: "Server", value: (r) => el("span", {}, r.role ? r.role + " " : "", el("code", {}, r.url)) },
        { title: "Error", value: (r) => r.error },
      ],
      rows.slice(0, 20),
      "No failed checks in the last 24 h.",
    ),
  );
}

/** One side of a switch: its role and server, as much of them as the record holds. */
function side(role, url) {
  if (!role && !url) return null;
  return el("span", {}, role ? role + " " : "", url ? el("code", {}, url) : null);
}

/** What a switch moved: `primary http://a → backup http://b`; a record that names neither
 *  side (an older one) shows its detail instead. */
function moveOf(r) {
  const from = side(r.from, r.fromEndpoint);
  const to = side(r.to, r.toEndpoint);
  if (!from && !to) return r.detail || "—";
  return el("span", { class: "move" }, from || "none", " → ", to || "none");
}

function renderSwitches(items) {
  fill(
    "switches",
    table(
      [
        { title: "When", value: (r) => when((r.at || "").split("#")[0]) },
        { title: "What", value: (r) => r.action.replace(/_/g, " ") },
        { title: "From → to", value: moveOf },
        { title: "Why", value: (r) => r.reason || (r.who ? "by " + r.who : "") },
      ],
      items,
      "No failovers or switches recorded.",
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Recent messages (GET /tenants/{id}/messages, newest first; a key opens its record)
// ---------------------------------------------------------------------------------------

const MESSAGES_PAGE = 20;
let messagesCursor = null;
let messageRows = [];

async function loadMessages(tenant, cursor) {
  if (!cursor) {
    messageRows = [];
    fill("messages", el("p", { class: "empty" }, "loading…"));
  }
  const query = "?limit=" + MESSAGES_PAGE + (cursor ? "&cursor=" + enc(cursor) : "");
  try {
    const page = await api("GET", "/tenants/" + enc(tenant) + "/messages" + query);
    if (tenant !== currentTenant) return;
    messageRows = messageRows.concat(page.items || []);
    messagesCursor = page.nextCursor || null;
    renderMessages();
  } catch (e) {
    if (e instanceof StaleAnswer || tenant !== currentTenant) return;
    fill("messages", el("p", { class: "error" }, "Messages unavailable: " + e.message));
    $("messages-more").hidden = true;
  }
}

function renderMessages() {
  const server = (m) => (m.endpoint ? el("span", {}, (m.endpointRole || "") + " ", el("code", {}, m.endpoint)) : "—");
  fill(
    "messages",
    table(
      [
        {
          title: "Key",
          value: (m) =>
            el(
              "button",
              {
                type: "button",
                class: "quiet message-open",
                "aria-label": "Open message " + m.idempotencyKey,
                onclick: () => openMessage(m.idempotencyKey),
              },
              m.idempotencyKey,
            ),
        },
        { title: "To", value: (m) => m.to || "—" },
        { title: "State", value: (m) => el("span", { class: "state state-" + m.state }, m.state.replace("_", " ")) },
        { title: "Server", value: server },
        { title: "Queued", value: (m) => when(m.createdAt) },
        { title: "Sent", value: (m) => (m.sentAt ? when(m.sentAt) : "—") },
        { title: "Delivered", value: (m) => (m.deliveredAt ? when(m.deliveredAt) : "—") },
        { title: "Read", value: (m) => (m.readAt ? when(m.readAt) : "—") },
      ],
      messageRows,
      "No messages sent for this tenant yet.",
    ),
  );
  $("messages-more").hidden = !messagesCursor;
}

/** Shows one message's whole record in "Find a message". */
function openMessage(key) {
  $("lookup-key").value = key;
  lookupMessage(null).then(() => $("lookup-result").focus({ preventScroll: false }));
}

function clearLookup() {
  $("lookup-key").value = "";
  $("lookup-key").removeAttribute("aria-invalid");
  fill("lookup-result");
}

async function lookupMessage(ev) {
  if (ev) ev.preventDefault();
  const key = $("lookup-key").value.trim();
  const out = $("lookup-result");
  if (!key) {
    out.replaceChildren(el("p", { class: "error" }, "Enter the idempotency key the platform sent the message with."));
    $("lookup-key").setAttribute("aria-invalid", "true");
    return;
  }
  $("lookup-key").removeAttribute("aria-invalid");
  const gen = state.gen;
  try {
    const m = await api("GET", "/tenants/" + enc(currentTenant) + "/messages/" + enc(key));
    if (gen !== state.gen) return;
    const rows = [
      ["State", m.state],
      ["To", m.to],
      ["Content", m.contentType],
      ["Attempts", String(m.attempts)],
      ["Server", m.endpoint ? (m.endpointRole || "") + " " + m.endpoint : null],
      ["Provider message id", m.providerMessageId],
      ["Error", m.errorClass ? m.errorClass + (m.reason ? ": " + m.reason : "") : m.reason],
      ["Queued", m.createdAt],
      ["Sent", m.sentAt],
      ["Delivered", m.deliveredAt],
      ["Read", m.readAt],
    ].filter(([, v]) => v);
    out.replaceChildren(el("dl", { class: "facts", id: "lookup-facts" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  } catch (e) {
    if (e instanceof StaleAnswer || gen !== state.gen) return;
    out.replaceChildren(el("p", { class: "error" }, e.status === 404 ? "No message with that key (records are kept for the retention period)." : e.message));
  }
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

/** The inputs of one endpoint, ids `f-<role>-<name>`, each tied to its API field name. */
function endpointFields(role) {
  const id = (n) => "f-" + role + "-" + n;
  const field = (name, label, input, hint) =>
    el(
      "div",
      { class: "field" + (name === "baseUrl" || name === "kind" ? " full" : ""), id: id(name) + "-field" },
      el("label", { for: id(name) }, label),
      input,
      el("p", { class: "hint", id: id(name) + "-hint" }, hint || ""),
      el("p", { class: "error", id: id(name) + "-err" }),
    );
  const input = (name, type, api, extra) =>
    el("input", Object.assign({ id: id(name), type, "data-field": role + "." + api, autocomplete: "off", spellcheck: "false", "aria-describedby": id(name) + "-hint " + id(name) + "-err" }, extra || {}));
  // The endpoint's server kind: the primary's is the tenant's `provider`, the backup's its own.
  const kind = el(
    "select",
    { id: id("kind"), "data-field": role === "primary" ? "provider" : "backup.provider", "aria-describedby": id("kind") + "-hint " + id("kind") + "-err" },
    KINDS.map((k) => el("option", { value: k }, KIND_LABELS[k])),
  );
  // The credential types the kind supports; setEndpoint adds a saved type the kind does not
  // support, marked, so the form never hides what is stored.
  const credType = el("select", { id: id("credType"), "data-field": role + ".credentials.type", "aria-describedby": id("credType") + "-hint " + id("credType") + "-err" });
  const secretHint = SECRET_HINT_NEW;
  const f = {
    kind: field("kind", "Server kind", kind, "Each endpoint may be of its own kind (e.g. a GOWA primary with a Meta backup)."),
    baseUrl: field("baseUrl", "Server URL", input("baseUrl", "url", "baseUrl", { placeholder: "https://wa.example.com", inputmode: "url" })),
    credType: field("credType", "Authentication", credType),
    username: field("username", "User name", input("username", "text", "credentials.username")),
    secret: field("secret", "Password", input("secret", "password", "credentials.password", { autocomplete: "new-password" }), secretHint),
    appSecret: field("appSecret", "App secret", input("appSecret", "password", "credentials.appSecret", { autocomplete: "new-password" }), secretHint),
    verifyToken: field("verifyToken", "Verify token", input("verifyToken", "password", "credentials.verifyToken", { autocomplete: "new-password" }), secretHint),
    deviceId: field("deviceId", "Device id", input("deviceId", "text", "deviceId")),
    cidrs: field("cidrs", "Allowed webhook sources", input("cidrs", "text", "webhookSourceCidrs", { placeholder: "203.0.113.0/24, 198.51.100.7/32" }),
      "Evolution signs no webhook body: only these addresses (CIDRs, comma-separated) may post its webhooks. Required."),
    region: field("region", "Region", input("region", "text", "region", { placeholder: "eu-west-1" })),
  };
  const nodes = Object.values(f);
  /** Offers the credential types of the selected kind (keeping the chosen one if it fits). */
  const setKind = () => {
    const k = kind.value;
    const before = credType.value;
    const types = CREDENTIAL_KINDS[k];
    credType.replaceChildren(...types.map((t) => el("option", { value: t }, CREDENTIAL_LABELS[t])));
    credType.value = types.includes(before) ? before : types[0];
    sync();
  };
  const sync = () => {
    const k = kind.value;
    const t = credType.value;
    const text = KIND_TEXT[k];
    $(id("baseUrl") + "-hint").textContent = text.baseUrl;
    $(id("credType") + "-hint").textContent = text.credType;
    f.username.hidden = t !== "basic";
    f.secret.hidden = t === "none";
    f.appSecret.hidden = t !== "meta";
    f.verifyToken.hidden = t !== "meta";
    f.cidrs.hidden = k !== "evolution";
    f.deviceId.querySelector("label").textContent = text.device[0];
    $(id("deviceId") + "-hint").textContent = text.device[1];
    const secret = $(id("secret"));
    secret.dataset.field = role + ".credentials." + (SECRET_NAME[t] || "password");
    f.secret.querySelector("label").textContent = SECRET_LABEL[t] || "Secret";
    // "Leave empty to keep" only where there is a saved secret of this type to keep.
    const saved = savedCredentials[role];
    const keeps = !!(saved && saved.fingerprint && saved.type === t);
    const keep = (name, fp) => {
      $(id(name) + "-hint").textContent = keeps && fp ? SECRET_HINT_SAVED : SECRET_HINT_NEW;
      $(id(name)).placeholder = keeps && fp ? "saved (" + fp + ")" : "";
    };
    keep("secret", saved && saved.fingerprint);
    keep("appSecret", saved && saved.appSecretFingerprint);
    keep("verifyToken", saved && saved.verifyTokenFingerprint);
  };
  kind.addEventListener("change", setKind);
  credType.addEventListener("change", sync);
  return { nodes, sync, setKind };
}

const endpointForms = {};
// The saved credentials of each endpoint (type, fingerprints), or null: what the form can keep.
const savedCredentials = { primary: null, backup: null };
const SECRET_HINT_NEW = "Write-only: stored sealed, never shown again.";
const SECRET_HINT_SAVED = "Write-only: leave empty to keep the saved one.";

function buildSettingsForm() {
  for (const role of ["primary", "backup"]) {
    const f = endpointFields(role);
    document.querySelector('.fields[data-endpoint="' + role + '"]').replaceChildren(...f.nodes);
    endpointForms[role] = f;
    f.setKind();
  }
  $("has-backup").addEventListener("change", () => {
    document.querySelector('.fields[data-endpoint="backup"]').hidden = !$("has-backup").checked;
  });
  $("settings-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    testAndSave(false);
  });
  $("save-anyway").addEventListener("click", () => testAndSave(true));
  $("test-btn").addEventListener("click", () => runTest());
  $("settings-form").addEventListener("input", () => {
    $("save-anyway").hidden = true;
  });
  $("webhook-url-copy").addEventListener("click", () => copyValue("webhook-url", "webhook-url-copied"));
  $("rotate-secret-btn").addEventListener("click", () => rotateWebhookSecret());
  $("rotated-copy").addEventListener("click", () => copyValue("rotated-secret", "rotated-copied"));
  $("meta-callback-url-copy").addEventListener("click", () => copyValue("meta-callback-url", "meta-callback-copied"));
}

/** The server kind of an endpoint of `cfg` (its own, else the tenant's). */
function kindOf(cfg, e) {
  return (e && e.provider) || (cfg && cfg.provider) || "gowa";
}

function setEndpoint(role, e, kind) {
  const id = (n) => "f-" + role + "-" + n;
  savedCredentials[role] = e ? e.credentials : null;
  $(id("kind")).value = kind;
  const select = $(id("credType"));
  endpointForms[role].setKind();
  for (const o of [...select.options]) if (o.dataset.unsupported) o.remove();
  const type = e ? e.credentials.type : CREDENTIAL_KINDS[kind][0];
  if (!CREDENTIAL_KINDS[kind].includes(type)) {
    select.append(el("option", { value: type, "data-unsupported": "true" }, (CREDENTIAL_LABELS[type] || type) + " (not supported by " + KIND_LABELS[kind] + ")"));
  }
  $(id("baseUrl")).value = e ? e.baseUrl : "";
  select.value = type;
  $(id("username")).value = (e && e.credentials.username) || "";
  for (const n of ["secret", "appSecret", "verifyToken"]) $(id(n)).value = "";
  $(id("deviceId")).value = (e && e.deviceId) || "";
  $(id("cidrs")).value = ((e && e.webhookSourceCidrs) || []).join(", ");
  $(id("region")).value = (e && e.region) || "";
  endpointForms[role].sync();
}

function readEndpoint(role, saved) {
  const id = (n) => "f-" + role + "-" + n;
  const kind = $(id("kind")).value;
  const type = $(id("credType")).value;
  const credentials = { type };
  if (type === "basic") credentials.username = $(id("username")).value.trim();
  const secret = $(id("secret")).value;
  if (secret && type !== "none") credentials[SECRET_NAME[type]] = secret;
  if (type === "meta") {
    if ($(id("appSecret")).value) credentials.appSecret = $(id("appSecret")).value;
    if ($(id("verifyToken")).value) credentials.verifyToken = $(id("verifyToken")).value;
  }
  const out = { baseUrl: $(id("baseUrl")).value.trim(), credentials };
  const device = $(id("deviceId")).value.trim();
  const region = $(id("region")).value.trim();
  if (device) out.deviceId = device;
  if (region) out.region = region;
  // Evolution's allowlist is in the form; the other kinds keep what is saved (set through the API).
  const cidrs = kind === "evolution"
    ? $(id("cidrs")).value.split(",").map((c) => c.trim()).filter((c) => c)
    : (saved && saved.webhookSourceCidrs) || [];
  if (cidrs.length) out.webhookSourceCidrs = cidrs;
  return out;
}

async function loadSettings(tenant) {
  const gen = state.gen;
  currentTenant = tenant;
  clearErrors();
  $("test-report").hidden = true;
  $("save-anyway").hidden = true;
  $("settings-title").textContent = "WhatsApp settings · " + tenant;
  // Until the saved settings are in, the page says so (and nothing of an earlier load).
  $("settings-intro").textContent = "Loading the saved settings…";
  let cfg = null;
  try {
    cfg = await api("GET", "/tenants/" + enc(tenant) + "/whatsapp-config");
  } catch (e) {
    if (e instanceof StaleAnswer || gen !== state.gen) return;
    if (e.status !== 404) {
      flash(e.message, true);
      return;
    }
  }
  if (gen !== state.gen || tenant !== currentTenant) return;
  fillSettings(cfg);
}

/** The settings form for `cfg` (null: a tenant without a configuration, or nobody). */
function fillSettings(cfg) {
  state.settings = cfg;
  setEndpoint("primary", cfg && cfg.primary, kindOf(cfg, cfg && cfg.primary));
  setEndpoint("backup", cfg && cfg.backup, kindOf(cfg, cfg && cfg.backup));
  $("has-backup").checked = !!(cfg && cfg.backup);
  document.querySelector('.fields[data-endpoint="backup"]').hidden = !$("has-backup").checked;
  $("f-failback").value = cfg ? cfg.failback : "automatic";
  $("f-active").checked = cfg ? cfg.isActive : true;
  $("f-webhook-secret").value = "";
  $("webhook-secret-field").hidden = !!cfg;
  $("webhook-url").value = (cfg && cfg.webhookUrl) || "";
  $("webhook-url-field").hidden = !(cfg && cfg.webhookUrl);
  $("webhook-url-copied").textContent = "";
  $("rotate-field").hidden = !cfg;
  hideRotated();
  loadMetaCallback(cfg);
  clearErrors();
  $("test-report").hidden = true;
  fill("test-results");
  $("save-anyway").hidden = true;
  $("settings-intro").textContent = !state.token
    ? ""
    : cfg
      ? "Version " + cfg.version + ", last changed " + new Date(cfg.updatedAt).toLocaleString() + "."
      : "This tenant has no WhatsApp configuration yet: fill in the server it uses. Its webhook URL shows here once it is saved.";
}

/** Copies the value of `inputId`; says so in `statusId`, or selects it for Ctrl+C. */
async function copyValue(inputId, statusId) {
  const input = $(inputId);
  try {
    await navigator.clipboard.writeText(input.value);
    $(statusId).textContent = "Copied.";
  } catch (_) {
    input.focus();
    input.select();
    $(statusId).textContent = "Selected: press Ctrl+C (⌘C on a Mac) to copy.";
  }
}

function hideRotated() {
  $("rotated-secret").value = "";
  $("rotated-hint").textContent = "";
  $("rotated-copied").textContent = "";
  $("rotated").hidden = true;
}

/** A new webhook secret: shown once, here, until the page leaves this view. */
async function rotateWebhookSecret() {
  const cfg = state.settings;
  if (!cfg) return;
  const gen = state.gen;
  const tenant = currentTenant;
  hideRotated();
  flash("");
  $("rotate-secret-btn").disabled = true;
  try {
    const r = await api("POST", "/tenants/" + enc(tenant) + "/whatsapp-config/rotate-webhook-secret", { version: cfg.version });
    if (gen !== state.gen || tenant !== currentTenant) return;
    $("rotated-secret").value = r.secret;
    $("rotated-hint").textContent =
      "Id " + r.id + ". The previous secret keeps working until " + new Date(r.previousExpireAt).toLocaleString() +
      ". This secret is not shown again: if you lose it, rotate again.";
    $("rotated").hidden = false;
    // The config moved on (a new version): keep the form's version in step, not its edits.
    state.settings = r.config;
    $("settings-intro").textContent =
      "Version " + r.config.version + ", last changed " + new Date(r.config.updatedAt).toLocaleString() + ".";
    $("rotated-secret").focus();
    $("rotated-secret").select();
  } catch (e) {
    if (e instanceof StaleAnswer || gen !== state.gen) return;
    if (e.status === 409) flash("Someone changed this configuration meanwhile. Reload the page; no secret was made.", true);
    else flash(e.message, true);
  } finally {
    $("rotate-secret-btn").disabled = false;
  }
}

function formBody() {
  const cfg = state.settings;
  // The tenant's kind is the primary's; a backup of another kind names its own.
  const provider = $("f-primary-kind").value;
  const body = {
    provider,
    primary: readEndpoint("primary", cfg && cfg.primary),
    failback: $("f-failback").value,
    isActive: $("f-active").checked,
  };
  if ($("has-backup").checked) {
    body.backup = readEndpoint("backup", cfg && cfg.backup);
    const kind = $("f-backup-kind").value;
    if (kind !== provider) body.backup.provider = kind;
  }
  if (cfg) {
    body.version = cfg.version;
    // Keep which server is active unless the backup is being removed.
    body.activeEndpoint = body.backup ? cfg.activeEndpoint : "primary";
  } else {
    const s = $("f-webhook-secret").value;
    body.webhookSecrets = [{ id: "default", secret: s || undefined }];
  }
  return body;
}

function clearErrors() {
  const box = $("settings-errors");
  box.hidden = true;
  box.replaceChildren();
  for (const n of document.querySelectorAll("#settings-form [aria-invalid]")) n.removeAttribute("aria-invalid");
  for (const n of document.querySelectorAll("#settings-form .error")) n.textContent = "";
}

/** Shows the API's field errors next to their inputs and in a summary at the top. */
function showErrors(message, fields) {
  clearErrors();
  flash("");
  const box = $("settings-errors");
  const items = [];
  for (const f of fields || []) {
    // The candidate of a connection test is the endpoint being tested.
    const name = f.field.replace(/^candidate\./, (state.testing || "primary") + ".");
    const input = document.querySelector('#settings-form [data-field="' + CSS.escape(name) + '"]') ||
      document.querySelector('#settings-form [data-field^="' + CSS.escape(name.split(".").slice(0, 2).join(".")) + '"]');
    if (input) {
      input.setAttribute("aria-invalid", "true");
      const err = $(input.id + "-err");
      if (err) err.textContent = f.reason;
    }
    const where = { primary: "primary server", backup: "backup server" }[name.split(".")[0]];
    const label = input && input.labels.length ? input.labels[0].textContent : null;
    const text = (label && where ? label + " (" + where + ")" : name) + ": " + f.reason;
    items.push(
      el(
        "li",
        { "data-field": name },
        input ? el("a", { href: "#" + input.id, onclick: (ev) => { ev.preventDefault(); input.focus(); } }, text) : text,
      ),
    );
  }
  const title = !items.length
    ? message
    : (items.length === 1 ? "One field needs" : items.length + " fields need") + " attention; nothing was saved.";
  box.replaceChildren(el("strong", {}, title), items.length ? el("ul", {}, items) : null);
  box.hidden = false;
  box.focus();
}

function renderTest(reports) {
  const blocks = reports.map((r) =>
    el(
      "div",
      { class: "test-endpoint" },
      el("h3", {}, r.role + " ", el("code", {}, r.baseUrl), " ", el("span", { class: "badge " + (r.ok ? "ok" : "bad") }, r.ok ? "passed" : "failed")),
      el(
        "ul",
        { class: "checks" },
        r.checks.map((c) =>
          el(
            "li",
            { "data-outcome": c.outcome },
            el("span", { class: "badge " + ({ pass: "ok", fail: "bad" }[c.outcome] || "unk") }, c.outcome),
            el("strong", {}, c.name),
            el("span", {}, c.reason + (c.latencyMs != null && !/\bms\b/.test(c.reason) ? " (" + c.latencyMs + " ms)" : "")),
          ),
        ),
      ),
    ),
  );
  fill("test-results", blocks);
  $("test-report").hidden = false;
}

/** Tests the endpoints as they are in the form; true if every check passed. */
async function runTest() {
  clearErrors();
  const body = formBody();
  const roles = body.backup ? ["primary", "backup"] : ["primary"];
  const reports = [];
  $("test-btn").disabled = true;
  $("save-btn").disabled = true;
  try {
    for (const role of roles) {
      state.testing = role;
      const rep = await api("POST", "/tenants/" + enc(currentTenant) + "/whatsapp-config/test", { candidate: body[role] });
      for (const r of rep.results) reports.push(Object.assign({}, r, { role }));
    }
    renderTest(reports);
    return reports.every((r) => r.ok);
  } catch (e) {
    if (e instanceof StaleAnswer) return null;
    if (e.body && e.body.fields) showErrors(e.message, e.body.fields);
    else flash(e.message, true);
    return null;
  } finally {
    state.testing = null;
    $("test-btn").disabled = false;
    $("save-btn").disabled = false;
  }
}

async function testAndSave(skipTest) {
  if (!skipTest) {
    const ok = await runTest();
    if (ok === null) return;
    if (!ok) {
      $("save-anyway").hidden = false;
      flash("The connection test failed (see below). Fix the settings, or save without a passing test.", true);
      return;
    }
  }
  clearErrors();
  $("save-btn").disabled = true;
  try {
    const body = formBody();
    const path = "/tenants/" + enc(currentTenant) + "/whatsapp-config";
    const saved = await api(state.settings ? "PUT" : "POST", path, body);
    $("save-anyway").hidden = true;
    await loadSettings(currentTenant);
    flash("Saved. The configuration is now version " + saved.version + ".");
  } catch (e) {
    if (e instanceof StaleAnswer) return;
    if (e.status === 409 && !(e.body && e.body.fields)) flash("Someone changed this configuration meanwhile. Reload the page to see their version; your edits were not saved.", true);
    else if (e.body && e.body.fields) showErrors(e.message, e.body.fields);
    else flash(e.message, true);
  } finally {
    $("save-btn").disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Meta's callback (issue 16): what the tenant pastes into Meta's app console
// ---------------------------------------------------------------------------------------

/** Shows the callback URL, the verify token of each Meta endpoint and whether Meta's
 * handshake passed; hidden for a tenant without a saved Meta endpoint. */
async function loadMetaCallback(cfg) {
  const box = $("meta-callback-field");
  box.hidden = true;
  fill("meta-callback-tokens");
  $("meta-callback-copied").textContent = "";
  const hasMeta = cfg && [cfg.primary, cfg.backup].some((e) => e && kindOf(cfg, e) === "meta");
  if (!hasMeta) return;
  const gen = state.gen;
  const tenant = currentTenant;
  let v;
  try {
    v = await api("GET", "/tenants/" + enc(tenant) + "/meta-callback");
  } catch (e) {
    if (e instanceof StaleAnswer || gen !== state.gen) return;
    flash(e.message, true);
    return;
  }
  if (gen !== state.gen || tenant !== currentTenant) return;
  $("meta-callback-url").value = v.callbackUrl;
  const rows = v.endpoints.map((e) => {
    const inputId = "meta-verify-token-" + e.role;
    return el(
      "div",
      { class: "copy-block" },
      el("label", { for: inputId }, "Verify token (" + e.role + ", phone number id " + (e.phoneNumberId || "?") + ")"),
      el(
        "div",
        { class: "copy-row" },
        el("input", { id: inputId, type: "text", readonly: "", spellcheck: "false", autocomplete: "off", value: e.verifyToken }),
        el("button", { type: "button", class: "secondary", onclick: () => copyValue(inputId, "meta-callback-copied") }, "Copy"),
      ),
    );
  });
  fill("meta-callback-tokens", rows);
  const verified = $("meta-callback-verified");
  verified.textContent = v.verified
    ? "Callback verified by Meta at " + new Date(v.verifiedAt).toLocaleString() + "."
    : "Never verified: Meta has not checked it yet. Save the callback in the app's WhatsApp configuration, then subscribe to the messages field.";
  $("meta-callback-badge").textContent = v.verified ? "verified" : "not verified";
  $("meta-callback-badge").className = "badge " + (v.verified ? "ok" : "unk");
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------
// Fleet (admin)
// ---------------------------------------------------------------------------------------

let fleetTenants = [];

async function allTenants() {
  const out = [];
  let cursor = null;
  // At most 50 pages of 200: a dashboard, not an export.
  for (let i = 0; i < 50; i++) {
    const page = await api("GET", "/tenants?limit=200" + (cursor ? "&cursor=" + enc(cursor) : ""));
    out.push(...page.items);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return out;
}

async function loadAdmin() {
  const gen = state.gen;
  const [endpoints, servers, tenants, failovers, activity] = await Promise.allSettled([
    api("GET", "/admin/endpoints"),
    api("GET", "/admin/servers"),
    allTenants(),
    api("GET", "/admin/failovers?hours=24"),
    api("GET", "/admin/tenant-activity"),
  ]);
  if (gen !== state.gen) return;
  fleetActivity = activity.status === "fulfilled" ? activityByTenant(activity.value.items) : {};
  const capacity = {};
  if (servers.status === "fulfilled") for (const s of servers.value.items) capacity[s.baseUrl] = s;
  if (endpoints.status === "fulfilled") {
    fill(
      "endpoints",
      table(
        [
          { title: "Server", value: (e) => el("code", {}, e.endpointKey) },
          { title: "Health", value: (e) => upBadge(e.up) },
          { title: "Latency", num: true, value: (e) => (e.up ? ms(e.latencyMs) : "—") },
          { title: "Tenants (active)", num: true, value: (e) => e.tenants + " (" + e.activeTenants + ")" },
          {
            title: "Capacity",
            value: (e) => {
              const s = capacity[e.endpointKey];
              return s ? s.capacity + " max, " + s.room + " free · " + s.serverId + " (" + s.region + ")" : "not registered";
            },
          },
          { title: "Devices connected", num: true, value: (e) => (e.devicesTotal == null ? "—" : (e.devicesConnected || 0) + " / " + e.devicesTotal) },
          { title: "Last probe", value: (e) => when(e.lastProbeAt) },
          { title: "Last error", value: (e) => (e.lastError ? el("span", {}, e.lastError, " · ", when(e.lastErrorAt)) : "—") },
        ],
        endpoints.value.items,
        "No server has been probed yet: the health check runs every minute.",
      ),
    );
  } else fill("endpoints", el("p", { class: "error" }, endpoints.reason.message));
  if (tenants.status === "fulfilled") {
    fleetTenants = tenants.value;
    renderTenants();
  } else fill("tenants", el("p", { class: "error" }, tenants.reason.message));
  if (failovers.status === "fulfilled") {
    fill(
      "fleet-failovers",
      table(
        [
          { title: "When", value: (r) => when(r.at.split("#")[0]) },
          { title: "Tenant", value: (r) => el("a", { href: "#/tenant/" + enc(r.tenantId) }, r.tenantId) },
          { title: "What", value: (r) => r.action },
          { title: "From", value: (r) => el("code", {}, r.fromEndpoint || r.from || "") },
          { title: "To", value: (r) => el("code", {}, r.toEndpoint || r.to || "") },
          { title: "Why", value: (r) => r.reason || "" },
        ],
        failovers.value.items,
        "No failover or failback in the last 24 h.",
      ),
    );
  } else fill("fleet-failovers", el("p", { class: "error" }, failovers.reason.message));
}

/** The fleet table's short form of `sendingText`. */
function sendingShort(t) {
  if (!t.isActive) return "paused";
  return { logged_out: "stopped (logged out)", endpoint_down: "stopped (server down)" }[t.connectionStatus] || "active";
}

function renderTenants() {
  const status = $("filter-status").value;
  const text = $("filter-text").value.trim().toLowerCase();
  const rows = fleetTenants.filter((t) => {
    if (status && t.connectionStatus !== status) return false;
    if (!text) return true;
    const active = t.activeEndpoint === "backup" && t.backup ? t.backup.baseUrl : t.primary.baseUrl;
    return t.tenantId.toLowerCase().includes(text) || active.toLowerCase().includes(text);
  });
  $("tenants-count").textContent = rows.length + " of " + fleetTenants.length + " tenants";
  fill(
    "tenants",
    table(
      [
        { title: "Tenant", value: (t) => el("a", { href: "#/tenant/" + enc(t.tenantId) }, t.tenantId) },
        { title: "Status", value: (t) => badge(t.connectionStatus) },
        { title: "Active server", value: (t) => el("span", {}, t.activeEndpoint + " ", el("code", {}, t.activeEndpoint === "backup" && t.backup ? t.backup.baseUrl : t.primary.baseUrl)) },
        readinessColumn(),
        { title: "Sending", value: (t) => sendingShort(t) },
        silenceColumn(),
        { title: "Settings", value: (t) => el("a", { href: "#/tenant/" + enc(t.tenantId) + "/settings" }, "edit") },
      ],
      rows.slice(0, 500),
      fleetTenants.length ? "No tenant matches the filter." : "No tenants yet.",
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  buildSettingsForm();
  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const err = signIn($("token").value.trim());
    $("signin-error").textContent = err || "";
    $("token").setAttribute("aria-invalid", err ? "true" : "false");
    if (!err) {
      if (!location.hash || location.hash === "#/signin") location.hash = homeHash();
      else route();
    }
  });
  $("signout").addEventListener("click", () => signOut(""));
  $("tenant-refresh").addEventListener("click", () => loadTenant(currentTenant));
  $("admin-refresh").addEventListener("click", () => loadAdmin());
  $("lookup-form").addEventListener("submit", lookupMessage);
  $("messages-more").addEventListener("click", () => loadMessages(currentTenant, messagesCursor));
  $("filter-status").addEventListener("change", renderTenants);
  $("filter-text").addEventListener("input", renderTenants);
  $("tenant-filter").addEventListener("submit", (ev) => ev.preventDefault());
  window.addEventListener("hashchange", () => {
    // After a view change, focus goes to the content (the sign-in view focuses its field).
    route().then(() => {
      if (state.token) $("main").focus({ preventScroll: true });
    });
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved && signIn(saved)) sessionStorage.removeItem(TOKEN_KEY);
  route();
});

// ---------------------------------------------------------------------------------------
// Devices (issue 15): status, QR / pairing-code linking, logout, reconnect, webhook wiring
// ---------------------------------------------------------------------------------------

const DEVICE_TEXT = { logged_in: "linked", connected: "waiting for the phone", logged_out: "not linked", not_found: "no device on the server" };
const DEVICE_CLASS = { logged_in: "ok", connected: "warn", logged_out: "warn", not_found: "bad" };
const WIRING_TEXT = {
  wired: "webhook wired",
  missing: "webhook not set",
  points_elsewhere: "webhook points elsewhere",
  secret_mismatch: "webhook secret mismatch",
  events_filtered: "webhook filters events",
};
// The QR being shown: its role, the timers that refresh it and poll for the scan.
const qr = { role: null, refresh: null, poll: null };

function stopQr() {
  clearTimeout(qr.refresh);
  clearInterval(qr.poll);
  qr.role = null;
  qr.refresh = null;
  qr.poll = null;
}

/** The status's `standby`: is the endpoint a failover would go to ready, and why not. */
function renderStandby(s) {
  if (!s.standby) return;
  const r = s.standby;
  $("status-facts").append(
    el("dt", {}, r.role === "backup" ? "Backup ready" : "Primary ready (failback)"),
    el(
      "dd",
      { id: "backup-ready" },
      el("span", { class: "badge " + (r.ready ? "ok" : "bad") }, r.ready ? "ready" : "not ready"),
      r.ready ? "" : " · " + (r.detail || (r.reasons || []).join(", ")),
    ),
  );
}

async function loadDevices(tenant, s) {
  const gen = state.gen;
  const roles = (s.endpoints || []).map((e) => e.role);
  const cards = [];
  for (const role of roles) {
    const endpoint = (s.endpoints || []).find((e) => e.role === role);
    const card = el("section", { class: "device", id: "device-" + role, "aria-label": role + " device" });
    cards.push(card);
    if (!endpoint.deviceId) {
      card.append(el("h3", {}, role), el("p", { class: "hint" }, "No device id: set one in Settings to manage the device."));
      continue;
    }
    card.append(el("h3", {}, role + " · ", el("code", {}, endpoint.deviceId)), el("p", {}, "loading…"));
  }
  fill("devices", cards.length ? cards : el("p", { class: "hint" }, "No endpoints."));
  for (const role of roles) {
    const endpoint = (s.endpoints || []).find((e) => e.role === role);
    if (!endpoint.deviceId) continue;
    await renderDevice(tenant, role, endpoint, gen);
  }
}

async function renderDevice(tenant, role, endpoint, gen) {
  const base = "/tenants/" + enc(tenant) + "/devices/" + role;
  const [dev, hook] = await Promise.allSettled([api("GET", base), api("GET", base + "/webhook")]);
  if (gen !== state.gen || tenant !== currentTenant) return null;
  const card = $("device-" + role);
  if (!card) return null;
  const head = el("h3", {}, role + " · ", el("code", {}, endpoint.deviceId));
  const facts = [];
  const d = dev.status === "fulfilled" ? dev.value : null;
  facts.push(
    el("dt", {}, "Device"),
    el(
      "dd",
      { id: "device-state-" + role },
      d ? el("span", { class: "badge " + (DEVICE_CLASS[d.state] || "unk") }, DEVICE_TEXT[d.state] || d.state) : el("span", { class: "error" }, dev.reason.message),
    ),
  );
  const w = hook.status === "fulfilled" ? hook.value : null;
  facts.push(
    el("dt", {}, "Webhook"),
    el(
      "dd",
      { id: "webhook-state-" + role },
      w ? el("span", { class: "badge " + (w.state === "wired" ? "ok" : "warn") }, WIRING_TEXT[w.state] || w.state) : el("span", { class: "hint" }, hook.reason.message),
    ),
  );
  const actions = el("div", { class: "actions" });
  const button = (label, fn, id) => {
    const b = el("button", { type: "button", class: "secondary", id: id + "-" + role }, label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await fn();
      } catch (e) {
        if (!(e instanceof StaleAnswer)) flash(e.message, true);
      } finally {
        b.disabled = false;
      }
    });
    return b;
  };
  const refresh = () => renderDevice(tenant, role, endpoint, state.gen);
  if (d && d.state === "not_found") {
    actions.append(button("Create device", async () => {
      await api("POST", base);
      await refresh();
    }, "create-device"));
  }
  if (d && d.state !== "logged_in") {
    actions.append(button("Link with QR code", () => showQr(tenant, role, endpoint), "link-qr"));
    const phone = el("input", { type: "tel", id: "pair-phone-" + role, placeholder: "+6281234567890", "aria-label": "Phone number for a pairing code", autocomplete: "off" });
    const code = el("output", { id: "pair-code-" + role, class: "pair-code" });
    const form = el("form", { class: "inline", novalidate: "" }, phone, el("button", { type: "submit", class: "secondary" }, "Get pairing code"), code);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      code.textContent = "";
      try {
        const r = await api("POST", base + "/pairing-code", { phone: phone.value.trim() });
        code.textContent = r.code;
        startPolling(tenant, role, endpoint);
      } catch (e) {
        if (e instanceof StaleAnswer) return;
        code.textContent = e.body && e.body.fields && e.body.fields.length ? e.body.fields[0].reason : e.message;
      }
    });
    actions.append(form);
  }
  if (d && d.state === "logged_in") {
    actions.append(button("Log out", async () => {
      await api("POST", base + "/logout");
      await refresh();
    }, "logout"));
  }
  if (d && d.state !== "not_found") {
    actions.append(button("Reconnect", async () => {
      await api("POST", base + "/reconnect");
      await refresh();
    }, "reconnect"));
  }
  if (d && d.state === "logged_in" && w && w.state !== "wired") {
    actions.append(button("Wire webhook", async () => {
      await api("POST", base + "/webhook");
      await refresh();
    }, "wire"));
  }
  // A QR being shown survives a re-render of its card (another refresh may land after it).
  const shown = $("qr-" + role);
  const qrBox = shown && qr.role === role && !(d && d.state === "logged_in") ? shown : el("div", { id: "qr-" + role, class: "qr" });
  card.replaceChildren(head, el("dl", { class: "facts" }, facts), actions, qrBox);
  if (d && d.state === "logged_in" && qr.role === role) {
    stopQr();
    flash("The " + role + " device is linked.");
  }
  return d;
}

/** Shows the QR picture, asks for a new one before it expires, and polls the device until
 *  it is logged in (the status read then wires its webhook). */
async function showQr(tenant, role, endpoint) {
  stopQr();
  qr.role = role;
  const gen = state.gen;
  const r = await api("POST", "/tenants/" + enc(tenant) + "/devices/" + role + "/qr");
  if (gen !== state.gen || qr.role !== role) return;
  const box = $("qr-" + role);
  if (!box) return;
  const img = el("img", { id: "qr-img-" + role, alt: "QR code: scan it with WhatsApp (Linked devices)", width: "256", height: "256" });
  img.src = "data:" + r.mimeType + ";base64," + r.pngBase64;
  box.replaceChildren(img, el("p", { class: "hint", id: "qr-expiry-" + role }, "Scan it with WhatsApp → Linked devices. It expires in " + r.expiresInSeconds + " s; a new one is shown before that."));
  // Refresh a few seconds before the expiry.
  const ms = Math.max(1000, (Number(r.expiresInSeconds) - 5) * 1000);
  qr.refresh = setTimeout(() => {
    if (qr.role === role) showQr(tenant, role, endpoint).catch(() => {});
  }, ms);
  startPolling(tenant, role, endpoint);
}

function startPolling(tenant, role, endpoint) {
  clearInterval(qr.poll);
  qr.role = role;
  qr.poll = setInterval(async () => {
    try {
      const d = await api("GET", "/tenants/" + enc(tenant) + "/devices/" + role);
      if (d.state === "logged_in") {
        clearInterval(qr.poll);
        await renderDevice(tenant, role, endpoint, state.gen);
        stopQr();
        // Readiness and wiring changed: the status too.
        loadTenant(tenant).catch(() => {});
      }
    } catch (_) {
      /* the next tick tries again */
    }
  }, 2000);
}

// ---------------------------------------------------------------------------------------
// Connected but silent (issue 15): the health check's flag on the tenant and fleet views
// ---------------------------------------------------------------------------------------

/** The status's `silent` flag and `lastEventAt`: a device that says connected, delivers nothing. */
function renderSilence(s) {
  $("status-facts").append(el("dt", {}, "Last event received"), el("dd", { id: "last-event" }, s.lastEventAt ? when(s.lastEventAt) : "none noted yet"));
  if (!s.silent) return;
  const f = s.silent;
  $("status-facts").append(
    el("dt", {}, "Silent"),
    el(
      "dd",
      { id: "silent" },
      el("span", { class: "badge bad" }, "connected but silent"),
      " since ",
      when(f.since),
      " · " + f.sendsAccepted + " send(s) accepted in " + f.windowMinutes + " min, no receipt or inbound event. Relink the device (logout, then QR) or switch to the backup.",
    ),
  );
}

/** Each tenant's `silent` flag and `lastEventAt` (GET /admin/tenant-activity), by tenant id. */
let fleetActivity = {};

function activityByTenant(items) {
  const out = {};
  for (const a of items || []) out[a.tenantId] = a;
  return out;
}

/** The fleet table's column for the health check's connected-but-silent flag. */
function silenceColumn() {
  return {
    title: "Traffic",
    value: (t) => {
      const a = fleetActivity[t.tenantId];
      if (a && a.silent) return el("span", { class: "badge bad", title: a.silent.sendsAccepted + " send(s) accepted, nothing back in " + a.silent.windowMinutes + " min" }, "silent");
      return a && a.lastEventAt ? el("span", {}, "last event ", when(a.lastEventAt)) : "—";
    },
  };
}

/** Words for the health check's standby reasons (GET /admin/tenant-activity's `standby`). */
const STANDBY_REASON = {
  server_down: "server down",
  device_not_logged_in: "device not logged in",
  webhook_not_wired: "webhook not wired",
};

/** The fleet table's backup-readiness column: whether the endpoint a failover (or failback)
 *  would go to is ready, as the health check last found it (server up, device logged in,
 *  webhook wired). */
function readinessColumn() {
  return {
    title: "Backup",
    value: (t) => {
      if (!t.backup) return "no backup";
      const a = fleetActivity[t.tenantId];
      const n = a && a.standby;
      const standbyRole = t.activeEndpoint === "backup" ? "primary" : "backup";
      if (!n || n.role !== standbyRole) return el("span", { class: "badge unk", title: "the health check has not judged it yet (it runs every minute)" }, "not checked yet");
      const label = n.role === "backup" ? "" : " (primary, for failback)";
      if (n.ready) return el("span", { class: "badge ok", title: "since " + n.since }, "ready" + label);
      const why = (n.reasons || []).map((r) => STANDBY_REASON[r] || r).join(", ");
      return el("span", { class: "badge bad", title: n.detail || why }, "not ready: " + why + label);
    },
  };
}
