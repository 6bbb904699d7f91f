"""XEP-0198 stream management (urn:xmpp:sm:3), driven by hand over raw
sockets: enable, <r/>/<a/> counting, resumption after the TCP connection is
cut without closing the stream (and over a connection the server still
thinks is alive), item-not-found after c2s.resume_timeout with the stanzas
sent meanwhile in offline storage or bounced, the bounded unacknowledged
queue; and XEP-0352 client state indication. docs/stream-management.md is
the contract these tests hold the server to.

Counting: every <message/>, <presence/> and <iq/> the server sends after
<enabled/> is one stanza for the client's h (Stream.count_in); every one the
client sends is one for the server's.
"""
import time

from e2e_helpers import NS_CLIENT, NS_STANZAS, local, q, show
from stream_helpers import (NS_CSI, NS_SM, PLAIN, STANZAS, USERS, Stream, ack_round, chat,
                            config, cut, login, resume_stream, wait_log)


def test_feature_enable_and_counting(herald):
    srv = herald(config=PLAIN, users=USERS)
    a = login(srv, "alice", "a1", presence=False)
    en = a.enabled
    assert en.get("resume") == "true" and en.get("id") and len(en.get("id")) >= 16, show(en)
    assert en.get("max") == "300", "c2s.resume_timeout defaults to 300 s: %s" % show(en)
    # Three stanzas handled: the server's h is 3.
    for i in range(3):
        a.send("<iq type='get' id='p%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>" % i)
    assert ack_round(a) == 3
    assert a.wait_for(lambda: a.h == 3), "three iq results counted by the client"
    # Acknowledging what was sent is fine; one more than that is an error.
    a.send("<a xmlns='%s' h='3'/>" % NS_SM)
    assert ack_round(a) == 3, "<a/> and <r/> are not stanzas"
    a.send("<a xmlns='%s' h='5'/>" % NS_SM)
    a.read_until_closed(timeout=5)
    assert a.stream_error() == "undefined-condition", a.text()[-500:]
    assert "handled" in a.text() or "acknowledges more" in a.text()


def test_enable_rules(herald):
    srv = herald(config=PLAIN, users=USERS)
    s = Stream(srv.port)
    assert s.open() is not None
    s.features()
    assert local(s.auth_plain("alice", USERS["alice"]).tag) == "success"
    assert s.open() is not None
    s.features()
    # Before binding, <enable/> fails (XEP-0198 3: after resource binding).
    s.send("<enable xmlns='%s'/>" % NS_SM)
    f = s.sm_any()
    assert f is not None and f.tag == q(NS_SM, "failed"), show(f)
    assert f.find(q(NS_STANZAS, "unexpected-request")) is not None, show(f)
    s.bind("x")
    s.send("<enable xmlns='%s'/>" % NS_SM)
    en = s.sm_any()
    assert en.tag == q(NS_SM, "enabled") and en.get("resume") is None, show(en)
    # A second <enable/> fails too.
    s.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    f = s.sm_any()
    assert f.tag == q(NS_SM, "failed"), show(f)
    # The client's max is honoured when below the server's.
    b = login(srv, "bob", "b", enable=False, presence=False)
    b.send("<enable xmlns='%s' resume='true' max='60'/>" % NS_SM)
    en = b.sm_any()
    assert en.get("max") == "60", show(en)


def test_resume_after_cut_delivers_exactly_once(herald):
    srv = herald(config=PLAIN, users=USERS)
    a = login(srv, "alice", "a1")
    b = login(srv, "bob", "b1", enable=False)
    previd = a.enabled.get("id")
    chat(b, "alice@localhost/a1", "m0")
    assert a.messages(want=1) == ["m0"]
    a.send("<iq type='get' id='x' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert a.wait_element(lambda e: e.get("id") == "x") is not None
    handled_by_server = 2  # presence, ping
    h_client = a.h
    cut(a)
    assert wait_log(srv, "kept for resumption"), "the server noticed the cut"
    # Sent while the connection is gone: queued on the detached session,
    # which is still available (the message goes to a1, not offline).
    for i in range(1, 6):
        chat(b, "alice@localhost", "m%d" % i)
    time.sleep(0.3)
    assert b.wait_element(lambda e: e.get("type") == "error", timeout=0.5) is None, \
        "no error for messages to a detached, resumable session"
    a2, r = resume_stream(srv, "alice", previd, h_client)
    assert r is not None and r.tag == q(NS_SM, "resumed"), "resume failed: %s" % show(r)
    assert r.get("previd") == previd
    assert int(r.get("h")) == handled_by_server, show(r)
    got = a2.messages(want=5, timeout=5)
    assert got == ["m1", "m2", "m3", "m4", "m5"], \
        "each stanza sent meanwhile exactly once, in order (m0 was acknowledged): %r" % got
    assert a2.messages(timeout=0.5) == [], "nothing twice"
    # Counting goes on across the resumption: the client's h continues from
    # the value it resumed with, the server's from its own.
    assert ack_round(a2) == handled_by_server
    a2.send("<a xmlns='%s' h='%d'/>" % (NS_SM, (h_client + 5) % 2**32))
    a2.send("<iq type='get' id='y' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert a2.wait_element(lambda e: e.get("id") == "y") is not None
    assert ack_round(a2) == handled_by_server + 1
    # Still the same session: bob's next message arrives, no offline copy.
    chat(b, "alice@localhost/a1", "after")
    assert a2.messages(want=1) == ["after"]
    assert "resumed" in srv.log_text()


def test_resume_replaces_stale_connection(herald):
    srv = herald(config=PLAIN, users=USERS)
    a = login(srv, "alice", "a1")
    b = login(srv, "bob", "b1", enable=False)
    previd = a.enabled.get("id")
    h0 = a.h
    # a stops reading (its network died silently): the server still
    # believes in the connection; what it writes there is not acknowledged.
    chat(b, "alice@localhost/a1", "s1")
    chat(b, "alice@localhost/a1", "s2")
    time.sleep(0.3)
    a2, r = resume_stream(srv, "alice", previd, h0)
    assert r is not None and r.tag == q(NS_SM, "resumed"), show(r)
    assert a2.messages(want=2) == ["s1", "s2"]
    # The old connection was told and closed.
    a.read_until_closed(timeout=5)
    assert a.closed
    assert a.stream_error() == "conflict", a.text()[-300:]
    chat(b, "alice@localhost/a1", "s3")
    assert a2.messages(want=1) == ["s3"]


def test_resume_of_other_account_or_unknown_id_fails(herald):
    srv = herald(config=PLAIN, users=USERS)
    a = login(srv, "alice", "a1")
    previd = a.enabled.get("id")
    s, r = resume_stream(srv, "bob", previd, 0)
    assert r is not None and r.tag == q(NS_SM, "failed"), show(r)
    assert r.find(q(NS_STANZAS, "item-not-found")) is not None, show(r)
    # The stream goes on: bob may bind instead.
    assert s.bind("b") == "bob@localhost/b"
    s2, r = resume_stream(srv, "alice", "0123456789abcdef0123456789abcdef", 0)
    assert r.find(q(NS_STANZAS, "item-not-found")) is not None, show(r)
    # alice's real session was not disturbed.
    a.send("<iq type='get' id='z' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert a.wait_element(lambda e: e.get("id") == "z") is not None


def test_timeout_item_not_found_messages_stored_or_bounced(herald):
    srv = herald(config=config(resume_timeout=1), users=USERS)
    a = login(srv, "alice", "a1")
    b = login(srv, "bob", "b1", enable=False)
    previd = a.enabled.get("id")
    cut(a)
    assert wait_log(srv, "kept for resumption")
    chat(b, "alice@localhost/a1", "late1", "l1")
    chat(b, "alice@localhost", "late2", "l2")
    b.send("<iq type='get' id='q1' to='alice@localhost/a1'>"
           "<query xmlns='jabber:iq:version'/></iq>")
    assert wait_log(srv, "not resumed within 1 s"), "the detached session timed out"
    # The iq gets an error reply: nobody is left to answer it.
    err = b.wait_element(lambda e: e.get("id") == "q1", timeout=5)
    assert err is not None and err.get("type") == "error", show(err)
    assert err.find("%s/%s" % (q(NS_CLIENT, "error"), q(NS_STANZAS, "service-unavailable"))) \
        is not None, show(err)
    a2, r = resume_stream(srv, "alice", previd, a.h)
    assert r.tag == q(NS_SM, "failed") and r.find(q(NS_STANZAS, "item-not-found")) is not None, \
        show(r)
    # The messages went to offline storage: a fresh session gets them.
    a2.bind("a2")
    a2.send("<presence/>")
    got = a2.messages(want=2, timeout=5)
    assert got == ["late1", "late2"], got
    assert b.wait_element(lambda e: e.get("type") == "error", timeout=0.5) is None


def test_timeout_with_offline_storage_full_bounces(herald):
    c = config(resume_timeout=1)
    c["im"] = {"max_offline_messages": "1"}
    srv = herald(config=c, users=USERS)
    a = login(srv, "alice", "a1")
    b = login(srv, "bob", "b1", enable=False)
    cut(a)
    assert wait_log(srv, "kept for resumption")
    for i in range(3):
        chat(b, "alice@localhost/a1", "x%d" % i, "x%d" % i)
    assert wait_log(srv, "not resumed within 1 s")
    # One stored, the other two come back to bob as errors.
    errs = []
    for _ in range(2):
        e = b.wait_element(lambda e: e.tag == q(NS_CLIENT, "message")
                           and e.get("type") == "error", timeout=5)
        assert e is not None, "an error for each message offline storage refused"
        errs.append(e.get("id"))
    assert sorted(errs) == ["x1", "x2"], errs
    a2 = login(srv, "alice", "a2", enable=False)
    assert a2.messages(want=1) == ["x0"]


def test_unacked_queue_bound_ends_session(herald):
    srv = herald(config=config(sm_max_unacked_stanzas=16), users=USERS)
    a = login(srv, "alice", "a1")  # reads, never acknowledges
    b = login(srv, "bob", "b1", enable=False)
    for i in range(40):
        chat(b, "alice@localhost/a1", "u%d" % i)
    a.read_until_closed(timeout=10)
    assert a.stream_error() == "policy-violation", a.text()[-400:]
    assert "unacknowledged" in a.text()
    assert wait_log(srv, "sm_max_unacked_stanzas")
    # What alice never acknowledged is kept for her (at least once): a new
    # session finds the rest in offline storage.
    # Those sent after the session ended went there directly, after them.
    a2 = login(srv, "alice", "a2", enable=False)
    got = a2.messages(want=40, timeout=5)
    assert got == ["u%d" % i for i in range(40)], got


def test_graceful_close_with_unacked_reroutes(herald):
    """A clean </stream:stream> ends the session for good: unacknowledged
    messages go to the account's other resource."""
    srv = herald(config=PLAIN, users=USERS)
    a = login(srv, "alice", "a1")
    other = login(srv, "alice", "a9", enable=False)
    b = login(srv, "bob", "b1", enable=False)
    chat(b, "alice@localhost/a1", "g1")
    assert a.messages(want=1) == ["g1"]
    a.send("</stream:stream>")
    a.read_until_closed(timeout=5)
    got = other.messages(want=1, timeout=5)
    assert got == ["g1"], "the unacknowledged message went to the other resource: %r" % got


def test_csi_holds_presence_until_urgent(herald):
    srv = herald(config=PLAIN, users=USERS)
    # alice and bob see each other's presence.
    a = login(srv, "alice", "a1", enable=False)
    b = login(srv, "bob", "b1", enable=False)
    for s, other in ((a, "bob@localhost"), (b, "alice@localhost")):
        s.iq("<query xmlns='jabber:iq:roster'><item jid='%s'/></query>" % other, itype="set")
    a.send("<presence to='bob@localhost' type='subscribe'/>")
    assert b.wait_element(lambda e: e.get("type") == "subscribe") is not None
    b.send("<presence to='alice@localhost' type='subscribed'/>")
    assert a.wait_element(lambda e: e.get("type") == "subscribed") is not None
    a.send("<inactive xmlns='%s'/>" % NS_CSI)
    time.sleep(0.2)
    a.elements.clear()
    for st in ("away", "xa", "dnd"):
        b.send("<presence><show>%s</show></presence>" % st)
    assert a.wait_element(lambda e: e.tag == q(NS_CLIENT, "presence"), timeout=1.0) is None, \
        "presence updates are held while inactive"
    chat(b, "alice@localhost/a1", "wake")
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 4 and time.monotonic() < deadline:
        el = a.next_element(timeout=1)
        if el is not None and el.tag in STANZAS:
            got.append(el)
    kinds = [local(e.tag) for e in got]
    assert kinds == ["presence", "presence", "presence", "message"], \
        "held presence first, in order, then the message: %s" % kinds
    assert [e.findtext(q(NS_CLIENT, "show")) for e in got[:3]] == ["away", "xa", "dnd"]
    # active: nothing is held any more.
    a.send("<active xmlns='%s'/>" % NS_CSI)
    b.send("<presence/>")
    assert a.wait_element(lambda e: e.tag == q(NS_CLIENT, "presence"), timeout=3) is not None


def test_csi_hold_is_bounded(herald):
    srv = herald(config=config(csi_queue_size=3), users=USERS)
    a = login(srv, "alice", "a1", enable=False)
    b = login(srv, "bob", "b1", enable=False)
    a.send("<inactive xmlns='%s'/>" % NS_CSI)
    time.sleep(0.2)
    # Bodyless messages (e.g. chat states) may wait; three fill the hold.
    for i in range(2):
        b.send("<message to='alice@localhost/a1' id='c%d'><active "
               "xmlns='http://jabber.org/protocol/chatstates'/></message>" % i)
    assert a.wait_element(lambda e: e.tag == q(NS_CLIENT, "message"), timeout=1.0) is None
    b.send("<message to='alice@localhost/a1' id='c2'><active "
           "xmlns='http://jabber.org/protocol/chatstates'/></message>")
    ids = []
    for _ in range(3):
        el = a.wait_element(lambda e: e.tag == q(NS_CLIENT, "message"), timeout=3)
        assert el is not None, "the full hold was released"
        ids.append(el.get("id"))
    assert ids == ["c0", "c1", "c2"]


def test_shutdown_stores_what_detached_sessions_hold(herald):
    """SIGTERM ends detached sessions like a timeout: their messages reach
    offline storage before the last commit and survive the restart."""
    srv = herald(config=PLAIN, users=USERS)
    a = login(srv, "alice", "a1")
    b = login(srv, "bob", "b1", enable=False)
    cut(a)
    assert wait_log(srv, "kept for resumption")
    chat(b, "alice@localhost/a1", "kept1")
    chat(b, "alice@localhost/a1", "kept2")
    b.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")  # both handled by now
    b.close()
    srv.restart()
    a2 = login(srv, "alice", "a2", enable=False)
    assert a2.messages(want=2, timeout=5) == ["kept1", "kept2"]
