"""Message Archive Management for accounts (XEP-0313 urn:xmpp:mam:2) with
XEP-0359 stanza ids: what is archived (both sides, XEP-0334 hints, types),
stanza-id on delivery and spoofed ones stripped, queries by `with` and time
range, XEP-0059 paging both ways over 1,000 messages, preferences
(always/never/roster), retention by count and age, durability across a
restart, and the errors of malformed queries. Clients: raw XML
(RawStream), slixmpp's xep_0313 plugin, and aioxmpp (no MAM module of its
own: its generic XSO layer carries the query and receives the results)."""
import asyncio
import datetime
import time
import xml.etree.ElementTree as ET

from slixmpp import JID

from e2e_helpers import DOMAIN, NS_CLIENT, XClient, q, run, show, stanza_error_condition
from im_helpers import PASSWORDS, bare, im_client, raw_login, roster_set, users

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_FWD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
ALICE, BOB, CAROL = bare("alice"), bare("bob"), bare("carol")

_ids = iter(range(1, 10 ** 9))


# --------------------------------------------------------------------------
# Raw helpers
# --------------------------------------------------------------------------

def form(**fields):
    """A submitted MAM data form; keys with '_' stand for '-' (after_id)."""
    out = ["<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'>"
           "<value>%s</value></field>" % (NS_DATA, NS_MAM)]
    for k, v in fields.items():
        out.append("<field var='%s'><value>%s</value></field>" % (k.replace("_", "-"), v))
    out.append("</x>")
    return "".join(out)


def rsm(max_=None, after=None, before=None):
    parts = []
    if max_ is not None:
        parts.append("<max>%d</max>" % max_)
    if after is not None:
        parts.append("<after>%s</after>" % after)
    if before is not None:
        parts.append("<before>%s</before>" % before if before else "<before/>")
    return "<set xmlns='%s'>%s</set>" % (NS_RSM, "".join(parts)) if parts else ""


class Result:
    """One <result/>: archive id, the forwarded message and its stamp."""

    def __init__(self, el, queryid):
        r = el.find(q(NS_MAM, "result"))
        assert r is not None and r.get("queryid") == queryid, show(el)
        self.id = r.get("id")
        fwd = r.find(q(NS_FWD, "forwarded"))
        assert fwd is not None, "result without <forwarded/>: %s" % show(el)
        self.stamp = fwd.find(q(NS_DELAY, "delay")).get("stamp")
        self.msg = fwd.find(q(NS_CLIENT, "message"))
        assert self.msg is not None, "forwarded without jabber:client message: %s" % show(el)
        self.body = self.msg.findtext(q(NS_CLIENT, "body"))


class Fin:
    def __init__(self, iq):
        assert iq is not None, "no answer to the MAM query"
        assert iq.get("type") == "result", "MAM query failed: %s" % show(iq)
        fin = iq.find(q(NS_MAM, "fin"))
        assert fin is not None, "result without <fin/>: %s" % show(iq)
        self.complete = fin.get("complete") in ("true", "1")
        s = fin.find(q(NS_RSM, "set"))
        assert s is not None, "fin without RSM <set/>: %s" % show(iq)
        self.first = s.findtext(q(NS_RSM, "first"))
        self.last = s.findtext(q(NS_RSM, "last"))
        first = s.find(q(NS_RSM, "first"))
        self.index = None if first is None else first.get("index")
        self.count = int(s.findtext(q(NS_RSM, "count")))


def raw_query(rs, x="", set_="", to=None, timeout=15.0):
    """A MAM query on a RawStream; returns (iq answer, [Result]) with the
    results that arrived before the answer, in order."""
    n = next(_ids)
    qid, iq_id = "qid%d" % n, "mamq%d" % n
    to_attr = " to='%s'" % to if to else ""
    rs.send("<iq type='set' id='%s'%s><query xmlns='%s' queryid='%s'>%s%s</query></iq>"
            % (iq_id, to_attr, NS_MAM, qid, x, set_))
    return answer_and_results(rs, iq_id, qid, Result, timeout)


def answer_and_results(rs, iq_id, qid, cls, timeout):
    """Waits for the query's answer; returns it with the results (as cls)
    that arrived before it, consumed from the stream, in order."""
    iq = rs.wait_element(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id, timeout)
    results = []
    for el in list(rs.elements):
        r = el.find(q(NS_MAM, "result"))
        if el.tag == q(NS_CLIENT, "message") and r is not None and r.get("queryid") == qid:
            results.append(cls(el, qid))
            rs.elements.remove(el)
    return iq, results


def query_ok(rs, x="", set_=""):
    iq, results = raw_query(rs, x, set_)
    return Fin(iq), results


def ping(rs, timeout=30.0):
    r = rs.iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN, iq_id="ping%d" % next(_ids),
              timeout=timeout)
    assert r is not None and r.get("type") == "result", "no ping answer: %s" % show(r)


def send_chats(rs, to, bodies, extra=""):
    rs.send("".join("<message to='%s' type='chat' id='m%d'><body>%s</body>%s</message>"
                    % (to, next(_ids), b, extra) for b in bodies))
    ping(rs)


def login(srv, user, resource="r", available=False):
    rs, _, _ = raw_login(srv, user, resource)
    if available:
        rs.send("<presence/>")
        ping(rs)
    return rs


def error_of(iq):
    assert iq is not None, "no answer"
    assert iq.get("type") == "error", "expected an error, got %s" % show(iq)
    return stanza_error_condition(iq)


def stanza_ids(msg):
    return [(s.get("id"), s.get("by")) for s in msg.findall(q(NS_SID, "stanza-id"))]


def utc(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------
# What is archived, stanza ids
# --------------------------------------------------------------------------

def test_account_disco_lists_mam_and_sid(herald):
    """XEP-0313 §7 / XEP-0359 §4: the account's bare JID advertises
    urn:xmpp:mam:2 and urn:xmpp:sid:0."""
    srv = herald(users=users("alice"))
    rs = login(srv, "alice")
    r = rs.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=ALICE)
    feats = {f.get("var") for f in r.find(q(NS_DISCO_INFO, "query")).findall(q(NS_DISCO_INFO, "feature"))}
    assert NS_MAM in feats and NS_SID in feats, show(r)


def test_both_sides_archived_with_stanza_id(herald):
    """A chat with a body is archived for sender (outgoing) and recipient
    (incoming); the recipient's copy carries <stanza-id by=recipient/> equal
    to its archive id; a spoofed stanza-id naming the recipient is stripped
    (XEP-0359 §5) while one by another entity is kept."""
    srv = herald(users=users("alice", "bob"))
    a = login(srv, "alice")
    b = login(srv, "bob", available=True)
    a.send("<message to='%s' type='chat' id='s1'><body>hello</body>"
           "<stanza-id xmlns='%s' id='FAKE' by='%s'/>"
           "<stanza-id xmlns='%s' id='FAKE2' by='%s'/>"
           "<stanza-id xmlns='%s' id='keep' by='muc.example'/></message>"
           % (BOB, NS_SID, BOB, NS_SID, ALICE, NS_SID))
    m = b.wait_element(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "s1")
    assert m is not None, "bob got no message"
    sids = stanza_ids(m)
    ours = [i for i, by in sids if by == BOB]
    assert len(ours) == 1 and ours[0] != "FAKE", "one stanza-id by bob, not the spoof: %s" % sids
    assert ("keep", "muc.example") in sids and ("FAKE2", ALICE) not in sids, sids
    fin, res = query_ok(b)
    assert fin.complete and fin.count == 1 and len(res) == 1, show(m)
    assert res[0].id == ours[0], "stanza-id %s is not the archive id %s" % (ours[0], res[0].id)
    assert res[0].body == "hello" and res[0].msg.get("from").startswith(ALICE + "/")
    fin, res = query_ok(a)
    assert fin.count == 1 and res[0].body == "hello" and res[0].msg.get("to") == BOB
    assert res[0].id != ours[0], "each archive has its own id"


def test_what_is_archived(herald):
    """Archived: chat/normal/untyped with a body, and a <store/> hint
    without body. Not archived: headline, groupchat, error, no body, and
    <no-store/> / <no-permanent-store/> (XEP-0334). A message to oneself is
    archived once. Offline recipients get their copy archived too."""
    srv = herald(users=users("alice", "bob"))
    a = login(srv, "alice")
    hints = "urn:xmpp:hints"
    a.send("<message to='%s' type='chat'><body>c</body></message>"
           "<message to='%s' type='normal'><body>n</body></message>"
           "<message to='%s'><body>u</body></message>"
           "<message to='%s' type='chat'><store xmlns='%s'/><x xmlns='urn:example'>s</x></message>"
           "<message to='%s' type='headline'><body>h</body></message>"
           "<message to='%s' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
           "<message to='%s' type='chat'><body>ns</body><no-store xmlns='%s'/></message>"
           "<message to='%s' type='chat'><body>np</body><no-permanent-store xmlns='%s'/></message>"
           "<message to='nobody@localhost' type='chat'><body>x</body></message>"
           "<message type='chat'><body>self</body></message>"
           % (BOB, BOB, BOB, BOB, hints, BOB, BOB, BOB, hints, BOB, hints))
    ping(a)
    fin, res = query_ok(a)
    bodies = [r.body for r in res]
    assert bodies == ["c", "n", "u", None, "self"], bodies
    assert fin.count == 5 and fin.complete
    b = login(srv, "bob")
    fin, res = query_ok(b)
    assert [r.body for r in res] == ["c", "n", "u", None], [show(r.msg) for r in res]


# --------------------------------------------------------------------------
# Paging
# --------------------------------------------------------------------------

def test_paging_both_ways_over_1000(herald):
    """XEP-0059 over 1,000 archived messages with max=100: forward (after)
    and backward (before, starting with an empty <before/>) each return
    every message exactly once, each page oldest first, with first/last
    naming the page's ends, count=1000 and the right index, and complete
    only on the last page in the paging direction."""
    srv = herald(users=users("alice", "bob"))
    a = login(srv, "alice")
    n = 1000
    send_chats(a, BOB, [str(i) for i in range(n)])
    seen, after, pages = [], None, 0
    while True:
        fin, res = query_ok(a, set_=rsm(100, after=after))
        pages += 1
        assert fin.count == n
        assert [r.id for r in res] == sorted(r.id for r in res)
        assert fin.first == res[0].id and fin.last == res[-1].id
        assert fin.index == str(len(seen)), "index %s at offset %d" % (fin.index, len(seen))
        seen += res
        if fin.complete:
            break
        assert len(res) == 100 and pages < 10, "page %d: %d results, complete=%s" % (
            pages, len(res), fin.complete)
        after = fin.last
    assert pages == 10 and len(res) == 100
    assert [r.body for r in seen] == [str(i) for i in range(n)]
    assert len({r.id for r in seen}) == n
    back, before, pages = [], "", 0
    while True:
        fin, res = query_ok(a, set_=rsm(100, before=before))
        pages += 1
        assert fin.count == n and len(res) == 100
        assert [r.id for r in res] == sorted(r.id for r in res), "a page is oldest first"
        assert fin.first == res[0].id and fin.last == res[-1].id
        assert fin.index == str(n - 100 * pages)
        back = res + back
        if fin.complete:
            break
        assert pages < 10, "backward page %d not complete" % pages
        before = fin.first
    assert pages == 10
    assert [r.id for r in back] == [r.id for r in seen]
    # Past the end: an empty page, complete, with the count.
    fin, res = query_ok(a, set_=rsm(100, after=seen[-1].id))
    assert res == [] and fin.complete and fin.count == n and fin.first is None


def test_filters_with_start_end_slixmpp(herald):
    """with (bare and full JID), start and end through slixmpp's xep_0313
    plugin (retrieve and iterate), checked against the stamps of the raw
    results."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        a = XClient(srv, ALICE + "/slix", PASSWORDS["alice"])
        a.xmpp.register_plugin("xep_0313")
        await a.login()
        for i in range(5):
            a.send_message(BOB, "b%d" % i)
        await a.sync()
        await asyncio.sleep(1.2)
        mid = datetime.datetime.now(datetime.timezone.utc)
        await asyncio.sleep(0.2)
        for i in range(5):
            a.send_message(CAROL, "c%d" % i)
            a.send_message(BOB + "/home", "h%d" % i)
        await a.sync()
        mam = a.xmpp["xep_0313"]

        async def bodies(**kw):
            iq = await asyncio.wait_for(mam.retrieve(jid=JID(ALICE), rsm={"max": 100}, **kw), 10)
            return [m["mam_result"]["forwarded"]["stanza"]["body"] for m in iq["mam"]["results"]]

        assert await bodies(with_jid=JID(CAROL)) == ["c%d" % i for i in range(5)]
        assert await bodies(with_jid=JID(BOB)) == \
            ["b%d" % i for i in range(5)] + ["h%d" % i for i in range(5)]
        assert await bodies(with_jid=JID(BOB + "/home")) == ["h%d" % i for i in range(5)]
        assert await bodies(end=mid) == ["b%d" % i for i in range(5)]
        after_mid = await bodies(start=mid)
        assert sorted(after_mid) == sorted(["c%d" % i for i in range(5)] +
                                           ["h%d" % i for i in range(5)]), after_mid
        assert await bodies(start=mid, with_jid=JID(CAROL)) == ["c%d" % i for i in range(5)]
        got = []
        async for m in mam.iterate(jid=JID(ALICE), rsm={"max": 3}):
            got.append(m["mam_result"]["forwarded"]["stanza"]["body"])
        assert len(got) == 15 and got[:5] == ["b%d" % i for i in range(5)], got

    run(body, timeout=60)


# --------------------------------------------------------------------------
# Preferences
# --------------------------------------------------------------------------

def prefs_set(rs, default, always=(), never=()):
    def lst(name, jids):
        return "<%s>%s</%s>" % (name, "".join("<jid>%s</jid>" % j for j in jids), name)
    return rs.iq("<prefs xmlns='%s' default='%s'>%s%s</prefs>"
                 % (NS_MAM, default, lst("always", always), lst("never", never)), itype="set")


def test_prefs_never_always_roster(herald):
    """§6.1 preferences: default never archives nothing for that account
    (the other side still archives); an always list overrides it; default
    roster archives only contacts in the roster; a never list overrides
    always-by-default. Preferences read back as set; a bad default is
    bad-request."""
    srv = herald(users=users("alice", "bob", "carol"))
    a = login(srv, "alice")
    b = login(srv, "bob")

    def bodies(rs):
        return [r.body for r in query_ok(rs, set_=rsm(100))[1]]

    r = prefs_set(a, "never", always=[CAROL])
    assert r.get("type") == "result", show(r)
    p = r.find(q(NS_MAM, "prefs"))
    assert p.get("default") == "never" and \
        [j.text for j in p.find(q(NS_MAM, "always"))] == [CAROL], show(r)
    send_chats(a, BOB, ["never1"])
    send_chats(a, CAROL, ["always1"])
    assert bodies(a) == ["always1"]
    assert bodies(b) == ["never1"], "bob's own default still archives"
    r = a.iq("<prefs xmlns='%s'/>" % NS_MAM)
    assert r.find(q(NS_MAM, "prefs")).get("default") == "never", show(r)

    # roster: bob is in alice's roster (no subscription needed), carol not.
    r = a.iq("<query xmlns='jabber:iq:roster'><item jid='%s'/></query>" % BOB, itype="set")
    assert r.get("type") == "result", show(r)
    assert prefs_set(a, "roster").get("type") == "result"
    send_chats(a, BOB, ["roster-bob"])
    send_chats(a, CAROL, ["roster-carol"])
    assert bodies(a) == ["always1", "roster-bob"]

    assert prefs_set(a, "always", never=[CAROL]).get("type") == "result"
    send_chats(a, BOB, ["always-bob"])
    send_chats(a, CAROL, ["never-carol"])
    assert bodies(a) == ["always1", "roster-bob", "always-bob"]

    assert error_of(prefs_set(a, "sometimes")) == "bad-request"
    many = ["u%d@localhost" % i for i in range(101)]
    assert error_of(prefs_set(a, "always", always=many)) == "policy-violation"
    assert prefs_set(a, "always", always=many[:100]).get("type") == "result"
    assert error_of(prefs_set(a, "always", always=["not a jid@"])) == "bad-request"


def test_default_pref_from_config(herald):
    """[mam] default = never: nothing is archived for accounts without
    preferences."""
    srv = herald(users=users("alice", "bob"), config={"mam": {"default": "never"}})
    a = login(srv, "alice")
    send_chats(a, BOB, ["x"])
    assert query_ok(a)[0].count == 0


# --------------------------------------------------------------------------
# Retention, durability
# --------------------------------------------------------------------------

def test_retention_by_count(herald):
    """max_messages_per_account: storing past it drops the oldest."""
    srv = herald(users=users("alice", "bob"),
                 config={"mam": {"max_messages_per_account": "5"}})
    a = login(srv, "alice")
    send_chats(a, BOB, [str(i) for i in range(12)])
    fin, res = query_ok(a, set_=rsm(100))
    assert fin.count == 5 and [r.body for r in res] == [str(i) for i in range(7, 12)]


def test_retention_by_age(herald):
    """max_age: older messages are never returned, and a later insert
    deletes them."""
    srv = herald(users=users("alice", "bob"), config={"mam": {"max_age": "1"}})
    a = login(srv, "alice")
    send_chats(a, BOB, ["old1", "old2"])
    assert query_ok(a)[0].count == 2
    time.sleep(1.5)
    assert query_ok(a)[0].count == 0
    send_chats(a, BOB, ["new"])
    fin, res = query_ok(a)
    assert fin.count == 1 and res[0].body == "new"


def test_archive_survives_restart(herald):
    """The archive is in LMDB: after a restart the same messages with the
    same ids, and new ids sort after the old ones."""
    srv = herald(users=users("alice", "bob"))
    a = login(srv, "alice")
    send_chats(a, BOB, ["one", "two"])
    _, before = query_ok(a)
    a.close()
    srv.restart()
    a = login(srv, "alice")
    _, after = query_ok(a)
    assert [(r.id, r.body) for r in after] == [(r.id, r.body) for r in before]
    send_chats(a, BOB, ["three"])
    _, res = query_ok(a)
    assert [r.body for r in res] == ["one", "two", "three"] and res[2].id > res[1].id


# --------------------------------------------------------------------------
# Errors and limits
# --------------------------------------------------------------------------

def test_query_errors(herald):
    """bad dates and a foreign FORM_TYPE -> bad-request; an unknown
    after/before id -> item-not-found; after and before together ->
    bad-request; another account's archive -> service-unavailable; a page
    larger than [mam] max_page is clamped."""
    srv = herald(users=users("alice", "bob"), config={"mam": {"max_page": "4"}})
    a = login(srv, "alice")
    send_chats(a, BOB, [str(i) for i in range(6)])
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01"):
        assert error_of(raw_query(a, form(start=bad))[0]) == "bad-request", bad
    assert error_of(raw_query(a, form(end="2026-02-30T00:00:00Z"))[0]) == "bad-request"
    wrong = ("<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>urn:example</value>"
             "</field></x>" % NS_DATA)
    assert error_of(raw_query(a, wrong)[0]) == "bad-request"
    assert error_of(raw_query(a, form(color="red"))[0]) == "bad-request"
    assert error_of(raw_query(a, set_=rsm(5, after="00000000000000ff"))[0]) == "item-not-found"
    assert error_of(raw_query(a, set_=rsm(5, after="nonsense"))[0]) == "item-not-found"
    assert error_of(raw_query(a, set_=rsm(5, before="0000000000000001"))[0]) == "item-not-found"
    assert error_of(raw_query(a, set_="<set xmlns='%s'><max>many</max></set>" % NS_RSM)[0]) \
        == "bad-request"
    assert error_of(raw_query(a, to=BOB)[0]) == "service-unavailable"
    fin, res = query_ok(a, set_=rsm(1000))
    assert len(res) == 4 and fin.count == 6 and not fin.complete
    # A zone offset: 02:00+02:00 is midnight UTC, so everything is after it.
    assert query_ok(a, form(start="2000-01-01T02:00:00+02:00"))[0].count == 6
    assert query_ok(a, form(end="2000-01-01T02:00:00.5+02:00"))[0].count == 0
    fin, res = query_ok(a, set_=rsm(0))
    assert res == [] and fin.count == 6
    # The query form (§4.1.1).
    r = a.iq("<query xmlns='%s'/>" % NS_MAM)
    x = r.find("%s/%s" % (q(NS_MAM, "query"), q(NS_DATA, "x")))
    assert x is not None, show(r)
    fields = {f.get("var") for f in x.findall(q(NS_DATA, "field"))}
    assert {"FORM_TYPE", "with", "start", "end"} <= fields, fields
    # mam:2#extended bounds by id.
    _, first4 = query_ok(a)
    fin, res = query_ok(a, form(after_id=first4[0].id, before_id=first4[3].id))
    assert [r.body for r in res] == ["1", "2"] and fin.count == 2
    ping(a)


# --------------------------------------------------------------------------
# aioxmpp: a second library (it has no MAM module; its XSO layer carries
# the query, and it parses results, RSM, forwarded messages and stanza-ids)
# --------------------------------------------------------------------------

def aio_mam_xsos():
    import aioxmpp
    import aioxmpp.forms
    import aioxmpp.misc
    import aioxmpp.rsm.xso
    import aioxmpp.xso as xso

    class Query(xso.XSO):
        TAG = (NS_MAM, "query")
        queryid = xso.Attr("queryid", default=None)
        form = xso.Child([aioxmpp.forms.Data])
        rsm = xso.Child([aioxmpp.rsm.xso.ResultSetMetadata])

    class Fin(xso.XSO):
        TAG = (NS_MAM, "fin")
        complete = xso.Attr("complete", type_=xso.Bool(), default=False)
        rsm = xso.Child([aioxmpp.rsm.xso.ResultSetMetadata])

    class Res(xso.XSO):
        TAG = (NS_MAM, "result")
        queryid = xso.Attr("queryid", default=None)
        id_ = xso.Attr("id")
        forwarded = xso.Child([aioxmpp.misc.Forwarded])

    aioxmpp.IQ.as_payload_class(Query)
    aioxmpp.IQ.as_payload_class(Fin)
    aioxmpp.Message.xep0313_result = xso.Child([Res])
    return Query, Fin


def test_aioxmpp_query_and_stanza_id(herald):
    """aioxmpp: bob receives alice's messages with an XEP-0359 stanza-id by
    his bare JID (parsed by aioxmpp.misc.StanzaID), then pages his archive
    with a `with` form and RSM max=2 (aioxmpp's ResultSetMetadata.next_page):
    the results' ids equal the stanza-ids, bodies in order, complete on the
    last page."""
    import aioxmpp
    import aioxmpp.connector
    import aioxmpp.dispatcher
    import aioxmpp.forms
    import aioxmpp.rsm.xso

    Query, Fin = aio_mam_xsos()
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        jid = aioxmpp.JID.fromstr(BOB + "/aio")
        client = aioxmpp.Client(
            jid, aioxmpp.make_security_layer(PASSWORDS["bob"], no_verify=True),
            override_peer=[("127.0.0.1", srv.port, aioxmpp.connector.STARTTLSConnector())])
        received = asyncio.Queue()
        async with client.connected():
            disp = client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher)
            for t in aioxmpp.MessageType:
                disp.register_callback(t, None, received.put_nowait)
            await client.send(aioxmpp.Presence(type_=aioxmpp.PresenceType.AVAILABLE))
            a = login(srv, "alice")
            c = login(srv, "carol")
            send_chats(a, BOB, ["a%d" % i for i in range(5)])
            send_chats(c, BOB, ["c0"])
            sids = []
            while len(sids) < 6:
                m = await asyncio.wait_for(received.get(), 10)
                ours = [s.id_ for s in m.xep0359_stanza_ids if str(s.by) == BOB]
                assert len(ours) == 1, "message without our stanza-id: %r" % m
                if str(m.from_.bare()) == ALICE:
                    sids.append(ours[0])
                else:
                    sids.append(None)
            sids = [s for s in sids if s]

            data = aioxmpp.forms.Data(aioxmpp.forms.DataType.SUBMIT)
            for var, val in (("FORM_TYPE", NS_MAM), ("with", ALICE)):
                f = aioxmpp.forms.Field(var=var)
                f.values[:] = [val]
                data.fields.append(f)
            got, rsm, pages = [], aioxmpp.rsm.xso.ResultSetMetadata.limit(2), 0
            while True:
                pages += 1
                qid = "aio%d" % pages
                fut_results = []
                disp.register_callback(
                    aioxmpp.MessageType.NORMAL, aioxmpp.JID.fromstr(BOB),
                    lambda m: fut_results.append(m))
                try:
                    q_ = Query()
                    q_.queryid, q_.form, q_.rsm = qid, data, rsm
                    fin = await asyncio.wait_for(client.send(aioxmpp.IQ(
                        type_=aioxmpp.IQType.SET, to=aioxmpp.JID.fromstr(BOB), payload=q_)), 10)
                finally:
                    disp.unregister_callback(aioxmpp.MessageType.NORMAL,
                                             aioxmpp.JID.fromstr(BOB))
                assert isinstance(fin, Fin), fin
                res = [m.xep0313_result for m in fut_results
                       if m.xep0313_result is not None and m.xep0313_result.queryid == qid]
                assert fin.rsm.count == 5
                got += [(r.id_, r.forwarded.stanza.body.any()) for r in res]
                if fin.complete:
                    break
                assert pages < 3 and len(res) == 2
                rsm = fin.rsm.next_page(2)
            assert pages == 3
            assert [b for _, b in got] == ["a%d" % i for i in range(5)]
            assert [i for i, _ in got] == sids

    run(body, timeout=60)


def test_offline_copy_carries_stanza_id(herald):
    """A message to an offline account is archived and stored offline; the
    copy delivered at the next login carries the stanza-id of the
    recipient's archive entry."""
    srv = herald(users=users("alice", "bob"))
    a = login(srv, "alice")
    send_chats(a, BOB, ["while you were out"])
    b = login(srv, "bob")
    _, res = query_ok(b)
    b.send("<presence/>")
    m = b.wait_element(lambda e: e.tag == q(NS_CLIENT, "message") and
                       e.findtext(q(NS_CLIENT, "body")) == "while you were out")
    assert m is not None, "no offline delivery"
    assert stanza_ids(m) == [(res[0].id, BOB)], show(m)


def test_disabled(herald):
    """[mam] enabled = false: no stanza-id, nothing archived, queries and
    preferences get service-unavailable, the account does not advertise
    urn:xmpp:mam:2. A bad [mam] default is refused at start."""
    srv = herald(users=users("alice", "bob"), config={"mam": {"enabled": "false"}})
    a = login(srv, "alice")
    b = login(srv, "bob", available=True)
    a.send("<message to='%s' type='chat' id='d1'><body>x</body></message>" % BOB)
    m = b.wait_element(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "d1")
    assert m is not None and stanza_ids(m) == [], show(m)
    assert error_of(raw_query(a)[0]) == "service-unavailable"
    assert error_of(a.iq("<prefs xmlns='%s'/>" % NS_MAM)) == "service-unavailable"
    r = a.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=ALICE)
    assert NS_MAM not in ET.tostring(r).decode(), show(r)
    r = srv.cli("check-config", "--config", write_bad_config(srv))
    assert r.returncode != 0 and b"mam.default" in r.stderr + r.stdout


def write_bad_config(srv):
    path = "%s/bad-mam.ini" % srv.workdir
    with open(path, "w") as f:
        f.write("[mam]\ndefault = sometimes\n")
    return path


# --------------------------------------------------------------------------
# Pubsub nodes (XEP-0313 with `node`, XEP-0442)
# --------------------------------------------------------------------------

PUBSUB = "pubsub.%s" % DOMAIN
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = NS_PUBSUB + "#event"


def node_config(**fields):
    out = ["<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'><value>"
           "%s#node_config</value></field>" % (NS_DATA, NS_PUBSUB)]
    for k, v in fields.items():
        out.append("<field var='pubsub#%s'><value>%s</value></field>" % (k, v))
    return "".join(out) + "</x>"


def create_node(rs, node, **config):
    r = rs.iq("<pubsub xmlns='%s'><create node='%s'/><configure>%s</configure></pubsub>"
              % (NS_PUBSUB, node, node_config(**config)), itype="set", to=PUBSUB)
    assert r is not None and r.get("type") == "result", "create failed: %s" % show(r)


def publish_many(rs, node, ids):
    """Pipelines one publish per id, then waits for every answer."""
    tag = next(_ids)
    rs.send("".join("<iq type='set' to='%s' id='pub%d-%s'><pubsub xmlns='%s'><publish node='%s'>"
                    "<item id='%s'><entry xmlns='urn:example:feed'>%s</entry></item></publish>"
                    "</pubsub></iq>" % (PUBSUB, tag, i, NS_PUBSUB, node, i, i) for i in ids))
    for i in ids:
        r = rs.wait_element(lambda e, i=i: e.get("id") == "pub%d-%s" % (tag, i), timeout=30)
        assert r is not None and r.get("type") == "result", "publish %s: %s" % (i, show(r))


class NodeResult:
    def __init__(self, el, queryid):
        assert el.get("from") == PUBSUB, show(el)
        r = el.find(q(NS_MAM, "result"))
        assert r.get("queryid") == queryid, show(el)
        self.id = r.get("id")
        fwd = r.find(q(NS_FWD, "forwarded"))
        self.stamp = fwd.find(q(NS_DELAY, "delay")).get("stamp")
        items = fwd.find("%s/%s/%s" % (q(NS_CLIENT, "message"), q(NS_EVENT, "event"),
                                       q(NS_EVENT, "items")))
        assert items is not None, "no <event><items/> in %s" % show(el)
        self.node = items.get("node")
        item = items.find(q(NS_EVENT, "item"))
        self.item_id = item.get("id")
        self.publisher = item.get("publisher")
        self.payload = item.findtext("{urn:example:feed}entry")


def node_query(rs, node, x="", set_="", timeout=15.0):
    n = next(_ids)
    qid, iq_id = "nq%d" % n, "nodeq%d" % n
    rs.send("<iq type='set' id='%s' to='%s'><query xmlns='%s' queryid='%s' node='%s'>%s%s"
            "</query></iq>" % (iq_id, PUBSUB, NS_MAM, qid, node, x, set_))
    return answer_and_results(rs, iq_id, qid, NodeResult, timeout)


def test_node_archive_paging_and_time_range(herald):
    """A node's items as an archive: 300 items paged forward and backward
    with max=50 (each item once, oldest first on every page, ids are the
    node's publish sequence, count/first/last/complete right), the XEP-0442
    result form (event/items/item with id, publisher and payload), and a
    start/end range that splits two publish bursts a second apart."""
    srv = herald(users=users("alice", "bob"), config={"pubsub": {"max_items_cap": "1000"}})
    a = login(srv, "alice")
    create_node(a, "feed", max_items=1000)
    publish_many(a, "feed", ["a%d" % i for i in range(150)])
    time.sleep(1.1)
    mid = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(0.1)
    publish_many(a, "feed", ["b%d" % i for i in range(150)])
    expected = ["a%d" % i for i in range(150)] + ["b%d" % i for i in range(150)]
    b = login(srv, "bob")
    seen, after, pages = [], None, 0
    while True:
        fin_iq, res = node_query(b, "feed", set_=rsm(50, after=after))
        fin = Fin(fin_iq)
        pages += 1
        assert fin.count == 300 and len(res) == 50
        assert fin.first == res[0].id and fin.last == res[-1].id
        seen += res
        if fin.complete:
            break
        assert pages < 6
        after = fin.last
    assert pages == 6 and [r.item_id for r in seen] == expected
    assert [r.payload for r in seen] == expected
    assert all(r.node == "feed" and r.publisher == ALICE for r in seen), vars(seen[0])
    ids = [int(r.id) for r in seen]
    assert ids == sorted(ids) and len(set(ids)) == 300
    back, before, pages = [], "", 0
    while True:
        fin_iq, res = node_query(b, "feed", set_=rsm(50, before=before))
        fin = Fin(fin_iq)
        pages += 1
        assert fin.count == 300 and len(res) == 50
        assert [int(r.id) for r in res] == sorted(int(r.id) for r in res)
        back = res + back
        if fin.complete:
            break
        assert pages < 6
        before = fin.first
    assert pages == 6 and [r.id for r in back] == [r.id for r in seen]
    fin_iq, res = node_query(b, "feed", form(start=utc(mid)), rsm(200))
    assert Fin(fin_iq).count == 150 and [r.item_id for r in res] == expected[150:]
    fin_iq, res = node_query(b, "feed", form(end=utc(mid)), rsm(200))
    assert Fin(fin_iq).count == 150 and [r.item_id for r in res] == expected[:150]
    s, e = seen[10].stamp, seen[20].stamp
    fin_iq, res = node_query(b, "feed", form(start=s, end=e), rsm(200))
    want = [r.item_id for r in seen if s <= r.stamp <= e]
    assert [r.item_id for r in res] == want and "a10" in want and "a20" in want
    assert error_of(node_query(b, "feed", set_=rsm(5, after="999999"))[0]) == "item-not-found"
    assert error_of(node_query(b, "feed", form(start="noon"))[0]) == "bad-request"
    assert error_of(node_query(b, "nosuchnode")[0]) == "item-not-found"


def test_node_archive_access_whitelist(herald):
    """Access as for <items/>: a non-member of a whitelist node gets the
    same error as an items request (not-allowed / closed-node); a member
    (after the owner adds the affiliation) gets the items. The service's
    disco#info lists urn:xmpp:mam:2."""
    srv = herald(users=users("alice", "bob"))
    a = login(srv, "alice")
    create_node(a, "secret", access_model="whitelist")
    publish_many(a, "secret", ["s1", "s2"])
    b = login(srv, "bob")
    items = b.iq("<pubsub xmlns='%s'><items node='secret'/></pubsub>" % NS_PUBSUB, to=PUBSUB)
    mam, res = node_query(b, "secret")
    assert res == []
    assert error_of(mam) == error_of(items)
    app = [c.tag for c in mam.find(q(NS_CLIENT, "error"))]
    assert app == [c.tag for c in items.find(q(NS_CLIENT, "error"))], show(mam)
    r = a.iq("<pubsub xmlns='%s#owner'><affiliations node='secret'><affiliation jid='%s' "
             "affiliation='member'/></affiliations></pubsub>" % (NS_PUBSUB, BOB),
             itype="set", to=PUBSUB)
    assert r.get("type") == "result", show(r)
    fin_iq, res = node_query(b, "secret")
    assert Fin(fin_iq).count == 2 and [r.item_id for r in res] == ["s1", "s2"]
    r = b.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=PUBSUB)
    assert NS_MAM in {f.get("var") for f in r.iter(q(NS_DISCO_INFO, "feature"))}, show(r)


def test_storage_failure_does_not_lose_delivery(herald):
    """An archive write that fails (injected I/O error on the `mam`
    database) rolls back that message's archiving alone: the message is
    still delivered, without a stanza-id, the failure is logged, and the
    next message is archived with its stanza-id."""
    srv = herald(users=users("alice", "bob"), env={"HERALD_TEST_FAULTS": "mam:2:io"})
    a = login(srv, "alice")
    b = login(srv, "bob", available=True)
    a.send("<message to='%s' type='chat' id='f1'><body>one</body></message>" % BOB)
    m = b.wait_element(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "f1")
    assert m is not None, "the message was lost with its archive write"
    assert stanza_ids(m) == [], "a stanza-id naming no archive entry: %s" % show(m)
    a.send("<message to='%s' type='chat' id='f2'><body>two</body></message>" % BOB)
    m = b.wait_element(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "f2")
    assert m is not None and len(stanza_ids(m)) == 1, show(m)
    fin, res = query_ok(b)
    assert [r.body for r in res] == ["two"] and res[0].id == stanza_ids(m)[0][0]
    assert [r.body for r in query_ok(a)[1]] == ["two"], "the failed message's operation rolls back"
    assert "not archived" in srv.log_text()
