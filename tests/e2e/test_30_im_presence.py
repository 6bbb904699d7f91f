"""Presence (RFC 6121 section 4): initial presence broadcast and probes,
updates, unavailable presence on logout and on a broken connection,
directed presence, priority."""
from e2e_helpers import run
from im_helpers import (im_client, is_presence, kill_socket, mutual, presence_child_text,
                        raw_login, raw_roster_get, send_presence, show, subscribe, users)

ALICE = "alice@localhost"
BOB = "bob@localhost"
CAROL = "carol@localhost"
DAVE = "dave@localhost"
EVE = "eve@localhost"


async def world(srv):
    """alice/a1 with:  bob (b1, b2): 'both';  carol (c1) subscribed to alice
    (alice 'from', carol 'to');  alice subscribed to dave (alice 'to',
    dave 'from');  eve (e1): no relation. Every client is interested and
    available; inboxes are cleared at the end."""
    a1 = await im_client(srv, "alice", "a1")
    b1 = await im_client(srv, "bob", "b1", status="bob one", show_="dnd")
    b2 = await im_client(srv, "bob", "b2", status="bob two", priority=3)
    c1 = await im_client(srv, "carol", "c1", status="carol")
    d1 = await im_client(srv, "dave", "d1", status="dave")
    e1 = await im_client(srv, "eve", "e1", status="eve")
    await mutual(a1, b1)
    await subscribe(c1, a1)
    await subscribe(a1, d1)
    clients = dict(a1=a1, b1=b1, b2=b2, c1=c1, d1=d1, e1=e1)
    for c in clients.values():
        c.presences.clear()
        c.pushes.clear()
    return clients


def test_initial_presence_broadcast_and_probes(herald):
    """RFC 6121 4.2.2: initial presence of a new resource goes to every
    available resource of the contacts with subscription 'from' or 'both'
    (bob's two resources, carol) and to the user's other available
    resources (a1), not to dave (alice has only 'to') nor eve; RFC 6121
    4.3.2: the server probes the contacts the user has 'to'/'both' with and
    delivers the current presence of each of their available resources (bob
    b1 and b2 with show/status, dave) to the new resource, and nothing from
    carol or eve."""
    srv = herald(users=users("alice", "bob", "carol", "dave", "eve"))

    async def body():
        w = await world(srv)
        a2 = await im_client(srv, "alice", "a2", status="second", priority=1)
        for name in ("b1", "b2", "c1", "a1"):
            p = await w[name].presences.expect(is_presence("available", frm=ALICE + "/a2"),
                                               what="alice/a2's initial presence")
            assert presence_child_text(p.xml, "status") == "second", show(p.xml)
            assert presence_child_text(p.xml, "priority") == "1", show(p.xml)
        for name in ("d1", "e1"):
            await w[name].presences.expect_none(is_presence(frm_bare=ALICE), wait=0.5,
                                                what="alice's presence")
        p = await a2.presences.expect(is_presence("available", frm=BOB + "/b1"))
        assert presence_child_text(p.xml, "status") == "bob one", show(p.xml)
        assert presence_child_text(p.xml, "show") == "dnd", show(p.xml)
        p = await a2.presences.expect(is_presence("available", frm=BOB + "/b2"))
        assert presence_child_text(p.xml, "status") == "bob two", show(p.xml)
        assert presence_child_text(p.xml, "priority") == "3", show(p.xml)
        p = await a2.presences.expect(is_presence("available", frm=DAVE + "/d1"))
        assert presence_child_text(p.xml, "status") == "dave", show(p.xml)
        await a2.presences.expect_none(
            lambda el: is_presence(frm_bare=CAROL)(el) or is_presence(frm_bare=EVE)(el),
            wait=0.3, what="presence of carol or eve")
    run(body)


def test_initial_presence_echoed_to_sender(herald):
    """RFC 6121 4.2.2: the server broadcasts initial presence to all of the
    user's available resources, including the resource that generated it."""
    srv = herald(users=users("alice"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        await send_presence(a, status="me")
        p = await a.presences.expect(is_presence("available", frm=ALICE + "/a1"),
                                     what="its own initial presence")
        assert presence_child_text(p.xml, "status") == "me"
    run(body)


def test_presence_update_broadcast(herald):
    """RFC 6121 4.4.2: a presence update (show, status, priority) is
    broadcast like initial presence: to the available resources of contacts
    with 'from'/'both' and to the user's other available resources, not to
    dave ('to' only) nor eve; slixmpp's changed_status event sees it."""
    srv = herald(users=users("alice", "bob", "carol", "dave", "eve"))

    async def body():
        w = await world(srv)
        a2 = await im_client(srv, "alice", "a2", roster=False)
        await w["a1"].presences.expect(is_presence("available", frm=ALICE + "/a2"))
        for c in list(w.values()) + [a2]:
            c.presences.clear()
        seen = []
        w["b1"].xmpp.add_event_handler("changed_status", lambda p: seen.append(p))
        await send_presence(w["a1"], status="brb", show_="away", priority=2)
        for c in (w["b1"], w["b2"], w["c1"], a2):
            p = await c.presences.expect(is_presence("available", frm=ALICE + "/a1"),
                                         what="alice/a1's update")
            assert presence_child_text(p.xml, "show") == "away", show(p.xml)
            assert presence_child_text(p.xml, "status") == "brb", show(p.xml)
            assert presence_child_text(p.xml, "priority") == "2", show(p.xml)
        for name in ("d1", "e1"):
            await w[name].presences.expect_none(is_presence(frm_bare=ALICE), wait=0.5)
        assert any(p["from"] == ALICE + "/a1" and p["status"] == "brb" for p in seen), seen
        # slixmpp's roster view of bob now has alice/a1 away.
        assert w["b1"].xmpp.client_roster.presence(ALICE)["a1"]["show"] == "away"
    run(body)


def test_unavailable_sent_explicitly(herald):
    """RFC 6121 4.5.2: unavailable presence (with its status) is broadcast
    to the contacts with 'from'/'both' and the user's other available
    resources, not to others."""
    srv = herald(users=users("alice", "bob", "carol", "dave", "eve"))

    async def body():
        w = await world(srv)
        a2 = await im_client(srv, "alice", "a2", roster=False)
        for c in w.values():
            c.presences.clear()
        await send_presence(a2, ptype="unavailable", status="bye")
        for name in ("b1", "b2", "c1", "a1"):
            p = await w[name].presences.expect(is_presence("unavailable", frm=ALICE + "/a2"),
                                               what="alice/a2's unavailable")
            assert presence_child_text(p.xml, "status") == "bye", show(p.xml)
        for name in ("d1", "e1"):
            await w[name].presences.expect_none(is_presence(frm_bare=ALICE), wait=0.5)
    run(body)


def test_unavailable_on_stream_close(herald):
    """RFC 6121 4.5.2 (and RFC 6120 4.4): a resource that closes its stream
    without sending unavailable presence is reported unavailable by the
    server to the contacts with 'from'/'both' and to the user's other
    available resources."""
    srv = herald(users=users("alice", "bob", "carol", "dave", "eve"))

    async def body():
        w = await world(srv)
        a2 = await im_client(srv, "alice", "a2", roster=False)
        for c in w.values():
            c.presences.clear()
        await a2.close()
        for name in ("b1", "b2", "c1", "a1"):
            await w[name].presences.expect(is_presence("unavailable", frm=ALICE + "/a2"),
                                           what="alice/a2's unavailable after logout")
        for name in ("d1", "e1"):
            await w[name].presences.expect_none(is_presence(frm_bare=ALICE), wait=0.5)
    run(body)


def test_unavailable_on_broken_connection(herald):
    """RFC 6121 4.5.2 (the server generates unavailable presence when the
    connection goes away): a raw client killed without any XMPP close
    (TCP reset) is reported unavailable to bob (contact), alice/a1 (own
    resource) and eve (directed presence, 4.6.3)."""
    srv = herald(users=users("alice", "bob", "eve"))

    async def body():
        a1 = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        e = await im_client(srv, "eve", "e1")
        await mutual(a1, b)
        rs, _, _ = raw_login(srv, "alice", "doomed")
        el = raw_roster_get(rs)
        assert el is not None and el.get("type") == "result", show(el)
        rs.send("<presence><status>alive</status></presence>")
        rs.send("<presence to='%s'><status>hi eve</status></presence>" % EVE)
        await b.presences.expect(is_presence("available", frm=ALICE + "/doomed"))
        await a1.presences.expect(is_presence("available", frm=ALICE + "/doomed"))
        await e.presences.expect(is_presence("available", frm=ALICE + "/doomed"))
        kill_socket(rs)
        for c in (b, a1, e):
            await c.presences.expect(is_presence("unavailable", frm=ALICE + "/doomed"),
                                     timeout=10, what="unavailable after the socket died")
    run(body)


def test_directed_presence_to_non_contact(herald):
    """RFC 6121 4.6.2: directed presence to an entity without subscription
    is delivered (to the bare JID: every available resource); 4.6.3: when
    the sender goes offline, the server sends that entity unavailable
    presence too. Others without subscription get nothing."""
    srv = herald(users=users("alice", "bob", "eve"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        e = await im_client(srv, "eve", "e1")
        b = await im_client(srv, "bob", "b1")
        await send_presence(a, to=EVE, status="just for eve")
        p = await e.presences.expect(is_presence("available", frm=ALICE + "/a1"),
                                     what="directed presence")
        assert presence_child_text(p.xml, "status") == "just for eve", show(p.xml)
        await a.close()
        await e.presences.expect(is_presence("unavailable", frm=ALICE + "/a1"),
                                 what="unavailable after the sender left (4.6.3)")
        await b.presences.expect_none(is_presence(frm_bare=ALICE), wait=0.5,
                                      what="alice's presence (no subscription, no directed)")
    run(body)


def test_directed_presence_then_broadcast_unavailable(herald):
    """RFC 6121 4.6.3: an entity that got directed available presence also
    gets the sender's broadcast unavailable presence."""
    srv = herald(users=users("alice", "eve"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        e = await im_client(srv, "eve", "e1")
        await send_presence(a, to=EVE + "/e1")
        await e.presences.expect(is_presence("available", frm=ALICE + "/a1"))
        await send_presence(a, ptype="unavailable", status="off")
        p = await e.presences.expect(is_presence("unavailable", frm=ALICE + "/a1"))
        assert presence_child_text(p.xml, "status") == "off", show(p.xml)
    run(body)


def test_priority_from_presence_routes_bare_messages(herald):
    """RFC 6121 4.7.2.3 with 8.5.2.1.1: the priority announced in presence
    decides which resource gets messages to the bare JID (highest
    non-negative); a presence update that changes priorities moves the
    delivery."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b1 = await im_client(srv, "bob", "b1", priority=1)
        b2 = await im_client(srv, "bob", "b2", priority=4)
        a.send_message(BOB, "to the top")
        m = await b2.msgs.expect(lambda el: True, what="the message")
        assert m["body"] == "to the top"
        await b1.msgs.expect_none(wait=0.5)
        await send_presence(b1, priority=9)
        a.send_message(BOB, "now b1")
        m = await b1.msgs.expect(lambda el: True, what="the message")
        assert m["body"] == "now b1"
        await b2.msgs.expect_none(wait=0.5)
    run(body)


def test_never_available_session_broadcasts_nothing(herald):
    """RFC 6121 4.5.2 / 4.2: a session that never sent initial presence is
    not available; its logout produces no unavailable presence to
    contacts (there was nothing to retract)."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a1 = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await mutual(a1, b)
        silent = await im_client(srv, "alice", "silent", presence=False)
        b.presences.clear()
        await silent.close()
        await b.presences.expect_none(is_presence(frm=ALICE + "/silent"), wait=0.7,
                                      what="presence of a never-available session")
    run(body)


def test_presence_goes_only_to_available_resources(herald):
    """RFC 6121 4.4.2 with 8.5.2.1.1 (presence to a bare JID goes to the
    available resources): a contact's presence update reaches alice's
    available resource and not her connected resource that never sent
    presence."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a1 = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await mutual(a1, b)
        quiet = await im_client(srv, "alice", "quiet", presence=False)
        a1.presences.clear()
        await send_presence(b, status="update")
        await a1.presences.expect(is_presence("available", frm=BOB + "/b1"))
        await quiet.presences.expect_none(is_presence(frm_bare=BOB), wait=0.5,
                                          what="presence while not available")
    run(body)


def test_replaced_session_reported_unavailable(herald):
    """RFC 6120 7.7.2.2 (a new session with the same resource replaces the
    old one, which gets <conflict/>) with RFC 6121 4.5.2: the replaced
    available session is gone, so contacts get its unavailable presence when
    the new session has not (yet) sent presence."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await mutual(a, b)
        a.presences.clear()
        b2 = await im_client(srv, "bob", "b1", presence=False, roster=False)
        assert await b.wait_disconnected(5), "the replaced session is still connected"
        await a.presences.expect(is_presence("unavailable", frm=BOB + "/b1"),
                                 what="unavailable of the replaced session")
        await send_presence(b2, status="new b1")
        p = await a.presences.expect(is_presence("available", frm=BOB + "/b1"))
        assert presence_child_text(p.xml, "status") == "new b1"
    run(body)
