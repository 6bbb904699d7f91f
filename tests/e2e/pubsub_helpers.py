"""Helpers for the XEP-0060 (publish-subscribe) end-to-end tests.

Built on e2e_helpers (HeraldServer, XClient, run): a logged-in XClient with
slixmpp's own xep_0060 plugin loaded and a queue of *every* message it
receives (slixmpp raises its 'message' event only for messages with a body,
and pubsub notifications have none), raw-XML request helpers addressed to the
pubsub service, exact error checks (RFC 6120 condition plus the
pubsub#errors application condition), XEP-0004 form builders/parsers, and a
structural XML comparison for payloads (the server may re-serialise
namespaces and quoting, so bytes are not compared).
"""
import asyncio
import os
import re
import signal

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from e2e_helpers import DOMAIN, NS_CLIENT, NS_STANZAS, XClient, local, ns_of, q, show

PUBSUB = "pubsub.%s" % DOMAIN
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"
NS_EVENT = NS_PUBSUB + "#event"
NS_ERRORS = NS_PUBSUB + "#errors"
NS_NODE_CONFIG = NS_PUBSUB + "#node_config"
NS_META_DATA = NS_PUBSUB + "#meta-data"
NS_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"
NS_SUB_AUTH = NS_PUBSUB + "#subscribe_authorization"
NS_DATA = "jabber:x:data"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"

PUBSUB_IQ_C = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "broker",
                           "pubsub", "pubsub_iq.c")


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

async def ps_client(srv, user, password, resource="ps", presence=True):
    """A logged-in XClient with slixmpp's xep_0060 plugin, an ``events``
    queue receiving every <message/> (any type, with or without body), and
    (if presence) initial presence sent, so that messages to the bare JID
    (RFC 6121 8.5.2.1.1, headline to every available resource) reach it."""
    c = XClient(srv, "%s@%s/%s" % (user, DOMAIN, resource), password)
    c.xmpp.register_plugin("xep_0030")
    c.xmpp.register_plugin("xep_0004")
    c.xmpp.register_plugin("xep_0060")
    c.events = asyncio.Queue()
    c.stash = []

    def on_any_message(msg):
        c.events.put_nowait(msg)
    c.xmpp.register_handler(Callback("e2e-all-messages", MatchXPath("{%s}message" % NS_CLIENT),
                                     on_any_message))
    await c.login()
    if presence:
        await c.presence()
    return c


def ps(c):
    """slixmpp's xep_0060 plugin of client c."""
    return c.xmpp["xep_0060"]


async def call(awaitable):
    """Awaits a slixmpp iq.send() future; returns the result stanza, or the
    error stanza if the service answered with an error (IqError)."""
    try:
        return await awaitable
    except IqError as e:
        return e.iq


async def ps_iq(c, payload, itype="get", to=PUBSUB, timeout=10.0):
    """Raw XML request to the pubsub service; returns the answer stanza."""
    return await c.iq(payload, to=to, itype=itype, timeout=timeout)


def pubsub_xml(inner, ns=NS_PUBSUB):
    return "<pubsub xmlns='%s'>%s</pubsub>" % (ns, inner)


# --------------------------------------------------------------------------
# Checking answers
# --------------------------------------------------------------------------

def error_parts(stanza):
    """(condition, pubsub#errors child element or None, error type) of an
    error stanza."""
    el = stanza.xml if hasattr(stanza, "xml") else stanza
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None, None, None
    cond = app = None
    for child in err:
        if ns_of(child.tag) == NS_STANZAS and local(child.tag) != "text":
            cond = local(child.tag)
        elif ns_of(child.tag) == NS_ERRORS:
            app = child
    return cond, app, err.get("type")


def assert_result(resp, what="request"):
    el = resp.xml if hasattr(resp, "xml") else resp
    assert el.get("type") == "result", "%s: expected an iq result, got %s" % (what, show(el))
    return el


def assert_ps_error(resp, condition, app=None, feature=None, what="request"):
    """Asserts an iq error with the given RFC 6120 condition and, if app is
    given, the pubsub#errors condition <app/> (with feature='...' for
    <unsupported/>)."""
    el = resp.xml if hasattr(resp, "xml") else resp
    assert el.get("type") == "error", "%s: expected <%s/> error, got %s" % (
        what, condition, show(el))
    cond, app_el, _ = error_parts(el)
    assert cond == condition, "%s: expected <%s/>, got <%s/> in %s" % (
        what, condition, cond, show(el))
    if app is not None:
        got = local(app_el.tag) if app_el is not None else None
        assert got == app, "%s: expected pubsub#errors <%s/>, got %s in %s" % (
            what, app, "<%s/>" % got if got else "none", show(el))
        if feature is not None:
            assert app_el.get("feature") == feature, \
                "%s: expected <unsupported feature='%s'/>, got %s" % (what, feature, show(el))
    assert el.get("from") in (PUBSUB, None), "%s: error from %r, expected %s" % (
        what, el.get("from"), PUBSUB)
    return el


def find_path(el, *steps):
    """el.find over a path of (ns, tag) pairs, or None."""
    for ns, tag in steps:
        if el is None:
            return None
        el = el.find(q(ns, tag))
    return el


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------

def event_of(msg):
    el = msg.xml if hasattr(msg, "xml") else msg
    return el.find(q(NS_EVENT, "event"))


def event_kind(msg):
    """('items'|'delete'|'purge'|'configuration'|'subscription', node) of a
    pubsub event message, or (None, None)."""
    ev = event_of(msg)
    if ev is None or len(ev) == 0:
        return None, None
    first = ev[0]
    return local(first.tag), first.get("node")


async def next_message(c, pred, timeout=5.0, what="message"):
    """The first message (already received or arriving within timeout)
    satisfying pred; messages that do not match are kept in c.stash."""
    for i, m in enumerate(c.stash):
        if pred(m):
            return c.stash.pop(i)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            m = await asyncio.wait_for(c.events.get(), remaining)
        except asyncio.TimeoutError:
            break
        if pred(m):
            return m
        c.stash.append(m)
    raise AssertionError("%s received no %s within %.0f s (other messages: %s)" % (
        c.jid, what, timeout, [show(m.xml) for m in c.stash][:5]))


async def next_event(c, kind, node, timeout=5.0):
    """The next pubsub event of the given kind for node."""
    return await next_message(c, lambda m: event_kind(m) == (kind, node), timeout,
                              "pubsub <%s node='%s'/> event" % (kind, node))


async def drain_events(c, settle=0.0):
    """Every message received so far (stash first), consumed."""
    if settle:
        await asyncio.sleep(settle)
    out = list(c.stash)
    del c.stash[:]
    while not c.events.empty():
        out.append(c.events.get_nowait())
    return out


def items_event_children(msg):
    """The children (<item/>, <retract/>) of the <items/> of an event."""
    ev = event_of(msg)
    items = ev.find(q(NS_EVENT, "items")) if ev is not None else None
    return list(items) if items is not None else []


# --------------------------------------------------------------------------
# Forms (XEP-0004)
# --------------------------------------------------------------------------

def _esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;"))


def form_xml(form_type, fields, ftype="submit"):
    """<x xmlns='jabber:x:data' type='submit'> with FORM_TYPE and fields
    ({var: value or [values]})."""
    parts = ["<x xmlns='%s' type='%s'>" % (NS_DATA, ftype)]
    if form_type is not None:
        parts.append("<field var='FORM_TYPE' type='hidden'><value>%s</value></field>"
                     % _esc(form_type))
    for var, val in fields.items():
        vals = val if isinstance(val, (list, tuple)) else [val]
        parts.append("<field var='%s'>%s</field>" % (
            _esc(var), "".join("<value>%s</value>" % _esc(v) for v in vals)))
    parts.append("</x>")
    return "".join(parts)


def config_form(fields):
    return form_xml(NS_NODE_CONFIG, fields)


def slix_form(c, form_type, fields, ftype="submit"):
    """The same form as a slixmpp xep_0004 Form object."""
    f = c.xmpp["xep_0004"].make_form(ftype=ftype)
    f.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for var, val in fields.items():
        f.add_field(var=var, value=val)
    return f


def parse_form(x):
    """{var: [values]} of a data form element; also {var: [options]} under
    key ('options', var) and field types under ('type', var)."""
    assert x is not None, "no data form"
    out = {}
    for f in x.findall(q(NS_DATA, "field")):
        var = f.get("var")
        out[var] = [(v.text or "") for v in f.findall(q(NS_DATA, "value"))]
        out[("type", var)] = f.get("type")
        out[("options", var)] = [(o.findtext(q(NS_DATA, "value")) or "")
                                 for o in f.findall(q(NS_DATA, "option"))]
    return out


def form_value(form, var):
    vals = form.get(var)
    return vals[0] if vals else None


def is_true(v):
    return v in ("1", "true")


# --------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------

def canon(el):
    """A comparable structure for an element: qualified tag, attributes,
    stripped text and tail-free children (namespace prefixes and quoting
    do not matter)."""
    return (el.tag, tuple(sorted(el.attrib.items())), (el.text or "").strip(),
            tuple(canon(c) for c in el))


def payload_xml(ns, tag, text, attrs=None):
    a = "".join(" %s='%s'" % (k, _esc(v)) for k, v in (attrs or {}).items())
    return "<%s xmlns='%s'%s>%s</%s>" % (tag, ns, a, _esc(text), tag)


def item_payloads(items_el):
    """{item id: payload element or None} of an <items/> element."""
    out = {}
    for it in items_el:
        if local(it.tag) != "item":
            continue
        children = list(it)
        out[it.get("id")] = children[0] if children else None
    return out


# --------------------------------------------------------------------------
# Common operations (raw XML, for exact checks)
# --------------------------------------------------------------------------

async def create_node(c, node, config=None):
    inner = "<create node='%s'/>" % node if node is not None else "<create/>"
    if config is not None:
        inner += "<configure>%s</configure>" % config_form(config)
    return await ps_iq(c, pubsub_xml(inner), "set")


async def must_create(c, node, config=None):
    resp = await create_node(c, node, config)
    assert_result(resp, "create node %r (config %r)" % (node, config))
    return resp


async def publish(c, node, item_id=None, payload="", options=None, timeout=10.0):
    idattr = " id='%s'" % _esc(item_id) if item_id is not None else ""
    inner = "<publish node='%s'><item%s>%s</item></publish>" % (_esc(node), idattr, payload)
    if options is not None:
        inner += "<publish-options>%s</publish-options>" % form_xml(NS_PUBLISH_OPTIONS, options)
    return await ps_iq(c, pubsub_xml(inner), "set", timeout=timeout)


async def must_publish(c, node, item_id=None, payload=""):
    resp = await publish(c, node, item_id, payload)
    assert_result(resp, "publish to %r" % node)
    return resp


async def get_items(c, node, max_items=None, ids=None):
    attrs = " max_items='%d'" % max_items if max_items is not None else ""
    inner = "".join("<item id='%s'/>" % _esc(i) for i in (ids or []))
    return await ps_iq(c, pubsub_xml("<items node='%s'%s>%s</items>" % (_esc(node), attrs, inner)))


async def items_of(c, node, **kw):
    """{item id: payload} of a successful items retrieval."""
    resp = await get_items(c, node, **kw)
    el = assert_result(resp, "retrieve items of %r" % node)
    items = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "items"))
    assert items is not None, "items result without <pubsub><items/>: %s" % show(el)
    assert items.get("node") == node, "items result for node %r: %s" % (items.get("node"),
                                                                       show(el))
    return item_payloads(items)


async def subscribe(c, node, jid=None):
    jid = c.jid if jid is None else jid
    return await ps_iq(c, pubsub_xml("<subscribe node='%s' jid='%s'/>" % (_esc(node), _esc(jid))),
                       "set")


async def must_subscribe(c, node, jid=None, state="subscribed"):
    """Subscribes; returns the <subscription/> element of the result."""
    resp = await subscribe(c, node, jid)
    el = assert_result(resp, "subscribe %s to %r" % (jid or c.jid, node))
    sub = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "subscription"))
    assert sub is not None, "subscribe result without <subscription/>: %s" % show(el)
    assert sub.get("subscription") == state, "expected subscription='%s': %s" % (state, show(el))
    return sub


async def unsubscribe(c, node, jid=None, subid=None):
    jid = c.jid if jid is None else jid
    sa = " subid='%s'" % _esc(subid) if subid is not None else ""
    return await ps_iq(c, pubsub_xml("<unsubscribe node='%s' jid='%s'%s/>"
                                     % (_esc(node), _esc(jid), sa)), "set")


async def configure_node(c, node, fields):
    return await ps_iq(c, pubsub_xml("<configure node='%s'>%s</configure>"
                                     % (_esc(node), config_form(fields)), NS_OWNER), "set")


async def get_config(c, node):
    """(answer, parsed form or None)."""
    resp = await ps_iq(c, pubsub_xml("<configure node='%s'/>" % _esc(node), NS_OWNER))
    x = find_path(resp.xml, (NS_OWNER, "pubsub"), (NS_OWNER, "configure"), (NS_DATA, "x"))
    return resp, (parse_form(x) if x is not None else None)


async def set_affiliation(c, node, jid, affiliation):
    resp = await ps_iq(c, pubsub_xml("<affiliations node='%s'><affiliation jid='%s' "
                                     "affiliation='%s'/></affiliations>"
                                     % (_esc(node), _esc(jid), affiliation), NS_OWNER), "set")
    assert_result(resp, "set %s affiliation of %s on %r" % (affiliation, jid, node))


async def disco(c, ns, node=None, to=PUBSUB):
    na = " node='%s'" % _esc(node) if node is not None else ""
    return await c.iq("<query xmlns='%s'%s/>" % (ns, na), to=to)


def disco_features(resp):
    el = assert_result(resp, "disco#info")
    qel = el.find(q(NS_DISCO_INFO, "query"))
    assert qel is not None, "disco#info result without <query/>: %s" % show(el)
    return [f.get("var") for f in qel.findall(q(NS_DISCO_INFO, "feature"))]


def disco_identities(resp):
    qel = resp.xml.find(q(NS_DISCO_INFO, "query"))
    return [(i.get("category"), i.get("type")) for i in qel.findall(q(NS_DISCO_INFO, "identity"))]


def pubsub_feature_table(path=PUBSUB_IQ_C):
    """The XEP-0060 feature names of the dispatch table ``pubsub_iq_table``
    in broker/pubsub/pubsub_iq.c (comments stripped): every quoted string inside a
    row's ``FEATURES(...)``, in table order, without full URIs (features such
    as disco#info or XEP-0050's commands, which are not pubsub#<name>), or
    None if there is no such table (yet)."""
    try:
        with open(path, encoding="utf-8") as f:
            src = f.read()
    except OSError:
        return None
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    m = re.search(r"\bpubsub_iq_table\s*\[[^\]]*\]\s*=\s*\{(.*?)\}\s*;", src, re.S)
    if not m:
        return None
    names = []
    for group in re.findall(r"\bFEATURES\s*\((.*?)\)", m.group(1), re.S):
        names += [n for n in re.findall(r'"((?:[^"\\]|\\.)*)"', group) if ":" not in n]
    return names


# --------------------------------------------------------------------------
# Process control for the crash test
# --------------------------------------------------------------------------

def kill_hard(srv):
    """SIGKILL the server process and reap it (the fixture's HeraldServer is
    reused afterwards with restart_after_kill)."""
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)


def restart_after_kill(srv, timeout=10.0):
    """Starts the same HeraldServer again (same port, data dir and log) after
    a SIGKILL: the fixture then only sees, and stops with SIGTERM, the new
    process, whose exit status it checks as usual."""
    assert srv.proc is not None and srv.proc.poll() is not None, "server still running"
    if srv._log:
        srv._log.close()
        srv._log = None
    srv.proc = None
    srv.returncode = None
    return srv.start(timeout)


async def my_subscriptions(c, node=None):
    """XEP-0060 §5.6: [(node, jid, subscription, subid)] of the requester."""
    na = " node='%s'" % _esc(node) if node is not None else ""
    resp = await ps_iq(c, pubsub_xml("<subscriptions%s/>" % na))
    el = assert_result(resp, "retrieve subscriptions")
    subs = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "subscriptions"))
    assert subs is not None, "subscriptions result without <subscriptions/>: %s" % show(el)
    return [(s.get("node") or subs.get("node"), s.get("jid"), s.get("subscription"),
             s.get("subid")) for s in subs.findall(q(NS_PUBSUB, "subscription"))]


async def my_affiliations(c, node=None):
    """XEP-0060 §5.7: {node: affiliation} of the requester."""
    na = " node='%s'" % _esc(node) if node is not None else ""
    resp = await ps_iq(c, pubsub_xml("<affiliations%s/>" % na))
    el = assert_result(resp, "retrieve affiliations")
    affs = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "affiliations"))
    assert affs is not None, "affiliations result without <affiliations/>: %s" % show(el)
    return {(a.get("node") or affs.get("node")): a.get("affiliation")
            for a in affs.findall(q(NS_PUBSUB, "affiliation"))}
