"""Roster versioning (RFC 6121 section 2.6), checked in raw XML: the stream
feature, 'ver' on every result and push, the empty result for an
up-to-date cache, interim pushes for exactly the items changed since an
older version, the full roster for an empty or unknown version."""
from e2e_helpers import NS_CLIENT, q, run
from im_helpers import (NS_PREAPPROVAL, NS_ROSTER, NS_ROSTERVER, im_client, is_presence,
                        items_of, raw_login,
                        raw_next_push, raw_pushes, raw_roster_get, roster_query, show, sub_of, users)


def _set(rs, item_xml):
    """Raw roster set; asserts the result and returns the push it caused
    on this (interested) stream."""
    el = rs.iq("<query xmlns='%s'>%s</query>" % (NS_ROSTER, item_xml), itype="set")
    assert el is not None and el.get("type") == "result", "roster set %s: %s" % (
        item_xml, show(el))
    push = raw_next_push(rs)
    assert push is not None, "no roster push after set %s" % item_xml
    return push


def _ver_of(el):
    query = roster_query(el)
    assert query is not None, "no roster <query/> in %s" % show(el)
    ver = query.get("ver")
    assert ver is not None, "no 'ver' attribute on %s (RFC 6121 2.6.3)" % show(el)
    return ver


def _full(rs, ver):
    el = raw_roster_get(rs, ver)
    assert el is not None and el.get("type") == "result", show(el)
    return el


def test_stream_features_offer_rosterver_and_preapproval(herald):
    """RFC 6121 2.6.1: the server advertises roster versioning with
    <ver xmlns='urn:xmpp:features:rosterver'/>; RFC 6121 3.4.1: it
    advertises subscription pre-approval with
    <sub xmlns='urn:xmpp:features:pre-approval'/> (after authentication)."""
    srv = herald(users=users("alice"))
    rs, feats, _ = raw_login(srv, "alice", "raw")
    try:
        assert feats.find(q(NS_ROSTERVER, "ver")) is not None, show(feats)
        assert feats.find(q(NS_PREAPPROVAL, "sub")) is not None, show(feats)
    finally:
        rs.sock.close()


def test_current_version_gets_empty_result_and_nothing_else(herald):
    """RFC 6121 2.6.3: a get with ver='' returns the whole roster with a
    'ver'; pushes carry 'ver'; a later get (also from a new session) with
    the current version returns an IQ result without <query/>, and no
    roster push follows since nothing changed."""
    srv = herald(users=users("alice"))
    rs, _, _ = raw_login(srv, "alice", "r1")
    try:
        _ver_of(_full(rs, ""))
        push = _set(rs, "<item jid='carol@localhost' name='Carol'/>")
        v1 = _ver_of(push)
        assert v1 != "", "a push's ver must identify a version: %s" % show(push)
        full = _full(rs, "")
        assert _ver_of(full) == v1, "full roster ver %r differs from the last push's %r" % (
            _ver_of(full), v1)
        assert set(items_of(roster_query(full))) == {"carol@localhost"}

        el = raw_roster_get(rs, v1)
        assert el is not None and el.get("type") == "result", show(el)
        assert len(list(el)) == 0, "up-to-date ver must get an empty result: %s" % show(el)
        assert raw_pushes(rs, 0.7) == [], "pushes after an up-to-date roster get"

        rs2, _, _ = raw_login(srv, "alice", "r2")
        try:
            el = raw_roster_get(rs2, v1)
            assert el is not None and el.get("type") == "result" and len(list(el)) == 0, \
                show(el)
            assert raw_pushes(rs2, 0.7) == []
        finally:
            rs2.sock.close()
    finally:
        rs.sock.close()


def test_older_version_gets_interim_pushes_for_changes_only(herald):
    """RFC 6121 2.6.3: a get with an older version the server knows gets an
    empty result followed by one roster push per item changed since that
    version (added, modified, removed items as subscription='remove', and
    an item removed then added again as its current state),
    not for unchanged items; every push has 'ver', and the last one carries
    the current version."""
    srv = herald(users=users("alice"))
    rs, _, _ = raw_login(srv, "alice", "r1")
    try:
        _full(rs, "")
        _set(rs, "<item jid='carol@localhost' name='Carol'/>")
        _set(rs, "<item jid='dave@localhost' name='Dave'/>")
        _set(rs, "<item jid='frank@localhost' name='Frank'/>")
        old = _ver_of(_full(rs, ""))
        _set(rs, "<item jid='erin@localhost' name='Erin'/>")                 # added
        _set(rs, "<item jid='dave@localhost' name='David'><group>G</group></item>")  # changed
        _set(rs, "<item jid='carol@localhost' subscription='remove'/>")      # removed
        _set(rs, "<item jid='frank@localhost' subscription='remove'/>")      # removed and
        _set(rs, "<item jid='frank@localhost' name='Franz'/>")               # added again
        full = _full(rs, "")
        current = _ver_of(full)
        assert current != old
        assert set(items_of(roster_query(full))) == {"dave@localhost", "erin@localhost",
                                                     "frank@localhost"}
    finally:
        rs.sock.close()

    rs2, _, _ = raw_login(srv, "alice", "r2")
    try:
        el = raw_roster_get(rs2, old, iq_id="ver-old")
        assert el is not None and el.get("type") == "result", show(el)
        assert len(list(el)) == 0, "a known older ver gets an empty result: %s" % show(el)
        pushes = raw_pushes(rs2, 1.5)
        got = {}
        for p in pushes:
            query = roster_query(p)
            items = query.findall(q(NS_ROSTER, "item"))
            assert len(items) == 1, show(p)
            assert query.get("ver"), "interim push without ver: %s" % show(p)
            got[items[0].get("jid")] = items[0]
        assert set(got) == {"erin@localhost", "dave@localhost", "carol@localhost",
                            "frank@localhost"}, \
            "interim pushes for %s, expected exactly erin, dave, carol, frank: %s" % (
                sorted(got), [show(p) for p in pushes])
        assert len(pushes) == 4, [show(p) for p in pushes]
        assert sub_of(got["carol@localhost"]) == "remove"
        assert sub_of(got["frank@localhost"]) == "none", "frank was re-added: %s" % show(
            got["frank@localhost"])
        assert got["frank@localhost"].get("name") == "Franz"
        assert got["dave@localhost"].get("name") == "David"
        assert got["erin@localhost"].get("name") == "Erin"
        assert roster_query(pushes[-1]).get("ver") == current, (
            "the last interim push must carry the current version %r: %s"
            % (current, show(pushes[-1])))
        # The result came before the pushes.
        order = [e for e in rs2.seen if e.tag == q(NS_CLIENT, "iq")]
        idx_result = next(i for i, e in enumerate(order) if e.get("id") == "ver-old")
        idx_first_push = min(i for i, e in enumerate(order) if e.get("type") == "set")
        assert idx_result < idx_first_push, "interim pushes sent before the empty result"
    finally:
        rs2.sock.close()


def test_empty_or_unknown_version_gets_full_roster(herald):
    """RFC 6121 2.6.3: ver='' (bootstrap) and a version the server does not
    know both get the complete roster with the current 'ver'."""
    srv = herald(users=users("alice"))
    rs, _, _ = raw_login(srv, "alice", "r1")
    try:
        _full(rs, "")
        _set(rs, "<item jid='carol@localhost'/>")
        _set(rs, "<item jid='dave@localhost'/>")
        current = _ver_of(_full(rs, ""))
        for ver in ("", "no-such-version-42"):
            el = _full(rs, ver)
            assert _ver_of(el) == current, show(el)
            assert set(items_of(roster_query(el))) == {"carol@localhost", "dave@localhost"}, \
                show(el)
        assert raw_pushes(rs, 0.5) == []
    finally:
        rs.sock.close()


def test_version_survives_restart(herald):
    """RFC 6121 2.6.3 with 2.1 (stored roster): after a restart the current
    version is still known: a get with it returns the empty result, and
    no push follows."""
    srv = herald(users=users("alice"))
    rs, _, _ = raw_login(srv, "alice", "r1")
    try:
        _full(rs, "")
        _set(rs, "<item jid='carol@localhost' name='Carol'/>")
        current = _ver_of(_full(rs, ""))
    finally:
        rs.sock.close()
    srv.restart()
    rs, _, _ = raw_login(srv, "alice", "r1")
    try:
        el = raw_roster_get(rs, current)
        assert el is not None and el.get("type") == "result", show(el)
        assert len(list(el)) == 0, "current ver after restart: %s" % show(el)
        assert raw_pushes(rs, 0.7) == []
        el = _full(rs, "")
        assert _ver_of(el) == current
        assert set(items_of(roster_query(el))) == {"carol@localhost"}
    finally:
        rs.sock.close()


def test_subscription_pushes_are_versioned(herald):
    """RFC 6121 2.6.3 with 3.1.2 / 3.1.6: roster pushes caused by
    subscription changes (ask='subscribe', then 'to') carry new versions;
    a get with the last one is up to date (empty result), and a get with
    the version from before the subscription gets exactly the changed
    item."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        b = await im_client(srv, "bob", "b1")
        rs, _, _ = raw_login(srv, "alice", "r1")
        try:
            _full(rs, "")
            _set(rs, "<item jid='carol@localhost'/>")
            before = _ver_of(_full(rs, ""))
            rs.send("<presence/>")
            rs.send("<presence to='bob@localhost' type='subscribe'/>")
            ask = raw_next_push(rs)
            assert ask is not None, "no push for ask='subscribe'"
            item = roster_query(ask).find(q(NS_ROSTER, "item"))
            assert item.get("ask") == "subscribe", show(ask)
            v_ask = _ver_of(ask)
            await b.presences.expect(is_presence("subscribe", frm="alice@localhost"))
            b.xmpp.send_presence(pto="alice@localhost", ptype="subscribed")
            await b.sync()  # the raw reads below block this event loop: send first
            to = raw_next_push(rs)
            assert to is not None, "no push for subscription 'to'"
            item = roster_query(to).find(q(NS_ROSTER, "item"))
            assert sub_of(item) == "to" and item.get("ask") is None, show(to)
            v_to = _ver_of(to)
            assert len({before, v_ask, v_to}) == 3, (before, v_ask, v_to)
            el = raw_roster_get(rs, v_to)
            assert el is not None and el.get("type") == "result" and len(list(el)) == 0, \
                show(el)
            assert raw_pushes(rs, 0.5) == []
        finally:
            rs.sock.close()
        rs2, _, _ = raw_login(srv, "alice", "r2")
        try:
            el = raw_roster_get(rs2, before)
            assert el is not None and el.get("type") == "result" and len(list(el)) == 0, \
                show(el)
            pushes = raw_pushes(rs2, 1.0)
            assert len(pushes) == 1, [show(p) for p in pushes]
            item = roster_query(pushes[0]).find(q(NS_ROSTER, "item"))
            assert item.get("jid") == "bob@localhost" and sub_of(item) == "to", show(pushes[0])
            assert _ver_of(pushes[0]) == v_to
        finally:
            rs2.sock.close()
    run(body)


def test_version_of_empty_roster_is_a_known_version(herald):
    """RFC 6121 2.6.3 as the contract applies it (a known older version
    gets the empty result and interim pushes): the 'ver' the server handed
    out for a still-empty roster is as good as any other: after one item is
    added, a get with it gets the empty result followed by one push."""
    srv = herald(users=users("alice"))
    rs, _, _ = raw_login(srv, "alice", "r1")
    try:
        empty_ver = _ver_of(_full(rs, ""))
        _set(rs, "<item jid='carol@localhost'/>")
    finally:
        rs.sock.close()
    rs, _, _ = raw_login(srv, "alice", "r2")
    try:
        el = raw_roster_get(rs, empty_ver)
        assert el is not None and el.get("type") == "result", show(el)
        assert len(list(el)) == 0, "ver=%r (handed out for the empty roster) was treated as " \
            "unknown: %s" % (empty_ver, show(el))
        pushes = raw_pushes(rs, 1.0)
        assert [roster_query(p).find(q(NS_ROSTER, "item")).get("jid") for p in pushes] == \
            ["carol@localhost"], [show(p) for p in pushes]
    finally:
        rs.sock.close()
