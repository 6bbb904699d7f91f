"""Helpers for the RFC 6121 (rosters, presence subscriptions, presence) and
XEP-0160 (offline messages) end-to-end tests, test_30_im_*.py.

Built on e2e_helpers (HeraldServer, XClient, RawStream, run):

* ``im_client``: a logged-in XClient whose slixmpp roster automation is set
  explicitly (by default: nothing automatic, auto_authorize=None and
  auto_subscribe=False, so the test decides every answer), with three
  ordered inboxes recording *every* presence, roster push and message it
  receives (slixmpp's own events fire only for some of them), optionally
  requesting the roster (making it an "interested resource", RFC 6121 2.2)
  and sending initial presence (an "available resource").
* ``Inbox``: ordered stanzas; ``expect`` consumes the first matching one
  within a bound, ``expect_none`` is the short wait that proves that
  something did not arrive.
* roster requests in raw XML and readers for items, subscription states,
  delay stamps and stanza error conditions.
* ``subscribe``: drives the whole RFC 6121 3.1 handshake between two
  clients (request, approval, both roster pushes) so that tests can set up
  subscription states quickly.
* ``raw_login``: a RawStream login that also returns the stream features
  offered after SASL (for the rosterver and pre-approval features).
"""
import asyncio
import datetime
import socket
import struct
import time

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath

from e2e_helpers import (DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_STANZAS,
                         RawStream, XClient, local, ns_of, q, show)

NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"

PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "singer",
             "dave": "diver", "eve": "eavesdropper"}


def users(*names):
    """The ``users`` argument of the herald fixture for these local parts."""
    return {n: PASSWORDS[n] for n in names}


def bare(user):
    return "%s@%s" % (user, DOMAIN)


# --------------------------------------------------------------------------
# Ordered inboxes
# --------------------------------------------------------------------------

class Inbox:
    """Stanzas of one kind in arrival order. ``all`` keeps every one ever
    received (for ordering checks); ``pending`` those not yet consumed."""

    def __init__(self, owner, kind):
        self.owner = owner
        self.kind = kind
        self.all = []
        self.pending = []
        self._event = asyncio.Event()

    def put(self, stanza):
        self.all.append(stanza)
        self.pending.append(stanza)
        self._event.set()

    def _take(self, pred):
        for i, st in enumerate(self.pending):
            if pred(st.xml):
                del self.pending[i]
                return st
        return None

    async def expect(self, pred, timeout=5.0, what="a matching stanza"):
        """The first pending stanza whose XML element satisfies pred,
        consumed; AssertionError if none arrives within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            st = self._take(pred)
            if st is not None:
                return st
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    "%s did not receive %s (%s) within %.1f s; pending %s: %s"
                    % (self.owner.name, what, self.kind, timeout, self.kind,
                       [show(s.xml) for s in self.pending] or "none"))
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def expect_none(self, pred=lambda el: True, wait=0.7, what="anything"):
        """Short wait proving that no pending stanza satisfies pred."""
        await asyncio.sleep(wait)
        bad = [show(s.xml) for s in self.pending if pred(s.xml)]
        assert not bad, "%s unexpectedly received %s (%s): %s" % (
            self.owner.name, what, self.kind, bad)

    def clear(self):
        del self.pending[:]


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

def attach_inboxes(c, prefix="im"):
    """Gives an XClient ``presences``, ``pushes`` (roster pushes) and ``msgs``
    inboxes, filled by slixmpp handlers named PREFIX-presence/-push/-message."""
    x = c.xmpp
    c.presences = Inbox(c, "presence")
    c.pushes = Inbox(c, "roster push")
    c.msgs = Inbox(c, "message")
    x.register_handler(Callback("%s-presence" % prefix, MatchXPath("{%s}presence" % NS_CLIENT),
                                c.presences.put))
    x.register_handler(Callback("%s-push" % prefix, StanzaPath("iq@type=set/roster"),
                                c.pushes.put))
    x.register_handler(Callback("%s-message" % prefix, MatchXPath("{%s}message" % NS_CLIENT),
                                c.msgs.put))


async def im_client(srv, user, resource="r", roster=True, presence=True, priority=None,
                    status=None, show_=None, auto_authorize=None, auto_subscribe=False,
                    password=None):
    """A logged-in XClient for user@localhost/resource with ``presences``,
    ``pushes`` and ``msgs`` inboxes. With roster, it requests the roster
    (slixmpp's get_roster) before anything else; with presence, it then sends
    initial presence (priority/status/show as given) and waits for the
    server to have processed it."""
    c = XClient(srv, "%s@%s/%s" % (user, DOMAIN, resource), password or PASSWORDS[user])
    c.name = "%s@%s/%s" % (user, DOMAIN, resource)
    x = c.xmpp
    x.auto_authorize = auto_authorize
    x.auto_subscribe = auto_subscribe
    attach_inboxes(c)
    await c.login()
    if roster:
        await asyncio.wait_for(x.get_roster(), 10)
    if presence:
        await send_presence(c, priority=priority, status=status, show_=show_)
    return c


async def send_presence(c, priority=None, status=None, show_=None, ptype=None, to=None):
    """Sends presence with slixmpp's send_presence and waits for the server
    to have processed it (a ping round trip)."""
    kw = {}
    if priority is not None:
        kw["ppriority"] = priority
    if status is not None:
        kw["pstatus"] = status
    if show_ is not None:
        kw["pshow"] = show_
    if ptype is not None:
        kw["ptype"] = ptype
    if to is not None:
        kw["pto"] = to
    c.xmpp.send_presence(**kw)
    await c.sync()


# --------------------------------------------------------------------------
# Predicates on stanza XML
# --------------------------------------------------------------------------

def ptype(el):
    """A presence's type, 'available' when the attribute is absent."""
    return el.get("type") or "available"


def is_presence(ptype_=None, frm=None, frm_bare=None):
    """Predicate: a presence of that type (None: any) from exactly frm or
    from any resource of frm_bare."""
    def pred(el):
        if el.tag != q(NS_CLIENT, "presence"):
            return False
        if ptype_ is not None and ptype(el) != ptype_:
            return False
        f = el.get("from") or ""
        if frm is not None and f != frm:
            return False
        if frm_bare is not None and f.split("/")[0] != frm_bare:
            return False
        return True
    return pred


def presence_child_text(el, tag):
    child = el.find(q(NS_CLIENT, tag))
    return None if child is None else (child.text or "")


def roster_query(el):
    return el.find(q(NS_ROSTER, "query"))


def is_push_for(jid, subscription=None):
    """Predicate: a roster push whose single item is for jid (and, if given,
    has that subscription: 'none' also matches an absent attribute)."""
    def pred(el):
        query = roster_query(el)
        if query is None:
            return False
        items = query.findall(q(NS_ROSTER, "item"))
        if len(items) != 1 or items[0].get("jid") != jid:
            return False
        if subscription is not None and sub_of(items[0]) != subscription:
            return False
        return True
    return pred


def sub_of(item):
    return item.get("subscription") or "none"


def items_of(query):
    """{jid: item element} of a roster <query/>."""
    return {it.get("jid"): it for it in query.findall(q(NS_ROSTER, "item"))}


def groups_of(item):
    return sorted((g.text or "") for g in item.findall(q(NS_ROSTER, "group")))


def push_item(push):
    """The single <item/> of a roster push (asserts the push's shape:
    RFC 6121 2.1.6, exactly one item; from absent or the user's bare JID is
    checked by the caller with push_from_ok)."""
    query = roster_query(push.xml)
    assert query is not None, "roster push without query: %s" % show(push.xml)
    items = query.findall(q(NS_ROSTER, "item"))
    assert len(items) == 1, "a roster push carries exactly one item: %s" % show(push.xml)
    return items[0]


def push_from_ok(push, user_bare):
    f = push.xml.get("from")
    return f is None or f == user_bare


def error_condition(el):
    """The RFC 6120 defined condition inside a stanza's <error/>."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if ns_of(child.tag) == NS_STANZAS and local(child.tag) != "text":
            return local(child.tag)
    return None


def delay_of(el):
    return el.find(q(NS_DELAY, "delay"))


def parse_stamp(stamp):
    """XEP-0082 DateTime (UTC, 'Z' or +00:00, optional fraction) to an aware
    datetime; AssertionError when malformed."""
    s = stamp.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.datetime.fromisoformat(s)
    except ValueError:
        raise AssertionError("malformed XEP-0082 stamp %r" % stamp)
    assert dt.tzinfo is not None, "stamp %r has no time zone" % stamp
    return dt


def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else (b.text or "")


# --------------------------------------------------------------------------
# Roster requests (raw XML through XClient.iq)
# --------------------------------------------------------------------------

async def roster_get(c, ver=None):
    """A roster get (with a 'ver' attribute when ver is not None); returns
    the answer's XML element."""
    attr = "" if ver is None else " ver='%s'" % ver
    resp = await c.iq("<query xmlns='%s'%s/>" % (NS_ROSTER, attr), itype="get")
    return resp.xml


async def roster_items(c):
    """{jid: item} from a full roster get; asserts a result."""
    el = await roster_get(c)
    assert el.get("type") == "result", "roster get failed: %s" % show(el)
    query = roster_query(el)
    assert query is not None, "roster result without query: %s" % show(el)
    return items_of(query)


async def roster_set(c, item_xml):
    """A roster set whose <query/> holds item_xml; returns the answer."""
    resp = await c.iq("<query xmlns='%s'>%s</query>" % (NS_ROSTER, item_xml), itype="set")
    return resp.xml


async def slix_call(awaitable):
    """Awaits a slixmpp iq future: the result, or the error stanza."""
    try:
        return await asyncio.wait_for(awaitable, 10)
    except IqError as e:
        return e.iq


# --------------------------------------------------------------------------
# Subscription set-up
# --------------------------------------------------------------------------

async def subscribe(user_c, contact_c):
    """RFC 6121 3.1: user_c subscribes to contact_c's presence and
    contact_c approves. Both must be interested and available. Waits for
    the user's push showing 'to'/'both' and the contact's showing
    'from'/'both', and for the 'subscribed' presence; leaves the inboxes
    otherwise untouched except for those consumed stanzas."""
    user_bare = user_c.xmpp.boundjid.bare
    contact_bare = contact_c.xmpp.boundjid.bare
    user_c.xmpp.send_presence(pto=contact_bare, ptype="subscribe")
    await contact_c.presences.expect(is_presence("subscribe", frm=user_bare),
                                     what="subscribe from %s" % user_bare)
    contact_c.xmpp.send_presence(pto=user_bare, ptype="subscribed")
    await contact_c.pushes.expect(
        lambda el: is_push_for(user_bare)(el) and
        sub_of(push_item_el(el)) in ("from", "both"),
        what="push of %s with subscription from/both" % user_bare)
    await user_c.pushes.expect(
        lambda el: is_push_for(contact_bare)(el) and
        sub_of(push_item_el(el)) in ("to", "both") and push_item_el(el).get("ask") is None,
        what="push of %s with subscription to/both" % contact_bare)
    await user_c.presences.expect(is_presence("subscribed", frm=contact_bare),
                                  what="subscribed from %s" % contact_bare)


def push_item_el(el):
    return roster_query(el).find(q(NS_ROSTER, "item"))


async def mutual(a, b):
    """Both directions: a and b end with subscription 'both'."""
    await subscribe(a, b)
    await subscribe(b, a)


# --------------------------------------------------------------------------
# Raw streams
# --------------------------------------------------------------------------

def raw_login(srv, user, resource, tls=True):
    """RawStream login (STARTTLS, PLAIN, bind); returns (stream, features
    element offered after SASL, bound JID)."""
    rs = RawStream(srv.port)
    assert rs.open() is not None, "no stream header"
    rs.features()
    if tls:
        rs.starttls()
        assert rs.open() is not None, "no stream header after TLS"
        rs.features()
    resp = rs.auth_plain(user, PASSWORDS[user])
    assert resp is not None and resp.tag == q(NS_SASL, "success"), \
        "PLAIN login of %s failed: %s" % (user, show(resp))
    assert rs.open() is not None, "no stream header after SASL"
    feats = rs.features()
    assert feats.find(q(NS_BIND, "bind")) is not None, "no bind feature: %s" % show(feats)
    jid = rs.bind(resource)
    return rs, feats, jid


def raw_roster_get(rs, ver=None, iq_id=None, timeout=5.0):
    attr = "" if ver is None else " ver='%s'" % ver
    return rs.iq("<query xmlns='%s'%s/>" % (NS_ROSTER, attr), itype="get",
                 iq_id=iq_id, timeout=timeout)


def raw_pushes(rs, wait):
    """Every roster push received within ``wait`` seconds (consumed), in
    order; each is acknowledged with an empty result as RFC 6121 2.1.6
    asks of clients."""
    deadline = time.monotonic() + wait
    got = []
    while True:
        el = rs.wait_element(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set"
                             and roster_query(e) is not None,
                             timeout=max(0.0, deadline - time.monotonic()))
        if el is None:
            return got
        got.append(el)
        rs.send("<iq type='result' id='%s'/>" % el.get("id"))


def raw_next_push(rs, timeout=3.0):
    """The next roster push (consumed and acknowledged), or None."""
    el = rs.wait_element(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set"
                         and roster_query(e) is not None, timeout=timeout)
    if el is not None:
        rs.send("<iq type='result' id='%s'/>" % el.get("id"))
    return el


def kill_socket(rs):
    """Breaks the TCP connection without any XMPP close: RST via SO_LINGER 0."""
    try:
        rs.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    rs.sock.close()
    rs.closed = True
