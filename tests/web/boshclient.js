// strophe.js (pinned in package-lock.json) over BOSH (XEP-0124/XEP-0206),
// remote-controlled by tests/e2e/test_81_bosh.py.
//
// In Node, strophe.js 5 installs its own DOM (@xmldom/xmldom) and `ws`
// globals (its "node" export), but its BOSH transport uses the browser's
// XMLHttpRequest, which Node lacks. We install `xhr2` (a Node implementation
// of XMLHttpRequest level 2 on node:http) as the global XMLHttpRequest,
// adding the one member it lacks, `responseXML` (parsed with the DOMParser
// strophe.js installed: a browser parses text/xml responses the same way).
// It also reports every HTTP request it carries ({"event":"http"}), so the
// test can tell which request a stanza came back on (long polling).
//
// Configuration (environment):
//   HERALD_SERVICE  http://127.0.0.1:<http port>/http-bind (required)
//   HERALD_DOMAIN   XMPP domain (default localhost)
//   XMPP_USER, XMPP_PASSWORD, XMPP_RESOURCE
//   BOSH_WAIT       the wait attribute to ask for (seconds, default 30)
//
// Protocol: one JSON object per line.
//   out: {"event":"online","jid"}, {"event":"auth","mechanism"},
//        {"event":"status","status","condition"}, {"event":"stanza","xml"},
//        {"event":"http","seq","rid","type","status","body"} (one per finished
//        request; seq counts requests in the order they were sent),
//        {"event":"http-sent","seq","rid"}, {"event":"reply","id","ok",...},
//        {"event":"disconnected"}, {"event":"fatal","error"}
//   in:  {"cmd":"send","id","xml"}   send one stanza (and flush)
//        {"cmd":"iq","id","xml"}     send an iq, reply with the answer
//        {"cmd":"mark","id"}          reply with {"sent": requests sent so far,
//                                      "outstanding": those not answered yet}
//        {"cmd":"disconnect","id"}   conn.disconnect(): BOSH terminate
//        {"cmd":"quit"}               disconnect if connected, then exit 0
import readline from "node:readline";
import XHR2 from "xhr2";
import { Strophe, toStanza } from "strophe.js";
import { env, out } from "./io.js";

// strophe.js logs through console.*; keep stdout for the JSON protocol.
for (const level of ["log", "debug", "info", "warn", "error"]) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
}

let seq = 0;
let done = 0;

class XMLHttpRequest extends XHR2 {
  get responseXML() {
    if (this.readyState !== 4 || !this.responseText) return null;
    return new DOMParser().parseFromString(this.responseText, "text/xml");
  }

  send(data) {
    const mySeq = ++seq;
    // The attributes of the <body/> wrapper (its start tag only).
    const head = (/^<body\b[^>]*>/.exec(String(data || "")) || [""])[0];
    const rid = (/\srid=['"](\d+)['"]/.exec(head) || [])[1] || null;
    const type = (/\stype=['"](\w+)['"]/.exec(head) || [])[1] || null;
    out({ event: "http-sent", seq: mySeq, rid, type });
    this.addEventListener("loadend", () => {
      done++;
      out({ event: "http", seq: mySeq, rid, type, status: this.status, body: this.responseText });
    });
    return super.send(data);
  }
}
globalThis.XMLHttpRequest = XMLHttpRequest;

const DOMAIN = env("HERALD_DOMAIN", "localhost");
const jid = `${env("XMPP_USER")}@${DOMAIN}/${env("XMPP_RESOURCE", "strophe-bosh")}`;
const conn = new Strophe.Connection(env("HERALD_SERVICE"));
const statusNames = Object.fromEntries(Object.entries(Strophe.Status).map(([k, v]) => [v, k]));

conn.xmlOutput = (body) => {
  for (const el of Array.from(body.childNodes || [])) {
    if (el.nodeName === "auth") out({ event: "auth", mechanism: el.getAttribute("mechanism") });
  }
};
conn.addHandler((el) => {
  out({ event: "stanza", xml: Strophe.serialize(el) });
  return true;
}, null, null, null, null, null);

let online = false;
let disconnectWaiter = null;
const connected = new Promise((resolve) => {
  conn.connect(jid, env("XMPP_PASSWORD"), (status, condition) => {
    out({ event: "status", status: statusNames[status] || status, condition: condition || null });
    if (status === Strophe.Status.CONNECTED) {
      online = true;
      resolve(true);
    } else if ([Strophe.Status.CONNFAIL, Strophe.Status.AUTHFAIL, Strophe.Status.ERROR,
      Strophe.Status.CONNTIMEOUT].includes(status)) {
      resolve(false);
    } else if (status === Strophe.Status.DISCONNECTED) {
      online = false;
      out({ event: "disconnected" });
      if (disconnectWaiter) disconnectWaiter();
      resolve(false);
    }
  }, Number(env("BOSH_WAIT", "30")), 1);
});

let disconnecting = null;
function disconnect() {
  if (!online) return disconnecting ?? Promise.resolve();
  disconnecting ??= new Promise((resolve) => {
    disconnectWaiter = resolve;
    conn.disconnect("test asked");
  });
  return disconnecting;
}

async function handle(cmd) {
  try {
    if (cmd.cmd === "send") {
      conn.send(toStanza(cmd.xml));
      conn.flush();
      out({ event: "reply", id: cmd.id, ok: true });
    } else if (cmd.cmd === "iq") {
      const answer = await new Promise((resolve) => {
        conn.sendIQ(toStanza(cmd.xml), (res) => resolve({ type: "result", res }),
          (res) => resolve({ type: res ? "error" : "timeout", res }), cmd.timeout || 10000);
      });
      if (answer.type === "timeout") throw new Error("iq timed out");
      out({ event: "reply", id: cmd.id, ok: true, type: answer.type, xml: Strophe.serialize(answer.res) });
    } else if (cmd.cmd === "mark") {
      out({ event: "reply", id: cmd.id, ok: true, sent: seq, outstanding: seq - done });
    } else if (cmd.cmd === "disconnect") {
      await disconnect();
      out({ event: "reply", id: cmd.id, ok: true });
    } else if (cmd.cmd === "quit") {
      await disconnect();
      process.exit(0);
    } else {
      throw new Error(`unknown command ${cmd.cmd}`);
    }
  } catch (err) {
    out({ event: "reply", id: cmd.id, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
}

if (!(await connected)) {
  out({ event: "fatal", error: "strophe.js did not reach CONNECTED" });
  process.exit(2);
}
out({ event: "online", jid: conn.jid });

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim()) handle(JSON.parse(line));
});
rl.on("close", async () => {
  await disconnect();
  process.exit(0);
});
