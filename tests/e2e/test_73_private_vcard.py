"""XEP-0049 private XML storage and XEP-0054 vcard-temp, for older clients.

Two client libraries per feature: slixmpp (xep_0049 with xep_0048
bookmarks over it, xep_0054) and aioxmpp (BookmarkClient over
PrivateXMLService, VCardService), plus raw XML for what a library will not
send (malformed requests, other accounts' data). What is checked: round
trips, overwrite, the empty answer when nothing is stored, who may read and
write, the size bounds of [im], durability (the set's result comes after
the commit, so a SIGKILL right after it loses nothing) and the disco#info
features."""
import asyncio
import xml.etree.ElementTree as ET

import aioxmpp
import aioxmpp.bookmarks
import aioxmpp.connector
import aioxmpp.errors
import aioxmpp.vcard
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0054.stanza import VCardTemp

from e2e_helpers import DOMAIN, NS_DISCO_INFO, RawStream, q, run
from im_helpers import PASSWORDS, bare, error_condition, im_client, show, slix_call, users
from pubsub_helpers import kill_hard, restart_after_kill

NS_PRIVATE = "jabber:iq:private"
NS_VCARD = "vcard-temp"
NS_BOOKMARKS = "storage:bookmarks"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

async def slix(srv, user, resource="r"):
    """A logged-in slixmpp client with the XEP-0049/0048/0054 plugins."""
    c = await im_client(srv, user, resource, roster=False, presence=False)
    for p in ("xep_0030", "xep_0049", "xep_0048", "xep_0054"):
        c.xmpp.register_plugin(p)
    return c


class Aio:
    """An aioxmpp client over STARTTLS to the test server (certificate
    checks off: the server's certificate is self-signed)."""

    def __init__(self, srv, user, resource="aio"):
        jid = aioxmpp.JID.fromstr("%s/%s" % (bare(user), resource))
        self.client = aioxmpp.Client(
            jid, aioxmpp.make_security_layer(PASSWORDS[user], no_verify=True),
            override_peer=[("127.0.0.1", srv.port, aioxmpp.connector.STARTTLSConnector())])
        self._cm = None

    async def __aenter__(self):
        self._cm = self.client.connected()
        await asyncio.wait_for(self._cm.__aenter__(), 15)
        return self.client

    async def __aexit__(self, *exc):
        await asyncio.wait_for(self._cm.__aexit__(*exc), 10)


def result_child(el, ns, name):
    """The payload of an iq result (asserting type result)."""
    assert el.get("type") == "result", "expected a result: %s" % show(el)
    child = el.find(q(ns, name))
    assert child is not None, "no <%s xmlns='%s'/> in %s" % (name, ns, show(el))
    return child


def conferences(storage):
    return sorted((c.get("jid"), c.get("name")) for c in storage.findall(q(NS_BOOKMARKS,
                                                                             "conference")))


async def private_get(c, ns, name, to=None):
    resp = await c.iq("<query xmlns='%s'><%s xmlns='%s'/></query>" % (NS_PRIVATE, name, ns),
                      to=to)
    return resp.xml


async def private_set(c, payload, to=None):
    resp = await c.iq("<query xmlns='%s'>%s</query>" % (NS_PRIVATE, payload), itype="set",
                      to=to)
    return resp.xml


def stored(resp, ns, name):
    """The element a private get returned (asserting a result)."""
    query = result_child(resp, NS_PRIVATE, "query")
    el = query.find(q(ns, name))
    assert el is not None and len(list(query)) == 1, show(resp)
    return el


async def vcard_get(c, to=None):
    resp = await c.iq("<vCard xmlns='%s'/>" % NS_VCARD, to=to)
    return resp.xml


async def vcard_set(c, inner, to=None):
    resp = await c.iq("<vCard xmlns='%s'>%s</vCard>" % (NS_VCARD, inner), itype="set", to=to)
    return resp.xml


def vcard_text(resp, field):
    v = result_child(resp, NS_VCARD, "vCard")
    el = v.find(q(NS_VCARD, field))
    return None if el is None else (el.text or "")


# --------------------------------------------------------------------------
# XEP-0049
# --------------------------------------------------------------------------

def test_private_bookmarks_slixmpp(herald):
    """slixmpp's xep_0048 over xep_0049: a get before any set answers the
    empty <storage/> (§2.3 example); set then get returns the bookmarks; a
    second set replaces them (not merges); another resource of the account
    sees the same data."""
    srv = herald(users=users("alice"))

    async def body():
        a = await slix(srv, "alice", "a1")
        first = await slix_call(a.xmpp["xep_0048"].get_bookmarks())
        empty = stored(first.xml, NS_BOOKMARKS, "storage")
        assert len(list(empty)) == 0 and not (empty.text or "").strip(), show(first.xml)

        bm = Bookmarks()
        bm.add_conference("room1@muc.%s" % DOMAIN, "al", name="Room one", autojoin=True)
        bm.add_url("https://example.org/", name="Example")
        ok = await slix_call(a.xmpp["xep_0048"].set_bookmarks(bm))
        assert ok["type"] == "result", show(ok.xml)
        got = await slix_call(a.xmpp["xep_0048"].get_bookmarks())
        storage = stored(got.xml, NS_BOOKMARKS, "storage")
        assert conferences(storage) == [("room1@muc.%s" % DOMAIN, "Room one")], show(got.xml)
        url = storage.find(q(NS_BOOKMARKS, "url"))
        assert url is not None and url.get("url") == "https://example.org/", show(got.xml)
        conf = storage.find(q(NS_BOOKMARKS, "conference"))
        assert conf.get("autojoin") in ("true", "1"), show(got.xml)
        assert conf.findtext(q(NS_BOOKMARKS, "nick")) == "al", show(got.xml)

        bm2 = Bookmarks()
        bm2.add_conference("room2@muc.%s" % DOMAIN, "al2", name="Room two")
        ok = await slix_call(a.xmpp["xep_0048"].set_bookmarks(bm2))
        assert ok["type"] == "result", show(ok.xml)
        a2 = await slix(srv, "alice", "a2")
        got = await slix_call(a2.xmpp["xep_0048"].get_bookmarks())
        storage = stored(got.xml, NS_BOOKMARKS, "storage")
        assert conferences(storage) == [("room2@muc.%s" % DOMAIN, "Room two")], show(got.xml)
        assert storage.find(q(NS_BOOKMARKS, "url")) is None, show(got.xml)
    run(body)


def test_private_bookmarks_aioxmpp_and_slixmpp(herald):
    """aioxmpp's BookmarkClient (PrivateXMLService underneath) adds a
    bookmark; slixmpp reads it back as stored, then replaces it, and aioxmpp
    sees the replacement: two independent libraries agree on what the
    server keeps."""
    srv = herald(users=users("alice"))
    room = aioxmpp.JID.fromstr("lounge@muc.%s" % DOMAIN)

    async def body():
        async with Aio(srv, "alice") as client:
            bmc = client.summon(aioxmpp.bookmarks.BookmarkClient)
            assert await asyncio.wait_for(bmc.get_bookmarks(), 10) == []
            await asyncio.wait_for(bmc.add_bookmark(aioxmpp.bookmarks.Conference(
                "Lounge", room, autojoin=True, nick="alice")), 10)
            got = await asyncio.wait_for(bmc.get_bookmarks(), 10)
            assert [(b.name, b.jid, b.nick) for b in got] == [("Lounge", room, "alice")], got

            s = await slix(srv, "alice", "s1")
            resp = await slix_call(s.xmpp["xep_0048"].get_bookmarks())
            storage = stored(resp.xml, NS_BOOKMARKS, "storage")
            assert conferences(storage) == [(str(room), "Lounge")], show(resp.xml)
            bm = Bookmarks()
            bm.add_conference("kitchen@muc.%s" % DOMAIN, "al", name="Kitchen")
            ok = await slix_call(s.xmpp["xep_0048"].set_bookmarks(bm))
            assert ok["type"] == "result", show(ok.xml)

            got = await asyncio.wait_for(bmc.get_bookmarks(), 10)
            assert [(b.name, str(b.jid)) for b in got] == [("Kitchen", "kitchen@muc.%s" % DOMAIN)]
    run(body)


def test_private_namespaces_are_separate(herald):
    """Elements are keyed by namespace and name: two namespaces stored in
    one set (§2.3: a set may hold several elements) come back separately,
    byte-for-byte as to content, and one account's data is not another's."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await slix(srv, "alice")
        b = await slix(srv, "bob")
        resp = await private_set(a, "<prefs xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick>"
                                    "<x:opt xmlns:x='urn:other' x:a='1'>&lt;text&amp;</x:opt>"
                                    "</prefs><notes xmlns='storage:rosternotes'/>"
                                    "<prefs xmlns='gajim:prefs'><k>v</k></prefs>")
        assert resp.get("type") == "result", show(resp)
        prefs = stored(await private_get(a, "exodus:prefs", "prefs"), "exodus:prefs", "prefs")
        assert prefs.findtext(q("exodus:prefs", "defaultnick")) == "Hamlet", ET.tostring(prefs)
        opt = prefs.find(q("urn:other", "opt"))
        assert opt is not None and opt.text == "<text&", ET.tostring(prefs)
        g = stored(await private_get(a, "gajim:prefs", "prefs"), "gajim:prefs", "prefs")
        assert g.findtext(q("gajim:prefs", "k")) == "v", ET.tostring(g)
        # Same name, other namespace; same namespace, other name: nothing stored.
        other = stored(await private_get(a, "exodus:prefs", "other"), "exodus:prefs", "other")
        assert len(list(other)) == 0, ET.tostring(other)
        bobs = stored(await private_get(b, "exodus:prefs", "prefs"), "exodus:prefs", "prefs")
        assert len(list(bobs)) == 0, "bob sees alice's private XML: %s" % ET.tostring(bobs)
    run(body)


def test_private_raw_exact(herald):
    """Raw XML, what slixmpp would rewrite: namespaced and xml:lang
    attributes, prefixed children, escaped text and a nested default
    namespace come back as sent (same tree)."""
    srv = herald(users=users("alice"))
    sent = ("<cfg xmlns='x:cfg' xmlns:o='urn:other' o:a='1' b='&quot;2&apos;' xml:lang='en'>"
            "<o:opt>&lt;t&amp;&gt;</o:opt><inner xmlns='urn:inner'><deep k='v'/></inner>"
            "text tail</cfg>")
    rs = RawStream(srv.port)
    rs.login("alice", PASSWORDS["alice"], "raw")
    resp = rs.iq("<query xmlns='%s'>%s</query>" % (NS_PRIVATE, sent), itype="set", timeout=5)
    assert resp is not None and resp.get("type") == "result", show(resp)
    resp = rs.iq("<query xmlns='%s'><cfg xmlns='x:cfg'/></query>" % NS_PRIVATE, timeout=5)
    got = stored(resp, "x:cfg", "cfg")
    want = ET.fromstring(sent)
    assert ET.tostring(got) == ET.tostring(want), (ET.tostring(got), ET.tostring(want))
    rs.close()


def test_private_of_another_account_forbidden(herald):
    """§2.3 and §3: a get or set addressed to another user (or to the
    server) is answered with forbidden, and the other account's data is
    neither shown nor changed; an unknown account is service-unavailable."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await slix(srv, "alice")
        b = await slix(srv, "bob")
        assert (await private_set(a, "<p xmlns='x:p'>secret</p>")).get("type") == "result"
        for to in (bare("alice"), DOMAIN):
            resp = await private_get(b, "x:p", "p", to=to)
            assert resp.get("type") == "error" and error_condition(resp) == "forbidden", \
                show(resp)
            assert b"secret" not in ET.tostring(resp), show(resp)
            resp = await private_set(b, "<p xmlns='x:p'>bob was here</p>", to=to)
            assert resp.get("type") == "error" and error_condition(resp) == "forbidden", \
                show(resp)
        resp = await private_get(b, "x:p", "p", to="nobody@%s" % DOMAIN)
        assert error_condition(resp) == "service-unavailable", show(resp)
        mine = stored(await private_get(a, "x:p", "p"), "x:p", "p")
        assert mine.text == "secret", ET.tostring(mine)
        # To one's own bare JID is to oneself.
        mine = stored(await private_get(a, "x:p", "p", to=bare("alice")), "x:p", "p")
        assert mine.text == "secret", ET.tostring(mine)
    run(body)


def test_private_malformed_requests(herald):
    """Raw requests a library would not send: an empty query is
    not-acceptable (§2.3); a root element in jabber:client, jabber:server,
    jabber:iq:private or no namespace is not-acceptable (§2.3, reserved);
    a get for two elements is bad-request (one namespace per get); a set
    with one bad element among good ones stores none of them."""
    srv = herald(users=users("alice"))

    async def body():
        a = await slix(srv, "alice")
        cases = [
            ("get", "<query xmlns='%s'/>" % NS_PRIVATE, "not-acceptable"),
            ("set", "<query xmlns='%s'/>" % NS_PRIVATE, "not-acceptable"),
            ("set", "<query xmlns='%s'><foo>x</foo></query>" % NS_PRIVATE, "not-acceptable"),
            ("set", "<query xmlns='%s'><foo xmlns=''>x</foo></query>" % NS_PRIVATE,
             "not-acceptable"),
            ("get", "<query xmlns='%s'><body xmlns='jabber:client'/></query>" % NS_PRIVATE,
             "not-acceptable"),
            ("set", "<query xmlns='%s'><db xmlns='jabber:server'/></query>" % NS_PRIVATE,
             "not-acceptable"),
            ("get", "<query xmlns='%s'><a xmlns='x:a'/><b xmlns='x:b'/></query>" % NS_PRIVATE,
             "bad-request"),
            ("set", "<query xmlns='%s'><ok xmlns='x:ok'>1</ok><q xmlns='%s'/></query>"
             % (NS_PRIVATE, NS_PRIVATE), "not-acceptable"),
        ]
        for itype, payload, cond in cases:
            resp = (await a.iq(payload, itype=itype)).xml
            assert resp.get("type") == "error" and error_condition(resp) == cond, \
                "%s %s: expected %s, got %s" % (itype, payload, cond, show(resp))
        ok = stored(await private_get(a, "x:ok", "ok"), "x:ok", "ok")
        assert not (ok.text or ""), "a refused set stored part of itself: %s" % ET.tostring(ok)
        # The server is still fine.
        resp = await private_set(a, "<ok xmlns='x:ok'>2</ok>")
        assert resp.get("type") == "result", show(resp)
    run(body)


def test_private_size_limits(herald):
    """[im] bounds: an element larger than max_private_bytes is
    not-acceptable; beyond max_private_elements or
    max_private_account_bytes per account the set is policy-violation;
    replacing an element or deleting one (an empty element) frees room."""
    srv = herald(users=users("alice"), config={"im": {
        "max_private_bytes": 1000, "max_private_elements": 3,
        "max_private_account_bytes": 1500}})

    async def body():
        a = await slix(srv, "alice")
        resp = await private_set(a, "<big xmlns='x:big'>%s</big>" % ("z" * 1000))
        assert error_condition(resp) == "not-acceptable", show(resp)
        for i in range(3):
            resp = await private_set(a, "<e xmlns='x:%d'>%s</e>" % (i, "y" * 100))
            assert resp.get("type") == "result", show(resp)
        resp = await private_set(a, "<e xmlns='x:3'>y</e>")
        assert error_condition(resp) == "policy-violation", show(resp)
        # Replacing at the count bound is fine, until the bytes run out.
        resp = await private_set(a, "<e xmlns='x:2'>%s</e>" % ("w" * 900))
        assert resp.get("type") == "result", show(resp)
        resp = await private_set(a, "<e xmlns='x:1'>%s</e>" % ("w" * 900))
        assert error_condition(resp) == "policy-violation", show(resp)
        # Deleting one (an empty element) makes room for another.
        assert (await private_set(a, "<e xmlns='x:0'/>")).get("type") == "result"
        resp = await private_set(a, "<e xmlns='x:3'>y</e>")
        assert resp.get("type") == "result", show(resp)
        e1 = stored(await private_get(a, "x:1", "e"), "x:1", "e")
        assert e1.text == "y" * 100, "a refused set changed the element"
    run(body)


# --------------------------------------------------------------------------
# XEP-0054
# --------------------------------------------------------------------------

def test_vcard_slixmpp(herald):
    """slixmpp's xep_0054: publish_vcard, then get_vcard of one's own bare
    JID and, from another account, of that user (§3.3: anyone may read);
    an overwrite replaces every field; an account with no vCard answers an
    empty <vCard/>; an unknown account is service-unavailable."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        a = await slix(srv, "alice")
        b = await slix(srv, "bob")
        v = VCardTemp()
        v["FN"] = "Alice Liddell"
        v["NICKNAME"] = "alice"
        v["URL"] = "https://example.org/alice"
        await asyncio.wait_for(a.xmpp["xep_0054"].publish_vcard(v), 10)
        own = await asyncio.wait_for(a.xmpp["xep_0054"].get_vcard(bare("alice")), 10)
        assert own["vcard_temp"]["FN"] == "Alice Liddell", own
        theirs = await asyncio.wait_for(b.xmpp["xep_0054"].get_vcard(bare("alice")), 10)
        assert theirs.xml.findtext(".//" + q(NS_VCARD, "NICKNAME")) == "alice", show(theirs.xml)
        assert theirs["from"].bare == bare("alice"), theirs

        v2 = VCardTemp()
        v2["FN"] = "Alice L."
        await asyncio.wait_for(a.xmpp["xep_0054"].publish_vcard(v2), 10)
        theirs = await asyncio.wait_for(b.xmpp["xep_0054"].get_vcard(bare("alice")), 10)
        assert theirs["vcard_temp"]["FN"] == "Alice L.", theirs
        assert theirs.xml.find(".//" + q(NS_VCARD, "NICKNAME")) is None, show(theirs.xml)

        none = await asyncio.wait_for(b.xmpp["xep_0054"].get_vcard(bare("carol")), 10)
        vc = none.xml.find(q(NS_VCARD, "vCard"))
        assert vc is not None and len(list(vc)) == 0, show(none.xml)
        resp = await vcard_get(b, to="ghost@%s" % DOMAIN)
        assert error_condition(resp) == "service-unavailable", show(resp)
    run(body)


def test_vcard_aioxmpp(herald):
    """aioxmpp's VCardService: get of an unset vCard is empty; set with a
    64 KiB photo (XEP-0153 avatars live in it; default limits) and read
    back the exact bytes, also
    from another account with aioxmpp; slixmpp's own get sees aioxmpp's
    vCard."""
    srv = herald(users=users("alice", "bob"))
    photo = bytes(range(256)) * 256  # 64 KiB: 87 KiB of base64, under the 128 KiB default

    async def body():
        async with Aio(srv, "alice") as client:
            vs = client.summon(aioxmpp.vcard.VCardService)
            v = await asyncio.wait_for(vs.get_vcard(), 10)
            assert v.get_photo_data() is None
            v.set_photo_data("image/png", photo)
            await asyncio.wait_for(vs.set_vcard(v), 10)
            v2 = await asyncio.wait_for(vs.get_vcard(), 10)
            assert v2.get_photo_mime_type() == "image/png"
            assert v2.get_photo_data() == photo
        async with Aio(srv, "bob") as client:
            vs = client.summon(aioxmpp.vcard.VCardService)
            v3 = await asyncio.wait_for(vs.get_vcard(aioxmpp.JID.fromstr(bare("alice"))), 10)
            assert v3.get_photo_data() == photo
            mine = await asyncio.wait_for(vs.get_vcard(), 10)
            assert mine.get_photo_data() is None, "bob sees alice's vCard as his own"
        s = await slix(srv, "bob")
        got = await asyncio.wait_for(s.xmpp["xep_0054"].get_vcard(bare("alice")), 10)
        assert got["vcard_temp"]["PHOTO"]["TYPE"] == "image/png", got
    run(body)


def test_vcard_write_rules_and_errors(herald):
    """Only the owner sets its vCard: a set to another account or to the
    server is forbidden and changes nothing (raw XML, which slixmpp and
    aioxmpp would also send, but without showing the error); a get to the
    server answers an empty vCard; an empty set deletes the vCard."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await slix(srv, "alice")
        b = await slix(srv, "bob")
        assert (await vcard_set(a, "<FN>Alice</FN>")).get("type") == "result"
        for to in (bare("alice"), DOMAIN):
            resp = await vcard_set(b, "<FN>Mallory</FN>", to=to)
            assert resp.get("type") == "error" and error_condition(resp) == "forbidden", \
                show(resp)
        assert vcard_text(await vcard_get(b, to=bare("alice")), "FN") == "Alice"
        assert vcard_text(await vcard_get(a), "FN") == "Alice"
        srv_vcard = result_child(await vcard_get(a, to=DOMAIN), NS_VCARD, "vCard")
        assert len(list(srv_vcard)) == 0
        # Two payloads in one get are an error (RFC 6120 8.2.3), not a vCard.
        rs = RawStream(srv.port)
        rs.login("bob", PASSWORDS["bob"], "raw")
        resp = rs.iq("<vCard xmlns='%s'/><x xmlns='x:x'/>" % NS_VCARD, to=bare("alice"),
                     timeout=5)
        assert resp is not None and resp.get("type") == "error", show(resp)
        resp = rs.iq("<vCard xmlns='%s'/><x xmlns='x:x'/>" % NS_VCARD, timeout=5)
        assert resp is not None and error_condition(resp) == "bad-request", show(resp)
        rs.close()
        # A vCard set to one's own bare JID is to oneself.
        assert (await vcard_set(a, "<FN>Alice 2</FN>", to=bare("alice"))).get("type") == "result"
        assert vcard_text(await vcard_get(b, to=bare("alice")), "FN") == "Alice 2"
        assert (await vcard_set(a, "")).get("type") == "result"
        empty = result_child(await vcard_get(b, to=bare("alice")), NS_VCARD, "vCard")
        assert len(list(empty)) == 0, ET.tostring(empty)
    run(body)


def test_vcard_size_limit(herald):
    """[im] max_vcard_bytes: a larger vCard is not-acceptable (through
    aioxmpp, as an XMPPCancelError/ModifyError) and the stored one stays."""
    srv = herald(users=users("alice"), config={"im": {"max_vcard_bytes": 4096}})

    async def body():
        a = await slix(srv, "alice")
        assert (await vcard_set(a, "<FN>Small</FN>")).get("type") == "result"
        async with Aio(srv, "alice") as client:
            vs = client.summon(aioxmpp.vcard.VCardService)
            v = await asyncio.wait_for(vs.get_vcard(), 10)
            v.set_photo_data("image/jpeg", b"\xff" * 4096)
            try:
                await asyncio.wait_for(vs.set_vcard(v), 10)
                raise AssertionError("an oversized vCard was accepted")
            except aioxmpp.errors.XMPPError as e:
                assert e.condition == aioxmpp.ErrorCondition.NOT_ACCEPTABLE, e
        assert vcard_text(await vcard_get(a), "FN") == "Small"
    run(body)


# --------------------------------------------------------------------------
# both
# --------------------------------------------------------------------------

def test_disco_advertises_both(herald):
    """The server's disco#info lists vcard-temp (XEP-0054 §6) and
    jabber:iq:private, from iq.c's table (slixmpp xep_0030)."""
    srv = herald(users=users("alice"))

    async def body():
        a = await slix(srv, "alice")
        info = await slix_call(a.xmpp["xep_0030"].get_info(jid=DOMAIN))
        feats = {f.get("var") for f in info.xml.iter(q(NS_DISCO_INFO, "feature"))}
        assert {NS_VCARD, NS_PRIVATE} <= feats, feats
    run(body)


def test_survives_sigkill_after_result(herald):
    """Durability: the set's result leaves only after the commit, so a
    SIGKILL right after it loses neither the private element nor the
    vCard; both are read back after the restart (aioxmpp for the vCard,
    slixmpp for the bookmarks)."""
    srv = herald(users=users("alice"))

    async def body():
        a = await slix(srv, "alice")
        bm = Bookmarks()
        bm.add_conference("durable@muc.%s" % DOMAIN, "al", name="Durable")
        ok = await slix_call(a.xmpp["xep_0048"].set_bookmarks(bm))
        assert ok["type"] == "result", show(ok.xml)
        resp = await vcard_set(a, "<FN>Persistent Alice</FN>")
        assert resp.get("type") == "result", show(resp)
        kill_hard(srv)
        await a.wait_disconnected()
        restart_after_kill(srv)
        a2 = await slix(srv, "alice", "again")
        got = await slix_call(a2.xmpp["xep_0048"].get_bookmarks())
        storage = stored(got.xml, NS_BOOKMARKS, "storage")
        assert conferences(storage) == [("durable@muc.%s" % DOMAIN, "Durable")], show(got.xml)
        async with Aio(srv, "alice") as client:
            vs = client.summon(aioxmpp.vcard.VCardService)
            v = await asyncio.wait_for(vs.get_vcard(), 10)
            fn = v.elements.xpath("/v:vCard/v:FN/text()", namespaces={"v": NS_VCARD})
            assert fn == ["Persistent Alice"], fn
    run(body)


def test_deleted_account_takes_its_data(herald):
    """`herald user del` removes the account's private XML and vCard: an
    account made again with that name starts empty."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await slix(srv, "alice")
        assert (await private_set(a, "<p xmlns='x:p'>old</p>")).get("type") == "result"
        assert (await vcard_set(a, "<FN>Old Alice</FN>")).get("type") == "result"
        await a.close()
        r = srv.cli("user", "del", bare("alice"))
        assert r.returncode == 0, r
        srv.add_user("alice", PASSWORDS["alice"])
        a = await slix(srv, "alice", "new")
        p = stored(await private_get(a, "x:p", "p"), "x:p", "p")
        assert not (p.text or ""), ET.tostring(p)
        b = await slix(srv, "bob")
        vc = result_child(await vcard_get(b, to=bare("alice")), NS_VCARD, "vCard")
        assert len(list(vc)) == 0, ET.tostring(vc)
    run(body)


def test_full_store_deletes_still_work(herald):
    """On a store at its ceiling and down to its reserve, sets that add
    data are refused with resource-constraint, while deleting (an empty
    private element, an empty vCard) still works and makes room again:
    a full store can be emptied by the accounts themselves."""
    srv = herald(users=users("alice"), config={
        "storage": {"map_size_mb": 2, "max_map_size_mb": 2},
        "im": {"max_private_elements": 10000, "max_private_account_bytes": 1 << 30}})
    rs = RawStream(srv.port)
    rs.login("alice", PASSWORDS["alice"], "raw")

    def pset(payload):
        resp = rs.iq("<query xmlns='%s'>%s</query>" % (NS_PRIVATE, payload), itype="set",
                     timeout=10)
        assert resp is not None, "no answer to a private set"
        return resp

    stored_ns = []
    refused = None
    for i in range(400):
        resp = pset("<e xmlns='x:%d'>%s</e>" % (i, "f" * 30000))
        if resp.get("type") != "result":
            refused = resp
            break
        stored_ns.append("x:%d" % i)
    assert refused is not None, "the 2 MiB store never filled"
    assert error_condition(refused) == "resource-constraint", show(refused)
    assert len(stored_ns) > 10, stored_ns
    resp = rs.iq("<vCard xmlns='%s'><FN>%s</FN></vCard>" % (NS_VCARD, "v" * 30000),
                 itype="set", timeout=10)
    assert error_condition(resp) == "resource-constraint", show(resp)
    # Deletions go through, and free room for new data.
    for ns in stored_ns[:10]:
        resp = pset("<e xmlns='%s'/>" % ns)
        assert resp.get("type") == "result", "a deletion was refused: %s" % show(resp)
    resp = rs.iq("<vCard xmlns='%s'/>" % NS_VCARD, itype="set", timeout=10)
    assert resp.get("type") == "result", show(resp)
    resp = pset("<e xmlns='x:new'>%s</e>" % ("n" * 30000))
    assert resp.get("type") == "result", "no room after the deletions: %s" % show(resp)
    rs.close()
