"""Offline messages (XEP-0160 with RFC 6121 8.5.2.2.1 and 8.5.3.2.1): storage
when no resource is available, in-order delivery with a XEP-0203 delay on
the next available presence of non-negative priority, durability across a
restart, types that are not stored, the per-user bound."""
import datetime

from e2e_helpers import DOMAIN, NS_CLIENT, q, run
from im_helpers import (NS_DELAY, body_of, delay_of, error_condition, im_client, parse_stamp,
                        send_presence, show, users)

ALICE_A1 = "alice@localhost/a1"
BOB = "bob@localhost"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def is_error(el):
    return el.get("type") == "error"


def is_chat_body(el):
    return el.get("type") != "error" and body_of(el) is not None


def check_delayed(m, body, t_before, t_after, frm=ALICE_A1):
    """The stored message as delivered: original body and sender, a
    <delay xmlns='urn:xmpp:delay' from='localhost'/> whose stamp lies in
    [t_before, t_after] (a second of slack each side: stamps may be whole
    seconds)."""
    el = m.xml
    assert body_of(el) == body, "expected body %r, got %s" % (body, show(el))
    assert el.get("from") == frm, "the original sender is kept: %s" % show(el)
    d = delay_of(el)
    assert d is not None, "offline message without <delay xmlns='%s'/>: %s" % (NS_DELAY, show(el))
    assert d.get("from") == DOMAIN, "delay 'from' must be the server: %s" % show(el)
    stamp = parse_stamp(d.get("stamp") or "")
    slack = datetime.timedelta(seconds=1.5)
    assert t_before - slack <= stamp <= t_after + slack, (
        "delay stamp %s outside the sending window [%s, %s]" % (stamp, t_before, t_after))


async def expect_bodies(c, bodies, t_before, t_after):
    out = []
    for body in bodies:
        m = await c.msgs.expect(is_chat_body, what="offline message %r" % body)
        check_delayed(m, body, t_before, t_after)
        out.append(m)
    return out


def test_offline_messages_delivered_in_order_with_delay(herald):
    """RFC 6121 8.5.2.2.1 / XEP-0160: chat, normal and untyped messages to a
    user with no available resource are stored (no error to the sender) and
    delivered in order on the next initial presence, each with a XEP-0203
    delay (from the server, stamped at reception), with type and extension
    elements intact; they are delivered once (not again at the next login)."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        t0 = now_utc()
        a.xmpp.send_raw("<message to='%s' type='chat' id='m1'><body>one</body>"
                        "<thread>t-1</thread><x xmlns='urn:example:test'><y a='1'/></x>"
                        "</message>" % BOB)
        a.xmpp.send_raw("<message to='%s' type='normal' id='m2'><body>two</body>"
                        "<subject>re</subject></message>" % BOB)
        a.xmpp.send_raw("<message to='%s' id='m3'><body>three</body></message>" % BOB)
        await a.sync()
        t1 = now_utc()
        await a.msgs.expect_none(is_error, wait=0.5, what="an error for a storable message")

        b = await im_client(srv, "bob", "b1", priority=0)
        m1, m2, m3 = await expect_bodies(b, ["one", "two", "three"], t0, t1)
        assert m1.xml.get("type") == "chat"
        assert m1.xml.findtext(q(NS_CLIENT, "thread")) == "t-1", show(m1.xml)
        ext = m1.xml.find("{urn:example:test}x")
        assert ext is not None and ext.find("{urn:example:test}y").get("a") == "1", \
            show(m1.xml)
        assert m2.xml.get("type") in ("normal", None), show(m2.xml)
        assert m2.xml.findtext(q(NS_CLIENT, "subject")) == "re", show(m2.xml)
        assert m3.xml.get("type") in ("normal", None), show(m3.xml)
        await b.msgs.expect_none(wait=0.3, what="more than the three stored messages")
        await b.close()

        b2 = await im_client(srv, "bob", "b2")
        await b2.msgs.expect_none(wait=0.7, what="offline messages already delivered")
    run(body)


def test_offline_delivery_needs_nonnegative_presence(herald):
    """XEP-0160 / RFC 6121 8.5.2.2.1 with 4.7.2.3: a connected resource
    without presence, or with negative priority, is not an available target
    for the bare JID: messages sent meanwhile are stored (no error) and
    not given to it; they are delivered, in order, to the first resource
    that sends available presence with non-negative priority."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b0 = await im_client(srv, "bob", "b0", presence=False)
        t0 = now_utc()
        a.send_message(BOB, "while not available")
        await a.sync()
        await b0.msgs.expect_none(wait=0.5, what="a bare-JID message before presence")
        await send_presence(b0, priority=-1)
        await b0.msgs.expect_none(wait=0.5, what="offline messages at negative priority")
        a.send_message(BOB, "while only negative")
        await a.sync()
        t1 = now_utc()
        await b0.msgs.expect_none(wait=0.5, what="a bare-JID message at negative priority")
        await a.msgs.expect_none(is_error, wait=0.1, what="an error (the message is stored)")

        b1 = await im_client(srv, "bob", "b1", priority=0)
        await expect_bodies(b1, ["while not available", "while only negative"], t0, t1)
        await b0.msgs.expect_none(wait=0.3)
    run(body)


def test_message_to_offline_full_jid_follows_bare_rules(herald):
    """RFC 6121 8.5.3.2.1: a chat message to a full JID with no such
    resource is handled as if sent to the bare JID: stored when no resource
    is available (then delivered with delay), delivered live (without
    delay) when one is."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        t0 = now_utc()
        a.send_message(BOB + "/gone", "to a gone resource")
        await a.sync()
        t1 = now_utc()
        await a.msgs.expect_none(is_error, wait=0.5)
        b = await im_client(srv, "bob", "b1")
        await expect_bodies(b, ["to a gone resource"], t0, t1)
        a.send_message(BOB + "/gone", "live now")
        m = await b.msgs.expect(is_chat_body, what="the live message")
        assert body_of(m.xml) == "live now" and delay_of(m.xml) is None, show(m.xml)
    run(body)


def test_offline_messages_survive_restart(herald):
    """XEP-0160 (storage) across a restart: messages stored for an offline
    user are still delivered, in order, with their original delay stamps,
    after SIGTERM and a new start on the same data directory; once
    delivered they are gone for good (not delivered again after another
    restart)."""
    srv = herald(users=users("alice", "bob"))
    window = {}

    async def first():
        a = await im_client(srv, "alice", "a1")
        window["t0"] = now_utc()
        for i in range(1, 4):
            a.send_message(BOB, "kept %d" % i)
        await a.sync()
        window["t1"] = now_utc()
        await a.msgs.expect_none(is_error, wait=0.3)
    run(first)
    srv.restart()

    async def second():
        b = await im_client(srv, "bob", "b1")
        await expect_bodies(b, ["kept 1", "kept 2", "kept 3"], window["t0"], window["t1"])
        await b.msgs.expect_none(wait=0.3)
    run(second)
    srv.restart()

    async def third():
        b = await im_client(srv, "bob", "b1")
        await b.msgs.expect_none(wait=0.7, what="messages delivered before the restart")
    run(third)


def test_groupchat_headline_error_not_stored(herald):
    """RFC 6121 8.5.2.2.1: to a user with no available resource, a groupchat
    message gets a <service-unavailable/> error, a headline and an error
    message are silently dropped; none is stored: at the next login only
    the chat message sent after them is delivered."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        t0 = now_utc()
        a.send_message(BOB, "headline", mtype="headline")
        a.send_message(BOB, "groupchat", mtype="groupchat")
        a.xmpp.send_raw("<message to='%s' type='error'><body>error</body><error type='cancel'>"
                        "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                        "</error></message>" % BOB)
        a.send_message(BOB, "chat")
        await a.sync()
        t1 = now_utc()
        err = await a.msgs.expect(is_error, what="the groupchat error")
        assert error_condition(err.xml) == "service-unavailable", show(err.xml)
        await a.msgs.expect_none(is_error, wait=0.7, what="a second error "
                                 "(headline/error are dropped silently, chat is stored)")
        b = await im_client(srv, "bob", "b1")
        await expect_bodies(b, ["chat"], t0, t1)
        await b.msgs.expect_none(wait=0.7, what="a stored headline/groupchat/error message")
    run(body)


def test_offline_storage_bound(herald):
    """XEP-0160 (storage may be bounded) with the contract's
    [im] max_offline_messages: beyond the bound the sender gets
    <service-unavailable/> (RFC 6121 8.5.2.2.1) and the stored messages are
    the first ones, delivered in order."""
    srv = herald(users=users("alice", "bob"), config={"im": {"max_offline_messages": 3}})

    async def body():
        a = await im_client(srv, "alice", "a1")
        t0 = now_utc()
        for i in range(1, 6):
            a.send_message(BOB, "m%d" % i)
        await a.sync()
        t1 = now_utc()
        for _ in range(2):
            err = await a.msgs.expect(is_error, what="an error beyond the bound")
            assert error_condition(err.xml) == "service-unavailable", show(err.xml)
        await a.msgs.expect_none(is_error, wait=0.5, what="a third error")
        b = await im_client(srv, "bob", "b1")
        await expect_bodies(b, ["m1", "m2", "m3"], t0, t1)
        await b.msgs.expect_none(wait=0.5, what="messages beyond the bound")
        await b.close()
        # Delivered messages free their places: three more fit again.
        t0 = now_utc()
        for i in range(6, 9):
            a.send_message(BOB, "m%d" % i)
        await a.sync()
        t1 = now_utc()
        await a.msgs.expect_none(is_error, wait=0.5, what="an error after the storage emptied")
        b = await im_client(srv, "bob", "b2")
        await expect_bodies(b, ["m6", "m7", "m8"], t0, t1)
    run(body)


def test_offline_storage_disabled_with_zero(herald):
    """[im] max_offline_messages = 0 (documented as "none"): nothing is
    stored, so a chat message to an account without available resource
    gets <service-unavailable/> (RFC 6121 8.5.2.2.1 without offline
    storage), and nothing is delivered at the next login."""
    srv = herald(users=users("alice", "bob"), config={"im": {"max_offline_messages": 0}})

    async def body():
        a = await im_client(srv, "alice", "a1")
        a.send_message(BOB, "nowhere to keep this")
        err = await a.msgs.expect(is_error, what="service-unavailable")
        assert error_condition(err.xml) == "service-unavailable", show(err.xml)
        b = await im_client(srv, "bob", "b1")
        await b.msgs.expect_none(wait=0.7)
    run(body)


def test_offline_storage_default_bound_is_100(herald):
    """The contract's default [im] max_offline_messages = 100: the 101st
    message to an offline user is refused with <service-unavailable/>, the
    first 100 are all delivered in order."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        t0 = now_utc()
        for i in range(1, 102):
            a.send_message(BOB, "n%03d" % i)
        await a.sync()
        t1 = now_utc()
        err = await a.msgs.expect(is_error, what="the error for the 101st message")
        assert error_condition(err.xml) == "service-unavailable", show(err.xml)
        await a.msgs.expect_none(is_error, wait=0.5, what="a second error")
        b = await im_client(srv, "bob", "b1")
        await expect_bodies(b, ["n%03d" % i for i in range(1, 101)], t0, t1)
        await b.msgs.expect_none(wait=0.3)
    run(body)


def test_offline_backlog_larger_than_output_queue_is_not_lost(herald):
    """XEP-0160 (stored messages are delivered, then removed) with the
    server's slow-reader policy (c2s.max_outq_bytes): a backlog bigger than
    the output queue may not fit in one go, but no stored message may be
    lost: across a few logins, bob receives every one of them, in order,
    exactly once."""
    n, size = 100, 60000
    srv = herald(users=users("alice", "bob"), config={"c2s": {"max_outq_bytes": 65536}})

    async def body():
        a = await im_client(srv, "alice", "a1")
        for i in range(n):
            a.send_message(BOB, "%03d:" % i + "x" * size)
            if i % 10 == 9:
                await a.sync()
        await a.sync()
        await a.msgs.expect_none(is_error, wait=0.3, what="an error while storing")
        got = []
        for attempt in range(4):
            b = await im_client(srv, "bob", "b%d" % attempt, presence=False)
            b.xmpp.send_presence()  # no round trip: the server may close this stream
            while True:
                try:
                    m = await b.msgs.expect(is_chat_body, timeout=2.0, what="stored messages")
                except AssertionError:
                    break
                got.append(body_of(m.xml)[:3])
            await b.close()
            if len(got) >= n:
                break
        expected = ["%03d" % i for i in range(n)]
        missing = sorted(set(expected) - set(got))
        assert got == expected, "%d of %d stored messages delivered; missing %s; order ok: %s" % (
            len(got), n, missing[:20], got == sorted(got))
    run(body, timeout=80)
