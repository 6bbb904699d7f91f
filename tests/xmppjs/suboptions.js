// XEP-0060 §6.3 (configure subscription options) against Herald, driven by
// xmpp.js (@xmpp/client, pinned in package-lock.json) over TCP with STARTTLS.
//
// Run by tests/e2e/test_22_pubsub_xmppjs.py, which starts the server and
// creates the two accounts. Configuration (environment):
//   HERALD_PORT            c2s port on 127.0.0.1 (required)
//   HERALD_DOMAIN          XMPP domain (default localhost)
//   HERALD_PUBSUB          pubsub service JID (default pubsub.<domain>)
//   OWNER_USER, OWNER_PASSWORD          node owner / publisher
//   SUBSCRIBER_USER, SUBSCRIBER_PASSWORD  the subscriber whose options are set
// Herald's certificate is self-signed: run with NODE_TLS_REJECT_UNAUTHORIZED=0.
//
// Prints one JSON object {"ok", "checks": [{"name", "ok", "detail"}]} on
// stdout and exits 0 only if every check passed (1 if one failed, 2 if the
// scenario could not run at all).
import { client, xml } from "@xmpp/client";

const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
const NS_EVENT = NS_PUBSUB + "#event";
const NS_ERRORS = NS_PUBSUB + "#errors";
const NS_SUB_OPTIONS = NS_PUBSUB + "#subscribe_options";
const NS_DATA = "jabber:x:data";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const IQ_TIMEOUT = 10000;
const EVENT_TIMEOUT = 5000;

function env(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (dflt === undefined) throw new Error(`environment variable ${name} is not set`);
    return dflt;
  }
  return v;
}

const PORT = Number(env("HERALD_PORT"));
const DOMAIN = env("HERALD_DOMAIN", "localhost");
const PUBSUB = env("HERALD_PUBSUB", `pubsub.${DOMAIN}`);
const OWNER = { user: env("OWNER_USER"), password: env("OWNER_PASSWORD") };
const SUBSCRIBER = { user: env("SUBSCRIBER_USER"), password: env("SUBSCRIBER_PASSWORD") };
const SUB_JID = `${SUBSCRIBER.user}@${DOMAIN}`;
const NODE = "xmppjs-options";
const MARKER = "xmppjs-marker";

class CheckFailed extends Error {}

function fail(msg) {
  throw new CheckFailed(msg);
}

// ---------------------------------------------------------------------------
// A logged-in client with a queue of every <message/> it receives.
// ---------------------------------------------------------------------------

async function connect({ user, password }, resource) {
  const xmpp = client({
    service: `xmpp://127.0.0.1:${PORT}`,
    domain: DOMAIN,
    resource,
    username: user,
    password,
  });
  const c = { xmpp, messages: [], waiters: [], name: `${user}@${DOMAIN}/${resource}` };
  xmpp.on("error", (err) => {
    c.lastError = err;
  });
  xmpp.on("stanza", (stanza) => {
    if (!stanza.is("message")) return;
    c.messages.push(stanza);
    for (const w of c.waiters.splice(0)) w();
  });
  // No reconnection: a dropped stream must fail the run, not be papered over.
  xmpp.reconnect.stop();
  await xmpp.start();
  await xmpp.send(xml("presence"));
  return c;
}

// The first queued or arriving message satisfying pred (consumed), or null
// after timeoutMs.
async function nextMessage(c, pred, timeoutMs = EVENT_TIMEOUT) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = c.messages.findIndex(pred);
    if (i >= 0) return c.messages.splice(i, 1)[0];
    const left = deadline - Date.now();
    if (left <= 0) return null;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, left);
      c.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

// An iq to the pubsub service. Returns {type: 'result', stanza} or
// {type: 'error', condition, app, stanza}: errors are data here, not throws.
async function psIq(c, type, child) {
  const iq = xml("iq", { type, to: PUBSUB }, child);
  try {
    const stanza = await c.xmpp.iqCaller.request(iq, IQ_TIMEOUT);
    return { type: "result", stanza };
  } catch (err) {
    if (err && err.name === "StanzaError" && err.element) {
      let condition = null;
      let app = null;
      for (const el of err.element.getChildElements()) {
        if (el.attrs.xmlns === NS_STANZAS && el.name !== "text") condition = el.name;
        else if (el.attrs.xmlns === NS_ERRORS) app = el.name;
      }
      return { type: "error", condition, app, stanza: err.element.toString() };
    }
    throw err;
  }
}

function describe(answer) {
  if (answer.type === "error")
    return `error <${answer.condition}/> + ${answer.app ? `<${answer.app}/>` : "no pubsub#errors condition"} (${answer.stanza})`;
  return `result ${answer.stanza.toString()}`;
}

function mustResult(answer, what) {
  if (answer.type !== "result") fail(`${what}: expected an iq result, got ${describe(answer)}`);
  return answer.stanza;
}

function mustInvalidOptions(answer, what) {
  if (answer.type !== "error" || answer.condition !== "bad-request" || answer.app !== "invalid-options")
    fail(`${what}: expected error <bad-request/> + <invalid-options xmlns='${NS_ERRORS}'/> (XEP-0060 §6.3.6.2), got ${describe(answer)}`);
}

// ---------------------------------------------------------------------------
// Data forms (XEP-0004)
// ---------------------------------------------------------------------------

// {var: [values]} plus the field types under "type:<var>".
function parseForm(x) {
  const out = {};
  for (const f of x.getChildren("field")) {
    const v = f.attrs.var;
    out[v] = f.getChildren("value").map((e) => e.text());
    out[`type:${v}`] = f.attrs.type;
  }
  return out;
}

// A submitted form; fields maps var -> value (string) or null for an empty
// <value/>.
function submitForm(fields) {
  const children = [
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS_SUB_OPTIONS)),
  ];
  for (const [v, val] of Object.entries(fields)) {
    children.push(xml("field", { var: v }, val === null ? xml("value") : xml("value", {}, val)));
  }
  return xml("x", { xmlns: NS_DATA, type: "submit" }, ...children);
}

// ---------------------------------------------------------------------------
// Pubsub operations
// ---------------------------------------------------------------------------

async function getOptions(c) {
  const answer = await psIq(c, "get",
    xml("pubsub", { xmlns: NS_PUBSUB }, xml("options", { node: NODE, jid: SUB_JID })));
  const stanza = mustResult(answer, "options get (§6.3.2)");
  const opts = stanza.getChild("pubsub", NS_PUBSUB)?.getChild("options");
  const x = opts?.getChild("x", NS_DATA);
  if (!x) fail(`options get: no <options><x xmlns='${NS_DATA}'/></options> in ${stanza}`);
  return { form: parseForm(x), x, options: opts };
}

async function deliverValue(c) {
  const { form } = await getOptions(c);
  if (!("pubsub#deliver" in form)) fail(`options form without pubsub#deliver: ${JSON.stringify(form)}`);
  const v = form["pubsub#deliver"];
  if (v.length !== 1 || !["0", "1", "true", "false"].includes(v[0]))
    fail(`pubsub#deliver in the options form is not one boolean value: ${JSON.stringify(v)}`);
  return v[0] === "1" || v[0] === "true";
}

function setOptions(c, fields) {
  return psIq(c, "set",
    xml("pubsub", { xmlns: NS_PUBSUB }, xml("options", { node: NODE, jid: SUB_JID }, submitForm(fields))));
}

async function setDeliver(c, value) {
  mustResult(await setOptions(c, { "pubsub#deliver": value }), `options submit pubsub#deliver=${value}`);
  const now = await deliverValue(c);
  const want = value === "1" || value === "true";
  if (now !== want) fail(`after submitting pubsub#deliver=${value} the options form says ${now}`);
}

async function publish(c, node, id, text) {
  const payload = xml("entry", { xmlns: "urn:example:xmppjs" }, text);
  mustResult(await psIq(c, "set",
    xml("pubsub", { xmlns: NS_PUBSUB }, xml("publish", { node }, xml("item", { id }, payload)))),
  `publish ${id} to ${node}`);
}

function itemsEvent(msg) {
  const items = msg.getChild("event", NS_EVENT)?.getChild("items");
  if (!items) return null;
  return { node: items.attrs.node, ids: items.getChildren("item").map((i) => i.attrs.id) };
}

// Publishes to NODE and then to MARKER; returns the ids of NODE's items the
// subscriber was notified of before the marker's notification (the service
// sends in order), so an absent notification is proven without a sleep.
async function notifiedBeforeMarker(owner, sub, id) {
  await publish(owner, NODE, id, `item ${id}`);
  const markerId = `marker-${id}`;
  await publish(owner, MARKER, markerId, "marker");
  const seen = [];
  for (;;) {
    const m = await nextMessage(sub, (s) => itemsEvent(s) !== null);
    if (m === null) fail(`no notification for the marker item ${markerId} within ${EVENT_TIMEOUT} ms`);
    const ev = itemsEvent(m);
    if (ev.node === MARKER && ev.ids.includes(markerId)) return seen;
    if (ev.node === NODE) seen.push(...ev.ids);
  }
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

async function main() {
  const results = [];
  let owner;
  let sub;
  const check = async (name, fn) => {
    try {
      const detail = await fn();
      results.push({ name, ok: true, detail: detail ?? "" });
    } catch (err) {
      if (!(err instanceof CheckFailed)) throw err;
      results.push({ name, ok: false, detail: err.message });
    }
  };
  try {
    owner = await connect(OWNER, "xmppjs-owner");
    sub = await connect(SUBSCRIBER, "xmppjs-sub");

    // Setup (not a check: without it nothing below means anything).
    for (const node of [NODE, MARKER]) {
      mustResult(await psIq(owner, "set", xml("pubsub", { xmlns: NS_PUBSUB }, xml("create", { node }))),
        `create ${node}`);
      const s = mustResult(await psIq(sub, "set",
        xml("pubsub", { xmlns: NS_PUBSUB }, xml("subscribe", { node, jid: SUB_JID }))), `subscribe to ${node}`);
      const state = s.getChild("pubsub", NS_PUBSUB)?.getChild("subscription")?.attrs.subscription;
      if (state !== "subscribed") fail(`subscribe to ${node}: subscription='${state}' in ${s}`);
    }

    await check("options-get-has-deliver (§6.3.2, §6.3.4)", async () => {
      const { form, x, options } = await getOptions(sub);
      if (x.attrs.type !== "form") fail(`options form has type='${x.attrs.type}', expected 'form'`);
      if (JSON.stringify(form.FORM_TYPE) !== JSON.stringify([NS_SUB_OPTIONS]))
        fail(`FORM_TYPE is ${JSON.stringify(form.FORM_TYPE)}, expected ${NS_SUB_OPTIONS}`);
      if (!("pubsub#deliver" in form)) fail(`no pubsub#deliver field: ${x}`);
      if (form["type:pubsub#deliver"] !== "boolean")
        fail(`pubsub#deliver has type='${form["type:pubsub#deliver"]}', expected 'boolean'`);
      if (options.attrs.node !== NODE) fail(`<options node='${options.attrs.node}'>, expected ${NODE}`);
      if (!(await deliverValue(sub))) fail("a new subscription does not deliver by default");
      return `pubsub#deliver=${JSON.stringify(form["pubsub#deliver"])}`;
    });

    for (const [label, value] of [["perhaps", "perhaps"], ["empty", null], ["2", "2"]]) {
      await check(`deliver-${label}-refused (§6.3.6.2)`, async () => {
        await setDeliver(sub, "1");
        const answer = await setOptions(sub, { "pubsub#deliver": value });
        mustInvalidOptions(answer, `pubsub#deliver=${value === null ? "<value/>" : `'${value}'`}`);
        if (!(await deliverValue(sub))) fail(`the refused value ${JSON.stringify(value)} changed pubsub#deliver to false`);
      });
    }

    await check("unknown-field-refused (§6.3.6.2)", async () => {
      await setDeliver(sub, "1");
      mustInvalidOptions(await setOptions(sub, { "pubsub#bogus": "1" }), "unknown field pubsub#bogus");
      mustInvalidOptions(await setOptions(sub, { "pubsub#deliver": "0", "pubsub#bogus": "1" }),
        "pubsub#deliver=0 together with unknown field pubsub#bogus");
      if (!(await deliverValue(sub))) fail("a refused form (with pubsub#bogus) changed pubsub#deliver");
    });

    await check("omitted-deliver-kept (§6.3.5)", async () => {
      await setDeliver(sub, "false");
      mustResult(await setOptions(sub, {}), "options submit with FORM_TYPE only");
      if (await deliverValue(sub))
        fail("a submitted form without pubsub#deliver reset pubsub#deliver from false to true");
    });

    await check("deliver-false-then-true (§6.3.5, §6.3.6.1)", async () => {
      await setDeliver(sub, "0");
      const quiet = await notifiedBeforeMarker(owner, sub, "quiet");
      if (quiet.length) fail(`notified of ${JSON.stringify(quiet)} with pubsub#deliver=0`);
      await setDeliver(sub, "true");
      const loud = await notifiedBeforeMarker(owner, sub, "loud");
      if (JSON.stringify(loud) !== JSON.stringify(["loud"]))
        fail(`with pubsub#deliver=true expected one notification of item 'loud', got ${JSON.stringify(loud)}`);
    });
  } finally {
    for (const c of [sub, owner]) {
      if (c) await c.xmpp.stop().catch(() => {});
    }
  }
  return results;
}

try {
  const checks = await main();
  const ok = checks.every((c) => c.ok);
  console.log(JSON.stringify({ ok, checks }, null, 1));
  for (const c of checks.filter((c) => !c.ok)) console.error(`FAILED ${c.name}: ${c.detail}`);
  process.exit(ok ? 0 : 1);
} catch (err) {
  console.log(JSON.stringify({ ok: false, checks: [], error: String(err && err.stack ? err.stack : err) }));
  console.error(`scenario could not run: ${err && err.stack ? err.stack : err}`);
  process.exit(2);
}
