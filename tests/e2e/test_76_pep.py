"""XEP-0163 PEP on every account's bare JID, with XEP-0115 +notify filtering.

Clients nobody here wrote: slixmpp (xep_0163, xep_0084 avatars, xep_0172
nicknames, xep_0115 capabilities with add_interest), aioxmpp (PEPClient
through AvatarService) and raw XML where no library speaks the protocol
(XEP-0402 bookmarks, OMEMO device lists) or where the test must control
the bytes (malformed requests, capabilities that lie or never answer).

What is checked: who gets a notification (the owner's and contacts'
resources with +notify for the node, never a contact without it, never a
non-contact under the presence model, nobody outside a whitelist), that it
comes from the owner's bare JID as a headline, the last item on presence
(§4.3.2), publish-options and their preconditions, the errors of the
protocol, that PEP nodes stay out of pubsub.<domain>'s lists and quota,
durability across a restart, and that the capabilities cache stays within
[pep] caps_cache_size."""
import asyncio
import base64
import hashlib
import time
import xml.etree.ElementTree as ET

import aioxmpp
import aioxmpp.avatar
import aioxmpp.pep

from aioxmpp_helpers import AioClient
from e2e_helpers import DOMAIN, NS_CLIENT, NS_DISCO_INFO, RawStream, q, run
from im_helpers import (error_condition, im_client, mutual, raw_login, send_presence, show,
                        subscribe, users)
from rest_helpers import base_url, new_token

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DATA = "jabber:x:data"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_NICK = "http://jabber.org/protocol/nick"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

async def pep_client(srv, user, resource="r", interests=(), presence=True, publisher=False):
    """A slixmpp client with the PEP plugins; interests become +notify
    features of its XEP-0115 capabilities before its initial presence. A
    publisher also has xep_0084 and xep_0172 (which register +notify for
    avatar metadata and nicknames themselves)."""
    c = await im_client(srv, user, resource, presence=False)
    plugins = ["xep_0030", "xep_0115", "xep_0060", "xep_0163"]
    if publisher:
        plugins += ["xep_0084", "xep_0172"]
    for p in plugins:
        c.xmpp.register_plugin(p)
    for ns in interests:
        c.xmpp.plugin["xep_0163"].add_interest(ns)
    await asyncio.wait_for(c.xmpp["xep_0115"].update_caps(broadcast=False), 10)
    if presence:
        await send_presence(c)
        await caps_known(c)
    return c


async def caps_known(c):
    """Gives the server time to ask for the client's capabilities and the
    client to answer (two round trips are plenty on loopback)."""
    for _ in range(2):
        await c.iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
    await asyncio.sleep(0.2)


def is_event(frm, node, what="items"):
    def pred(el):
        ev = el.find(q(NS_EVENT, "event"))
        return (el.get("from") == frm and ev is not None and
                ev.find(q(NS_EVENT, what)) is not None and
                ev.find(q(NS_EVENT, what)).get("node") == node)
    return pred


def event_item(el):
    return el.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(q(NS_EVENT, "item"))


def publish_xml(node, item_xml, item_id=None, options=None):
    idattr = " id='%s'" % item_id if item_id else ""
    opts = ""
    if options:
        fields = "".join("<field var='%s'><value>%s</value></field>" % kv for kv in options.items())
        opts = ("<publish-options><x xmlns='%s' type='submit'><field var='FORM_TYPE' "
                "type='hidden'><value>%s#publish-options</value></field>%s</x></publish-options>"
                % (NS_DATA, NS_PUBSUB, fields))
    return ("<pubsub xmlns='%s'><publish node='%s'><item%s>%s</item></publish>%s</pubsub>"
            % (NS_PUBSUB, node, idattr, item_xml, opts))


def items_xml(node):
    return "<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PUBSUB, node)


def pubsub_error(el):
    """(stanza condition, pubsub#errors condition or None)."""
    err = el.find(q(NS_CLIENT, "error"))
    app = None
    if err is not None:
        for child in err:
            if child.tag.startswith("{%s}" % NS_ERRORS):
                app = child.tag.split("}")[1]
    return error_condition(el), app


def caps_ver(identities, features):
    """XEP-0115 5.1 verification string (no forms), sha-1, base64."""
    s = "".join("%s/%s//%s<" % i for i in sorted(identities))
    s += "".join("%s<" % f for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def raw_caps_presence(rs, ver, node="http://example.org/raw"):
    rs.send("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>"
            % (NS_CAPS, node, ver))


def raw_disco_query(rs, timeout=3.0):
    return rs.wait_element(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get" and
                           e.find(q(NS_DISCO_INFO, "query")) is not None, timeout=timeout)


def raw_answer_caps(rs, query, identities, features):
    qn = query.find(q(NS_DISCO_INFO, "query")).get("node")
    ids = "".join("<identity category='%s' type='%s' name='%s'/>" % i for i in identities)
    feats = "".join("<feature var='%s'/>" % f for f in features)
    rs.send("<iq type='result' to='%s' id='%s'><query xmlns='%s' node='%s'>%s%s</query></iq>"
            % (query.get("from"), query.get("id"), NS_DISCO_INFO, qn, ids, feats))


def raw_notifications(rs, node, wait):
    got = []
    deadline = time.monotonic() + wait
    while True:
        el = rs.wait_element(lambda e: e.tag == q(NS_CLIENT, "message") and
                             e.find(q(NS_EVENT, "event")) is not None,
                             timeout=max(0.0, deadline - time.monotonic()))
        if el is None:
            return got
        items = el.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items"))
        if items is not None and items.get("node") == node:
            got.append(el)


# --------------------------------------------------------------------------
# slixmpp: avatars, nicknames, +notify filtering
# --------------------------------------------------------------------------

def test_avatar_metadata_reaches_contacts_with_notify_only(herald):
    """XEP-0084 through slixmpp: bob (contact, +notify for the metadata)
    gets the metadata notification from alice's bare JID as a headline;
    carol (contact, no +notify) and dave (+notify but no contact, presence
    access model) get nothing; nobody asked for the data node."""
    srv = herald(users=users("alice", "bob", "carol", "dave"))

    async def body():
        alice = await pep_client(srv, "alice", publisher=True)
        bob = await pep_client(srv, "bob", interests=[NS_AVATAR_META])
        carol = await pep_client(srv, "carol")
        dave = await pep_client(srv, "dave", interests=[NS_AVATAR_META])
        await mutual(alice, bob)
        await mutual(alice, carol)
        for c in (bob, carol, dave):
            c.msgs.clear()
        await asyncio.wait_for(alice.xmpp["xep_0084"].publish_avatar(PNG), 10)
        avatar_id = alice.xmpp["xep_0084"].generate_id(PNG)
        await asyncio.wait_for(alice.xmpp["xep_0084"].publish_avatar_metadata(
            [{"id": avatar_id, "type": "image/png", "bytes": len(PNG)}]), 10)
        got = await bob.msgs.expect(is_event("alice@localhost", NS_AVATAR_META),
                                    what="avatar metadata notification")
        assert got.xml.get("type") == "headline", show(got.xml)
        assert event_item(got.xml).get("id") == avatar_id, show(got.xml)
        await bob.msgs.expect_none(is_event("alice@localhost", NS_AVATAR_DATA),
                                   what="avatar data without +notify for it")
        await carol.msgs.expect_none(is_event("alice@localhost", NS_AVATAR_META), wait=0.3,
                                     what="metadata without +notify")
        await dave.msgs.expect_none(is_event("alice@localhost", NS_AVATAR_META), wait=0.1,
                                    what="metadata as a non-contact")
        # dave may not read it either (presence access model, XEP-0060 6.5.9.3).
        resp = await dave.iq(items_xml(NS_AVATAR_META), to="alice@localhost")
        assert pubsub_error(resp.xml) == ("not-authorized", "presence-subscription-required"), \
            show(resp.xml)
        # bob may: the item and its payload.
        resp = await bob.iq(items_xml(NS_AVATAR_META), to="alice@localhost")
        it = resp.xml.find(q(NS_PUBSUB, "pubsub")).find(q(NS_PUBSUB, "items")).find(
            q(NS_PUBSUB, "item"))
        assert it is not None and it.get("id") == avatar_id, show(resp.xml)
    run(body, timeout=60)


def test_last_item_on_presence_and_nick(herald):
    """§4.3.2: a contact that comes online later with +notify receives the
    last avatar metadata and nickname (XEP-0172 through slixmpp) at once;
    the owner's own new resource gets them too."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        alice = await pep_client(srv, "alice", publisher=True)
        bob = await pep_client(srv, "bob")
        await mutual(alice, bob)
        await bob.close()
        await asyncio.wait_for(alice.xmpp["xep_0172"].publish_nick("Alice W."), 10)
        await asyncio.wait_for(alice.xmpp["xep_0084"].publish_avatar_metadata(
            [{"id": "abc123", "type": "image/png", "bytes": 42}]), 10)
        bob2 = await pep_client(srv, "bob", "later", interests=[NS_AVATAR_META, NS_NICK])
        got = await bob2.msgs.expect(is_event("alice@localhost", NS_AVATAR_META),
                                     what="last avatar metadata on presence")
        assert event_item(got.xml).get("id") == "abc123", show(got.xml)
        got = await bob2.msgs.expect(is_event("alice@localhost", NS_NICK),
                                     what="last nickname on presence")
        assert "Alice W." in ET.tostring(got.xml, encoding="unicode"), show(got.xml)
        alice2 = await pep_client(srv, "alice", "phone", interests=[NS_NICK])
        await alice2.msgs.expect(is_event("alice@localhost", NS_NICK),
                                 what="own last nickname on a new resource")
        await alice2.msgs.expect_none(is_event("alice@localhost", NS_AVATAR_META), wait=0.3,
                                      what="metadata without +notify")
    run(body, timeout=60)


# --------------------------------------------------------------------------
# raw XML: bookmarks (XEP-0402) and OMEMO device lists
# --------------------------------------------------------------------------

BOOKMARK_OPTIONS = {"pubsub#persist_items": "true", "pubsub#max_items": "max",
                    "pubsub#send_last_published_item": "never",
                    "pubsub#access_model": "whitelist"}


def test_bookmarks_whitelist_with_publish_options(herald):
    """XEP-0402 §3: bookmarks published with publish-options (whitelist,
    max_items max) from one resource: the owner's other resource with
    +notify gets the notification and reads them back; a contact with
    +notify gets nothing, cannot list or read the node."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        phone = await pep_client(srv, "alice", "phone", interests=[NS_BOOKMARKS])
        bob = await pep_client(srv, "bob", interests=[NS_BOOKMARKS])
        await mutual(phone, bob)
        bob.msgs.clear()
        rs, _, _ = raw_login(srv, "alice", "desk")
        conf = ("<conference xmlns='%s' name='The Coven' autojoin='true'><nick>alice</nick>"
                "</conference>" % NS_BOOKMARKS)
        for room in ("coven@muc.localhost", "tea@muc.localhost"):
            resp = rs.iq(publish_xml(NS_BOOKMARKS, conf, room, BOOKMARK_OPTIONS), itype="set")
            assert resp.get("type") == "result", show(resp)
        got = await phone.msgs.expect(is_event("alice@localhost", NS_BOOKMARKS),
                                      what="bookmark notification on the other resource")
        assert event_item(got.xml).get("id") == "coven@muc.localhost", show(got.xml)
        resp = await phone.iq(items_xml(NS_BOOKMARKS))
        ids = sorted(i.get("id") for i in resp.xml.iter(q(NS_PUBSUB, "item")))
        assert ids == ["coven@muc.localhost", "tea@muc.localhost"], show(resp.xml)
        await bob.msgs.expect_none(is_event("alice@localhost", NS_BOOKMARKS),
                                   what="bookmarks of a whitelist node")
        resp = await bob.iq(items_xml(NS_BOOKMARKS), to="alice@localhost")
        assert pubsub_error(resp.xml) == ("not-allowed", "closed-node"), show(resp.xml)
        resp = await bob.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="alice@localhost")
        assert NS_BOOKMARKS not in [i.get("node") for i in resp.xml.iter(q(NS_DISCO_ITEMS, "item"))]
        # The same options again match (§7.1.5); another access model does not.
        resp = rs.iq(publish_xml(NS_BOOKMARKS, conf, "coven@muc.localhost", BOOKMARK_OPTIONS),
                     itype="set")
        assert resp.get("type") == "result", show(resp)
        opts = dict(BOOKMARK_OPTIONS, **{"pubsub#access_model": "open"})
        resp = rs.iq(publish_xml(NS_BOOKMARKS, conf, "x@muc.localhost", opts), itype="set")
        assert pubsub_error(resp) == ("conflict", "precondition-not-met"), show(resp)
        rs.close()
    run(body, timeout=60)


def test_omemo_devicelist_open_to_non_contacts(herald):
    """An OMEMO device list published with access_model open (as
    Conversations does) is readable by a non-contact, and listed to it in
    disco#items on the owner's JID; the presence-model nodes are not."""
    srv = herald(users=users("alice", "dave"))

    async def body():
        rs, _, _ = raw_login(srv, "alice", "r")
        dl = "<list xmlns='%s'><device id='12345'/></list>" % NS_DEVICELIST
        resp = rs.iq(publish_xml(NS_DEVICELIST, dl, "current",
                                 {"pubsub#access_model": "open"}), itype="set")
        assert resp.get("type") == "result", show(resp)
        resp = rs.iq(publish_xml(NS_NICK, "<nick xmlns='%s'>A</nick>" % NS_NICK), itype="set")
        assert resp.get("type") == "result", show(resp)
        dave = await pep_client(srv, "dave")
        resp = await dave.iq(items_xml(NS_DEVICELIST), to="alice@localhost")
        devs = [d.get("id") for d in resp.xml.iter("{%s}device" % NS_DEVICELIST)]
        assert devs == ["12345"], show(resp.xml)
        resp = await dave.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="alice@localhost")
        nodes = [(i.get("jid"), i.get("node")) for i in resp.xml.iter(q(NS_DISCO_ITEMS, "item"))]
        assert nodes == [("alice@localhost", NS_DEVICELIST)], show(resp.xml)
        # disco#info on a node: its identity and meta-data (XEP-0060 §5.4),
        # only where the requester may read.
        resp = await dave.iq("<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO, NS_DEVICELIST),
                             to="alice@localhost")
        ids = [(i.get("category"), i.get("type")) for i in resp.xml.iter(q(NS_DISCO_INFO,
                                                                             "identity"))]
        assert ids == [("pubsub", "leaf")] and resp.xml.get("from") == "alice@localhost", \
            show(resp.xml)
        assert "pubsub#meta-data" in ET.tostring(resp.xml, encoding="unicode"), show(resp.xml)
        resp = await dave.iq("<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO, NS_NICK),
                             to="alice@localhost")
        assert error_condition(resp.xml) == "item-not-found", show(resp.xml)
        # disco#info on the account: the pep identity (XEP-0163 §6.1).
        resp = await dave.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="alice@localhost")
        ids = [(i.get("category"), i.get("type")) for i in resp.xml.iter(q(NS_DISCO_INFO,
                                                                             "identity"))]
        assert ("pubsub", "pep") in ids and ("account", "registered") in ids, show(resp.xml)
        rs.close()
    run(body, timeout=40)


def test_roster_access_model(herald):
    """XEP-0060 §4.5 on PEP: a node published with access_model roster and
    roster_groups_allowed Friends is readable by a contact alice put in her
    'Friends' group, who also gets its notifications (+notify); a contact
    in another group gets not-authorized + not-in-roster-group and no
    notification. pubsub.<domain> still refuses the roster model."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        alice = await pep_client(srv, "alice")
        bob = await pep_client(srv, "bob", interests=["urn:x:status"])
        carol = await pep_client(srv, "carol", interests=["urn:x:status"])
        await mutual(alice, bob)
        await mutual(alice, carol)
        for who, group in (("bob", "Friends"), ("carol", "Work")):
            resp = await alice.iq("<query xmlns='jabber:iq:roster'><item jid='%s@localhost'>"
                                  "<group>%s</group></item></query>" % (who, group), itype="set")
            assert resp.xml.get("type") == "result", show(resp.xml)
        bob.msgs.clear()
        carol.msgs.clear()
        opts = {"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": "Friends"}
        resp = await alice.iq(publish_xml("urn:x:status", "<s xmlns='urn:x:status'>out</s>",
                                          "now", opts), itype="set")
        assert resp.xml.get("type") == "result", show(resp.xml)
        await bob.msgs.expect(is_event("alice@localhost", "urn:x:status"),
                              what="notification of a roster-group node")
        await carol.msgs.expect_none(is_event("alice@localhost", "urn:x:status"),
                                     what="notification of a node of another group")
        resp = await bob.iq(items_xml("urn:x:status"), to="alice@localhost")
        assert resp.xml.get("type") == "result", show(resp.xml)
        resp = await carol.iq(items_xml("urn:x:status"), to="alice@localhost")
        assert pubsub_error(resp.xml) == ("not-authorized", "not-in-roster-group"), show(resp.xml)
        resp = await alice.iq("<pubsub xmlns='%s#owner'><configure node='urn:x:status'/></pubsub>"
                              % NS_PUBSUB)
        form = ET.tostring(resp.xml, encoding="unicode")
        assert "roster_groups_allowed" in form and "Friends" in form, form
        resp = await alice.iq("<pubsub xmlns='%s'><create node='r'/><configure><x xmlns='%s' "
                              "type='submit'><field var='pubsub#access_model'><value>roster"
                              "</value></field></x></configure></pubsub>" % (NS_PUBSUB, NS_DATA),
                              itype="set", to="pubsub.localhost")
        assert pubsub_error(resp.xml) == ("not-acceptable", "unsupported-access-model"), \
            show(resp.xml)
    run(body, timeout=60)


def test_blocked_contact_gets_no_pep(herald):
    """XEP-0191 §3.3 with PEP: once alice blocks bob (a contact with
    +notify), her notifications and last items no longer reach him; carol,
    not blocked, still gets them."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        alice = await pep_client(srv, "alice", publisher=True)
        bob = await pep_client(srv, "bob", interests=[NS_NICK])
        carol = await pep_client(srv, "carol", interests=[NS_NICK])
        await mutual(alice, bob)
        await mutual(alice, carol)
        resp = await alice.iq("<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/>"
                              "</block>", itype="set")
        assert resp.xml.get("type") == "result", show(resp.xml)
        bob.msgs.clear()
        await asyncio.wait_for(alice.xmpp["xep_0172"].publish_nick("Al"), 10)
        await carol.msgs.expect(is_event("alice@localhost", NS_NICK), what="nick notification")
        await bob.msgs.expect_none(is_event("alice@localhost", NS_NICK),
                                   what="a blocked contact's notification")
        bob2 = await pep_client(srv, "bob", "later", interests=[NS_NICK])
        await bob2.msgs.expect_none(is_event("alice@localhost", NS_NICK),
                                    what="a blocked contact's last item")
    run(body, timeout=60)


def test_explicit_subscription_to_a_pep_node(herald):
    """XEP-0060 subscriptions to a PEP node work as usual: dave (no contact,
    no +notify) subscribes to alice's open device list and gets each item
    from alice's bare JID; bob (contact with +notify, also subscribed)
    gets each item once, not once per way; the subscribe answer comes
    from alice's JID, and the last item follows it (§6.1.7)."""
    srv = herald(users=users("alice", "bob", "dave"))

    async def body():
        alice = await pep_client(srv, "alice")
        bob = await pep_client(srv, "bob", interests=[NS_DEVICELIST])
        dave = await pep_client(srv, "dave")
        await mutual(alice, bob)
        dl = "<list xmlns='%s'><device id='1'/></list>" % NS_DEVICELIST
        resp = await alice.iq(publish_xml(NS_DEVICELIST, dl, "current",
                                          {"pubsub#access_model": "open"}), itype="set")
        assert resp.xml.get("type") == "result", show(resp.xml)
        await bob.msgs.expect(is_event("alice@localhost", NS_DEVICELIST),
                              what="implicit notification (contact, +notify)")
        for c in (bob, dave):
            resp = await c.iq("<pubsub xmlns='%s'><subscribe node='%s' jid='%s'/></pubsub>"
                              % (NS_PUBSUB, NS_DEVICELIST, c.xmpp.boundjid.bare),
                              itype="set", to="alice@localhost")
            assert resp.xml.get("type") == "result" and resp.xml.get("from") == \
                "alice@localhost", show(resp.xml)
            sub = resp.xml.find(q(NS_PUBSUB, "pubsub")).find(q(NS_PUBSUB, "subscription"))
            assert sub.get("subscription") == "subscribed", show(resp.xml)
            got = await c.msgs.expect(is_event("alice@localhost", NS_DEVICELIST),
                                      what="last item after subscribing")
            assert got.xml.get("to") == c.xmpp.boundjid.bare, show(got.xml)
        dl2 = "<list xmlns='%s'><device id='1'/><device id='2'/></list>" % NS_DEVICELIST
        resp = await alice.iq(publish_xml(NS_DEVICELIST, dl2, "current"), itype="set")
        assert resp.xml.get("type") == "result", show(resp.xml)
        for c in (bob, dave):
            got = await c.msgs.expect(is_event("alice@localhost", NS_DEVICELIST),
                                      what="device list notification")
            assert len(list(got.xml.iter("{%s}device" % NS_DEVICELIST))) == 2, show(got.xml)
        await bob.msgs.expect_none(is_event("alice@localhost", NS_DEVICELIST),
                                   what="a second copy (implicit and explicit)")
    run(body, timeout=60)


# --------------------------------------------------------------------------
# errors, lists, quota, durability
# --------------------------------------------------------------------------

def test_errors_of_the_pep_service(herald):
    """forbidden (publishing to another account's PEP), item-not-found, a
    malformed request, a collection refused, precondition-not-met on an
    existing node; the server keeps serving."""
    srv = herald(users=users("alice", "bob"))
    rs, _, _ = raw_login(srv, "alice", "r")
    bob, _, _ = raw_login(srv, "bob", "r")
    nick = "<nick xmlns='%s'>A</nick>" % NS_NICK
    assert rs.iq(publish_xml(NS_NICK, nick), itype="set").get("type") == "result"
    resp = bob.iq(publish_xml(NS_NICK, "<nick xmlns='%s'>B</nick>" % NS_NICK), itype="set",
                  to="alice@localhost")
    assert pubsub_error(resp)[0] == "forbidden", show(resp)
    resp = bob.iq(publish_xml("urn:x:new", "<x xmlns='urn:x'/>"), itype="set",
                  to="alice@localhost")
    assert pubsub_error(resp)[0] == "forbidden", show(resp)
    resp = rs.iq(items_xml("urn:x:none"))
    assert pubsub_error(resp)[0] == "item-not-found", show(resp)
    resp = rs.iq("<pubsub xmlns='%s'><items node='a'/><items node='b'/></pubsub>" % NS_PUBSUB)
    assert pubsub_error(resp)[0] == "bad-request", show(resp)
    resp = rs.iq("<pubsub xmlns='%s'><publish/></pubsub>" % NS_PUBSUB, itype="set")
    assert pubsub_error(resp) == ("bad-request", "nodeid-required"), show(resp)
    resp = rs.iq(publish_xml(NS_NICK, nick, options={"pubsub#access_model": "open"}),
                 itype="set")
    assert pubsub_error(resp) == ("conflict", "precondition-not-met"), show(resp)
    resp = rs.iq(publish_xml("urn:x:coll", "<x xmlns='urn:x'/>",
                             options={"pubsub#node_type": "collection"}), itype="set")
    assert pubsub_error(resp)[0] == "not-acceptable", show(resp)
    resp = rs.iq("<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PUBSUB, NS_NICK),
                 to="nobody@localhost")
    assert error_condition(resp) == "service-unavailable", show(resp)
    assert rs.iq("<ping xmlns='urn:xmpp:ping'/>").get("type") == "result"
    rs.close()
    bob.close()


def test_pep_nodes_stay_out_of_the_service_and_its_quota(herald):
    """PEP nodes are not in pubsub.<domain>'s disco#items nor in GET
    /v1/nodes, do not count against [pubsub] max_nodes_per_account, and
    have their own bound ([pep] max_nodes_per_account: policy-violation)."""
    import urllib.request
    import json
    srv = herald(users=users("alice"),
                 config={"pubsub": {"max_nodes_per_account": "1"},
                         "pep": {"max_nodes_per_account": "2"}})
    rs, _, _ = raw_login(srv, "alice", "r")
    for node in ("urn:x:one", "urn:x:two"):
        assert rs.iq(publish_xml(node, "<x xmlns='urn:x'/>"), itype="set").get("type") == "result"
    resp = rs.iq(publish_xml("urn:x:three", "<x xmlns='urn:x'/>"), itype="set")
    assert pubsub_error(resp)[0] == "policy-violation", show(resp)
    resp = rs.iq("<pubsub xmlns='%s'><create node='real'/></pubsub>" % NS_PUBSUB, itype="set",
                 to="pubsub.localhost")
    assert resp.get("type") == "result", show(resp)
    resp = rs.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="pubsub.localhost")
    assert [i.get("node") for i in resp.iter(q(NS_DISCO_ITEMS, "item"))] == ["real"], show(resp)
    resp = rs.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="alice@localhost")
    assert sorted(i.get("node") for i in resp.iter(q(NS_DISCO_ITEMS, "item"))) == \
        ["urn:x:one", "urn:x:two"], show(resp)
    # disco#info on one's own JID: the account and its PEP service (§6.1).
    resp = rs.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="alice@localhost")
    ids = [(i.get("category"), i.get("type")) for i in resp.iter(q(NS_DISCO_INFO, "identity"))]
    assert ("account", "registered") in ids and ("pubsub", "pep") in ids, show(resp)
    feats = [f.get("var") for f in resp.iter(q(NS_DISCO_INFO, "feature"))]
    assert NS_PUBSUB + "#publish-options" in feats and NS_DISCO_INFO in feats, feats
    # The server's own disco#info is unchanged: no PEP identity there.
    resp = rs.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
    ids = [(i.get("category"), i.get("type")) for i in resp.iter(q(NS_DISCO_INFO, "identity"))]
    assert ids == [("server", "im")], show(resp)
    # A pubsub node of the same name as a PEP node is another node.
    resp = rs.iq(items_xml("urn:x:one"), to="pubsub.localhost")
    assert pubsub_error(resp)[0] == "item-not-found", show(resp)
    tok = new_token(srv)
    req = urllib.request.Request(base_url(srv) + "/v1/nodes",
                                 headers={"Authorization": "Bearer " + tok})
    with urllib.request.urlopen(req, timeout=10) as r:
        listed = json.loads(r.read())
    names = [n["node"] if isinstance(n, dict) else n
             for n in (listed.get("nodes", listed) if isinstance(listed, dict) else listed)]
    assert names == ["real"], listed
    rs.close()


def test_pep_survives_restart_and_account_deletion(herald):
    """Items and configuration are durable (the result comes after the
    commit); deleting the account deletes its PEP nodes."""
    srv = herald(users=users("alice", "bob"))
    rs, _, _ = raw_login(srv, "alice", "r")
    dl = "<list xmlns='%s'><device id='7'/></list>" % NS_DEVICELIST
    resp = rs.iq(publish_xml(NS_DEVICELIST, dl, "current", {"pubsub#access_model": "open"}),
                 itype="set")
    assert resp.get("type") == "result", show(resp)
    rs.close()
    srv.restart()
    bob, _, _ = raw_login(srv, "bob", "r")
    resp = bob.iq(items_xml(NS_DEVICELIST), to="alice@localhost")
    assert [d.get("id") for d in resp.iter("{%s}device" % NS_DEVICELIST)] == ["7"], show(resp)
    bob.close()
    srv.stop()
    out = srv.cli("user", "del", "alice@localhost")
    assert out.returncode == 0, out
    srv.add_user("alice", "wonderland")
    srv.start()
    bob, _, _ = raw_login(srv, "bob", "r")
    resp = bob.iq(items_xml(NS_DEVICELIST), to="alice@localhost")
    assert pubsub_error(resp)[0] == "item-not-found", show(resp)
    bob.close()


# --------------------------------------------------------------------------
# XEP-0115: verification and the cache bound
# --------------------------------------------------------------------------

def test_caps_that_lie_or_never_answer_get_nothing(herald):
    """A resource whose disco#info does not hash to its ver, or that never
    answers, gets no +notify delivery; a correct one does; the server goes
    on serving both."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        alice = await pep_client(srv, "alice", publisher=True)
        bob = await pep_client(srv, "bob")
        await mutual(alice, bob)
        ids = [("client", "pc", "raw")]
        feats = [NS_DISCO_INFO, NS_NICK + "+notify"]
        liar, _, _ = raw_login(srv, "bob", "liar")
        raw_caps_presence(liar, caps_ver(ids, [NS_DISCO_INFO]))
        raw_answer_caps(liar, raw_disco_query(liar), ids, feats)
        mute, _, _ = raw_login(srv, "bob", "mute")
        raw_caps_presence(mute, caps_ver(ids, feats + ["urn:x:mute"]))
        assert raw_disco_query(mute) is not None
        good, _, _ = raw_login(srv, "bob", "good")
        raw_caps_presence(good, caps_ver(ids, feats))
        raw_answer_caps(good, raw_disco_query(good), ids, feats)
        for rs in (liar, good):  # their answers are handled (same stream, in order)
            assert rs.iq("<ping xmlns='urn:xmpp:ping'/>").get("type") == "result"
        await asyncio.wait_for(alice.xmpp["xep_0172"].publish_nick("Al"), 10)
        assert len(raw_notifications(good, NS_NICK, 3.0)) == 1
        assert raw_notifications(liar, NS_NICK, 0.3) == []
        assert raw_notifications(mute, NS_NICK, 0.1) == []
        for rs in (liar, mute, good):
            assert rs.iq("<ping xmlns='urn:xmpp:ping'/>").get("type") == "result"
            rs.close()
    run(body, timeout=60)


def test_caps_cache_is_bounded(herald):
    """[pep] caps_cache_size = 3: after 20 distinct vers, a recent ver is
    still known (no new query, notifications flow) and the first one was
    evicted (asked again); memory stays at the bound."""
    srv = herald(users=users("alice", "bob"), config={"pep": {"caps_cache_size": "3"}})
    rs, _, _ = raw_login(srv, "alice", "r")
    assert rs.iq(publish_xml(NS_NICK, "<nick xmlns='%s'>A</nick>" % NS_NICK),
                 itype="set").get("type") == "result"
    bob, _, _ = raw_login(srv, "bob", "r")
    ids = [("client", "pc", "raw")]
    vers = []
    for i in range(20):
        feats = [NS_DISCO_INFO, NS_NICK + "+notify", "urn:x:f%d" % i]
        ver = caps_ver(ids, feats)
        vers.append((ver, feats))
        raw_caps_presence(bob, ver)
        query = raw_disco_query(bob)
        assert query is not None, "no caps query for ver %d" % i
        raw_answer_caps(bob, query, ids, feats)
    assert bob.iq("<ping xmlns='urn:xmpp:ping'/>").get("type") == "result"
    # The last ver is known: presence with it asks nothing.
    other, _, _ = raw_login(srv, "bob", "other")
    raw_caps_presence(other, vers[-1][0])
    assert raw_disco_query(other, timeout=1.0) is None
    # The first was evicted: asked again.
    raw_caps_presence(other, vers[0][0])
    query = raw_disco_query(other)
    assert query is not None, "an evicted ver was not asked for again"
    raw_answer_caps(other, query, ids, vers[0][1])
    for s in (rs, bob, other):
        s.close()


# --------------------------------------------------------------------------
# aioxmpp: a second library
# --------------------------------------------------------------------------

def test_aioxmpp_avatar_service_publishes_and_receives(herald):
    """aioxmpp's AvatarService (PEPClient with +notify claimed through its
    entity capabilities): its published avatar reaches a slixmpp contact
    with +notify, and a slixmpp contact's avatar metadata reaches it."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        alice = await pep_client(srv, "alice", "slix")
        bob = await pep_client(srv, "bob", publisher=True)
        await mutual(alice, bob)
        aio = AioClient(srv, "alice", "aio")
        avatars = aio.client.summon(aioxmpp.avatar.AvatarService)
        changed = asyncio.get_running_loop().create_future()

        def on_changed(jid, metadata):
            if str(jid) == "bob@localhost" and not changed.done():
                changed.set_result(metadata)
        avatars.on_metadata_changed.connect(on_changed)
        await aio.login()
        await aio.presence()
        await asyncio.sleep(0.5)
        aset = aioxmpp.avatar.AvatarSet()
        aset.add_avatar_image("image/png", image_bytes=PNG)
        await asyncio.wait_for(avatars.publish_avatar_set(aset), 10)
        got = await bob.msgs.expect(is_event("alice@localhost", NS_AVATAR_META),
                                    what="aioxmpp's avatar metadata")
        assert event_item(got.xml).get("id") == hashlib.sha1(PNG).hexdigest(), show(got.xml)
        await asyncio.wait_for(bob.xmpp["xep_0084"].publish_avatar_metadata(
            [{"id": "b0b", "type": "image/png", "bytes": 7}]), 10)
        meta = await asyncio.wait_for(changed, 10)
        assert meta, "empty metadata"
        await aio.close()
    run(body, timeout=60)


# --------------------------------------------------------------------------
# xmpp.js: a third library publishing to PEP
# --------------------------------------------------------------------------

def test_xmppjs_publishes_to_pep(herald):
    """tests/xmppjs/pep.js (xmpp.js, @xmpp/client) publishes a XEP-0172
    nickname to its account's PEP service, with no 'to' and to its own bare
    JID, and reads it back (one item: PEP's max_items 1); a slixmpp contact
    with +notify for the nickname receives both notifications from the
    account's bare JID. Skipped without tests/xmppjs/node_modules unless
    HERALD_REQUIRE_NODE is set (as test_22_pubsub_xmppjs.py)."""
    import json
    import os
    import subprocess
    from test_22_pubsub_xmppjs import XMPPJS_DIR, node_binary
    node = node_binary()
    srv = herald(users=users("alice", "bob"))

    async def body():
        alice = await pep_client(srv, "alice")
        bob = await pep_client(srv, "bob", interests=[NS_NICK])
        await mutual(alice, bob)
        bob.msgs.clear()
        env = dict(os.environ, NODE_TLS_REJECT_UNAUTHORIZED="0", NODE_NO_WARNINGS="1",
                   HERALD_PORT=str(srv.port), HERALD_DOMAIN=DOMAIN, PEP_USER="alice",
                   PEP_PASSWORD="wonderland", NICK="Alice via xmpp.js")
        proc = await asyncio.create_subprocess_exec(
            node, os.path.join(XMPPJS_DIR, "pep.js"), cwd=XMPPJS_DIR, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        report = json.loads(out.decode() or "{}")
        assert "error" not in report and report.get("checks"), (out, err)
        assert [c["name"] for c in report["checks"]] == [
            "publish-without-to", "publish-to-own-bare-jid", "items-read-back"], report
        failed = [c for c in report["checks"] if not c["ok"]]
        assert not failed and proc.returncode == 0, (failed, err.decode()[-2000:])
        for _ in range(2):
            got = await bob.msgs.expect(is_event("alice@localhost", NS_NICK),
                                        what="nickname published by xmpp.js")
            assert "Alice via xmpp.js" in ET.tostring(got.xml, encoding="unicode")
    run(body, timeout=90)
