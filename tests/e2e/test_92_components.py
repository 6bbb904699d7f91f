"""External components (XEP-0114, jabber:component:accept): slixmpp's
ComponentXMPP against Herald's component listener ([components] port,
[component:events.localhost] secret), local users with slixmpp clients, and
raw sockets for the handshake errors. Covered: the handshake (§3,
hex(SHA1(id + secret))), routing both ways for the component's domain, JIDs
at it and its subdomains, iq both ways (user -> component, component ->
server), disco#items of the server listing the component, not-authorized
for a wrong secret, host-unknown for an unconfigured domain, replacement of
a connection (the old one gets conflict), invalid-from for a spoofed from
(the server keeps serving), service-unavailable while the component is not
connected, and the component on the pubsub service (subscribe, publish)."""
import asyncio
import hashlib
import socket
import time
import xml.etree.ElementTree as ET

from slixmpp import ComponentXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatcherId, MatchXPath

from e2e_helpers import (DOMAIN, NS_DISCO_INFO, NS_STREAM, RawStream,
                         free_port, local, ns_of, q, run, show)
from im_helpers import body_of, error_condition, im_client, users

COMP = "events.localhost"
SECRET = "s3cret"
NS_COMPONENT = "jabber:component:accept"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_ECHO = "urn:example:herald-echo"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"
NS_EVENT = NS_PUBSUB + "#event"
PUBSUB = "pubsub.%s" % DOMAIN


# --------------------------------------------------------------------------
# Server and component helpers
# --------------------------------------------------------------------------

def wait_port(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("nothing listens on the component port %d within %.0f s"
                                     % (port, timeout))
            time.sleep(0.05)


def comp_server(herald, extra=None):
    """A server with [components] port and [component:events.localhost]
    secret = s3cret; alice and bob exist. ``srv.comp_port`` is the port."""
    port = free_port()
    cfg = {"components": {"port": port, "bind": "127.0.0.1"},
           "component:%s" % COMP: {"secret": SECRET}}
    cfg.update(extra or {})
    srv = herald(config=cfg, users=users("alice", "bob"))
    srv.comp_port = port
    wait_port(port)
    return srv


_components = []


def crun(fn, timeout=60.0):
    """e2e_helpers.run, closing every Component created by fn as well."""
    async def wrapped():
        del _components[:]
        try:
            return await fn()
        finally:
            for c in list(_components):
                try:
                    await c.close()
                except Exception:
                    pass
            del _components[:]
    return run(wrapped, timeout)


class Component:
    """slixmpp's ComponentXMPP on the same event loop: ``msgs`` receives
    every <message/>, ``handshaken`` is set by the <handshake/> answer;
    iqs with an <query xmlns='urn:example:herald-echo'/> are answered with a
    result echoing the query's text and the JID it was addressed to."""

    def __init__(self, srv, jid=COMP, secret=SECRET):
        _components.append(self)
        self.xmpp = x = ComponentXMPP(jid, secret, "127.0.0.1", srv.comp_port)
        x.loop = asyncio.get_running_loop()
        x.whitespace_keepalive = False
        port = srv.comp_port

        async def dns(domain, port_=None):
            return [(DOMAIN, "127.0.0.1", port)]
        x.get_dns_records = dns
        self.msgs = asyncio.Queue()
        self.stream_errors = []
        self.started = x.loop.create_future()
        self.disconnected = x.loop.create_future()
        x.add_event_handler("session_start", lambda _: self._set(self.started))
        x.add_event_handler("disconnected", lambda _: (self._set(self.disconnected),
                                                        self._set(self.started, False)))
        x.add_event_handler("stream_error", lambda e: self.stream_errors.append(e["condition"]))
        x.register_handler(Callback("e2e-comp-msgs", MatchXPath("{%s}message" % NS_COMPONENT),
                                    self.msgs.put_nowait))
        x.register_handler(Callback("e2e-comp-echo",
                                    MatchXPath("{%s}iq/{%s}query" % (NS_COMPONENT, NS_ECHO)),
                                    self._echo))
        self.echoed = []

    @staticmethod
    def _set(fut, value=True):
        if not fut.done():
            fut.set_result(value)

    def _echo(self, iq):
        if iq["type"] not in ("get", "set"):
            return
        self.echoed.append(iq)
        text = iq.xml.find("{%s}query" % NS_ECHO).text or ""
        reply = iq.reply(clear=True)
        ans = ET.Element("{%s}query" % NS_ECHO)
        ans.text = "echo:%s:%s" % (iq["to"], text)
        reply.xml.append(ans)
        reply.send()

    async def connect(self, timeout=10.0):
        self.xmpp.connect()
        try:
            ok = await asyncio.wait_for(asyncio.shield(self.started), timeout)
        except asyncio.TimeoutError:
            ok = False
        assert ok is True, ("the component did not complete the handshake within %.0f s "
                            "(stream errors: %s)" % (timeout, self.stream_errors))
        return self

    async def close(self):
        if self.xmpp.transport is None:
            self.xmpp.cancel_connection_attempt()
            return
        self.xmpp.disconnect(wait=1.0)
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), 3)
        except asyncio.TimeoutError:
            self.xmpp.abort()

    def send_message(self, mto, body, mfrom=COMP, mtype="chat"):
        self.xmpp.make_message(mto=mto, mbody=body, mtype=mtype, mfrom=mfrom).send()

    async def expect_message(self, timeout=5.0):
        try:
            return await asyncio.wait_for(self.msgs.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("the component received no message within %.0f s" % timeout)

    async def iq(self, payload, to, itype="get", mfrom=COMP, timeout=10.0):
        iq = self.xmpp.Iq()
        iq["type"] = itype
        iq["to"] = to
        iq["from"] = mfrom
        iq_id = self.xmpp.new_id()
        iq["id"] = iq_id
        iq.xml.append(ET.fromstring(payload))
        fut = asyncio.get_running_loop().create_future()
        name = "e2e-comp-iq-%s" % iq_id
        self.xmpp.register_handler(Callback(
            name, MatcherId(iq_id), lambda st: fut.done() or fut.set_result(st), once=True))
        try:
            self.xmpp.send(iq)
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise AssertionError("the component got no answer within %.0f s to %s"
                                     % (timeout, iq))
        finally:
            self.xmpp.remove_handler(name)


def handshake_hash(stream_id, secret=SECRET):
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


def raw_component(srv, to=COMP):
    """A raw socket that sent a jabber:component:accept header; returns
    (stream, server header or None)."""
    s = RawStream(srv.comp_port, timeout=5.0)
    hdr = s.open(to=to, xmlns=NS_COMPONENT, version=None)
    return s, hdr


def raw_handshake(s, secret=SECRET):
    """Sends the XEP-0114 handshake; returns the answer (<handshake/> or a
    <stream:error/>) or None."""
    assert s.header is not None, "no stream header from the server: %r" % s.text()
    sid = s.header.get("id")
    assert sid, "the server's component stream header has no id: %r" % s.text()
    s.send("<handshake>%s</handshake>" % handshake_hash(sid, secret))
    return s.wait_element(lambda e: local(e.tag) == "handshake"
                          or e.tag == q(NS_STREAM, "error"))


def raw_connected(srv):
    s, hdr = raw_component(srv)
    ans = raw_handshake(s)
    assert ans is not None and ans.tag == q(NS_COMPONENT, "handshake"), \
        "handshake refused: %s (raw %r)" % (show(ans), s.text())
    assert len(ans) == 0 and not (ans.text or "").strip(), show(ans)
    return s


def closed_with(s, cond, timeout=5.0):
    s.read_until_closed(timeout=timeout)
    got = s.stream_error()
    assert got == cond, "expected stream error %s, got %s (raw %r)" % (cond, got, s.text())
    assert s.closed, "the server did not close the connection after <%s/>" % cond


def disco_item_jids(resp_xml):
    query = resp_xml.find(q(NS_DISCO_ITEMS, "query"))
    assert query is not None, show(resp_xml)
    return [i.get("jid") for i in query.findall(q(NS_DISCO_ITEMS, "item"))]


def is_body(body):
    return lambda el: el.get("type") != "error" and body_of(el) == body


# --------------------------------------------------------------------------
# 1. Handshake, routing both ways, iq both ways, disco#items
# --------------------------------------------------------------------------

def test_component_handshake_and_messages_both_ways(herald):
    """XEP-0114 §3: ComponentXMPP's handshake succeeds (and the log says
    the component connected). Messages from alice to events.localhost and
    to someone@events.localhost/r reach the component with alice's full JID
    as from; messages from events.localhost, bot@events.localhost and
    feed.events.localhost (a subdomain) reach alice (full and bare JID)."""
    srv = comp_server(herald)

    async def body():
        comp = await Component(srv).connect()
        alice = await im_client(srv, "alice", "r")

        alice.send_message(COMP, "to-domain")
        m = await comp.expect_message()
        assert m["body"] == "to-domain", m
        assert m["from"].full == alice.jid, m
        assert m["to"].full == COMP, m

        alice.send_message("someone@%s/r" % COMP, "to-user")
        m = await comp.expect_message()
        assert m["body"] == "to-user", m
        assert m["from"].full == alice.jid, m
        assert m["to"].full == "someone@%s/r" % COMP, m

        alice.send_message("feed.%s" % COMP, "to-subdomain")
        m = await comp.expect_message()
        assert (m["body"], m["to"].full) == ("to-subdomain", "feed.%s" % COMP), m

        comp.send_message(alice.jid, "from-domain", mfrom=COMP)
        st = await alice.msgs.expect(is_body("from-domain"), what="from-domain")
        assert st.xml.get("from") == COMP, show(st.xml)

        comp.send_message("alice@localhost", "from-bot", mfrom="bot@%s/x" % COMP)
        st = await alice.msgs.expect(is_body("from-bot"), what="from-bot")
        assert st.xml.get("from") == "bot@%s/x" % COMP, show(st.xml)

        comp.send_message(alice.jid, "from-subdomain", mfrom="feed.%s" % COMP)
        st = await alice.msgs.expect(is_body("from-subdomain"), what="from-subdomain")
        assert st.xml.get("from") == "feed.%s" % COMP, show(st.xml)
        assert comp.stream_errors == [], comp.stream_errors
    crun(body)
    assert "%s connected" % COMP in srv.log_text(), "no 'component: %s connected' log line" % COMP


def test_component_iq_both_ways_and_disco_items(herald):
    """An iq from alice to events.localhost and to bot@events.localhost is
    answered by the component (alice gets its result, from the component's
    JID); the component's disco#info to localhost is answered by the server
    (to the component's JID); disco#items of localhost lists
    events.localhost (also while it is not connected) and pubsub.localhost."""
    srv = comp_server(herald)

    async def body():
        alice = await im_client(srv, "alice", "r")
        r = await alice.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=DOMAIN)
        assert r["type"] == "result", r
        jids = disco_item_jids(r.xml)
        assert COMP in jids and PUBSUB in jids, \
            "disco#items of %s without the component: %s" % (DOMAIN, show(r.xml))

        comp = await Component(srv).connect()
        for to in (COMP, "bot@%s" % COMP):
            r = await alice.iq("<query xmlns='%s'>ping</query>" % NS_ECHO, to=to)
            assert r["type"] == "result", "iq to %s: %s" % (to, r)
            assert r["from"].full == to, r
            ans = r.xml.find("{%s}query" % NS_ECHO)
            assert ans is not None and ans.text == "echo:%s:ping" % to, show(r.xml)
        assert [str(i["from"]) for i in comp.echoed] == [alice.jid, alice.jid], comp.echoed

        r = await comp.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        assert r["type"] == "result", r
        assert r["from"].full == DOMAIN and r["to"].full == COMP, r
        feats = [f.get("var") for f in r.xml.iter("{%s}feature" % NS_DISCO_INFO)]
        assert NS_DISCO_INFO in feats, show(r.xml)

        # and from a JID at the component
        r = await comp.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=DOMAIN,
                          mfrom="bot@%s/x" % COMP)
        assert r["type"] == "result" and r["to"].full == "bot@%s/x" % COMP, r
        assert COMP in disco_item_jids(r.xml), show(r.xml)
    crun(body)


# --------------------------------------------------------------------------
# 2. Handshake errors and replacement (raw sockets)
# --------------------------------------------------------------------------

def test_wrong_secret_is_not_authorized(herald):
    """XEP-0114 §3: a handshake with a wrong secret gets the stream error
    <not-authorized/> and the connection is closed; the server logs it; the
    right secret works afterwards on a new connection."""
    srv = comp_server(herald)
    s, hdr = raw_component(srv)
    try:
        assert hdr is not None, "no stream header from the server: %r" % s.text()
        assert hdr.tag == q(NS_STREAM, "stream") and ns_of(hdr.tag) == NS_STREAM, show(hdr)
        assert hdr.get("id"), "no stream id in %r" % s.text()
        ans = raw_handshake(s, secret="wrong")
        assert ans is not None and ans.tag == q(NS_STREAM, "error"), \
            "expected a stream error, got %s (raw %r)" % (show(ans), s.text())
        closed_with(s, "not-authorized")
    finally:
        s.close()
    assert "not-authorized" in srv.log_text()
    good = raw_connected(srv)
    good.close()


def test_unknown_domain_is_host_unknown(herald):
    """XEP-0114 / RFC 6120 4.9.3.6: a component stream to a domain that is
    not configured gets <host-unknown/>; one to the server's own domain too."""
    srv = comp_server(herald)
    for to in ("nope.localhost", DOMAIN):
        s, hdr = raw_component(srv, to=to)
        try:
            if s.stream_error() is None and s.header is not None and s.header.get("id"):
                # A server may send the error only after the handshake.
                s.send("<handshake>%s</handshake>" % handshake_hash(s.header.get("id")))
            closed_with(s, "host-unknown")
            assert not any(e.tag == q(NS_COMPONENT, "handshake") for e in s.seen), s.text()
        finally:
            s.close()


def test_second_connection_replaces_first(herald):
    """A second authenticated connection for events.localhost replaces the
    first: the first gets <conflict/> and is closed; messages then go to the
    second."""
    srv = comp_server(herald)
    first = raw_connected(srv)
    second = None
    try:
        second = raw_connected(srv)
        closed_with(first, "conflict")

        async def body():
            alice = await im_client(srv, "alice", "r")
            alice.send_message(COMP, "after-replace")
            await alice.sync()
        crun(body)
        m = second.wait_element(lambda e: local(e.tag) == "message")
        assert m is not None and m.tag == q(NS_COMPONENT, "message"), \
            "the new connection got no message: %r" % second.text()
        assert m.find(q(NS_COMPONENT, "body")).text == "after-replace", show(m)
        assert m.get("from", "").startswith("alice@localhost/"), show(m)
    finally:
        first.close()
        if second:
            second.close()


def test_spoofed_from_is_invalid_from(herald):
    """XEP-0114 with RFC 6120 4.9.3.10: a stanza from the component with a
    from outside its domain (other.domain, the server's domain, a local
    user) gets the stream error <invalid-from/>, nothing is delivered, and
    the server keeps serving: bob logs in afterwards and the component can
    connect again."""
    srv = comp_server(herald)

    async def body():
        alice = await im_client(srv, "alice", "r")
        for i, spoof in enumerate(("other.domain", DOMAIN, "bob@localhost/x")):
            s = raw_connected(srv)
            try:
                s.send("<message from='%s' to='%s' type='chat'><body>spoof%d</body></message>"
                       % (spoof, alice.jid, i))
                closed_with(s, "invalid-from")
            finally:
                s.close()
        await alice.msgs.expect_none(lambda el: (body_of(el) or "").startswith("spoof"),
                                     wait=0.5, what="a spoofed message")
        bob = await im_client(srv, "bob", "after")
        await bob.sync()
        comp = await Component(srv).connect()
        comp.send_message(alice.jid, "still-works")
        await alice.msgs.expect(is_body("still-works"), what="still-works")
    crun(body)
    assert "invalid-from" in srv.log_text()


def test_service_unavailable_while_disconnected(herald):
    """While events.localhost is configured but not connected (before its
    first connection and after it left), a message and an iq to it get
    <service-unavailable/> from the component's JID."""
    srv = comp_server(herald)

    async def check(alice, tag):
        alice.send_message(COMP, "nobody-home-%s" % tag)
        st = await alice.msgs.expect(lambda el: el.get("type") == "error",
                                     what="a message error (%s)" % tag)
        assert error_condition(st.xml) == "service-unavailable", show(st.xml)
        assert st.xml.get("from") == COMP, show(st.xml)
        r = await alice.iq("<query xmlns='%s'>x</query>" % NS_ECHO, to="bot@%s" % COMP)
        assert r["type"] == "error", r
        assert error_condition(r.xml) == "service-unavailable", show(r.xml)

    async def body():
        alice = await im_client(srv, "alice", "r")
        await check(alice, "before")
        comp = await Component(srv).connect()
        alice.send_message(COMP, "present")
        m = await comp.expect_message()
        assert m["body"] == "present"
        await comp.close()
        await asyncio.sleep(0.3)
        await check(alice, "after")
    crun(body)


# --------------------------------------------------------------------------
# 3. The component on the pubsub service
# --------------------------------------------------------------------------

def test_component_subscribes_and_publishes_on_pubsub(herald):
    """alice creates node 'grid' on pubsub.localhost and makes
    events.localhost a publisher (XEP-0060 §8.9); the component subscribes
    (§6.1) and receives alice's item (§7.1.2); the component publishes an
    item (result), which alice (subscribed) receives, from pubsub.localhost."""
    srv = comp_server(herald)

    async def body():
        alice = await im_client(srv, "alice", "r")
        comp = await Component(srv).connect()
        r = await alice.iq("<pubsub xmlns='%s'><create node='grid'/></pubsub>" % NS_PUBSUB,
                           to=PUBSUB, itype="set")
        assert r["type"] == "result", r
        r = await alice.iq("<pubsub xmlns='%s'><affiliations node='grid'>"
                           "<affiliation jid='%s' affiliation='publisher'/>"
                           "</affiliations></pubsub>" % (NS_OWNER, COMP), to=PUBSUB, itype="set")
        assert r["type"] == "result", r
        r = await alice.iq("<pubsub xmlns='%s'><subscribe node='grid' jid='%s'/></pubsub>"
                           % (NS_PUBSUB, "alice@localhost"), to=PUBSUB, itype="set")
        assert r["type"] == "result", r

        r = await comp.iq("<pubsub xmlns='%s'><subscribe node='grid' jid='%s'/></pubsub>"
                          % (NS_PUBSUB, COMP), to=PUBSUB, itype="set")
        assert r["type"] == "result", r
        sub = r.xml.find("{%s}pubsub/{%s}subscription" % (NS_PUBSUB, NS_PUBSUB))
        assert sub is not None and sub.get("jid") == COMP \
            and sub.get("subscription") == "subscribed", show(r.xml)

        r = await alice.iq("<pubsub xmlns='%s'><publish node='grid'><item id='a1'>"
                           "<reading xmlns='urn:example:grid'>1</reading></item></publish>"
                           "</pubsub>" % NS_PUBSUB, to=PUBSUB, itype="set")
        assert r["type"] == "result", r
        m = await comp.expect_message()
        ev = m.xml.find("{%s}event/{%s}items" % (NS_EVENT, NS_EVENT))
        assert ev is not None and ev.get("node") == "grid", show(m.xml)
        assert [i.get("id") for i in ev.findall("{%s}item" % NS_EVENT)] == ["a1"], show(m.xml)
        assert m["from"].full == PUBSUB and m["to"].bare == COMP, m

        r = await comp.iq("<pubsub xmlns='%s'><publish node='grid'><item id='c1'>"
                          "<reading xmlns='urn:example:grid'>2</reading></item></publish>"
                          "</pubsub>" % NS_PUBSUB, to=PUBSUB, itype="set")
        assert r["type"] == "result", r

        def is_c1(el):
            ev = el.find("{%s}event/{%s}items" % (NS_EVENT, NS_EVENT))
            return ev is not None and [i.get("id") for i in ev] == ["c1"]
        st = await alice.msgs.expect(is_c1, what="the component's item c1")
        assert st.xml.get("from") == PUBSUB, show(st.xml)
        m = await comp.expect_message()
        assert m.xml.find("{%s}event" % NS_EVENT) is not None, show(m.xml)
    crun(body)
