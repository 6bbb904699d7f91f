"""XEP-0060 behaviours that the pubsub rewrite settles, each checked against
the section that defines it:

* subscription options (§6.3): a submitted pubsub#deliver must be an
  XEP-0004 boolean ("0", "1", "false", "true"), an unknown field is refused,
  a field left out of a submitted form keeps its value, delivery follows
  pubsub#deliver; the same validation in subscribe-and-configure (§6.3.7),
  where a refused form must leave no subscription behind;
* disco#info features (§5.1): 'auto-create' only when [pubsub] auto_create
  is on (§7.1.4), and 'get-pending' (§8.7);
* process pending subscription requests (§8.7, an XEP-0050 ad-hoc command
  'http://jabber.org/protocol/pubsub#get-pending' sent to the service), for
  the owner and for other entities;
* node visibility (the project's decided policy, docs/pubsub.md): a
  whitelist node is listed (disco#items on the service, §5.2, and
  GET /v1/nodes of the REST bridge) only to its owners, publishers,
  publish-only entities and members; open, presence and authorize nodes to
  everyone but outcasts.

slixmpp's xep_0060 plugin is used where it sends what the spec says (it
reads subscription options and subscribes with options; its
set_subscription_options sends an iq of type 'get', so options are
submitted as raw XML); the ad-hoc command is raw XML, exactly as in the
examples of §8.7."""
import xml.etree.ElementTree as ET

import pytest

from e2e_helpers import NS_CLIENT, RawStream, q, run, show
from pubsub_helpers import (NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_EVENT, NS_OWNER,
                            NS_PUBSUB, NS_SUB_AUTH, PUBSUB, assert_ps_error, assert_result,
                            call, disco, disco_features, drain_events, event_of, find_path,
                            form_xml, items_event_children, must_create, must_publish,
                            must_subscribe, my_subscriptions, next_event, next_message,
                            parse_form, payload_xml, ps, ps_client, ps_iq, pubsub_xml,
                            set_affiliation, slix_form)
from rest_helpers import Rest, expect, in_thread, new_token

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer", "dave": "diver"}
P = NS_PUBSUB + "#"
NS_SUB_OPTIONS = NS_PUBSUB + "#subscribe_options"
NS_COMMANDS = "http://jabber.org/protocol/commands"
GET_PENDING = NS_PUBSUB + "#get-pending"
BOB = "bob@localhost"


def pl(text):
    return payload_xml("urn:example:e2e", "entry", text)


def esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;"))


async def barrier(owner, subscriber, marker_node):
    """Publishes to marker_node (subscriber is subscribed to it) and returns
    the pubsub events the subscriber got before the marker's notification;
    the service sends in order, so this proves what did not come."""
    await must_publish(owner, marker_node, None, pl("marker"))
    before = []
    while True:
        m = await next_message(subscriber, lambda m: event_of(m) is not None, what="event")
        items = event_of(m).find(q(NS_EVENT, "items"))
        if items is not None and items.get("node") == marker_node:
            return before
        before.append(m)


def items_events(msgs, node):
    """The item ids of the <items node=node/> events among msgs."""
    out = []
    for m in msgs:
        items = event_of(m).find(q(NS_EVENT, "items")) if event_of(m) is not None else None
        if items is not None and items.get("node") == node:
            out += [i.get("id") for i in items]
    return out


# --------------------------------------------------------------------------
# Subscription options (§6.3)
# --------------------------------------------------------------------------

async def get_options(c, node, jid):
    """§6.3.2 through slixmpp's get_subscription_options: the parsed
    options form (asserting a result with <options><x/></options>)."""
    resp = await call(ps(c).get_subscription_options(PUBSUB, node, jid, timeout=10))
    el = assert_result(resp, "options get for %s on %s" % (jid, node))
    x = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "options"), (NS_DATA, "x"))
    assert x is not None, "options result without <options><x/></options>: %s" % show(el)
    return parse_form(x), x


async def deliver_of(c, node, jid):
    """pubsub#deliver of the subscription as the options form shows it."""
    form, x = await get_options(c, node, jid)
    vals = form.get("pubsub#deliver")
    assert vals is not None and len(vals) == 1 and vals[0] in ("0", "1", "false", "true"), \
        "pubsub#deliver in the options form is not one boolean value: %s" % show(x)
    return vals[0] in ("1", "true")


async def submit_options(c, node, jid, fields):
    """§6.3.5: <options node jid><x type='submit'> FORM_TYPE + fields."""
    return await ps_iq(c, pubsub_xml("<options node='%s' jid='%s'>%s</options>"
                                     % (esc(node), esc(jid), form_xml(NS_SUB_OPTIONS, fields))),
                       "set")


async def set_deliver(c, node, jid, value):
    assert_result(await submit_options(c, node, jid, {"pubsub#deliver": value}),
                  "options submit pubsub#deliver=%r" % value)
    want = value in ("1", "true")
    assert await deliver_of(c, node, jid) == want, \
        "after submitting pubsub#deliver=%r the options form disagrees" % value


async def subscribed_pair(srv):
    """alice owns 'opt' and 'marker'; bob (bare JID) is subscribed to both."""
    alice = await ps_client(srv, "alice", "wonderland")
    bob = await ps_client(srv, "bob", "builder")
    await must_create(alice, "opt")
    await must_create(alice, "marker")
    await must_subscribe(bob, "opt", BOB)
    await must_subscribe(bob, "marker", BOB)
    return alice, bob


def test_options_form_has_deliver(herald):
    """XEP-0060 §6.3.2/§6.3.4 (request subscription options, success):
    the options request returns a form (type 'form') of FORM_TYPE
    pubsub#subscribe_options with a boolean pubsub#deliver field, on ('1' or
    'true') for a new subscription; the <options/> names the node and the
    subscribed JID."""
    srv = herald(users=USERS)

    async def body():
        _, bob = await subscribed_pair(srv)
        form, x = await get_options(bob, "opt", BOB)
        assert x.get("type") == "form", show(x)
        assert form.get("FORM_TYPE") == [NS_SUB_OPTIONS], show(x)
        assert form.get(("type", "pubsub#deliver")) == "boolean", show(x)
        assert form.get("pubsub#deliver") in (["1"], ["true"]), show(x)
    run(body)


@pytest.mark.parametrize("value", ["perhaps", "", "2"], ids=["perhaps", "empty", "two"])
def test_options_invalid_deliver_refused(herald, value):
    """XEP-0060 §6.3.6.2 (form processing failure): pubsub#deliver is a
    boolean field (XEP-0004 §3.3: '0', '1', 'false', 'true'); submitting
    'perhaps', an empty <value/> or '2' must be refused with <bad-request/> +
    <invalid-options xmlns='http://jabber.org/protocol/pubsub#errors'/>, and
    the option keeps its value (still on, so a publication is notified)."""
    srv = herald(users=USERS)

    async def body():
        alice, bob = await subscribed_pair(srv)
        resp = await submit_options(bob, "opt", BOB, {"pubsub#deliver": value})
        assert_ps_error(resp, "bad-request", "invalid-options",
                        what="options submit with pubsub#deliver=%r" % value)
        assert await deliver_of(bob, "opt", BOB) is True, \
            "the refused value %r changed pubsub#deliver" % value
        await must_publish(alice, "opt", "after", pl("still delivered"))
        msg = await next_event(bob, "items", "opt")
        assert [c.get("id") for c in items_event_children(msg)] == ["after"], show(msg.xml)
    run(body)


def test_options_unknown_field_refused(herald):
    """XEP-0060 §6.3.6.2: a submitted options form with a field the
    service does not define (pubsub#bogus), alone or next to a valid
    pubsub#deliver = 0, is refused with <bad-request/> + <invalid-options/>
    and changes nothing (pubsub#deliver stays on)."""
    srv = herald(users=USERS)

    async def body():
        _, bob = await subscribed_pair(srv)
        assert_ps_error(await submit_options(bob, "opt", BOB, {"pubsub#bogus": "1"}),
                        "bad-request", "invalid-options", what="options with pubsub#bogus")
        assert_ps_error(await submit_options(bob, "opt", BOB,
                                             {"pubsub#deliver": "0", "pubsub#bogus": "1"}),
                        "bad-request", "invalid-options",
                        what="options with pubsub#deliver=0 and pubsub#bogus")
        assert await deliver_of(bob, "opt", BOB) is True, \
            "a refused form (with pubsub#bogus) changed pubsub#deliver"
    run(body)


def test_options_omitted_field_keeps_value(herald):
    """XEP-0060 §6.3.5 (form submission): deliver = 'false' is accepted;
    a later submitted form that holds only FORM_TYPE (no pubsub#deliver)
    is accepted and leaves pubsub#deliver false (an options get says so,
    and a publication is still not notified)."""
    srv = herald(users=USERS)

    async def body():
        alice, bob = await subscribed_pair(srv)
        await set_deliver(bob, "opt", BOB, "false")
        assert_result(await submit_options(bob, "opt", BOB, {}),
                      "options submit with FORM_TYPE only")
        assert await deliver_of(bob, "opt", BOB) is False, \
            "a form without pubsub#deliver reset pubsub#deliver from false to true"
        await must_publish(alice, "opt", "quiet", pl("not delivered"))
        before = await barrier(alice, bob, "marker")
        assert items_events(before, "opt") == [], \
            "notified with pubsub#deliver=false: %s" % [show(m.xml) for m in before]
    run(body)


def test_options_deliver_false_then_true(herald):
    """XEP-0060 §6.3.5 and §6.3.6.1 (success): with pubsub#deliver = '0'
    a publication to the node is not notified (the marker node's later
    notification arrives with nothing before it); after pubsub#deliver =
    'true' the next publication is notified, once."""
    srv = herald(users=USERS)

    async def body():
        alice, bob = await subscribed_pair(srv)
        await set_deliver(bob, "opt", BOB, "0")
        await must_publish(alice, "opt", "quiet", pl("not delivered"))
        before = await barrier(alice, bob, "marker")
        assert items_events(before, "opt") == [], [show(m.xml) for m in before]
        await set_deliver(bob, "opt", BOB, "true")
        await must_publish(alice, "opt", "loud", pl("delivered"))
        before = await barrier(alice, bob, "marker")
        assert items_events(before, "opt") == ["loud"], [show(m.xml) for m in before]
    run(body)


# --------------------------------------------------------------------------
# Subscribe and configure (§6.3.7)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [{"pubsub#deliver": "perhaps"}, {"pubsub#deliver": "2"},
                                    {"pubsub#deliver": "1", "pubsub#bogus": "1"}],
                         ids=["deliver-perhaps", "deliver-2", "unknown-field"])
def test_subscribe_and_configure_invalid_options(herald, fields):
    """XEP-0060 §6.3.7 (subscribe and configure) with §6.3.6.2: a subscribe
    request carrying an <options/> form that is not valid (pubsub#deliver not
    a boolean, or an unknown field) is refused with <bad-request/> +
    <invalid-options/>, and no subscription is created: the requester's
    subscriptions (§5.6) and the owner's list (§8.8.1) do not show one, and a
    publication is not notified. Sent with slixmpp's subscribe(options=...)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "sc")
        await must_create(alice, "marker")
        await must_subscribe(bob, "marker", BOB)
        form = slix_form(bob, NS_SUB_OPTIONS, fields)
        resp = await call(ps(bob).subscribe(PUBSUB, "sc", options=form, timeout=10))
        assert_ps_error(resp, "bad-request", "invalid-options",
                        what="subscribe-and-configure with %r" % fields)
        assert [s for s in await my_subscriptions(bob) if s[0] == "sc"] == [], \
            "a refused subscribe-and-configure left a subscription"
        resp = await ps_iq(alice, pubsub_xml("<subscriptions node='sc'/>", NS_OWNER))
        subs = find_path(assert_result(resp), (NS_OWNER, "pubsub"), (NS_OWNER, "subscriptions"))
        assert subs is not None and [s.get("jid") for s in subs] == [], show(resp.xml)
        await must_publish(alice, "sc", "x1", pl("nobody"))
        before = await barrier(alice, bob, "marker")
        assert items_events(before, "sc") == [], [show(m.xml) for m in before]
    run(body)


def test_subscribe_and_configure_valid_options(herald):
    """XEP-0060 §6.3.7: subscribe-and-configure with a valid form
    (pubsub#deliver = 0) creates the subscription (subscription='subscribed')
    with that option set: the options form says false and a publication is
    not notified."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "sc")
        await must_create(alice, "marker")
        await must_subscribe(bob, "marker", BOB)
        form = slix_form(bob, NS_SUB_OPTIONS, {"pubsub#deliver": "0"})
        resp = await call(ps(bob).subscribe(PUBSUB, "sc", options=form, timeout=10))
        el = assert_result(resp, "subscribe-and-configure with pubsub#deliver=0")
        sub = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "subscription"))
        assert sub is not None and sub.get("subscription") == "subscribed", show(el)
        assert await deliver_of(bob, "sc", BOB) is False
        await must_publish(alice, "sc", "x1", pl("quiet"))
        before = await barrier(alice, bob, "marker")
        assert items_events(before, "sc") == [], [show(m.xml) for m in before]
    run(body)


# --------------------------------------------------------------------------
# Advertised features (§5.1)
# --------------------------------------------------------------------------

def test_auto_create_advertised_only_when_on(herald):
    """XEP-0060 §5.1 and §7.1.4: 'http://jabber.org/protocol/pubsub#auto-create'
    is in the service's disco#info with [pubsub] auto_create = true and not
    with auto_create = false (docs/configuration.md)."""
    for auto in (False, True):
        srv = herald(users=USERS, config={"pubsub": {"auto_create": auto}})

        async def body():
            alice = await ps_client(srv, "alice", "wonderland")
            feats = disco_features(await disco(alice, NS_DISCO_INFO))
            assert (P + "auto-create" in feats) is auto, \
                "auto_create=%s but disco#info features are %s" % (auto, feats)
        run(body)


def test_get_pending_advertised(herald):
    """XEP-0060 §5.1 and §8.7: a service that processes pending
    subscription requests through the get-pending ad-hoc command advertises
    'http://jabber.org/protocol/pubsub#get-pending' in disco#info."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        feats = disco_features(await disco(alice, NS_DISCO_INFO))
        assert GET_PENDING in feats, "get-pending not advertised: %s" % feats
    run(body)


# --------------------------------------------------------------------------
# Process pending subscription requests (§8.7, XEP-0050)
# --------------------------------------------------------------------------

def get_pending_command(sessionid=None, node=None):
    """§8.7.1 (no sessionid, no form) or §8.7.4 (the per-node request: the
    session id and a submitted form naming the node), as in the spec."""
    sid = " sessionid='%s'" % esc(sessionid) if sessionid is not None else ""
    form = ""
    if node is not None:
        form = ("<x xmlns='%s' type='submit'><field var='pubsub#node'><value>%s</value>"
                "</field></x>" % (NS_DATA, esc(node)))
    return "<command xmlns='%s'%s node='%s' action='execute'>%s</command>" % (
        NS_COMMANDS, sid, GET_PENDING, form)


def pending_nodes_form(resp, who):
    """§8.7.2: the result holds <command node=get-pending status='executing'
    sessionid=...> with a data form (type 'form') of FORM_TYPE
    pubsub#subscribe_authorization whose list-single field pubsub#node offers
    the nodes. Returns (sessionid, [option values])."""
    el = assert_result(resp, "get-pending executed by %s" % who)
    cmd = el.find(q(NS_COMMANDS, "command"))
    assert cmd is not None, "get-pending result without <command/>: %s" % show(el)
    assert cmd.get("node") == GET_PENDING, show(el)
    assert cmd.get("status") == "executing", "expected status='executing': %s" % show(el)
    assert cmd.get("sessionid"), "no sessionid in %s" % show(el)
    x = cmd.find(q(NS_DATA, "x"))
    assert x is not None and x.get("type") == "form", "no data form of type 'form': %s" % show(el)
    form = parse_form(x)
    assert form.get("FORM_TYPE") == [NS_SUB_AUTH], show(x)
    assert form.get(("type", "pubsub#node")) == "list-single", show(x)
    return cmd.get("sessionid"), form[("options", "pubsub#node")]


def assert_completed(resp, what):
    """§8.7.4: the per-node request is answered with success; when the
    answer carries the <command/>, it names get-pending and says the command
    is completed (status='completed' per XEP-0050 §3.4, or action='completed'
    as in XEP-0060's example)."""
    el = assert_result(resp, what)
    cmd = el.find(q(NS_COMMANDS, "command"))
    if cmd is not None:
        assert cmd.get("node") == GET_PENDING, show(el)
        assert "completed" in (cmd.get("status"), cmd.get("action")), \
            "%s: the command is not completed: %s" % (what, show(el))
    return el


def auth_form_of(msg):
    """The subscribe_authorization form of a message (§8.6), parsed, or None."""
    x = msg.xml.find(q(NS_DATA, "x"))
    if x is None:
        return None
    f = parse_form(x)
    return f if f.get("FORM_TYPE") == [NS_SUB_AUTH] else None


def is_auth_request(node, subscriber=None):
    def pred(m):
        f = auth_form_of(m)
        return (f is not None and f.get("pubsub#node") == [node]
                and (subscriber is None or f.get("pubsub#subscriber_jid") == [subscriber]))
    return pred


def answer_authorization(owner, request, allow):
    """§8.6: the owner submits the authorization form in a message to the
    service, reflecting the request's id."""
    form = auth_form_of(request)
    fields = {"pubsub#node": form["pubsub#node"][0],
              "pubsub#subscriber_jid": form["pubsub#subscriber_jid"][0],
              "pubsub#allow": "true" if allow else "false"}
    m = owner.xmpp.Message()
    m["to"] = PUBSUB
    if request["id"]:
        m["id"] = request["id"]
    m.xml.append(ET.fromstring(form_xml(NS_SUB_AUTH, fields)))
    m.send()


async def pending_setup(srv):
    """alice owns the authorize node 'club' with pending requests from bob
    and carol; bob owns the authorize node 'bobs' with a pending request
    from carol. The forms sent when the requests were made (§8.6) are
    consumed. Returns (alice, bob, carol)."""
    alice = await ps_client(srv, "alice", "wonderland")
    bob = await ps_client(srv, "bob", "builder")
    carol = await ps_client(srv, "carol", "singer")
    await must_create(alice, "club", {"pubsub#access_model": "authorize"})
    await must_create(bob, "bobs", {"pubsub#access_model": "authorize"})
    await must_subscribe(bob, "club", BOB, state="pending")
    await must_subscribe(carol, "club", "carol@localhost", state="pending")
    await must_subscribe(carol, "bobs", "carol@localhost", state="pending")
    for who in (BOB, "carol@localhost"):
        await next_message(alice, is_auth_request("club", who),
                           what="authorization request of %s (§8.6)" % who)
    await next_message(bob, is_auth_request("bobs", "carol@localhost"),
                       what="authorization request of carol (§8.6)")
    await drain_events(alice)
    await drain_events(bob)
    return alice, bob, carol


def test_get_pending_owner(herald):
    """XEP-0060 §8.7 (process pending subscription requests) with XEP-0050:
    the owner executes the ad-hoc command
    'http://jabber.org/protocol/pubsub#get-pending' at the service (§8.7.1)
    and gets a form of FORM_TYPE pubsub#subscribe_authorization whose
    list-single pubsub#node field offers 'club' (a node of hers with pending
    requests) and not 'bobs' (bob's node) (§8.7.2). Submitting the form with
    pubsub#node = 'club' and the session id (§8.7.4) succeeds, and the
    service then sends one subscription authorization message per pending
    request (§8.6 form: pubsub#node, pubsub#subscriber_jid, pubsub#allow):
    exactly one for bob and one for carol. Answering bob's with allow = true
    subscribes him."""
    srv = herald(users=USERS)

    async def body():
        alice, bob, carol = await pending_setup(srv)
        sid, options = pending_nodes_form(await ps_iq(alice, get_pending_command(), "set"),
                                          "alice")
        assert "club" in options, "the owner's node with pending requests is not offered: %s" \
            % options
        assert "bobs" not in options, "bob's node is offered to alice: %s" % options
        assert_completed(await ps_iq(alice, get_pending_command(sid, "club"), "set"),
                         "get-pending for node 'club'")
        got = {}
        for _ in range(2):
            m = await next_message(alice, is_auth_request("club"),
                                   what="authorization request re-sent by get-pending")
            assert m["from"] == PUBSUB, show(m.xml)
            f = auth_form_of(m)
            assert "pubsub#allow" in f, "authorization form without pubsub#allow: %s" % show(m.xml)
            who = f.get("pubsub#subscriber_jid", [None])[0]
            assert who not in got, "two authorization forms for %s" % who
            got[who] = m
        assert sorted(got) == [BOB, "carol@localhost"], sorted(got)
        extra = [m for m in await drain_events(alice, settle=0.5) if auth_form_of(m)]
        assert extra == [], "more than one form per pending request: %s" % [
            show(m.xml) for m in extra]
        answer_authorization(alice, got[BOB], allow=True)
        assert [s[2] for s in await my_subscriptions(bob, "club")] == ["subscribed"]
        assert [s[2] for s in await my_subscriptions(carol, "club")] == ["pending"]
    run(body)


def test_get_pending_not_owner(herald):
    """XEP-0060 §8.7.3 (insufficient privileges): the get-pending form bob
    gets offers his own node 'bobs' and not alice's 'club'; bob's per-node
    request for 'club' (§8.7.4, with his session id) is refused with
    <forbidden/> and sends him no authorization form. dave, who owns no node,
    gets <forbidden/> or a form that offers no node."""
    srv = herald(users=USERS)

    async def body():
        alice, bob, carol = await pending_setup(srv)
        sid, options = pending_nodes_form(await ps_iq(bob, get_pending_command(), "set"), "bob")
        assert "bobs" in options and "club" not in options, options
        assert_ps_error(await ps_iq(bob, get_pending_command(sid, "club"), "set"), "forbidden",
                        what="bob asks for the pending requests of alice's node")
        leaked = [m for m in await drain_events(bob, settle=0.5)
                  if is_auth_request("club")(m)]
        assert leaked == [], "bob received alice's authorization forms: %s" % [
            show(m.xml) for m in leaked]

        dave = await ps_client(srv, "dave", "diver")
        resp = await ps_iq(dave, get_pending_command(), "set")
        if resp["type"] == "error":
            assert_ps_error(resp, "forbidden", what="get-pending by an entity owning no node")
        else:
            _, options = pending_nodes_form(resp, "dave")
            assert options == [], "nodes offered to an entity that owns none: %s" % options
    run(body)


# --------------------------------------------------------------------------
# Node visibility: disco#items (§5.2) and GET /v1/nodes
# --------------------------------------------------------------------------

ALICE_NODES = {"n-open": "open", "n-presence": "presence", "n-authorize": "authorize",
               "n-whitelist": "whitelist"}
BOB_NODE = "b-whitelist"
SEES_WHITELIST = ("owner", "publisher", "publish-only", "member")


def expected_for_bob(aff):
    """The nodes bob may see when his affiliation with each of alice's
    nodes is aff: whitelist only with an affiliation that grants access;
    the others unless outcast; and his own whitelist node."""
    seen = {BOB_NODE}
    for node, model in ALICE_NODES.items():
        if aff == "outcast":
            continue
        if model == "whitelist" and aff not in SEES_WHITELIST:
            continue
        seen.add(node)
    return seen


async def disco_nodes(c):
    resp = await disco(c, NS_DISCO_ITEMS)
    el = assert_result(resp, "disco#items on the service")
    items = el.find(q(NS_DISCO_ITEMS, "query")).findall(q(NS_DISCO_ITEMS, "item"))
    assert all(i.get("jid") == PUBSUB for i in items), show(el)
    return {i.get("node") for i in items}


def rest_nodes(rest):
    body = expect(rest.get("/v1/nodes"), 200, "GET /v1/nodes").json()
    return {n["node"] for n in body["nodes"]}


@pytest.mark.parametrize("aff", ["none", "member", "publisher", "publish-only", "outcast"])
def test_node_visibility(herald, aff):
    """XEP-0060 §5.2 (discover nodes) with the decided visibility policy
    (docs/pubsub.md): alice owns an open, a presence, an authorize and a
    whitelist node; bob owns a whitelist node. With bob's affiliation to
    each of alice's nodes set to <aff> (§8.9.2), disco#items on the service
    lists to bob: the whitelist node only if he is publisher, publish-only
    or member; the open, presence and authorize nodes unless he is outcast;
    his own whitelist node always. alice sees her four nodes and not bob's
    whitelist node (no affiliation). GET /v1/nodes with each one's token
    (docs/rest-api.md: "the nodes the token's JID may see") lists exactly
    the same."""
    srv = herald(users=USERS)
    rest_alice = Rest(srv, new_token(srv, "alice@localhost", scope="read"))
    rest_bob = Rest(srv, new_token(srv, BOB, scope="read"))

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        for node, model in ALICE_NODES.items():
            await must_create(alice, node, {"pubsub#access_model": model})
            if aff != "none":
                await set_affiliation(alice, node, BOB, aff)
        await must_create(bob, BOB_NODE, {"pubsub#access_model": "whitelist"})
        want_bob = expected_for_bob(aff)
        want_alice = set(ALICE_NODES)
        problems = []
        for side, got_alice, got_bob in (
                ("disco#items", await disco_nodes(alice), await disco_nodes(bob)),
                ("GET /v1/nodes", await in_thread(rest_nodes, rest_alice),
                 await in_thread(rest_nodes, rest_bob))):
            for who, got, want in (("bob (%s)" % aff, got_bob, want_bob),
                                   ("alice", got_alice, want_alice)):
                if got != want:
                    problems.append("%s to %s: listed %s, expected %s (hidden but should be "
                                    "listed: %s; listed but should be hidden: %s)"
                                    % (side, who, sorted(got), sorted(want),
                                       sorted(want - got), sorted(got - want)))
        assert not problems, "\n".join(problems)
    run(body)


def test_last_item_follows_subscribe_result(herald):
    """XEP-0060 §6.1.7: with send_last_published_item = on_sub the service
    sends the last item *after* the subscription result, so a client learns
    it is subscribed before the first notification arrives (raw socket, so
    the order on the wire is what is checked)."""
    srv = herald(users=USERS)
    alice = RawStream(srv.port)
    alice.login("alice", "wonderland", "a")
    form = ("<configure><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>%s#node_config</value></field>"
            "<field var='pubsub#send_last_published_item'><value>on_sub</value></field>"
            "</x></configure>" % NS_PUBSUB)
    r = alice.iq("<pubsub xmlns='%s'><create node='ord'/>%s</pubsub>" % (NS_PUBSUB, form),
                 itype="set", to=PUBSUB)
    assert r.get("type") == "result", show(r)
    r = alice.iq("<pubsub xmlns='%s'><publish node='ord'><item id='one'>%s</item></publish>"
                 "</pubsub>" % (NS_PUBSUB, pl("one")), itype="set", to=PUBSUB)
    assert r.get("type") == "result", show(r)
    bob = RawStream(srv.port)
    bob.login("bob", "builder", "b")
    bob.send("<presence/>")  # available: a notification to the bare JID reaches it
    bob.wait_for(lambda: any(e.tag == q(NS_CLIENT, "presence") for e in bob.elements))
    bob.send("<iq type='set' id='sub1' to='%s'><pubsub xmlns='%s'><subscribe node='ord' "
             "jid='%s'/></pubsub></iq>" % (PUBSUB, NS_PUBSUB, BOB))
    bob.wait_for(lambda: any(e.tag == q(NS_CLIENT, "message") for e in bob.elements))
    order = [("iq:" + e.get("id")) if e.tag == q(NS_CLIENT, "iq") else "message"
             for e in bob.elements if e.tag in (q(NS_CLIENT, "iq"), q(NS_CLIENT, "message"))]
    assert order[:2] == ["iq:sub1", "message"], order
    alice.close()
    bob.close()
