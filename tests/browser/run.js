// Headless Chromium (Debian's /usr/bin/chromium, driven by puppeteer-core,
// pinned in package-lock.json) against Herald. Run by
// tests/e2e/test_82_browser.py, which starts Herald, the static page server
// and the slixmpp peers, and reads this script's stdout.
//
//   node run.js converse   Converse.js (pinned) on converse.html, served from
//                          another origin than Herald's; logs in over
//                          WebSocket (RFC 7395) or BOSH (XEP-0124/0206),
//                          shows a chat message from PEER and answers it
//                          through the chat box's text area.
//   node run.js console    Herald's web console at /console/: bearer-token
//                          login, the node list, a node's items, a live item,
//                          a publication from the page.
//
// Configuration is in the environment (see the two scenario functions).
// Every wait is bounded (STEP_TIMEOUT_MS, default 10000, per step).
//
// Output on stdout, one JSON object a line:
//   {"event": "ready", ...}       the page is logged in and waits for the
//                                 test's XMPP peer to act;
//   {"event": "done", "ok", "checks": [{"name", "ok", "detail"}]}
//                                 at the end; exit status 0 only if every
//                                 check passed (1 if one failed, 2 if the
//                                 scenario could not run at all).
// Diagnostics (the browser's console, page errors, failed requests, every
// WebSocket frame and BOSH body exchanged with Herald) go to stderr.
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT = Number(process.env.STEP_TIMEOUT_MS || 10000);
// The flags this machine needs (no sandbox as root; no background
// connections, which its closed network refuses).
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage",
];

function env(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (dflt === undefined) throw new Error(`environment variable ${name} is not set`);
    return dflt;
  }
  return v;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const diag = [];
function note(line) {
  const s = String(line);
  diag.push(s.length > 4000 ? s.slice(0, 4000) + ` [... ${s.length - 4000} more characters]` : s);
}

// -------------------------------------------------------------------------
// The browser

async function launch() {
  // puppeteer gives Chromium a new empty profile (--user-data-dir in a
  // temporary directory) and removes it when the browser closes, also when
  // this process gets SIGTERM.
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    defaultViewport: { width: 1280, height: 800 },
    protocolTimeout: 30000,
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  // Nothing leaves the machine: requests to other hosts than loopback (the
  // login screen's sponsor logos at conversejs.org, say) are refused here
  // instead of waiting on a name lookup.
  await page.setRequestInterception(true);
  page.on("request", (r) => {
    if (r.isInterceptResolutionHandled()) return;
    let host = "";
    try { host = new URL(r.url()).hostname; } catch (e) { /* data: and the like */ }
    if (host === "" || host === "127.0.0.1" || host === "localhost" || host === "[::1]") {
      r.continue();
    } else {
      note(`[blocked] ${r.method()} ${r.url()}`);
      r.abort("blockedbyclient");
    }
  });
  page.on("console", (m) => note(`[console.${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => note(`[pageerror] ${e && e.stack ? e.stack : e}`));
  page.on("requestfailed", (r) =>
    note(`[requestfailed] ${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`));
  page.on("response", async (r) => {
    const req = r.request();
    if (r.status() >= 400) note(`[http ${r.status()}] ${req.method()} ${r.url()}`);
    if (/\/http-bind/.test(r.url()) && req.method() === "POST") {
      let body = "";
      try { body = await r.text(); } catch (e) { body = `<unreadable: ${e.message}>`; }
      note(`[bosh >] ${req.postData() || ""}`);
      note(`[bosh < ${r.status()}] ${body}`);
    }
  });
  // WebSocket frames, through the DevTools protocol.
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  cdp.on("Network.webSocketCreated", (e) => note(`[ws open] ${e.url}`));
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) =>
    note(`[ws handshake] ${e.response.status} ${JSON.stringify(e.response.headers)}`));
  cdp.on("Network.webSocketFrameSent", (e) => note(`[ws >] ${e.response.payloadData}`));
  cdp.on("Network.webSocketFrameReceived", (e) => note(`[ws <] ${e.response.payloadData}`));
  cdp.on("Network.webSocketFrameError", (e) => note(`[ws error] ${e.errorMessage}`));
  cdp.on("Network.webSocketClosed", () => note(`[ws closed]`));
  return { browser, page };
}

async function close(b) {
  if (!b) return;
  await Promise.race([b.browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  try { b.browser.process()?.kill("SIGKILL"); } catch (e) { /* gone */ }
}

function makeChecks() {
  const checks = [];
  // Runs one check; a failed one stops the scenario (later ones depend on
  // it) unless soft is set.
  const check = async (name, fn, soft = false) => {
    const t0 = Date.now();
    try {
      const detail = await fn();
      checks.push({ name, ok: true, detail: detail === undefined ? "" : String(detail),
                    ms: Date.now() - t0 });
      return true;
    } catch (err) {
      checks.push({ name, ok: false, detail: String(err && err.message ? err.message : err),
                    ms: Date.now() - t0 });
      if (!soft) throw new StopScenario();
      return false;
    }
  };
  return { checks, check };
}

class StopScenario extends Error {}

async function screenshot(page, file, fullPage = false) {
  if (!file) return "no SCREENSHOT path given";
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage });
  const size = fs.statSync(file).size;
  if (size < 1000) throw new Error(`${file} is only ${size} bytes`);
  return `${file} (${size} bytes)`;
}

// -------------------------------------------------------------------------
// Converse.js

// Runs in the page: registers a plugin that exposes Converse's internal API
// (the documented way for tests: converse.plugins.add) and records what the
// test waits for, then starts Converse with the given settings.
function startConverse(settings) {
  const state = window.__herald = {
    connected: false, roster: false, disconnected: 0, statuses: [], messages: [], errors: [],
  };
  window.converse.plugins.add("herald-test", {
    initialize() {
      const { api } = this._converse;
      window.__heraldConverse = this._converse;
      api.listen.on("connected", () => { state.connected = true; });
      api.listen.on("disconnected", () => { state.disconnected += 1; });
      api.listen.on("rosterContactsFetched", () => { state.roster = true; });
      api.listen.on("message", (data) => {
        const a = data && data.attrs ? data.attrs : {};
        state.messages.push({ from: a.from, body: a.body, type: a.type, sender: a.sender });
      });
      const fb = this._converse.state && this._converse.state.connfeedback;
      if (fb) fb.on("change", () => state.statuses.push(
        [fb.get("connection_status"), fb.get("message") || ""]));
    },
  });
  window.converse.initialize(Object.assign({ whitelisted_plugins: ["herald-test"] }, settings))
    .catch((e) => state.errors.push(String(e && e.stack ? e.stack : e)));
}

async function converseScenario() {
  const pageUrl = env("CONVERSE_URL");           // http://127.0.0.1:STATIC/converse.html
  const transport = env("TRANSPORT");            // websocket | bosh
  const serviceUrl = env("SERVICE_URL");         // ws://…/xmpp-websocket | http://…/http-bind
  const jid = env("JID");
  const password = env("PASSWORD");
  const peer = env("PEER");                      // the slixmpp account's bare JID
  const expectBody = env("EXPECT_BODY");          // what PEER sends after "ready"
  const replyBody = env("REPLY_BODY");            // typed into the chat box
  const shot = process.env.SCREENSHOT || "";
  if (!["websocket", "bosh"].includes(transport)) throw new Error(`TRANSPORT=${transport}`);

  const { checks, check } = makeChecks();
  let b;
  try {
    const t0 = Date.now();
    b = await launch();
    note(`[timing] Chromium started in ${Date.now() - t0} ms`);
    const { page } = b;
    await check("page-loaded", async () => {
      const resp = await page.goto(pageUrl, { waitUntil: "load" });
      if (!resp || resp.status() !== 200) throw new Error(`GET ${pageUrl}: ${resp && resp.status()}`);
      await page.waitForFunction(() => typeof window.converse === "object", { timeout: STEP_TIMEOUT });
      return `converse.js loaded from ${new URL(pageUrl).origin}`;
    });
    const settings = {
      authentication: "login",
      auto_login: true,
      jid: `${jid}/converse`,
      password,
      discover_connection_methods: false,
      auto_reconnect: false,
      // Nothing to ask the user; the browser profile is new every run.
      reuse_scram_keys: false,
      clear_cache_on_logout: true,
      view_mode: "fullscreen",
      i18n: "en",
      play_sounds: false,
      show_desktop_notifications: false,
      assets_path: new URL("node_modules/converse.js/dist/", pageUrl).href,
      loglevel: "debug",
      [transport === "websocket" ? "websocket_url" : "bosh_service_url"]: serviceUrl,
    };
    await page.evaluate(startConverse, settings);
    await check(`login-over-${transport}`, async () => {
      try {
        await page.waitForFunction(() => window.__herald.connected || window.__herald.disconnected > 0
          || window.__herald.errors.length > 0, { timeout: STEP_TIMEOUT });
      } catch (e) {
        const st = await page.evaluate(() => window.__herald);
        throw new Error(`not connected within ${STEP_TIMEOUT} ms; Converse's connection statuses ` +
          `${JSON.stringify(st.statuses)}`);
      }
      const st = await page.evaluate(() => window.__herald);
      if (!st.connected) {
        throw new Error(`Converse did not connect: statuses ${JSON.stringify(st.statuses)}, ` +
          `errors ${JSON.stringify(st.errors)}`);
      }
      const info = await page.evaluate(() => {
        const c = window.__heraldConverse.api.connection.get();
        return { jid: c.jid, ws: c.isType("websocket"), bosh: !!c.isType("bosh"),
                 mech: c._sasl_mechanism && c._sasl_mechanism.mechname };
      });
      if ((transport === "websocket") !== info.ws || (transport === "bosh") !== info.bosh) {
        throw new Error(`connected over the wrong transport: ${JSON.stringify(info)}`);
      }
      return `bound ${info.jid} over ${transport} (SASL ${info.mech})`;
    });
    await check("roster-and-presence", async () => {
      await page.waitForFunction(() => window.__herald.roster, { timeout: STEP_TIMEOUT });
      // Initial presence goes out once the roster is in (populateRoster).
      await page.waitForSelector("converse-controlbox, #controlbox", { timeout: STEP_TIMEOUT });
      return "roster fetched, initial presence sent";
    });
    const me = await page.evaluate(() => window.__heraldConverse.api.connection.get().jid);
    emit({ event: "ready", jid: me });

    await check("message-received", async () => {
      // The chat's message models (what the chat box renders from). Note:
      // Converse 14 files a message from a JID outside the roster only once
      // its XEP-0191 block list is in, which it asks for only when the
      // server advertises urn:xmpp:blocking; without that the message is
      // received (see the frames) but never shown, and blocklistInitialized
      // stays among the pending promises listed below.
      const inChat = (p, body) => {
        const cb = window.__heraldConverse.state.chatboxes.get(p);
        const msgs = cb && cb.messages ? cb.messages.map((m) => [m.get("from"), m.get("body")]) : null;
        return body === undefined ? msgs : !!(msgs && msgs.some((m) => m[1] === body));
      };
      try {
        await page.waitForFunction(inChat, { timeout: STEP_TIMEOUT }, peer, expectBody);
      } catch (e) {
        const got = await page.evaluate(inChat, peer);
        const events = await page.evaluate(() => window.__herald.messages);
        const pending = await page.evaluate(() => Object.entries(window.__heraldConverse.promises || {})
          .filter(([, v]) => v && v.isPending).map(([k]) => k));
        const chats = await page.evaluate(() =>
          window.__heraldConverse.state.chatboxes.models.map((m) => [m.get("jid"), m.get("type"),
            m.messages ? m.messages.length : null]));
        throw new Error(`no message ${JSON.stringify(expectBody)} from ${peer} within ` +
          `${STEP_TIMEOUT} ms; the chat with ${peer} holds ${JSON.stringify(got)}, message ` +
          `events: ${JSON.stringify(events)}, chats ${JSON.stringify(chats)}, ` +
          `Converse promises still pending: ${JSON.stringify(pending)}`);
      }
      return `from ${peer}`;
    });
    const chatSel = `converse-chat[jid="${peer}"]`;
    await check("message-shown-in-chat", async () => {
      // In full-screen mode the chat stays behind the contacts list until it
      // is opened (a click on the contact); api.chats.open is that click.
      await page.evaluate((p) => window.__heraldConverse.api.chats.open(p), peer);
      await page.waitForFunction((sel, body) => {
        const el = document.querySelector(sel);
        return el && [...el.querySelectorAll(".chat-msg__text")].some((t) => t.textContent.includes(body));
      }, { timeout: STEP_TIMEOUT }, chatSel, expectBody);
      return `${chatSel} .chat-msg__text shows it`;
    });
    await check("reply-typed-and-sent", async () => {
      const ta = `${chatSel} textarea.chat-textarea`;
      await page.waitForSelector(ta, { visible: true, timeout: STEP_TIMEOUT });
      await page.click(ta);
      await page.type(ta, replyBody);
      await page.keyboard.press("Enter");
      await page.waitForFunction((sel, body) => {
        const el = document.querySelector(sel);
        return el && [...el.querySelectorAll(".chat-msg__text")].some((t) => t.textContent.includes(body));
      }, { timeout: STEP_TIMEOUT }, chatSel, replyBody);
      return "typed into the chat box, sent with Enter, shown in the chat";
    });
    emit({ event: "sent" });
    await check("screenshot", () => screenshot(page, shot), true);
    // Stay connected until the test has seen the reply arrive (it closes
    // stdin then), so a lost reply is not blamed on a closed session.
    await waitForStdinEnd(STEP_TIMEOUT);
    await check("still-connected", async () => {
      const st = await page.evaluate(() => ({ c: window.__heraldConverse.api.connection.connected(),
                                              d: window.__herald.disconnected }));
      if (!st.c || st.d) throw new Error(`disconnected: ${JSON.stringify(st)}`);
    }, true);
  } catch (e) {
    if (!(e instanceof StopScenario)) throw e;
  } finally {
    await close(b);
  }
  return checks;
}

function waitForStdinEnd(ms) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    process.stdin.on("end", () => { clearTimeout(t); resolve(); });
    process.stdin.on("error", () => { clearTimeout(t); resolve(); });
    process.stdin.resume();
  });
}

// -------------------------------------------------------------------------
// The web console

async function consoleScenario() {
  const url = env("CONSOLE_URL");                // http://127.0.0.1:HTTP/console/
  const token = env("TOKEN");
  const nodeName = env("NODE_NAME");
  const liveId = env("EXPECT_LIVE_ID");           // the id of the item the peer publishes
  const liveText = env("EXPECT_LIVE");            // a string in that item's payload
  const payload = env("PUBLISH_PAYLOAD");         // typed into #publish-payload
  const expectItems = env("EXPECT_ITEMS");        // items stored at the end
  const shot = process.env.SCREENSHOT || "";
  const { checks, check } = makeChecks();
  const errorText = () => page.evaluate(() => {
    const e = document.getElementById("error");
    return e && !e.hidden ? document.getElementById("error-text").textContent : "";
  });
  let b, page;
  try {
    b = await launch();
    page = b.page;
    await check("console-loaded", async () => {
      const resp = await page.goto(url, { waitUntil: "load" });
      if (!resp || resp.status() !== 200) throw new Error(`GET ${url}: ${resp && resp.status()}`);
      await page.waitForSelector("body[data-ready=true]", { timeout: STEP_TIMEOUT });
      await page.waitForSelector("#token", { visible: true, timeout: STEP_TIMEOUT });
      await page.waitForSelector("#login", { visible: true, timeout: STEP_TIMEOUT });
      return `${url}: the login form`;
    });
    const row = `table#nodes tr[data-node="${cssString(nodeName)}"]`;
    await check("token-login-lists-node", async () => {
      await page.type("#token", token);
      await page.click("#login");
      try {
        await page.waitForSelector(row, { visible: true, timeout: STEP_TIMEOUT });
      } catch (e) {
        throw new Error(`${row} not shown within ${STEP_TIMEOUT} ms; #error says ` +
          `${JSON.stringify(await errorText())}, table#nodes has ` +
          `${JSON.stringify(await textOf(page, "table#nodes"))}`);
      }
      const err = await errorText();
      if (err) throw new Error(`#error says ${JSON.stringify(err)}`);
      return `${row}: ${await textOf(page, row)}`;
    });
    await check("node-opened", async () => {
      // The node's name in the table is a link to #/node/NAME.
      await page.click(`${row} a`);
      await page.waitForSelector("#view-node:not([hidden])", { timeout: STEP_TIMEOUT });
      await page.waitForSelector("#items", { visible: true, timeout: STEP_TIMEOUT });
      await page.waitForSelector("#publish-payload", { visible: true, timeout: STEP_TIMEOUT });
      // The event stream is open before the peer publishes (a first
      // connection gets only what comes after it).
      try {
        await page.waitForSelector("#live-state[data-state=live]", { timeout: STEP_TIMEOUT });
      } catch (e) {
        throw new Error(`the live stream did not open: #live-state says ` +
          `${JSON.stringify(await textOf(page, "#live-state"))}, #error ${JSON.stringify(await errorText())}`);
      }
      return `${await textOf(page, "#node-title")}, ${page.url()}`;
    });
    emit({ event: "ready" });
    await check("live-item-shown", async () => {
      const sel = `#live-items li[data-event=item][data-item-id="${cssString(liveId)}"]`;
      try {
        await page.waitForFunction((s, t) => {
          const el = document.querySelector(s);
          return el && el.textContent.includes(t);
        }, { timeout: STEP_TIMEOUT }, sel, liveText);
      } catch (e) {
        throw new Error(`${sel} with ${JSON.stringify(liveText)} not shown within ` +
          `${STEP_TIMEOUT} ms: #live-items has ${JSON.stringify(await textOf(page, "#live-items"))}; ` +
          `#live-state ${JSON.stringify(await textOf(page, "#live-state"))}, #error ` +
          `${JSON.stringify(await errorText())}`);
      }
      return await textOf(page, sel);
    });
    let publishedId = null;
    await check("item-published-from-page", async () => {
      await page.$eval("#publish-payload", (el) => { el.value = ""; });
      await page.type("#publish-payload", payload);
      await page.click("#publish");
      try {
        await page.waitForSelector("#publish-form[data-last-id]", { timeout: STEP_TIMEOUT });
      } catch (e) {
        throw new Error(`no item id came back within ${STEP_TIMEOUT} ms; #error says ` +
          `${JSON.stringify(await errorText())}, #status ${JSON.stringify(await textOf(page, "#status"))}`);
      }
      publishedId = await page.$eval("#publish-form", (f) => f.dataset.lastId);
      const err = await errorText();
      if (err) throw new Error(`#error says ${JSON.stringify(err)}`);
      return `${await textOf(page, "#status")}`;
    });
    emit({ event: "sent", id: publishedId });
    await check("published-item-streamed-back", async () => {
      const sel = `#live-items li[data-event=item][data-item-id="${cssString(publishedId)}"]`;
      try {
        await page.waitForSelector(sel, { timeout: STEP_TIMEOUT });
      } catch (e) {
        throw new Error(`${sel} not shown within ${STEP_TIMEOUT} ms: #live-items has ` +
          `${JSON.stringify(await textOf(page, "#live-items"))}`);
      }
      // The history table and the node's summary follow the live stream
      // (read again at most once a second).
      await page.waitForSelector(`#items tr[data-item-id="${cssString(publishedId)}"]`,
        { timeout: STEP_TIMEOUT });
      const stored = () => page.evaluate(() => {
        const dt = [...document.querySelectorAll("#node-info dt")]
          .find((d) => d.textContent.trim() === "Items stored");
        return dt && dt.nextElementSibling ? dt.nextElementSibling.textContent.trim() : null;
      });
      try {
        await page.waitForFunction((n) => {
          const dt = [...document.querySelectorAll("#node-info dt")]
            .find((d) => d.textContent.trim() === "Items stored");
          return dt && dt.nextElementSibling && dt.nextElementSibling.textContent.trim() === n;
        }, { timeout: STEP_TIMEOUT }, expectItems);
      } catch (e) {
        throw new Error(`the node summary says "Items stored" ${JSON.stringify(await stored())}, ` +
          `expected ${expectItems}`);
      }
      return `in #live-items, #items, and "Items stored" ${expectItems}`;
    });
    await check("screenshot", () => screenshot(page, shot, true), true);
    await waitForStdinEnd(STEP_TIMEOUT);
  } catch (e) {
    if (!(e instanceof StopScenario)) throw e;
  } finally {
    await close(b);
  }
  return checks;
}

function cssString(s) {
  return s.replace(/["\\]/g, "\\$&");
}

async function textOf(page, sel) {
  return page.evaluate((s) => {
    const el = document.querySelector(s);
    return el ? el.textContent.replace(/\s+/g, " ").trim().slice(0, 2000) : null;
  }, sel);
}

// -------------------------------------------------------------------------

async function main() {
  const scenario = process.argv[2];
  const fns = { converse: converseScenario, console: consoleScenario };
  if (!fns[scenario]) throw new Error(`usage: node run.js converse|console (got ${scenario})`);
  const checks = await fns[scenario]();
  const ok = checks.length > 0 && checks.every((c) => c.ok);
  if (!ok || process.env.HERALD_BROWSER_VERBOSE) process.stderr.write(diag.join("\n") + "\n");
  emit({ event: "done", ok, checks });
  return ok ? 0 : 1;
}

const overall = setTimeout(() => {
  process.stderr.write(diag.join("\n") + "\n");
  emit({ event: "error", error: "run.js did not finish within its overall bound" });
  process.exit(2);
}, Number(process.env.OVERALL_TIMEOUT_MS || 60000));

main().then((code) => {
  clearTimeout(overall);
  process.exit(code);
}, (err) => {
  clearTimeout(overall);
  process.stderr.write(diag.join("\n") + "\n");
  emit({ event: "error", error: String(err && err.stack ? err.stack : err) });
  process.exit(2);
});
