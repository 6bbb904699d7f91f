"""Roster management (RFC 6121 section 2): get, add, update, delete, roster
pushes to interested resources, error cases, durability across a restart."""
import asyncio

from e2e_helpers import run
from im_helpers import (NS_ROSTER, PASSWORDS, bare, body_of, error_condition, groups_of,
                        im_client, is_presence, is_push_for, items_of, mutual, push_from_ok,
                        push_item, roster_get, roster_items, roster_query, roster_set,
                        send_presence, show, slix_call, sub_of, users)


def test_empty_roster_get(herald):
    """RFC 6121 2.1.3 / 2.2: a roster get from a new account is answered
    with an IQ result addressed to the requesting resource, holding an empty
    <query xmlns='jabber:iq:roster'/>."""
    srv = herald(users=users("alice"))

    async def body():
        a = await im_client(srv, "alice", "a1", roster=False, presence=False)
        el = await roster_get(a)
        assert el.get("type") == "result", show(el)
        assert el.get("to") in (None, a.jid), show(el)
        query = roster_query(el)
        assert query is not None, "roster result without <query/>: %s" % show(el)
        assert len(list(query)) == 0, show(el)
    run(body)


def test_add_update_delete_item(herald):
    """RFC 6121 2.3 (add: result, push with subscription none, the item in
    the next get), 2.4 (update: name and groups replaced), 2.5 (delete with
    subscription='remove': push with subscription='remove', item gone).
    Uses slixmpp's update_roster / del_roster_item and checks the pushes
    in raw XML (2.1.6: one item, no 'from' or the user's bare JID)."""
    srv = herald(users=users("alice", "carol"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        updates = []
        a.xmpp.add_event_handler("roster_update", lambda iq: updates.append(iq))
        resp = await slix_call(a.xmpp.update_roster("carol@localhost", name="Carol",
                                                    groups=["Friends", "Choir"]))
        assert resp["type"] == "result", resp
        push = await a.pushes.expect(is_push_for("carol@localhost"), what="push for carol")
        assert push_from_ok(push, bare("alice")), show(push.xml)
        item = push_item(push)
        assert item.get("name") == "Carol" and sub_of(item) == "none", show(push.xml)
        assert item.get("ask") is None, show(push.xml)
        assert groups_of(item) == ["Choir", "Friends"], show(push.xml)

        items = await roster_items(a)
        assert set(items) == {"carol@localhost"}, items
        it = items["carol@localhost"]
        assert it.get("name") == "Carol" and sub_of(it) == "none"
        assert groups_of(it) == ["Choir", "Friends"]
        # slixmpp saw the push (its roster_update event) and its roster follows.
        assert any(iq["type"] == "set" and "carol@localhost" in iq["roster"]["items"]
                   for iq in updates), updates
        assert a.xmpp.client_roster["carol@localhost"]["name"] == "Carol"
        assert a.xmpp.client_roster["carol@localhost"]["groups"] == ["Friends", "Choir"] or \
            sorted(a.xmpp.client_roster["carol@localhost"]["groups"]) == ["Choir", "Friends"]

        # Update: new name, one group (the item is replaced, not merged).
        el = await roster_set(a, "<item jid='carol@localhost' name='Caro'><group>Work</group>"
                                 "</item>")
        assert el.get("type") == "result", show(el)
        push = await a.pushes.expect(is_push_for("carol@localhost"), what="update push")
        item = push_item(push)
        assert item.get("name") == "Caro" and groups_of(item) == ["Work"], show(push.xml)
        it = (await roster_items(a))["carol@localhost"]
        assert it.get("name") == "Caro" and groups_of(it) == ["Work"], show(it)

        # Delete.
        resp = await slix_call(a.xmpp.del_roster_item("carol@localhost"))
        assert resp["type"] == "result", resp
        push = await a.pushes.expect(is_push_for("carol@localhost", "remove"),
                                     what="push with subscription='remove'")
        assert push_from_ok(push, bare("alice")), show(push.xml)
        assert await roster_items(a) == {}
        assert "carol@localhost" not in a.xmpp.client_roster
    run(body)


def test_pushes_go_to_interested_resources_only(herald):
    """RFC 6121 2.2 and 2.1.6: roster pushes go to every resource that has
    requested the roster in its session ("interested resources"),
    including the one that made the change, and not to a resource that
    never requested it (even an available one)."""
    srv = herald(users=users("alice"))

    async def body():
        a1 = await im_client(srv, "alice", "a1", presence=False)
        a2 = await im_client(srv, "alice", "a2", roster=False, presence=True)
        a3 = await im_client(srv, "alice", "a3", presence=True)
        el = await roster_set(a1, "<item jid='dave@localhost' name='Dave'/>")
        assert el.get("type") == "result", show(el)
        for c in (a1, a3):
            push = await c.pushes.expect(is_push_for("dave@localhost"),
                                         what="push for dave")
            assert push_item(push).get("name") == "Dave"
        await a2.pushes.expect_none(wait=0.7, what="a roster push")
        # Once a2 requests the roster, it is interested too.
        await roster_get(a2)
        el = await roster_set(a3, "<item jid='dave@localhost' name='David'/>")
        assert el.get("type") == "result", show(el)
        for c in (a1, a2, a3):
            push = await c.pushes.expect(is_push_for("dave@localhost"), what="push for David")
            assert push_item(push).get("name") == "David"
    run(body)


def test_roster_set_errors(herald):
    """RFC 6121 2.1.5 / 2.3.3: a set whose item has no 'jid', or with more
    than one <item/>, or with duplicate <group/> names is <bad-request/>; an
    empty group name is <not-acceptable/>; RFC 6121 2.5.3: removing an item
    that is not in the roster is <item-not-found/>. None of these changes
    the roster, and none is pushed."""
    srv = herald(users=users("alice"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        cases = [
            ("<item name='nobody'/>", "bad-request"),
            ("<item jid='carol@localhost'/><item jid='dave@localhost'/>", "bad-request"),
            ("<item jid='carol@localhost'><group>G</group><group>G</group></item>",
             "bad-request"),
            ("<item jid='carol@localhost'><group></group></item>", "not-acceptable"),
            ("<item jid='nobody@localhost' subscription='remove'/>", "item-not-found"),
        ]
        for item_xml, cond in cases:
            el = await roster_set(a, item_xml)
            assert el.get("type") == "error", "%s -> %s" % (item_xml, show(el))
            assert error_condition(el) == cond, "%s -> expected %s, got %s" % (
                item_xml, cond, show(el))
        assert await roster_items(a) == {}
        await a.pushes.expect_none(wait=0.3, what="a roster push after failed sets")
    run(body)


def test_roster_set_without_item_is_bad_request(herald):
    """RFC 6121 2.1.5: a roster set contains exactly one <item/>; an empty
    <query/> in a set is answered with <bad-request/> (2.3.3)."""
    srv = herald(users=users("alice"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        el = await roster_set(a, "")
        assert el.get("type") == "error" and error_condition(el) == "bad-request", show(el)
        assert await roster_items(a) == {}
    run(body)


def test_roster_set_ignores_subscription_attribute(herald):
    """RFC 6121 2.1.2.5: in a roster set the server ignores any value of
    'subscription' other than 'remove': the item is created with
    subscription 'none' (a client cannot grant itself a subscription)."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        el = await roster_set(a, "<item jid='bob@localhost' subscription='both'/>")
        assert el.get("type") == "result", show(el)
        push = await a.pushes.expect(is_push_for("bob@localhost"), what="push for bob")
        assert sub_of(push_item(push)) == "none", show(push.xml)
        assert sub_of((await roster_items(a))["bob@localhost"]) == "none"
    run(body)


def test_update_keeps_subscription_state(herald):
    """RFC 6121 2.4.2: updating an item's name or groups does not change its
    subscription state; the push shows the new name with subscription
    'both' still set."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await mutual(a, b)
        a.pushes.clear()
        b.pushes.clear()
        el = await roster_set(a, "<item jid='bob@localhost' name='Robert'><group>Work</group>"
                                 "</item>")
        assert el.get("type") == "result", show(el)
        push = await a.pushes.expect(is_push_for("bob@localhost"), what="update push")
        item = push_item(push)
        assert item.get("name") == "Robert" and sub_of(item) == "both", show(push.xml)
        # Bob is not told about alice's private naming.
        await b.pushes.expect_none(is_push_for("alice@localhost"), wait=0.5,
                                   what="a push caused by alice's rename")
    run(body)


def test_roster_survives_restart(herald):
    """RFC 6121 2.1 (the roster is stored by the server on the user's
    behalf): items, names, groups and subscription states are the same
    after the server is stopped (SIGTERM) and started on the same data."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def first():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        el = await roster_set(a, "<item jid='carol@localhost' name='Carol'>"
                                 "<group>Choir</group><group>Friends</group></item>")
        assert el.get("type") == "result", show(el)
        await mutual(a, b)
    run(first)
    srv.restart()

    async def second():
        a = await im_client(srv, "alice", "a1", roster=False, presence=False)
        b = await im_client(srv, "bob", "b1", roster=False, presence=False)
        items = await roster_items(a)
        assert set(items) == {"carol@localhost", "bob@localhost"}, list(items)
        assert items["carol@localhost"].get("name") == "Carol"
        assert groups_of(items["carol@localhost"]) == ["Choir", "Friends"]
        assert sub_of(items["carol@localhost"]) == "none"
        assert sub_of(items["bob@localhost"]) == "both"
        assert items["bob@localhost"].get("ask") is None
        bitems = await roster_items(b)
        assert set(bitems) == {"alice@localhost"} and sub_of(bitems["alice@localhost"]) == "both"
    run(second)


def test_roster_is_per_account(herald):
    """RFC 6121 2.1: a roster belongs to one account: bob's get does not
    see alice's items, and alice's changes push nothing to bob."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        b = await im_client(srv, "bob", "b1", presence=False)
        el = await roster_set(a, "<item jid='carol@localhost'/>")
        assert el.get("type") == "result", show(el)
        await a.pushes.expect(is_push_for("carol@localhost"))
        assert await roster_items(b) == {}
        await b.pushes.expect_none(wait=0.3, what="a push of alice's roster")
    run(body)


def test_roster_get_with_items_query_is_whole_roster(herald):
    """RFC 6121 2.1.3: the roster result lists every item with its
    subscription state (default 'none') and without stray items."""
    srv = herald(users=users("alice"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        for i in range(5):
            el = await roster_set(a, "<item jid='u%d@localhost' name='U%d'/>" % (i, i))
            assert el.get("type") == "result", show(el)
        el = await roster_get(a)
        query = roster_query(el)
        assert query is not None and query.tag == "{%s}query" % NS_ROSTER, show(el)
        items = items_of(query)
        assert sorted(items) == ["u%d@localhost" % i for i in range(5)], list(items)
        assert all(sub_of(it) == "none" for it in items.values())
        assert [items["u%d@localhost" % i].get("name") for i in range(5)] == \
            ["U%d" % i for i in range(5)]
    run(body)


def test_other_account_cannot_read_or_change_roster(herald):
    """RFC 6121 2.3.3: a roster set from an entity not authorized to change
    the roster (only the account's own resources are) is refused with an
    error; a roster get addressed to another account's bare JID is an error too
    and leaks no item. Bob's roster is unchanged and bob gets no push."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        b = await im_client(srv, "bob", "b1", presence=False)
        el = await roster_set(b, "<item jid='carol@localhost' name='bob private'/>")
        assert el.get("type") == "result", show(el)
        await b.pushes.expect(is_push_for("carol@localhost"))
        resp = await a.iq("<query xmlns='%s'><item jid='mallory@localhost'/></query>"
                          % NS_ROSTER, to="bob@localhost", itype="set")
        assert resp.xml.get("type") == "error", show(resp.xml)
        resp = await a.iq("<query xmlns='%s'/>" % NS_ROSTER, to="bob@localhost", itype="get")
        assert resp.xml.get("type") == "error", "roster get of another account: %s" % show(
            resp.xml)
        assert "bob private" not in show(resp.xml)
        assert set(await roster_items(b)) == {"carol@localhost"}
        await b.pushes.expect_none(wait=0.5, what="a push caused by alice")
    run(body)


def test_roster_get_to_own_bare_jid(herald):
    """RFC 6120 10.3.3 with RFC 6121 2.1.3: an IQ addressed to the
    account's own bare JID is handled by the server on the account's behalf:
    a roster get to='alice@localhost' returns alice's roster."""
    srv = herald(users=users("alice"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        el = await roster_set(a, "<item jid='carol@localhost'/>")
        assert el.get("type") == "result", show(el)
        resp = await a.iq("<query xmlns='%s'/>" % NS_ROSTER, to="alice@localhost", itype="get")
        assert resp.xml.get("type") == "result", show(resp.xml)
        assert set(items_of(roster_query(resp.xml))) == {"carol@localhost"}, show(resp.xml)
    run(body)


def test_item_name_and_groups_with_markup_characters(herald):
    """RFC 6121 2.1.2.4 / 2.1.2.6 (name and group are character data): a
    name and group holding &, <, >, quotes and non-ASCII text come back
    identical in the push and in the roster get (escaped, not mangled)."""
    srv = herald(users=users("alice"))
    name = "A & B <c> \"d\" 'e' \u00e9\u4e2d"
    group = "G & <H> \u00fc"

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        resp = await slix_call(a.xmpp.update_roster("carol@localhost", name=name,
                                                    groups=[group]))
        assert resp["type"] == "result", resp
        push = await a.pushes.expect(is_push_for("carol@localhost"))
        item = push_item(push)
        assert item.get("name") == name and groups_of(item) == [group], show(push.xml)
        it = (await roster_items(a))["carol@localhost"]
        assert it.get("name") == name and groups_of(it) == [group], show(it)
    run(body)


def test_roster_set_by_other_account_is_forbidden(herald):
    """RFC 6121 2.3.3: "The server MUST return a <forbidden/> stanza error
    to the client if the sender of the roster set is not authorized to
    update the roster": the exact condition for a set addressed to another
    account's bare JID."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1", presence=False)
        resp = await a.iq("<query xmlns='%s'><item jid='mallory@localhost'/></query>"
                          % NS_ROSTER, to="bob@localhost", itype="set")
        assert resp.xml.get("type") == "error", show(resp.xml)
        assert error_condition(resp.xml) == "forbidden", show(resp.xml)
    run(body)


def test_deleted_account_leaves_no_roster_or_offline_messages(herald):
    """RFC 6121 2.1 (the roster belongs to the account) and XEP-0160 (stored
    messages are the recipient's): after `herald user del bob` and a new
    `herald user add bob`, the new account starts empty: no roster items,
    no messages stored for the old account, and the old subscription does
    not let it see alice's presence."""
    srv = herald(users=users("alice", "bob"))

    async def first():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await mutual(a, b)
        el = await roster_set(b, "<item jid='carol@localhost' name='old friend'/>")
        assert el.get("type") == "result", show(el)
        await b.close()
        a.send_message("bob@localhost", "for the old bob")
        await a.sync()
    run(first)
    r = srv.cli("user", "del", "bob@localhost")
    assert r.returncode == 0, r.stderr
    r = srv.cli("user", "add", "bob@localhost", "--password", PASSWORDS["bob"])
    assert r.returncode == 0, r.stderr

    async def second():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "new")
        problems = []
        items = await roster_items(b)
        if items:
            problems.append("roster inherited: %s" % [show(i) for i in items.values()])
        await asyncio.sleep(0.7)
        old = [body_of(m.xml) for m in b.msgs.pending if body_of(m.xml) is not None]
        if old:
            problems.append("offline messages of the deleted account delivered: %s" % old)
        b.presences.clear()
        await send_presence(a, status="not for the new bob")
        await asyncio.sleep(0.5)
        seen = [show(p.xml) for p in b.presences.pending
                if is_presence(frm_bare="alice@localhost")(p.xml)]
        if seen:
            problems.append("alice's presence reaches the new bob: %s" % seen)
        assert not problems, "; ".join(problems)
    run(second)
