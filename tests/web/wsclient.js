// xmpp.js (@xmpp/client, pinned in package-lock.json) over its WebSocket
// transport (RFC 7395), remote-controlled by tests/e2e/test_80_websocket.py.
//
// @xmpp/websocket 0.14 opens `new WebSocket(url, ["xmpp"])` on the global
// WebSocket, which Node 20 only has behind --experimental-websocket (Node 22
// has it by default). We install the pinned `ws` package's WebSocket as that
// global, on every Node version, so the same implementation runs everywhere.
//
// Configuration (environment):
//   HERALD_SERVICE  ws://127.0.0.1:<http port>/xmpp-websocket (required)
//   HERALD_DOMAIN   XMPP domain (default localhost)
//   XMPP_USER, XMPP_PASSWORD, XMPP_RESOURCE
//
// Protocol: one JSON object per line.
//   out: {"event":"online","jid"}, {"event":"auth","mechanism"} (the <auth/>
//        it sent), {"event":"stanza","xml"}, {"event":"error","error"},
//        {"event":"offline"}, {"event":"reply","id","ok",...}, {"event":"fatal"}
//   in:  {"cmd":"send","id","xml"}  send one stanza (reply when written)
//        {"cmd":"iq","id","xml"}    send an iq get/set, reply with the answer
//                                    ({"type":"result"|"error","xml"})
//        {"cmd":"quit"}             xmpp.stop() (sends <close/>), then exit 0
import WebSocket from "ws";
import readline from "node:readline";
import { client } from "@xmpp/client";
import parse from "ltx/lib/parse.js";
import { env, out } from "./io.js";

globalThis.WebSocket = WebSocket;

const xmpp = client({
  service: env("HERALD_SERVICE"),
  domain: env("HERALD_DOMAIN", "localhost"),
  resource: env("XMPP_RESOURCE", "xmppjs-ws"),
  username: env("XMPP_USER"),
  password: env("XMPP_PASSWORD"),
});
// No reconnection: a dropped stream must show, not be papered over.
xmpp.reconnect.stop();

xmpp.on("error", (err) => out({ event: "error", error: String(err && err.stack ? err.stack : err) }));
xmpp.on("offline", () => out({ event: "offline" }));
xmpp.on("send", (el) => {
  if (el.name === "auth") out({ event: "auth", mechanism: el.attrs.mechanism });
});
xmpp.on("stanza", (stanza) => out({ event: "stanza", xml: stanza.toString() }));

// One stop for both ways out (a "quit" command and the end of stdin).
let stopping = null;
function stopOnce() {
  stopping ??= xmpp.stop().catch((err) => out({ event: "error", error: `stop: ${err}` }));
  return stopping;
}

async function handle(cmd) {
  try {
    if (cmd.cmd === "send") {
      await xmpp.send(parse(cmd.xml));
      out({ event: "reply", id: cmd.id, ok: true });
    } else if (cmd.cmd === "iq") {
      try {
        const res = await xmpp.iqCaller.request(parse(cmd.xml), cmd.timeout || 10000);
        out({ event: "reply", id: cmd.id, ok: true, type: "result", xml: res.toString() });
      } catch (err) {
        if (err && err.name === "StanzaError" && err.element)
          out({ event: "reply", id: cmd.id, ok: true, type: "error", xml: err.element.toString() });
        else throw err;
      }
    } else if (cmd.cmd === "quit") {
      await stopOnce();
      out({ event: "stopped" });
      process.exit(0);
    } else {
      throw new Error(`unknown command ${cmd.cmd}`);
    }
  } catch (err) {
    out({ event: "reply", id: cmd.id, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
}

try {
  const address = await xmpp.start();
  out({ event: "online", jid: address.toString() });
} catch (err) {
  out({ event: "fatal", error: String(err && err.stack ? err.stack : err) });
  process.exit(2);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim()) handle(JSON.parse(line));
});
rl.on("close", async () => {
  await stopOnce();
  process.exit(0);
});
