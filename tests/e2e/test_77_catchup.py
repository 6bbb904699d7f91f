"""Catch-up for pubsub subscribers (docs/pubsub.md "Catch-up"): items of a
node whose pubsub#notification_type is normal wait in offline storage for a
subscriber that is away; a herald#durable subscription keeps a cursor and
replays exactly the items after it when the subscriber comes back, across
stream management acknowledgements, cut connections and server restarts.

Raw sockets (stream_helpers) so that every byte and every <a h/> is the
test's own; each notification of a durable subscription names the item's
node sequence in <stanza-id by='pubsub.localhost'/>."""
import threading
import time

from e2e_helpers import NS_CLIENT, q, show
from pubsub_helpers import kill_hard, restart_after_kill
from stream_helpers import NS_SM, STANZAS, cut, login, wait_log

PUBSUB = "pubsub.localhost"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"
NS_EVENT = NS_PUBSUB + "#event"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
USERS = {"pub": "pubpw", "sub": "subpw", "other": "otherpw"}


def plain(extra=None):
    c = {"c2s": {"allow_plaintext": "true"}}
    for k, v in (extra or {}).items():
        c.setdefault(k, {}).update({a: str(b) for a, b in v.items()})
    return c


def connect(srv, user, resource, **kw):
    return login(srv, user, resource, password=USERS[user], **kw)


def iq_ok(s, payload, itype="set", to=PUBSUB):
    r = s.iq(payload, itype=itype, to=to)
    assert r is not None and r.get("type") == "result", show(r)
    return r


def form(form_type, fields):
    xs = "".join("<field var='%s'><value>%s</value></field>" % kv for kv in fields.items())
    return ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            "<value>%s</value></field>%s</x>" % (form_type, xs))


def create(s, node, notification_type="headline", max_items="10000"):
    cfg = form(NS_PUBSUB + "#node_config", {"pubsub#notification_type": notification_type,
                                            "pubsub#max_items": max_items})
    iq_ok(s, "<pubsub xmlns='%s'><create node='%s'/><configure>%s</configure></pubsub>"
          % (NS_PUBSUB, node, cfg))


def subscribe(s, node, jid, durable=False):
    opts = ""
    if durable:
        opts = "<options>%s</options>" % form(NS_PUBSUB + "#subscribe_options",
                                               {"herald#durable": "true"})
    iq_ok(s, "<pubsub xmlns='%s'><subscribe node='%s' jid='%s'/>%s</pubsub>"
          % (NS_PUBSUB, node, jid, opts))


def publish(s, node, item_id, text):
    iq_ok(s, "<pubsub xmlns='%s'><publish node='%s'><item id='%s'><entry xmlns='urn:test'>%s"
          "</entry></item></publish></pubsub>" % (NS_PUBSUB, node, item_id, text))


def notifications(s, want, timeout=5.0):
    """(item id, seq or None, delay stamp or None) of item notifications,
    in arrival order, until `want` came or timeout."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < want:
        el = s.wait_element(lambda e: e.tag == q(NS_CLIENT, "message")
                            and e.get("from") == PUBSUB, max(0.05, deadline - time.monotonic()))
        if el is None:
            break
        item = el.find("%s/%s/%s" % (q(NS_EVENT, "event"), q(NS_EVENT, "items"),
                                      q(NS_EVENT, "item")))
        if item is None:
            continue
        sid = el.find(q(NS_SID, "stanza-id"))
        delay = el.find(q(NS_DELAY, "delay"))
        out.append((item.get("id"), int(sid.get("id")) if sid is not None else None,
                    delay.get("stamp") if delay is not None else None))
    return out


def test_normal_notifications_wait_offline(herald):
    srv = herald(config=plain({"pubsub": {"max_offline_notifications": 3}}), users=USERS)
    p = connect(srv, "pub", "p", enable=False)
    create(p, "feed", notification_type="normal")
    create(p, "ticker", notification_type="headline")
    s = connect(srv, "sub", "s", enable=False)
    subscribe(s, "feed", "sub@localhost")
    subscribe(s, "ticker", "sub@localhost")
    s.send("</stream:stream>")
    s.read_until_closed(timeout=5)
    for i in range(5):
        publish(p, "feed", "f%d" % i, "x")
        publish(p, "ticker", "t%d" % i, "x")
    s2 = connect(srv, "sub", "s2", enable=False)
    got = notifications(s2, 5, timeout=3)
    assert [g[0] for g in got] == ["f0", "f1", "f2"], \
        "normal notifications kept (up to the bound, in publish order); headlines not: %s" % got
    assert all(g[2] for g in got), "each kept notification has a XEP-0203 delay: %s" % got
    assert wait_log(srv, "pubsub.max_offline_notifications")
    # Delivered once: the next login gets nothing more.
    s2.send("</stream:stream>")
    s2.read_until_closed(timeout=5)
    s3 = connect(srv, "sub", "s3", enable=False)
    assert notifications(s3, 1, timeout=1) == []


def test_durable_option_advertised_and_kept(herald):
    srv = herald(config=plain(), users=USERS)
    p = connect(srv, "pub", "p", enable=False)
    info = iq_ok(p, "<query xmlns='http://jabber.org/protocol/disco#info'/>", itype="get")
    feats = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert "herald#durable" in feats, feats
    create(p, "feed")
    subscribe(p, "feed", "pub@localhost", durable=True)
    srv.restart()
    p = connect(srv, "pub", "p", enable=False)
    r = iq_ok(p, "<pubsub xmlns='%s'><options node='feed' jid='pub@localhost'/></pubsub>"
              % NS_PUBSUB, itype="get")
    vals = {f.get("var"): f.findtext("{jabber:x:data}value")
            for f in r.iter("{jabber:x:data}field")}
    assert vals.get("herald#durable") in ("1", "true"), vals
    # A bad value is refused like any subscription option (XEP-0060 6.3.6).
    r = p.iq("<pubsub xmlns='%s'><options node='feed' jid='pub@localhost'>%s</options></pubsub>"
             % (NS_PUBSUB, form(NS_PUBSUB + "#subscribe_options", {"herald#durable": "perhaps"})),
             itype="set", to=PUBSUB)
    assert r.get("type") == "error", show(r)


def test_durable_replays_after_cursor(herald):
    srv = herald(config=plain(), users=USERS)
    p = connect(srv, "pub", "p", enable=False)
    create(p, "feed")
    s = connect(srv, "sub", "s", enable=False)
    subscribe(s, "feed", "sub@localhost", durable=True)
    publish(p, "feed", "a", "1")
    got = notifications(s, 1)
    assert [g[0] for g in got] == ["a"] and got[0][1] == 1 and got[0][2] is None, got
    s.send("</stream:stream>")
    s.read_until_closed(timeout=5)
    for i in "bcdef":
        publish(p, "feed", i, i)
    s = connect(srv, "sub", "s", enable=False)
    got = notifications(s, 5)
    assert [g[0] for g in got] == list("bcdef"), got
    assert [g[1] for g in got] == [2, 3, 4, 5, 6], "stanza-id carries the node seq: %s" % got
    assert all(g[2] for g in got), "replayed items carry their publication stamp: %s" % got
    publish(p, "feed", "g", "g")
    got = notifications(s, 1)
    assert got and got[0][:2] == ("g", 7) and got[0][2] is None, got
    assert notifications(s, 1, timeout=0.7) == [], "nothing twice"
    # Without stream management the cursor follows what was written: the
    # next login replays nothing already sent.
    s.send("</stream:stream>")
    s.read_until_closed(timeout=5)
    s = connect(srv, "sub", "s", enable=False)
    assert notifications(s, 1, timeout=1) == []


def test_durable_cursor_follows_acks(herald):
    """With XEP-0198 the cursor moves when the client acknowledges: what it
    did not acknowledge before its session ended comes again, the rest not."""
    srv = herald(config=plain({"c2s": {"resume_timeout": 0}}), users=USERS)
    p = connect(srv, "pub", "p", enable=False)
    create(p, "feed")
    s = connect(srv, "sub", "s", resume=False)
    subscribe(s, "feed", "sub@localhost", durable=True)
    for i in range(5):
        publish(p, "feed", "i%d" % i, "x")
    got = notifications(s, 5)
    assert [g[1] for g in got] == [1, 2, 3, 4, 5], got
    # Acknowledge the first three notifications only (h counts every stanza
    # since <enable/>: the presence echo and the subscribe result first).
    h_before = s.h - 2
    s.send("<a xmlns='%s' h='%d'/>" % (NS_SM, h_before))
    s.send("<r xmlns='%s'/>" % NS_SM)
    assert s.sm("a") is not None  # answered after the commit of the cursor
    cut(s)
    assert wait_log(srv, "session ended") or wait_log(srv, "connection closed")
    s = connect(srv, "sub", "s2", enable=False)
    got = notifications(s, 5, timeout=3)
    assert [g[1] for g in got] == [4, 5], \
        "exactly the unacknowledged items come again: %s" % got


class Subscriber:
    """A durable subscriber on a thread: logs in with stream management,
    reads notifications, acknowledges every 7 stanzas and asks (<r/>) so that
    the server's answer confirms the cursor is committed; reconnects when its
    connection dies. Records every received seq in order, per session."""

    def __init__(self, srv):
        self.srv = srv
        self.sessions = []       # lists of seqs, one per session
        self.ids = set()         # item ids received
        self.confirmed = 0       # highest seq whose acknowledgement the server confirmed
        self.redelivered = []    # seqs received again after being confirmed
        self.stop = threading.Event()
        self.s = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self):
        for _ in range(200):
            if self.stop.is_set():
                return None
            try:
                s = login(self.srv, "sub", "d", password=USERS["sub"], resume=False)
                return s
            except Exception:
                time.sleep(0.1)
        return None

    def run(self):
        while not self.stop.is_set():
            s = self.connect()
            if s is None:
                return
            with self.lock:
                self.s = s
                self.sessions.append([])
            seqs = self.sessions[-1]
            # (h, highest seq it covers) of each <a/><r/> sent, oldest
            # first: the server answers <r/>s in order, after the commit of
            # the cursor our <a/> moved (several in one turn get one answer,
            # so each answer confirms only the oldest: never too much).
            pending = []
            # h counts what this loop has handled, not what the parser has
            # read ahead: stanzas taken during login, minus those waiting.
            handled = s.h - sum(1 for e in s.elements if e.tag in STANZAS)
            while not self.stop.is_set() and not s.closed:
                try:
                    el = s.next_element(timeout=0.2)
                except OSError:
                    break  # cut from the test's thread under this read
                if el is None:
                    continue
                if el.tag == q(NS_SM, "a"):
                    if pending:
                        self.confirmed = max(self.confirmed, pending.pop(0)[1])
                    continue
                if el.tag == q(NS_SM, "r"):
                    s.send("<a xmlns='%s' h='%d'/>" % (NS_SM, handled))
                    continue
                if el.tag in STANZAS:
                    handled += 1
                sid = el.find(q(NS_SID, "stanza-id"))
                if el.tag == q(NS_CLIENT, "message") and sid is not None:
                    seq = int(sid.get("id"))
                    item = el.find("%s/%s/%s" % (q(NS_EVENT, "event"), q(NS_EVENT, "items"),
                                                  q(NS_EVENT, "item")))
                    if item is not None:
                        self.ids.add(item.get("id"))
                    if seq <= self.confirmed:
                        self.redelivered.append(seq)
                    seqs.append(seq)
                    if handled % 7 == 0:
                        pending.append((handled, seq))
                        s.send("<a xmlns='%s' h='%d'/><r xmlns='%s'/>" % (NS_SM, handled, NS_SM))

    def cut(self):
        with self.lock:
            if self.s is not None and not self.s.closed:
                cut(self.s)


def test_durable_subscriber_10000_items_cuts_and_kills(herald):
    """Issue 12: 10,000 items published at full speed while the durable
    subscriber is cut off again and again and the server is SIGKILLed twice:
    every acknowledged publish reaches the subscriber; none it had
    confirmed comes again; each session's items come in order."""
    import os
    total = 10000 if os.environ.get("HERALD_E2E_SLOWDOWN", "1") == "1" else 3000
    srv = herald(config=plain(), users=USERS)
    p = connect(srv, "pub", "p", enable=False)
    create(p, "feed")
    s = connect(srv, "sub", "setup", enable=False)
    subscribe(s, "feed", "sub@localhost", durable=True)
    s.send("</stream:stream>")
    s.read_until_closed(timeout=5)
    sub = Subscriber(srv)
    sub.thread.start()
    acked = []          # item ids whose publish got its iq result
    published = 0
    kills = {total // 3, 2 * total // 3}
    cuts = {total * k // 10 for k in range(1, 10)}
    window = 32
    while published < total:
        try:
            n = min(window, total - published)
            ids = ["i%d" % (published + k) for k in range(n)]
            for iid in ids:
                p.send("<iq type='set' id='%s' to='%s'><pubsub xmlns='%s'><publish node='feed'>"
                       "<item id='%s'><v xmlns='urn:test'/></item></publish></pubsub></iq>"
                       % (iid, PUBSUB, NS_PUBSUB, iid))
            for iid in ids:
                r = p.wait_element(lambda e, iid=iid: e.get("id") == iid, timeout=10)
                if r is None:
                    raise ConnectionError("no answer")
                assert r.get("type") == "result", show(r)
                acked.append(iid)
            published += n
        except (ConnectionError, OSError, AssertionError):
            # The server was killed under us: what was not acknowledged is
            # published again (at-least-once for the publisher).
            published = len(acked)
            p = None
            for _ in range(100):
                try:
                    p = connect(srv, "pub", "p", enable=False)
                    break
                except Exception:
                    time.sleep(0.1)
            assert p is not None, "publisher could not reconnect"
            continue
        for mark in sorted(cuts):
            if published >= mark:
                cuts.discard(mark)
                sub.cut()
        for mark in sorted(kills):
            if published >= mark:
                kills.discard(mark)
                kill_hard(srv)
                restart_after_kill(srv)
    # Let the subscriber drain what is left.
    want = set(acked)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not want <= sub.ids:
        time.sleep(0.2)
    sub.stop.set()
    sub.thread.join(timeout=5)
    missing = sorted(want - sub.ids, key=lambda i: int(i[1:]))
    assert not missing, "acknowledged items that never reached the subscriber: %d, e.g. %s " \
        "(sessions %d)" % (len(missing), missing[:10], len(sub.sessions))
    assert sub.redelivered == [], "items whose acknowledgement was confirmed came again: %s" % (
        sub.redelivered[:20])
    for sess in sub.sessions:
        assert sess == sorted(set(sess)), "in order, once, within a session"
    print("durable: %d acked, %d ids, %d sessions, confirmed up to seq %d, %d seqs seen" % (len(acked), len(sub.ids), len(sub.sessions), sub.confirmed, sum(map(len, sub.sessions))))
    assert len(sub.sessions) >= 4, "the subscriber was cut off and came back"

