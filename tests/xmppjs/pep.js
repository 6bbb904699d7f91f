// XEP-0163 PEP against Herald, driven by xmpp.js (@xmpp/client, pinned in
// package-lock.json) over TCP with STARTTLS: an account publishes to its own
// PEP node (XEP-0172 nickname), once with no 'to' (the account's own
// service) and once to its bare JID, then reads the node back.
//
// Run by tests/e2e/test_76_pep.py, which starts the server, creates the
// accounts and watches a contact's notifications. Configuration
// (environment): HERALD_PORT (required), HERALD_DOMAIN (default localhost),
// PEP_USER, PEP_PASSWORD, NICK (the nickname to publish).
// Herald's certificate is self-signed: run with NODE_TLS_REJECT_UNAUTHORIZED=0.
//
// Prints one JSON object {"ok", "checks": [{"name", "ok", "detail"}]} on
// stdout and exits 0 only if every check passed (1 if one failed, 2 if the
// scenario could not run at all).
import { client, xml } from "@xmpp/client";

const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
const NS_NICK = "http://jabber.org/protocol/nick";
const IQ_TIMEOUT = 10000;

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
const USER = env("PEP_USER");
const PASSWORD = env("PEP_PASSWORD");
const NICK = env("NICK");
const BARE = `${USER}@${DOMAIN}`;

function publish(id, to) {
  const attrs = { type: "set" };
  if (to) attrs.to = to;
  return xml("iq", attrs,
    xml("pubsub", { xmlns: NS_PUBSUB },
      xml("publish", { node: NS_NICK },
        xml("item", { id }, xml("nick", { xmlns: NS_NICK }, NICK)))));
}

async function main() {
  const results = [];
  const xmpp = client({ service: `xmpp://127.0.0.1:${PORT}`, domain: DOMAIN, resource: "xmppjs",
                        username: USER, password: PASSWORD });
  xmpp.reconnect.stop();
  await xmpp.start();
  const check = async (name, fn) => {
    try {
      await fn();
      results.push({ name, ok: true, detail: "" });
    } catch (err) {
      results.push({ name, ok: false, detail: String(err && err.message ? err.message : err) });
    }
  };
  try {
    await check("publish-without-to", async () => {
      await xmpp.iqCaller.request(publish("current"), IQ_TIMEOUT);
    });
    await check("publish-to-own-bare-jid", async () => {
      await xmpp.iqCaller.request(publish("current", BARE), IQ_TIMEOUT);
    });
    await check("items-read-back", async () => {
      const res = await xmpp.iqCaller.request(
        xml("iq", { type: "get", to: BARE },
          xml("pubsub", { xmlns: NS_PUBSUB }, xml("items", { node: NS_NICK }))), IQ_TIMEOUT);
      const items = res.getChild("pubsub", NS_PUBSUB).getChild("items").getChildren("item");
      const nicks = items.map((i) => i.getChildText("nick", NS_NICK));
      if (JSON.stringify(nicks) !== JSON.stringify([NICK]))
        throw new Error(`expected one item with nick ${NICK} (max_items 1), got ${JSON.stringify(nicks)}`);
    });
  } finally {
    await xmpp.stop().catch(() => {});
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
