"""XEP-0198 stream management with clients nobody here wrote.

test_74 drives stream management by hand over raw sockets; here the other
side is a real client library's own implementation, so Herald must agree
with how others read the specification:

* slixmpp's xep_0198 plugin: enable with resumption, the plugin's ack
  counters across a TCP reset and a <resume/>, and the fall-back to a new
  session (and offline storage) after c2s.resume_timeout.
* aioxmpp's StanzaStream (stream management on by default when the server
  offers <sm xmlns='urn:xmpp:sm:3'/>): suspension on a broken transport,
  automatic reconnection and resumption, exactly-once delivery.
* Profanity 0.13 (libstrophe 0.12) in a private tmux server: resumption
  after a reset, the message shown exactly once in its chat window.

The cut is a TCP reset (SO_LINGER 0) under the client, never a closing
</stream:stream>, as when a network path dies: slixmpp's own socket, or a
relay (sm_helpers.CutProxy) between the client and Herald that can also
stall (lose what Herald writes) or freeze (go silent without Herald
noticing) before the reset. Profanity and tmux are skipped when missing
(scripts/install-deps installs them).
"""
import asyncio

import pytest

from e2e_helpers import DOMAIN, XClient, run
from sm_helpers import LogRecorder, SMClient, await_log, delay_stamp

USERS = {"alice": "wonderland", "bob": "builder"}
ALICE = "alice@%s" % DOMAIN


async def _bob(srv):
    bob = XClient(srv, "bob@%s/b1" % DOMAIN, USERS["bob"])
    await bob.login()
    await bob.presence()
    return bob


async def _sm_alice(srv, resource="sm1"):
    alice = SMClient(srv, "%s/%s" % (ALICE, resource), USERS["alice"])
    await alice.login()
    await alice.presence()
    return alice


# --------------------------------------------------------------------------
# slixmpp xep_0198
# --------------------------------------------------------------------------

def test_slixmpp_resume_after_reset_exactly_once(herald):
    """slixmpp enables resumable SM; its TCP connection is reset; bob sends
    N messages to its full JID meanwhile; slixmpp reconnects and resumes
    (no new session): every message arrives once, in order, and both sides'
    counters agree (the server's <resumed h/> is what slixmpp sent, and the
    server accepts slixmpp's <a h/> afterwards)."""
    srv = herald(users=USERS)
    N = 12

    async def main():
        with LogRecorder("slixmpp.plugins.xep_0198") as sm_log:
            alice = await _sm_alice(srv)
            assert alice.enabled, "no sm_enabled event: %s" % alice.events
            en = alice.enabled[0]
            assert alice.sm.sm_id and en["id"] == alice.sm.sm_id, str(en)
            assert en["resume"] in (True, "true", "1"), "resumable: %s" % en
            assert alice.sm.enabled_in and alice.sm.enabled_out
            assert await await_log(srv, "stream management enabled, resumable")
            bob = await _bob(srv)
            # Some traffic before the cut, acknowledged in both directions.
            bob.send_message(alice.jid, "before")
            await bob.sync()
            assert await alice.wait_bodies(1) == ["before"]
            alice.sm.request_ack()
            await alice.sync()
            alice.sm.send_ack()
            await alice.sync()
            sent_by_alice = alice.sm.seq
            handled_by_alice = alice.sm.handled
            assert handled_by_alice >= 3, "presence, ping results and a message were counted"
            sm_id = alice.sm.sm_id

            alice.cut()
            assert await alice.wait_event("disconnected", timeout=5) == "disconnected"
            assert "session_end" not in alice.events, \
                "slixmpp keeps the session for resumption: %s" % alice.events
            assert await await_log(srv, "kept for resumption"), "the server noticed the reset"
            for i in range(N):
                bob.send_message(alice.jid, "m%02d" % i)
            await bob.sync()
            assert bob.message_errors.empty(), "no error while alice's session waits"

            outcome = await alice.reconnect("session_resumed", "session_start", "sm_failed")
            assert outcome == "session_resumed", \
                "slixmpp did not resume: %s (events %s)" % (outcome, alice.events)
            r = alice.resumed[0]
            assert r["previd"] == sm_id, str(r)
            assert int(r["h"]) == sent_by_alice, \
                "the server handled every stanza slixmpp sent (%d): %s" % (sent_by_alice, r)
            bodies = await alice.wait_bodies(1 + N)
            await asyncio.sleep(1.0)  # nothing more (no duplicate) may come
            bodies = alice.bodies()
            assert bodies == ["before"] + ["m%02d" % i for i in range(N)], \
                "every message once, in order: %r" % bodies
            assert alice.sm.handled == (handled_by_alice + N) % 2**32, \
                "slixmpp counted the %d messages sent again: %d -> %d" % (
                    N, handled_by_alice, alice.sm.handled)
            # slixmpp answers with its h; the server must accept it (an h too
            # high is a stream error) and keep counting.
            alice.sm.send_ack()
            alice.send_message("bob@%s/b1" % DOMAIN, "after resume")
            await alice.sync()
            assert (await bob.expect_message())["body"] == "after resume"
            # (<r/> goes out at once, stanzas through slixmpp's send queue:
            # ask only once both have been answered.)
            alice.sm.request_ack()
            for _ in range(50):
                if not alice.sm.unacked_queue:
                    break
                await asyncio.sleep(0.05)
            assert not alice.sm.unacked_queue, \
                "the server acknowledged all slixmpp sent: %d left" % len(alice.sm.unacked_queue)
            assert alice.events.count("session_start") == 1, alice.events
            assert alice.stream_errors == [], alice.stream_errors
            # slixmpp 1.8 empties its unacknowledged queue when it sends
            # <resume/> and then logs "Inconsistent sequence numbers" for
            # any h in <resumed/> above its last <a/> (a slixmpp defect; the
            # h Herald sent is checked against slixmpp's counter above).
            # Any other complaint of the plugin is a failure.
            others = [r for r in sm_log.records if "Inconsistent sequence numbers" not in r]
            assert others == [], others
        log = srv.log_text(max_chars=10**7)
        assert " resumed; %d unacknowledged stanza(s) sent again" % N in log, \
            "the server resent exactly the %d messages queued while cut" % N
        assert "re-routed" not in log and "undefined-condition" not in log

    run(main, timeout=40)


def test_slixmpp_repeated_resumptions_keep_counting(herald):
    """Three reset-and-resume rounds in a row on one session: the SM id
    stays, slixmpp's counter and Herald's go on across every resumption
    (each <resumed h/> equals what slixmpp sent; Herald accepts slixmpp's
    <a h/> and acknowledges all it sent), and every message, whether it was
    in flight before a reset or sent while the session was detached,
    arrives exactly once, in order."""
    srv = herald(users=USERS)

    async def main():
        alice = await _sm_alice(srv, "sm3")
        sm_id = alice.sm.sm_id
        bob = await _bob(srv)
        expected = []
        for rnd in range(3):
            for i in range(4):
                expected.append("r%d-%d" % (rnd, i))
                bob.send_message(alice.jid, expected[-1])
            await bob.sync()
            await alice.wait_bodies(len(expected))
            sent = alice.sm.seq
            alice.cut()
            assert await alice.wait_event("disconnected", timeout=5) == "disconnected"
            assert await await_log(srv, "kept for resumption", count=rnd + 1)
            for i in range(3):
                expected.append("c%d-%d" % (rnd, i))
                bob.send_message(alice.jid, expected[-1])
            await bob.sync()
            outcome = await alice.reconnect("session_resumed", "session_start", "sm_failed")
            assert outcome == "session_resumed", "round %d: %s (%s)" % (rnd, outcome, alice.events)
            r = alice.resumed[-1]
            assert r["previd"] == sm_id and int(r["h"]) == sent, "round %d: %s" % (rnd, r)
            await alice.wait_bodies(len(expected))
            # slixmpp says something each round: Herald's h must follow.
            alice.send_message("bob@%s/b1" % DOMAIN, "round %d" % rnd)
            assert (await bob.expect_message())["body"] == "round %d" % rnd
        await asyncio.sleep(1.0)
        assert alice.bodies() == expected, alice.bodies()
        alice.sm.send_ack()
        await alice.sync()
        alice.sm.request_ack()
        for _ in range(50):
            if not alice.sm.unacked_queue:
                break
            await asyncio.sleep(0.05)
        assert not alice.sm.unacked_queue, "Herald acknowledged all slixmpp sent"
        assert alice.events.count("session_start") == 1, alice.events
        assert alice.stream_errors == [] and bob.message_errors.empty()
        assert srv.log_text(max_chars=10**7).count("alice@localhost/sm3 resumed") == 3

    run(main, timeout=40)


def test_slixmpp_resume_after_timeout_falls_back_to_offline(herald):
    """After c2s.resume_timeout the plugin's <resume/> gets <failed/> with
    item-not-found; slixmpp binds a new session (session_start again) and
    the messages sent while it was cut arrive as offline messages, with a
    XEP-0203 delay, after its presence, exactly once."""
    srv = herald(config={"c2s": {"resume_timeout": "1"}}, users=USERS)

    async def main():
        alice = await _sm_alice(srv)
        assert alice.enabled and alice.enabled[0]["max"] in (1, "1"), str(alice.enabled)
        bob = await _bob(srv)
        bob.send_message(alice.jid, "acked")
        await bob.sync()
        assert await alice.wait_bodies(1) == ["acked"]
        alice.sm.send_ack()
        await alice.sync()
        alice.cut()
        assert await alice.wait_event("disconnected", timeout=5) == "disconnected"
        assert await await_log(srv, "kept for resumption")
        for i in range(3):
            bob.send_message(alice.jid, "late%d" % i)
        await bob.sync()
        assert await await_log(srv, "not resumed within 1 s"), "the session timed out"
        del alice.inbox[:]
        outcome = await alice.reconnect("session_start", "session_resumed")
        assert outcome == "session_start", "a new session after <failed/>: %s" % alice.events
        assert alice.failed, "slixmpp got <failed/>: %s" % alice.events
        f = alice.failed[0]
        assert f.xml.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None, \
            str(f)
        assert "session_resumed" not in alice.events
        # The plugin enables SM again on the new session, with a new id
        # (slixmpp may signal session_start before <enabled/> arrives).
        for _ in range(100):
            if len(alice.enabled) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(alice.enabled) == 2 and alice.enabled[1]["id"] != alice.enabled[0]["id"], \
            alice.events
        await asyncio.sleep(0.5)
        assert alice.bodies() == [], "offline messages wait for the initial presence"
        await alice.presence()
        bodies = await alice.wait_bodies(3)
        await asyncio.sleep(0.8)
        bodies = alice.bodies()
        assert bodies == ["late0", "late1", "late2"], bodies
        stamps = [delay_stamp(m) for m in alice.inbox if m["type"] != "error"]
        assert all(stamps), "offline messages carry a XEP-0203 delay: %s" % stamps
        assert bob.message_errors.empty()
        assert alice.stream_errors == []

    run(main, timeout=40)


def test_slixmpp_resume_replaces_silent_connection(herald):
    """The path to slixmpp goes silent (nothing relayed, the server sees no
    reset: a dead NAT binding); Herald keeps writing bob's messages into the
    old connection. slixmpp gives up on it and resumes over a new one:
    Herald takes the session over from the connection it still believes
    in (issue 12: "Resumption replaces a stale connection"), retransmits
    what was not acknowledged, and slixmpp gets every message once."""
    from sm_helpers import CutProxy

    srv = herald(users=USERS)
    proxy = CutProxy(srv.port)
    N = 8

    async def main():
        alice = SMClient(proxy, "%s/sm2" % ALICE, USERS["alice"])
        await alice.login()
        await alice.presence()
        bob = await _bob(srv)
        bob.send_message(alice.jid, "before")
        await bob.sync()
        assert await alice.wait_bodies(1) == ["before"]
        proxy.freeze()
        for i in range(N):
            bob.send_message(alice.jid, "s%d" % i)
        await bob.sync()
        await asyncio.sleep(0.3)
        log = srv.log_text(max_chars=10**7)
        assert "connection lost" not in log, "Herald cannot have noticed anything"
        alice.cut()  # slixmpp's end of the dead path is gone; Herald's is not
        assert await alice.wait_event("disconnected", timeout=5) == "disconnected"
        outcome = await alice.reconnect("session_resumed", "session_start", "sm_failed")
        assert outcome == "session_resumed", "%s (events %s)" % (outcome, alice.events)
        await alice.wait_bodies(1 + N)
        await asyncio.sleep(1.0)
        assert alice.bodies() == ["before"] + ["s%d" % i for i in range(N)], alice.bodies()
        assert await await_log(srv, "resumed (replacing a connection still open)")
        # The session lives on the new connection only.
        bob.send_message(alice.jid, "after")
        assert (await alice.wait_bodies(2 + N))[-1] == "after"
        assert alice.events.count("session_start") == 1, alice.events
        assert alice.stream_errors == [], alice.stream_errors
        assert bob.message_errors.empty()

    try:
        run(main, timeout=40)
    finally:
        proxy.close()


# --------------------------------------------------------------------------
# aioxmpp (StanzaStream stream management, Client reconnection)
# --------------------------------------------------------------------------

def _aioxmpp_client(aioxmpp, port, resource="ax"):
    import aioxmpp.connector
    jid = aioxmpp.JID.fromstr("%s/%s" % (ALICE, resource))
    # The server's certificate is self-signed: no verification (loopback).
    c = aioxmpp.Client(jid, aioxmpp.make_security_layer(USERS["alice"], no_verify=True),
                       override_peer=[("127.0.0.1", port, aioxmpp.connector.STARTTLSConnector())],
                       max_initial_attempts=1)
    c.backoff_start = __import__("datetime").timedelta(seconds=0.2)
    return c


def test_aioxmpp_resumes_after_network_reset(herald):
    """aioxmpp enables resumable SM on its own; the TCP connection is reset
    under it (through a relay: aioxmpp sees ECONNRESET, Herald sees RST);
    aioxmpp suspends, reconnects and resumes (on_stream_resumed, no new
    on_stream_established). Before the reset the path stalls: Herald's
    writes are lost (bob's first messages, the <a/> for a message aioxmpp
    sent). After resumption every message bob sent arrives once, in order
    (those lost in flight are retransmitted from Herald's unacknowledged
    queue, the rest was queued on the detached session); aioxmpp's message
    reaches bob once (Herald's <resumed h/> covers it, so aioxmpp does not
    send it again); afterwards aioxmpp's counters agree with Herald's (every
    stanza acknowledged, no stream error)."""
    aioxmpp = pytest.importorskip("aioxmpp")
    import aioxmpp.dispatcher
    from sm_helpers import CutProxy

    srv = herald(users=USERS)
    N = 10
    proxy = CutProxy(srv.port)

    async def main():
        c = _aioxmpp_client(aioxmpp, proxy.port)
        events, got = [], []
        c.on_stream_suspended.connect(lambda reason: events.append("suspended"))
        c.on_stream_resumed.connect(lambda: events.append("resumed"))
        c.on_stream_established.connect(lambda: events.append("established"))
        c.on_stream_destroyed.connect(lambda *a: events.append("destroyed"))
        disp = c.summon(aioxmpp.dispatcher.SimpleMessageDispatcher)
        disp.register_callback(aioxmpp.MessageType.CHAT, None,
                               lambda m: got.append(m.body.any()))
        with LogRecorder("aioxmpp") as ax_log:
            async with c.connected():
                await c.send(aioxmpp.Presence())
                st = c.stream
                assert st.sm_enabled, "aioxmpp enabled stream management"
                assert st.sm_resumable and st.sm_id and len(st.sm_id) >= 16, st.sm_id
                assert st.sm_max == 300, st.sm_max
                assert await await_log(srv, "alice@localhost/ax: stream management enabled, "
                                            "resumable")
                sm_id = st.sm_id
                bob = await _bob(srv)
                bob.send_message("%s/ax" % ALICE, "before")
                await bob.sync()
                for _ in range(100):
                    if got:
                        break
                    await asyncio.sleep(0.05)
                assert got == ["before"]

                # The path dies from the server's side first: what Herald
                # writes is lost (bob's first messages, Herald's <a/> for
                # alice's message), then the connection is reset.
                proxy.stall()
                for i in range(N // 2):
                    bob.send_message("%s/ax" % ALICE, "m%02d" % i)
                await bob.sync()
                msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT,
                                      to=aioxmpp.JID.fromstr("bob@%s/b1" % DOMAIN))
                msg.body[None] = "from alice before the cut"
                c.enqueue(msg)
                assert (await bob.expect_message())["body"] == "from alice before the cut"
                await asyncio.sleep(0.2)
                assert c.stream.sm_unacked_list, "Herald's <a/> was lost in the stalled path"
                assert got == ["before"], got
                proxy.cut()
                assert await await_log(srv, "kept for resumption"), "Herald noticed the reset"
                for i in range(N // 2, N):
                    bob.send_message("%s/ax" % ALICE, "m%02d" % i)
                await bob.sync()
                for _ in range(200):
                    if "resumed" in events or "destroyed" in events:
                        break
                    await asyncio.sleep(0.05)
                assert events[:3] == ["established", "suspended", "resumed"], events
                assert c.stream.sm_enabled and c.stream.sm_id == sm_id
                expected = ["before"] + ["m%02d" % i for i in range(N)]
                for _ in range(100):
                    if len(got) >= len(expected):
                        break
                    await asyncio.sleep(0.05)
                # aioxmpp asks <r/> after each stanza it sends: once Herald
                # acknowledged all, nothing can be sent twice any more.
                msg2 = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT,
                                       to=aioxmpp.JID.fromstr("bob@%s/b1" % DOMAIN))
                msg2.body[None] = "after resume"
                await c.send(msg2)
                for _ in range(100):
                    if not c.stream.sm_unacked_list:
                        break
                    await asyncio.sleep(0.05)
                assert c.stream.sm_unacked_list == [], \
                    "Herald acknowledged everything aioxmpp sent"
                await asyncio.sleep(1.0)
                assert got == expected, "every message once, in order: %r" % got
                bodies = []
                while not bob.messages.empty():
                    bodies.append(bob.messages.get_nowait()["body"])
                assert bodies == ["after resume"], \
                    "alice's messages reached bob exactly once: %r" % bodies
                assert events.count("established") == 1, events
        # The reset itself is reported ("stream failed: ECONNRESET"); a
        # stream error from Herald or a failed resumption would be too.
        bad = [r for r in ax_log.records
               if ("stream" in r.lower() or "resum" in r.lower()) and "ECONNRESET" not in r]
        assert bad == [], bad
        log = srv.log_text(max_chars=10**7)
        assert "alice@localhost/ax resumed" in log
        assert "undefined-condition" not in log and "re-routed" not in log

    try:
        run(main, timeout=40)
    finally:
        proxy.close()


# --------------------------------------------------------------------------
# Profanity (libstrophe's stream management) in tmux
# --------------------------------------------------------------------------

def _profanity_home(base, proxy_port):
    home = base / "home"
    (home / ".config" / "profanity").mkdir(parents=True)
    (home / ".local" / "share" / "profanity").mkdir(parents=True)
    # tls.policy=trust: TLS required, the self-signed certificate trusted.
    (home / ".local" / "share" / "profanity" / "accounts").write_text(
        "[alice@localhost]\nenabled=true\njid=alice@localhost\nserver=127.0.0.1\n"
        "port=%d\nresource=prof\npassword=%s\ntls.policy=trust\n" % (proxy_port, USERS["alice"]))
    # Reconnect one second after a lost connection (the default is 30 s).
    (home / ".config" / "profanity" / "profrc").write_text(
        "[connection]\nreconnect=1\n[ui]\nsplash=false\n")
    return home


class _Tmux:
    """A private tmux server (its own socket) running one program."""

    def __init__(self, name, argv, env):
        import subprocess
        self.sp = subprocess
        self.sock = name
        self.run("new-session", "-d", "-s", "main", "-x", "180", "-y", "50",
                 "env", *["%s=%s" % kv for kv in env.items()], *argv)

    def run(self, *args):
        return self.sp.run(["tmux", "-L", self.sock] + list(args), capture_output=True,
                           text=True, timeout=10)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "main").stdout

    def keys(self, text):
        self.run("send-keys", "-t", "main", "-l", text)
        self.run("send-keys", "-t", "main", "Enter")

    def wait_screen(self, pred, timeout=10.0):
        import time as _t
        deadline = _t.monotonic() + timeout
        while _t.monotonic() < deadline:
            s = self.screen()
            if pred(s):
                return s
            _t.sleep(0.1)
        return None

    def close(self):
        self.run("kill-server")


@pytest.mark.once
def test_profanity_resumes_and_shows_message_once(herald, tmp_path):
    """Profanity 0.13 (libstrophe 0.12) enables resumable SM with Herald.
    The path to it stalls (a message bob sends is lost in flight), then the
    connection is reset; bob sends another. Profanity reconnects on its own
    (/reconnect 1), resumes (Herald binds no new session) and its chat window
    with bob shows each message exactly once, in order."""
    import os
    import shutil
    from e2e_helpers import RawStream
    from sm_helpers import CutProxy, wait_log

    if not (shutil.which("profanity") and shutil.which("tmux")):
        pytest.skip("profanity and tmux are needed (scripts/install-deps)")
    srv = herald(users=USERS)
    proxy = CutProxy(srv.port)
    home = _profanity_home(tmp_path, proxy.port)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local" / "share"), "TERM": "xterm", "LANG": "C.UTF-8"}
    tm = _Tmux("herald-e2e-%d" % os.getpid(), ["profanity", "-l", "DEBUG", "-a", ALICE], env)
    bob = None
    try:
        assert wait_log(srv, "alice@localhost/prof: stream management enabled, resumable", 15), \
            "Profanity enabled resumable stream management: %s" % tm.screen()
        assert tm.wait_screen(lambda s: "logged in successfully" in s), tm.screen()
        bob = RawStream(srv.port)
        bob.login("bob", USERS["bob"], "b1")
        to = "alice@localhost/prof"

        def say(body, mid):
            bob.send("<message type='chat' to='%s' id='%s'><body>%s</body></message>"
                     % (to, mid, body))
            pong = bob.iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
            assert pong is not None and pong.get("type") == "result"

        import time
        time.sleep(1.0)  # Profanity's own post-login requests are answered
        proxy.stall()
        say("first-lost-in-flight", "p1")
        time.sleep(0.3)
        assert proxy.discarded > 0, "Herald wrote the message into the stalled path"
        proxy.cut()
        assert wait_log(srv, "alice@localhost/prof: connection lost; kept for resumption", 5)
        say("second-sent-while-cut", "p2")
        assert wait_log(srv, "alice@localhost/prof resumed", 20), \
            "Profanity resumed: %s" % tm.screen()
        assert tm.wait_screen(lambda s: "(win 2)" in s), tm.screen()
        tm.keys("/win 2")
        screen = tm.wait_screen(lambda s: "second-sent-while-cut" in s and
                                "first-lost-in-flight" in s)
        assert screen is not None, "both messages shown: %s" % tm.screen()
        time.sleep(1.0)  # a duplicate would come now
        screen = tm.screen()
        assert screen.count("first-lost-in-flight") == 1, screen
        assert screen.count("second-sent-while-cut") == 1, screen
        assert screen.index("first-lost-in-flight") < screen.index("second-sent-while-cut")
        # Calibration: Profanity shows a message sent twice (same id) twice,
        # so a duplicate delivery above would have been visible.
        say("probe-twice", "p3")
        say("probe-twice", "p3")
        assert tm.wait_screen(lambda s: s.count("probe-twice") == 2), tm.screen()
        log = srv.log_text(max_chars=10**7)
        assert log.count("bound alice@localhost/prof") == 1, "resumed, not bound again"
        assert "undefined-condition" not in log
        assert not any(e.get("type") == "error" for e in bob.seen), bob.text()[-500:]
    finally:
        tm.close()
        if bob is not None:
            bob.send("</stream:stream>")
            bob.read_until_closed(timeout=3)
            bob.close()
        proxy.close()
