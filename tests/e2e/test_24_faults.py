"""Storage faults fail one request, never its neighbours (docs/pubsub.md
"Durability contract"; docs/rest-api.md "Durability").

The server and the CLI read HERALD_TEST_FAULTS="DB:N:KIND[,...]" at start:
the N-th write call (a put or a delete, counted from 1 since the process
started) on the LMDB database DB fails like LMDB's MDB_MAP_FULL (KIND
``full``) or with an I/O error (KIND ``io``), and poisons the transaction it
ran in, as LMDB does. Each request runs its writes in its own nested
transaction inside the loop turn's group commit, so:

* the one request whose write failed gets an error: over XMPP an iq error
  <resource-constraint/> (full) or <internal-server-error/> (io), both of
  type 'wait'; over REST 507 or 500 as problem+json; for a stored offline
  message an error message to its sender;
* every other request of the same loop turn succeeds, is notified/pushed,
  and is durable; the failed one leaves no trace (none of its writes, not
  even those that came before the failing one, and nothing in the service's
  memory), and is not notified;
* the server keeps serving, and exits cleanly on SIGTERM (under ASan this
  also means no leak and no use-after-free).

How the requests get into one loop turn: they are written pipelined in one
socket write (several <iq/> stanzas with distinct ids in one sendall on one
stream, or several HTTP requests in one write on one keep-alive
connection), so the server parses them from one read. That they really
shared a group commit is checked through /metrics around the pipeline:
exactly one commit (herald_commit_seconds_count), none failed
(herald_commit_failures_total) and one operation rolled back alone
(herald_storage_operation_failures_total). Pipelined HTTP requests are
handled one after the other and may take two commits; at most two for
three requests still puts the faulted one in a commit with a neighbour.

How the failing write is aimed: every test prepares its state with the
variable unset, then restarts the server on the same data directory with
HERALD_TEST_FAULTS set. The new process starts counting from zero, and
nothing between its start and the pipelined requests writes to the database
named (logins, roster gets, presence and reads do not write; the store
already has its schema record). Each docstring counts the writes of its
requests on that database; mostly the arrangement is three requests of
which the 2nd is the one whose write is hit, followed by one more request
that must succeed ("keeps serving"). The CLI tests fail the command's one
write (N = 1). Afterwards the state is checked through the
protocol in that process, and again after a SIGTERM restart without the
variable (what was acknowledged is on disk, the failed change is not).
"""
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from e2e_helpers import (DOMAIN, HERALD_BIN, NS_CLIENT, NS_PING, NS_SASL, NS_STANZAS,
                         RawStream, local, ns_of, q, show)
from im_helpers import NS_DELAY, NS_ROSTER
from pubsub_helpers import (NS_DATA, NS_DISCO_ITEMS, NS_EVENT, NS_OWNER, NS_PUBSUB, PUBSUB,
                            _esc, canon, config_form, find_path, form_value, form_xml,
                            item_payloads, parse_form, payload_xml, pubsub_xml)
from rest_helpers import (SANITIZER_MARKS, TOKEN_RE, EventStream, Rest, assert_problem,
                          build_request, curl_request, expect, items_path, new_token, pipeline,
                          rest_server, token_id)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)

KINDS = ("full", "io")
CONDITION = {"full": "resource-constraint", "io": "internal-server-error"}
HTTP_STATUS = {"full": 507, "io": 500}
CLI_MESSAGE = {"full": r"full|space", "io": r"I/O|input/output"}

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer", "dave": "diver",
         "eve": "eavesdropper"}
NS_SUB_OPTIONS = NS_PUBSUB + "#subscribe_options"
FAULTS_VAR = "HERALD_TEST_FAULTS"


def bare(user):
    return "%s@%s" % (user, DOMAIN)


def entry(text):
    return payload_xml("urn:example:faults", "entry", text)


# --------------------------------------------------------------------------
# Arming the faults
# --------------------------------------------------------------------------

def log_since_last_start(srv):
    text = srv.log_text(max_chars=10 ** 7)
    starts = [m.start() for m in re.finditer(r"(?m)^\$ .*\bserve\b", text)]
    return text[starts[-1]:] if starts else text


def assert_no_crash(srv):
    text = srv.log_text(max_chars=10 ** 7)
    for mark in SANITIZER_MARKS:
        assert mark not in text, "the server log shows %r:\n%s" % (mark, text[-4000:])


def storage_counters(srv):
    """(group commits, failed group commits, operations rolled back alone)
    from /metrics."""
    text = curl_request(srv, "GET", "/metrics").text

    def value(name):
        m = re.search(r"^%s (\d+)$" % name, text, re.M)
        assert m, "/metrics has no %s:\n%s" % (name, text)
        return int(m.group(1))
    return (value("herald_commit_seconds_count"), value("herald_commit_failures_total"),
            value("herald_storage_operation_failures_total"))


def counters_delta(before, after):
    return tuple(a - b for a, b in zip(after, before))


ONE_TURN = (1, 0, 1)  # one group commit, which did not fail, with one operation rolled back


def arm(srv, spec):
    """Restarts the server (SIGTERM, must exit 0) on the same data with
    HERALD_TEST_FAULTS=spec, and checks the loud warning at start."""
    srv.env = {FAULTS_VAR: spec}
    srv.restart()
    log = log_since_last_start(srv)
    warned = [line for line in log.splitlines()[1:]
              if not line.startswith("$ ") and re.search(r"%s|\bfault" % FAULTS_VAR, line, re.I)]
    assert warned, ("the server started with %s=%s but logged no warning about it "
                    "(is fault injection implemented?)" % (FAULTS_VAR, spec))


def disarm(srv):
    """SIGTERM (the faulted process must exit 0: no crash, no leak) and a
    start on the same data without the variable."""
    srv.env = {}
    srv.restart()
    assert_no_crash(srv)


# --------------------------------------------------------------------------
# A raw XMPP client that can pipeline
# --------------------------------------------------------------------------

def iq_stanza(iq_id, itype, to, payload):
    to_attr = " to='%s'" % to if to else ""
    return "<iq type='%s' id='%s'%s>%s</iq>" % (itype, iq_id, to_attr, payload)


class Peer:
    """A RawStream logged in (STARTTLS, PLAIN, bind) as user, optionally
    with the roster requested (an interested resource) and initial
    presence sent (an available resource, so bare-JID notifications and
    offline messages reach it). Every element received stays in
    ``rs.seen`` in arrival order."""

    def __init__(self, srv, user, resource="faults", presence=True, roster=False):
        self.srv = srv
        self.user = user
        self.bare = bare(user)
        self.turn = None
        self.rs = RawStream(srv.port, timeout=15)
        self.jid = self.rs.login(user, USERS[user], resource)
        self.n = 0
        if roster:
            ok(self.iq(("get", None, "<query xmlns='%s'/>" % NS_ROSTER)), "roster get")
        if presence:
            self.rs.send("<presence/>")
        self.sync()

    def new_id(self, tag):
        self.n += 1
        return "%s-%s-%d" % (self.user, tag, self.n)

    def answer(self, iq_id, timeout=15.0):
        el = self.rs.wait_element(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id
                                  and e.get("type") in ("result", "error"), timeout)
        assert el is not None, "%s: no answer to iq %s within %.0f s (the server is %s)" % (
            self.jid, iq_id, timeout, "closed" if self.rs.closed else "silent")
        return el

    def iq(self, req):
        """req = (type, to, payload): one request, its answer."""
        iq_id = self.new_id("q")
        assert self.rs.send(iq_stanza(iq_id, req[0], req[1], req[2])), "send failed"
        return self.answer(iq_id)

    def pipeline(self, reqs):
        """Every request in ONE socket write; the answers, in request order.
        ``turn`` gets what the server's storage counters did meanwhile
        (commits, failed commits, operations rolled back alone)."""
        ids = [self.new_id("p") for _ in reqs]
        data = "".join(iq_stanza(i, r[0], r[1], r[2]) for i, r in zip(ids, reqs))
        before = storage_counters(self.srv)
        assert self.rs.send(data), "send failed"
        answers = [self.answer(i) for i in ids]
        self.turn = counters_delta(before, storage_counters(self.srv))
        return answers

    def send_all(self, stanzas):
        assert self.rs.send("".join(stanzas)), "send failed"

    def sync(self):
        """A ping round trip: everything the server queued to this stream
        before answering it has been received."""
        ok(self.iq(("get", DOMAIN, "<ping xmlns='%s'/>" % NS_PING)), "ping")

    def wait_seen(self, pred, what, timeout=10.0):
        """Waits until an element satisfying pred has been received."""
        found = self.rs.wait_for(lambda: any(pred(e) for e in self.rs.seen), timeout)
        assert found, "%s did not receive %s within %.0f s; received: %s" % (
            self.jid, what, timeout, [show(e) for e in self.rs.seen[-8:]])

    def close(self):
        self.rs.close()


def ok(el, what="request"):
    assert el is not None and el.get("type") == "result", \
        "%s: expected an iq result, got %s" % (what, show(el))
    return el


def error_of(el):
    """(condition, error type) of a stanza error."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None, None
    cond = None
    for child in err:
        if ns_of(child.tag) == NS_STANZAS and local(child.tag) != "text":
            cond = local(child.tag)
    return cond, err.get("type")


def faulted(el, kind, what="request"):
    """The iq error a storage fault of this kind must give: condition
    resource-constraint (full) or internal-server-error (io), type wait."""
    assert el is not None and el.get("type") == "error", \
        "%s: expected <%s/> (the injected %s fault), got %s" % (what, CONDITION[kind], kind,
                                                                show(el))
    cond, etype = error_of(el)
    assert (cond, etype) == (CONDITION[kind], "wait"), \
        "%s: expected <%s/> of type wait, got <%s/> of type %r: %s" % (
            what, CONDITION[kind], cond, etype, show(el))
    return el


def check_one_turn(turn, what):
    """The pipelined requests were handled in one loop turn: one group
    commit, not failed, in which exactly one operation was rolled back (so
    the neighbours really shared the faulted request's transaction)."""
    assert turn == ONE_TURN, (
        "%s: expected the pipelined requests in one group commit with one operation rolled "
        "back, i.e. (commits, failed commits, rolled-back operations) = %s, got %s"
        % (what, ONE_TURN, turn))


def check_rest_turns(turn, what):
    """Pipelined HTTP requests on one connection are handled one after the
    other, but a request whose predecessor was answered resumes within the
    same loop turn and may join the next group commit. Three requests in at
    most two commits means the faulted 2nd shared its commit with a
    neighbour (the commits are {1, 2}, {3} or {1}, {2, 3}); no commit failed
    and exactly one operation was rolled back."""
    commits, failed, rolled_back = turn
    assert commits in (1, 2) and (failed, rolled_back) == (0, 1), (
        "%s: expected the three requests in at most two group commits, none failed, one "
        "operation rolled back; (commits, failed commits, rolled-back operations) = %s"
        % (what, turn))


def check_three(answers, kind, what, peer):
    """The pipelined 1st and 3rd requests succeeded, the 2nd got the fault,
    all three in one group commit."""
    assert len(answers) == 3
    ok(answers[0], "%s #1 (before the faulted one)" % what)
    faulted(answers[1], kind, "%s #2 (its write hits the fault)" % what)
    ok(answers[2], "%s #3 (after the faulted one, same loop turn)" % what)
    check_one_turn(peer.turn, what)


# --------------------------------------------------------------------------
# Pubsub requests: (iq type, to, payload)
# --------------------------------------------------------------------------

def r_create(node, config=None):
    inner = "<create node='%s'/>" % _esc(node)
    if config:
        inner += "<configure>%s</configure>" % config_form(config)
    return ("set", PUBSUB, pubsub_xml(inner))


def r_publish(node, item_id, payload):
    return ("set", PUBSUB, pubsub_xml("<publish node='%s'><item id='%s'>%s</item></publish>"
                                      % (_esc(node), _esc(item_id), payload)))


def r_retract(node, item_id):
    return ("set", PUBSUB, pubsub_xml("<retract node='%s' notify='true'><item id='%s'/></retract>"
                                      % (_esc(node), _esc(item_id))))


def r_subscribe(node, jid, deliver=None):
    inner = "<subscribe node='%s' jid='%s'/>" % (_esc(node), _esc(jid))
    if deliver is not None:
        inner += "<options>%s</options>" % form_xml(NS_SUB_OPTIONS,
                                                      {"pubsub#deliver": "1" if deliver else "0"})
    return ("set", PUBSUB, pubsub_xml(inner))


def r_unsubscribe(node, jid):
    return ("set", PUBSUB, pubsub_xml("<unsubscribe node='%s' jid='%s'/>" % (_esc(node),
                                                                             _esc(jid))))


def r_options_set(node, jid, deliver):
    return ("set", PUBSUB, pubsub_xml("<options node='%s' jid='%s'>%s</options>" % (
        _esc(node), _esc(jid), form_xml(NS_SUB_OPTIONS, {"pubsub#deliver": "1" if deliver
                                                         else "0"}))))


def r_delete(node):
    return ("set", PUBSUB, pubsub_xml("<delete node='%s'/>" % _esc(node), NS_OWNER))


def r_purge(node):
    return ("set", PUBSUB, pubsub_xml("<purge node='%s'/>" % _esc(node), NS_OWNER))


def r_configure(node, fields):
    return ("set", PUBSUB, pubsub_xml("<configure node='%s'>%s</configure>"
                                      % (_esc(node), config_form(fields)), NS_OWNER))


def r_owner_aff(node, jid, aff):
    return ("set", PUBSUB, pubsub_xml("<affiliations node='%s'><affiliation jid='%s' "
                                      "affiliation='%s'/></affiliations>"
                                      % (_esc(node), _esc(jid), aff), NS_OWNER))


def r_owner_sub(node, jid, state):
    return ("set", PUBSUB, pubsub_xml("<subscriptions node='%s'><subscription jid='%s' "
                                      "subscription='%s'/></subscriptions>"
                                      % (_esc(node), _esc(jid), state), NS_OWNER))


def r_roster_set(jid, name):
    return ("set", None, "<query xmlns='%s'><item jid='%s' name='%s'/></query>"
            % (NS_ROSTER, _esc(jid), _esc(name)))


# --------------------------------------------------------------------------
# Pubsub reads through the protocol
# --------------------------------------------------------------------------

def items(p, node):
    """{item id: canonical payload} of a node (all items)."""
    el = ok(p.iq(("get", PUBSUB, pubsub_xml("<items node='%s'/>" % _esc(node)))),
            "items of %r" % node)
    its = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "items"))
    assert its is not None, "items result without <items/>: %s" % show(el)
    return {k: (canon(v) if v is not None else None) for k, v in item_payloads(its).items()}


def expect_items(p, node, expected, what):
    """The node holds exactly these items {id: payload XML text}."""
    got = items(p, node)
    want = {k: canon(ET.fromstring(v)) for k, v in expected.items()}
    assert sorted(got) == sorted(want), "%s: items of %r are %s, expected %s" % (
        what, node, sorted(got), sorted(want))
    assert got == want, "%s: payloads of %r differ from what was published" % (what, node)


def node_names(p):
    """Every node the service lists (disco#items, §5.2)."""
    el = ok(p.iq(("get", PUBSUB, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)), "disco#items")
    query = el.find(q(NS_DISCO_ITEMS, "query"))
    return {i.get("node") for i in query.findall(q(NS_DISCO_ITEMS, "item"))}


def my_subs(p):
    """{(node, jid)} of the requester's subscriptions (§5.6) in state subscribed."""
    el = ok(p.iq(("get", PUBSUB, pubsub_xml("<subscriptions/>"))), "my subscriptions")
    subs = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "subscriptions"))
    assert subs is not None, show(el)
    return {(s.get("node"), s.get("jid")) for s in subs.findall(q(NS_PUBSUB, "subscription"))
            if s.get("subscription") == "subscribed"}


def deliver_option(p, node, jid):
    """pubsub#deliver of jid's subscription to node (§6.3.2), or the error
    condition when there is none."""
    el = p.iq(("get", PUBSUB, pubsub_xml("<options node='%s' jid='%s'/>" % (_esc(node),
                                                                            _esc(jid)))))
    if el.get("type") == "error":
        return error_of(el)[0]
    x = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "options"), (NS_DATA, "x"))
    assert x is not None, "options result without a form: %s" % show(el)
    return form_value(parse_form(x), "pubsub#deliver")


def owner_affs(p, node):
    el = ok(p.iq(("get", PUBSUB, pubsub_xml("<affiliations node='%s'/>" % _esc(node),
                                            NS_OWNER))), "owner affiliations of %r" % node)
    affs = find_path(el, (NS_OWNER, "pubsub"), (NS_OWNER, "affiliations"))
    return {a.get("jid"): a.get("affiliation") for a in affs.findall(q(NS_OWNER, "affiliation"))}


def owner_subs(p, node):
    el = ok(p.iq(("get", PUBSUB, pubsub_xml("<subscriptions node='%s'/>" % _esc(node),
                                            NS_OWNER))), "owner subscriptions of %r" % node)
    subs = find_path(el, (NS_OWNER, "pubsub"), (NS_OWNER, "subscriptions"))
    return {s.get("jid"): s.get("subscription")
            for s in subs.findall(q(NS_OWNER, "subscription"))}


def node_title(p, node):
    el = ok(p.iq(("get", PUBSUB, pubsub_xml("<configure node='%s'/>" % _esc(node), NS_OWNER))),
            "configuration of %r" % node)
    x = find_path(el, (NS_OWNER, "pubsub"), (NS_OWNER, "configure"), (NS_DATA, "x"))
    assert x is not None, show(el)
    return form_value(parse_form(x), "pubsub#title") or ""


def roster(p):
    """{contact: name} of the user's roster."""
    el = ok(p.iq(("get", None, "<query xmlns='%s'/>" % NS_ROSTER)), "roster get")
    query = el.find(q(NS_ROSTER, "query"))
    return {i.get("jid"): i.get("name") for i in query.findall(q(NS_ROSTER, "item"))
            if i.get("subscription") != "remove"}


# --------------------------------------------------------------------------
# Notifications and pushes received
# --------------------------------------------------------------------------

def is_event(el):
    return el.tag == q(NS_CLIENT, "message") and el.find(q(NS_EVENT, "event")) is not None


def event_summary(el):
    """('items', node, (('item', id) | ('retract', id), ...)) or
    (kind, node, ()) for delete/purge/configuration/subscription."""
    ev = el.find(q(NS_EVENT, "event"))
    first = ev[0]
    kind = local(first.tag)
    if kind == "items":
        return (kind, first.get("node"), tuple((local(c.tag), c.get("id")) for c in first))
    return (kind, first.get("node"), ())


def events(p):
    """Every pubsub event this connection received, in order."""
    return [event_summary(e) for e in p.rs.seen if is_event(e)]


def wait_event(p, summary, what=None):
    p.wait_seen(lambda e: is_event(e) and event_summary(e) == summary,
                what or "the event %r" % (summary,))


def is_push(el):
    return (el.tag == q(NS_CLIENT, "iq") and el.get("type") == "set"
            and el.find(q(NS_ROSTER, "query")) is not None)


def push_contacts(p):
    out = []
    for el in p.rs.seen:
        if is_push(el):
            out += [i.get("jid") for i in el.find(q(NS_ROSTER, "query")).findall(
                q(NS_ROSTER, "item"))]
    return out


# --------------------------------------------------------------------------
# 1. Publish
# --------------------------------------------------------------------------

@pytest.mark.parametrize("db", ["items", "item_ids", "nodes"])
@pytest.mark.parametrize("kind", KINDS)
def test_publish_fault_fails_only_that_publish(herald, kind, db):
    """XEP-0060 §7.1 under a storage fault. A publish of a new item id (to a
    node far below max_items) writes exactly once to each of items (the
    item), item_ids (id -> sequence) and nodes (the node record with the
    next sequence and the count); so with DB:2 the 2nd of three pipelined
    publishes fails: on items at its first write, on item_ids after its
    item record was written, on nodes after both (those earlier writes must
    be rolled back with it). Publishes 1 and 3 are acknowledged, retrievable
    and notified to the subscriber; 2 is neither stored nor notified; a 4th
    publish works. After a restart without faults: items 1, 3, 4 with
    their payloads, nothing of 2."""
    srv = herald(users=USERS)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    ok(alice.iq(r_create("feed", {"pubsub#max_items": "100"})), "create feed")
    ok(bob.iq(r_subscribe("feed", bob.bare)), "bob subscribes")
    alice.close(), bob.close()

    arm(srv, "%s:2:%s" % (db, kind))
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    sent = {"i%d" % k: entry("item %d" % k) for k in range(1, 5)}
    answers = alice.pipeline([r_publish("feed", "i%d" % k, sent["i%d" % k]) for k in (1, 2, 3)])
    check_three(answers, kind, "publish", alice)
    ok(alice.iq(r_publish("feed", "i4", sent["i4"])), "publish i4 after the fault")
    del sent["i2"]
    expect_items(alice, "feed", sent, "in the faulted process")
    wait_event(bob, ("items", "feed", (("item", "i4"),)))
    assert events(bob) == [("items", "feed", (("item", i),)) for i in ("i1", "i3", "i4")], \
        "bob's notifications: %s" % events(bob)
    alice.close(), bob.close()

    disarm(srv)
    alice = Peer(srv, "alice")
    expect_items(alice, "feed", sent, "after a restart")
    ok(alice.iq(r_publish("feed", "i2", entry("item 2 again"))), "publish i2 again")


# --------------------------------------------------------------------------
# 2. Node changes, retract, subscribe
# --------------------------------------------------------------------------

@pytest.mark.parametrize("db", ["nodes", "meta", "affs"])
@pytest.mark.parametrize("kind", KINDS)
def test_create_fault_fails_only_that_create(herald, kind, db):
    """XEP-0060 §8.1 under a storage fault. Creating a node writes once to
    meta (the node id counter), once to nodes (the node record) and once to
    affs (the owner's affiliation); with DB:2 the 2nd of three pipelined
    creates fails (for affs after its node record and id counter were
    written: both must be rolled back, and the node must not exist in
    memory either). c1 and c3 exist and work, c2 does not (not listed,
    publishing to it is item-not-found); a 4th create works. After a
    restart without faults the same holds, and c2 can then be created
    (no leftover record or id)."""
    srv = herald(users=USERS)
    arm(srv, "%s:2:%s" % (db, kind))
    alice = Peer(srv, "alice")
    check_three(alice.pipeline([r_create(n) for n in ("c1", "c2", "c3")]), kind, "create",
                alice)
    ok(alice.iq(r_create("c4")), "create c4 after the fault")
    assert node_names(alice) == {"c1", "c3", "c4"}
    el = alice.iq(r_publish("c2", "x", entry("x")))
    assert error_of(el)[0] == "item-not-found", "publish to the failed c2: %s" % show(el)
    for n in ("c1", "c3"):
        ok(alice.iq(r_publish(n, "x", entry(n))), "publish to %s" % n)
        assert owner_affs(alice, n) == {alice.bare: "owner"}
    alice.close()

    disarm(srv)
    alice = Peer(srv, "alice")
    assert node_names(alice) == {"c1", "c3", "c4"}
    for n in ("c1", "c3"):
        expect_items(alice, n, {"x": entry(n)}, "after a restart")
        assert owner_affs(alice, n) == {alice.bare: "owner"}
    ok(alice.iq(r_create("c2")), "create c2 after the restart")
    expect_items(alice, "c2", {}, "the new c2")


@pytest.mark.parametrize("kind", KINDS)
def test_delete_fault_fails_only_that_delete(herald, kind):
    """XEP-0060 §8.4 under a storage fault. Deleting a node writes to nodes
    once (removing the node record; its items, subscriptions and
    affiliations go from their own databases); with nodes:2 the 2nd of
    three pipelined deletes fails. d1 and d3 are gone and their subscriber
    was told (<delete/>); d2 still exists with its item, its subscriber and
    its owner, and was not announced as deleted; the service keeps going (a
    publish to d2 is notified). After a restart without faults: only d2,
    with both items and bob's subscription."""
    srv = herald(users=USERS)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    for n in ("d1", "d2", "d3"):
        ok(alice.iq(r_create(n)), "create %s" % n)
        ok(alice.iq(r_publish(n, "x", entry(n))), "publish to %s" % n)
        ok(bob.iq(r_subscribe(n, bob.bare)), "bob subscribes to %s" % n)
    alice.close(), bob.close()

    arm(srv, "nodes:2:%s" % kind)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    check_three(alice.pipeline([r_delete(n) for n in ("d1", "d2", "d3")]), kind, "delete",
                alice)
    ok(alice.iq(r_publish("d2", "after", entry("after"))), "publish to d2 after the fault")
    assert node_names(alice) == {"d2"}
    expect_items(alice, "d2", {"x": entry("d2"), "after": entry("after")}, "faulted process")
    assert owner_affs(alice, "d2") == {alice.bare: "owner"}
    assert owner_subs(alice, "d2") == {bob.bare: "subscribed"}
    wait_event(bob, ("items", "d2", (("item", "after"),)))
    assert events(bob) == [("delete", "d1", ()), ("delete", "d3", ()),
                           ("items", "d2", (("item", "after"),))], events(bob)
    alice.close(), bob.close()

    disarm(srv)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    assert node_names(alice) == {"d2"}
    expect_items(alice, "d2", {"x": entry("d2"), "after": entry("after")}, "after a restart")
    assert my_subs(bob) == {("d2", bob.bare)}


@pytest.mark.parametrize("kind", KINDS)
def test_purge_fault_fails_only_that_purge(herald, kind):
    """XEP-0060 §8.5 under a storage fault. Purging deletes the node's items
    (items, item_ids) and then writes the node record once (nodes, the
    count); with nodes:2 the 2nd of three pipelined purges fails after its
    item deletions, which must be rolled back: p2 keeps both items, p1 and
    p3 are empty, the subscriber got <purge/> for p1 and p3 only. A publish
    afterwards works. After a restart without faults: the same items."""
    srv = herald(users=USERS)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    for n in ("p1", "p2", "p3"):
        ok(alice.iq(r_create(n)), "create %s" % n)
        for i in ("a", "b"):
            ok(alice.iq(r_publish(n, i, entry(n + i))), "publish %s to %s" % (i, n))
        ok(bob.iq(r_subscribe(n, bob.bare)), "bob subscribes to %s" % n)
    alice.close(), bob.close()

    arm(srv, "nodes:2:%s" % kind)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    check_three(alice.pipeline([r_purge(n) for n in ("p1", "p2", "p3")]), kind, "purge", alice)
    ok(alice.iq(r_publish("p1", "after", entry("after"))), "publish to p1 after the fault")
    state = {"p1": {"after": entry("after")}, "p2": {"a": entry("p2a"), "b": entry("p2b")},
             "p3": {}}
    for n, want in state.items():
        expect_items(alice, n, want, "faulted process")
    wait_event(bob, ("items", "p1", (("item", "after"),)))
    assert events(bob) == [("purge", "p1", ()), ("purge", "p3", ()),
                           ("items", "p1", (("item", "after"),))], events(bob)
    alice.close(), bob.close()

    disarm(srv)
    alice = Peer(srv, "alice")
    for n, want in state.items():
        expect_items(alice, n, want, "after a restart")


@pytest.mark.parametrize("kind", KINDS)
def test_configure_fault_fails_only_that_configure(herald, kind):
    """XEP-0060 §8.2 under a storage fault. Submitting a configuration form
    (no max_items change, so no trimming) writes the node record once
    (nodes); with nodes:2 the 2nd of three pipelined configures fails: its
    title stays the old one, in memory too (the configuration get answers
    from the service's state), while cfg1 and cfg3 have their new titles;
    a later configure works. After a restart without faults: the same."""
    srv = herald(users=USERS)
    alice = Peer(srv, "alice")
    for n in ("cfg1", "cfg2", "cfg3"):
        ok(alice.iq(r_create(n, {"pubsub#title": "old"})), "create %s" % n)
    alice.close()

    arm(srv, "nodes:2:%s" % kind)
    alice = Peer(srv, "alice")
    check_three(alice.pipeline([r_configure(n, {"pubsub#title": "new " + n})
                                for n in ("cfg1", "cfg2", "cfg3")]), kind, "configure", alice)
    ok(alice.iq(r_configure("cfg1", {"pubsub#title": "newer cfg1"})), "configure after the fault")
    want = {"cfg1": "newer cfg1", "cfg2": "old", "cfg3": "new cfg3"}
    assert {n: node_title(alice, n) for n in want} == want
    alice.close()

    disarm(srv)
    alice = Peer(srv, "alice")
    assert {n: node_title(alice, n) for n in want} == want


@pytest.mark.parametrize("db", ["items", "item_ids", "nodes"])
@pytest.mark.parametrize("kind", KINDS)
def test_retract_fault_fails_only_that_retract(herald, kind, db):
    """XEP-0060 §7.2 under a storage fault. Retracting an item deletes once
    from items (the record), once from item_ids (the id) and writes the
    node record once (nodes, the count); with DB:2 the 2nd of three
    pipelined retracts fails (for item_ids and nodes after its item record
    was deleted, which must come back). r2 stays with its payload; r1 and
    r3 are gone and their retraction was notified (notify='true'), r2's was
    not; a 4th retract works. After a restart without faults: only r2."""
    srv = herald(users=USERS)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    ok(alice.iq(r_create("r")), "create r")
    for k in range(1, 5):
        ok(alice.iq(r_publish("r", "r%d" % k, entry("r%d" % k))), "publish r%d" % k)
    ok(bob.iq(r_subscribe("r", bob.bare)), "bob subscribes")
    alice.close(), bob.close()

    arm(srv, "%s:2:%s" % (db, kind))
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    check_three(alice.pipeline([r_retract("r", "r%d" % k) for k in (1, 2, 3)]), kind,
                "retract", alice)
    expect_items(alice, "r", {"r2": entry("r2"), "r4": entry("r4")}, "faulted process")
    ok(alice.iq(r_retract("r", "r4")), "retract r4 after the fault")
    wait_event(bob, ("items", "r", (("retract", "r4"),)))
    assert events(bob) == [("items", "r", (("retract", i),)) for i in ("r1", "r3", "r4")], \
        events(bob)
    alice.close(), bob.close()

    disarm(srv)
    alice = Peer(srv, "alice")
    expect_items(alice, "r", {"r2": entry("r2")}, "after a restart")


@pytest.mark.parametrize("kind", KINDS)
def test_subscribe_fault_fails_only_that_subscribe(herald, kind):
    """XEP-0060 §6.1 under a storage fault. A subscription writes one subs
    record; with subs:2 the 2nd of three pipelined subscribes (to s1, s2,
    s3) fails. bob holds s1 and s3 only, in memory too: of three publishes
    he is notified for s1 and s3, not s2; a 4th subscribe works. After a
    restart without faults: s1, s3, s4."""
    srv = herald(users=USERS)
    alice = Peer(srv, "alice")
    for n in ("s1", "s2", "s3", "s4"):
        ok(alice.iq(r_create(n)), "create %s" % n)
    alice.close()

    arm(srv, "subs:2:%s" % kind)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    check_three(bob.pipeline([r_subscribe(n, bob.bare) for n in ("s1", "s2", "s3")]), kind,
                "subscribe", bob)
    ok(bob.iq(r_subscribe("s4", bob.bare)), "subscribe to s4 after the fault")
    assert my_subs(bob) == {(n, bob.bare) for n in ("s1", "s3", "s4")}
    for n in ("s2", "s1", "s3"):
        ok(alice.iq(r_publish(n, "x", entry(n))), "publish to %s" % n)
    wait_event(bob, ("items", "s3", (("item", "x"),)))
    assert events(bob) == [("items", n, (("item", "x"),)) for n in ("s1", "s3")], events(bob)
    alice.close(), bob.close()

    disarm(srv)
    bob = Peer(srv, "bob")
    assert my_subs(bob) == {(n, bob.bare) for n in ("s1", "s3", "s4")}


def sub_result_state(el):
    sub = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "subscription"))
    assert sub is not None, "subscribe result without <subscription/>: %s" % show(el)
    return sub.get("subscription")


@pytest.mark.parametrize("kind", KINDS)
def test_subscribe_with_options_fault(herald, kind):
    """XEP-0060 §6.3.7 (subscribe and configure in one request: <subscribe/>
    plus <options> with a subscribe_options form, pubsub#deliver = 0) under
    a storage fault; this combination once crashed the server
    (heap-use-after-free: the failed request's subscription was freed by the
    rollback and then used to build the answer). Pipelined: a plain
    subscribe to o0 (one subs write: the 1st), then subscribe+options to o1
    and to o2. With subs:2, o1's first subs write fails: o1 gets the error
    and leaves no subscription; o0 and o2 succeed, o2 with deliver off.
    Publishing to all three notifies bob for o0 only (o2 has delivery off,
    o1 no subscription). After a restart without faults: subscriptions o0
    and o2, o2 still with deliver 0."""
    srv = herald(users=USERS)
    alice = Peer(srv, "alice")
    for n in ("o0", "o1", "o2"):
        ok(alice.iq(r_create(n)), "create %s" % n)
    alice.close()

    arm(srv, "subs:2:%s" % kind)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    answers = bob.pipeline([r_subscribe("o0", bob.bare), r_subscribe("o1", bob.bare, False),
                            r_subscribe("o2", bob.bare, False)])
    check_three(answers, kind, "subscribe (+options)", bob)
    assert sub_result_state(answers[0]) == sub_result_state(answers[2]) == "subscribed"
    assert my_subs(bob) == {("o0", bob.bare), ("o2", bob.bare)}
    assert deliver_option(bob, "o2", bob.bare) in ("0", "false")
    assert deliver_option(bob, "o0", bob.bare) in ("1", "true")
    assert deliver_option(bob, "o1", bob.bare) == "unexpected-request"
    for n in ("o1", "o2", "o0"):
        ok(alice.iq(r_publish(n, "x", entry(n))), "publish to %s" % n)
    wait_event(bob, ("items", "o0", (("item", "x"),)))
    bob.sync()
    assert events(bob) == [("items", "o0", (("item", "x"),))], events(bob)
    ok(bob.iq(r_subscribe("o1", bob.bare, False)), "subscribe+options to o1 after the fault")
    alice.close(), bob.close()

    disarm(srv)
    bob = Peer(srv, "bob")
    assert my_subs(bob) == {(n, bob.bare) for n in ("o0", "o1", "o2")}
    for n in ("o1", "o2"):
        assert deliver_option(bob, n, bob.bare) in ("0", "false"), n


@pytest.mark.parametrize("kind", KINDS)
def test_subscribe_with_options_second_write_fault(herald, kind):
    """The same combination with the fault on the 2nd subs write of three
    pipelined subscribe+options requests (o1, o2, o3, all deliver = 0).
    If a subscribe+options request stores its subscription and then its
    options in two writes, the failing write is o1's second one (the old
    crash: the subscription written, the options write failed); if it
    stores them in one write, it is o2's. Either way exactly one of o1, o2
    fails with the fault's error, the others succeed with delivery off, and
    the failed one leaves no subscription, also after a restart."""
    srv = herald(users=USERS)
    alice = Peer(srv, "alice")
    nodes = ("o1", "o2", "o3")
    for n in nodes:
        ok(alice.iq(r_create(n)), "create %s" % n)
    alice.close()

    arm(srv, "subs:2:%s" % kind)
    bob = Peer(srv, "bob")
    answers = bob.pipeline([r_subscribe(n, bob.bare, False) for n in nodes])
    bad = [i for i, a in enumerate(answers) if a.get("type") != "result"]
    assert len(bad) == 1 and bad[0] in (0, 1), "expected exactly one of o1, o2 to fail: %s" % [
        show(a) for a in answers]
    faulted(answers[bad[0]], kind, "subscribe+options to %s" % nodes[bad[0]])
    check_one_turn(bob.turn, "subscribe+options")
    good = [n for i, n in enumerate(nodes) if i != bad[0]]
    assert my_subs(bob) == {(n, bob.bare) for n in good}
    for n in good:
        assert deliver_option(bob, n, bob.bare) in ("0", "false"), n
    assert deliver_option(bob, nodes[bad[0]], bob.bare) == "unexpected-request"
    bob.close()

    disarm(srv)
    bob = Peer(srv, "bob")
    assert my_subs(bob) == {(n, bob.bare) for n in good}
    for n in good:
        assert deliver_option(bob, n, bob.bare) in ("0", "false"), n


# --------------------------------------------------------------------------
# 3. Subscription options, unsubscribe, owner affiliations/subscriptions
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_subscription_options_fault(herald, kind):
    """XEP-0060 §6.3.5 under a storage fault. Setting subscription options
    rewrites the one subs record; with subs:2 the 2nd of three pipelined
    option sets (deliver = 0 on so1, so2, so3) fails: so2 keeps delivery
    on, in memory too (publishing to all three notifies bob for so2 only).
    After a restart without faults: the same options."""
    srv = herald(users=USERS)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    nodes = ("so1", "so2", "so3")
    for n in nodes:
        ok(alice.iq(r_create(n)), "create %s" % n)
        ok(bob.iq(r_subscribe(n, bob.bare)), "bob subscribes to %s" % n)
    alice.close(), bob.close()

    arm(srv, "subs:2:%s" % kind)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    check_three(bob.pipeline([r_options_set(n, bob.bare, False) for n in nodes]), kind,
                "options set", bob)
    want = {"so1": "0", "so2": "1", "so3": "0"}
    norm = {"false": "0", "true": "1"}
    got = {n: norm.get(deliver_option(bob, n, bob.bare), deliver_option(bob, n, bob.bare))
           for n in nodes}
    assert got == want
    for n in ("so1", "so3", "so2"):
        ok(alice.iq(r_publish(n, "x", entry(n))), "publish to %s" % n)
    wait_event(bob, ("items", "so2", (("item", "x"),)))
    bob.sync()
    assert events(bob) == [("items", "so2", (("item", "x"),))], events(bob)
    ok(bob.iq(r_options_set("so2", bob.bare, True)), "options set after the fault")
    alice.close(), bob.close()

    disarm(srv)
    bob = Peer(srv, "bob")
    got = {n: norm.get(deliver_option(bob, n, bob.bare), deliver_option(bob, n, bob.bare))
           for n in nodes}
    assert got == want


@pytest.mark.parametrize("kind", KINDS)
def test_unsubscribe_fault(herald, kind):
    """XEP-0060 §6.2 under a storage fault. Unsubscribing deletes the one
    subs record; with subs:2 the 2nd of three pipelined unsubscribes (u1,
    u2, u3) fails: bob is still subscribed to u2 (and notified of its
    items), not to u1 and u3. After a restart without faults: u2 only."""
    srv = herald(users=USERS)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    nodes = ("u1", "u2", "u3")
    for n in nodes:
        ok(alice.iq(r_create(n)), "create %s" % n)
        ok(bob.iq(r_subscribe(n, bob.bare)), "bob subscribes to %s" % n)
    alice.close(), bob.close()

    arm(srv, "subs:2:%s" % kind)
    alice, bob = Peer(srv, "alice"), Peer(srv, "bob")
    check_three(bob.pipeline([r_unsubscribe(n, bob.bare) for n in nodes]), kind,
                "unsubscribe", bob)
    assert my_subs(bob) == {("u2", bob.bare)}
    for n in ("u1", "u3", "u2"):
        ok(alice.iq(r_publish(n, "x", entry(n))), "publish to %s" % n)
    wait_event(bob, ("items", "u2", (("item", "x"),)))
    bob.sync()
    assert events(bob) == [("items", "u2", (("item", "x"),))], events(bob)
    alice.close(), bob.close()

    disarm(srv)
    bob = Peer(srv, "bob")
    assert my_subs(bob) == {("u2", bob.bare)}
    ok(bob.iq(r_unsubscribe("u2", bob.bare)), "unsubscribe from u2 after the restart")


@pytest.mark.parametrize("kind", KINDS)
def test_owner_affiliations_fault(herald, kind):
    """XEP-0060 §8.9.2 under a storage fault. Setting one affiliation writes
    one affs record; with affs:2 the 2nd of three pipelined affiliation
    sets (bob, carol, dave as publishers of a publishers-only node) fails:
    carol has no affiliation, in memory too (her publish is forbidden),
    bob and dave publish. After a restart without faults: the same."""
    srv = herald(users=USERS)
    alice = Peer(srv, "alice")
    ok(alice.iq(r_create("club", {"pubsub#publish_model": "publishers"})), "create club")
    alice.close()

    arm(srv, "affs:2:%s" % kind)
    alice = Peer(srv, "alice")
    check_three(alice.pipeline([r_owner_aff("club", bare(u), "publisher")
                                for u in ("bob", "carol", "dave")]),
                kind, "affiliation set", alice)
    want = {bare("alice"): "owner", bare("bob"): "publisher", bare("dave"): "publisher"}
    assert owner_affs(alice, "club") == want
    for user in ("bob", "carol", "dave"):
        p = Peer(srv, user)
        el = p.iq(r_publish("club", user, entry(user)))
        if user == "carol":
            assert error_of(el)[0] == "forbidden", "carol's publish: %s" % show(el)
        else:
            ok(el, "%s publishes" % user)
        p.close()
    alice.close()

    disarm(srv)
    alice = Peer(srv, "alice")
    assert owner_affs(alice, "club") == want
    expect_items(alice, "club", {"bob": entry("bob"), "dave": entry("dave")}, "after a restart")


@pytest.mark.parametrize("kind", KINDS)
def test_owner_subscriptions_fault(herald, kind):
    """XEP-0060 §8.8.2 under a storage fault. An owner setting a new
    subscription for a JID writes one subs record; with subs:2 the 2nd of
    three pipelined sets (bob, carol, dave subscribed) fails: carol has no
    subscription (in memory too: not notified), bob and dave have one and
    are notified. After a restart without faults: bob and dave."""
    srv = herald(users=USERS)
    alice = Peer(srv, "alice")
    ok(alice.iq(r_create("managed")), "create managed")
    alice.close()

    arm(srv, "subs:2:%s" % kind)
    alice = Peer(srv, "alice")
    peers = {u: Peer(srv, u) for u in ("bob", "carol", "dave")}
    check_three(alice.pipeline([r_owner_sub("managed", bare(u), "subscribed")
                                for u in ("bob", "carol", "dave")]),
                kind, "subscription set", alice)
    want = {bare("bob"): "subscribed", bare("dave"): "subscribed"}
    assert owner_subs(alice, "managed") == want
    ok(alice.iq(r_publish("managed", "x", entry("x"))), "publish to managed")
    for u in ("bob", "dave"):
        wait_event(peers[u], ("items", "managed", (("item", "x"),)))
    peers["carol"].sync()
    assert events(peers["carol"]) == [], "carol was notified: %s" % events(peers["carol"])
    for p in peers.values():
        p.close()
    alice.close()

    disarm(srv)
    alice = Peer(srv, "alice")
    assert owner_subs(alice, "managed") == want


# --------------------------------------------------------------------------
# 4. Roster
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_roster_set_fault(herald, kind):
    """RFC 6121 §2.3 under a storage fault. Adding a contact writes one
    roster record (and the roster version counter in meta); with roster:2
    the 2nd of three pipelined roster sets (bob, carol, dave) fails: the
    iq error goes to it, bob and dave are added and pushed (§2.1.6) to the
    interested resource, carol is neither stored nor pushed; a 4th set
    (eve) works. After a restart without faults: bob, dave, eve."""
    srv = herald(users=USERS)
    arm(srv, "roster:2:%s" % kind)
    alice = Peer(srv, "alice", roster=True)
    check_three(alice.pipeline([r_roster_set(bare(u), "name of " + u)
                                for u in ("bob", "carol", "dave")]), kind, "roster set", alice)
    ok(alice.iq(r_roster_set(bare("eve"), "name of eve")), "roster set after the fault")
    alice.wait_seen(lambda e: is_push(e) and bare("eve") in push_contacts_of(e), "eve's push")
    assert push_contacts(alice) == [bare(u) for u in ("bob", "dave", "eve")], \
        "roster pushes: %s" % push_contacts(alice)
    want = {bare(u): "name of " + u for u in ("bob", "dave", "eve")}
    assert roster(alice) == want
    alice.close()

    disarm(srv)
    alice = Peer(srv, "alice", roster=True)
    assert roster(alice) == want


def push_contacts_of(el):
    return [i.get("jid") for i in el.find(q(NS_ROSTER, "query")).findall(q(NS_ROSTER, "item"))]


# --------------------------------------------------------------------------
# 5. Offline messages
# --------------------------------------------------------------------------

def message(to, mid, body):
    return "<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, mid, body)


def is_error_message(el):
    return el.tag == q(NS_CLIENT, "message") and el.get("type") == "error"


def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else (b.text or "")


@pytest.mark.parametrize("kind", KINDS)
def test_offline_store_fault(herald, kind):
    """RFC 6121 §8.5.2.2 / XEP-0160 under a storage fault. Each chat message
    to an account without an available resource is stored with one offline
    write; with offline:2 the 2nd of three pipelined messages to bob fails:
    alice gets an error message for it (same id, type='error', with
    <resource-constraint/> for full or <internal-server-error/> for io) and
    for no other; a 4th message is stored. After a restart without faults,
    bob's initial presence brings him messages 1, 3 and 4, in order, with
    a delay stamp, and nothing else."""
    srv = herald(users=USERS)
    arm(srv, "offline:2:%s" % kind)
    alice = Peer(srv, "alice")
    before = storage_counters(srv)
    alice.send_all([message(bare("bob"), "m%d" % k, "body %d" % k) for k in (1, 2, 3)])
    alice.wait_seen(lambda e: is_error_message(e) and e.get("id") == "m2",
                    "an error message for m2")
    alice.sync()  # answered in a later turn, after the messages' group commit
    check_one_turn(counters_delta(before, storage_counters(srv)), "offline messages")
    err = [e for e in alice.rs.seen if is_error_message(e) and e.get("id") == "m2"][0]
    assert error_of(err)[0] == CONDITION[kind], "error for m2: %s" % show(err)
    alice.send_all([message(bare("bob"), "m4", "body 4")])
    alice.sync()
    alice.rs.wait_for(lambda: False, timeout=0.7)  # a short wait proving no other error comes
    errors = [e.get("id") for e in alice.rs.seen if is_error_message(e)]
    assert errors == ["m2"], "error messages: %s" % [show(e) for e in alice.rs.seen
                                                     if is_error_message(e)]
    alice.close()

    disarm(srv)
    bob = Peer(srv, "bob")
    bob.wait_seen(lambda e: body_of(e) == "body 4", "the offline message m4")
    bob.sync()
    got = [e for e in bob.rs.seen if e.tag == q(NS_CLIENT, "message") and body_of(e)]
    assert [body_of(e) for e in got] == ["body 1", "body 3", "body 4"], [show(e) for e in got]
    for e in got:
        assert e.find(q(NS_DELAY, "delay")) is not None, "no delay stamp: %s" % show(e)


@pytest.mark.parametrize("kind", KINDS)
def test_offline_delivery_delete_fault(herald, kind):
    """XEP-0160 delivery under a storage fault: at bob's initial presence his
    two stored messages are sent and then deleted from storage (deletes on
    the offline database); with offline:1 the first of those deletes fails.
    Offline delivery is at-least-once (broker/im/presence.c): bob still gets
    both messages, they stay stored, the server keeps serving (a live
    message to bob arrives), and after a restart without faults bob's next
    login brings the same two messages again, and the login after that
    none."""
    srv = herald(users=USERS)
    alice = Peer(srv, "alice")
    alice.send_all([message(bare("bob"), "s%d" % k, "stored %d" % k) for k in (1, 2)])
    alice.sync()
    alice.close()

    def stored_bodies(p):
        return [body_of(e) for e in p.rs.seen
                if e.tag == q(NS_CLIENT, "message") and body_of(e) and
                e.find(q(NS_DELAY, "delay")) is not None]

    arm(srv, "offline:1:%s" % kind)
    bob = Peer(srv, "bob")
    bob.wait_seen(lambda e: body_of(e) == "stored 2", "the second offline message")
    assert stored_bodies(bob) == ["stored 1", "stored 2"]
    alice = Peer(srv, "alice")
    alice.send_all([message(bob.jid, "live", "live message")])
    bob.wait_seen(lambda e: body_of(e) == "live message", "a live message after the fault")
    alice.close(), bob.close()

    disarm(srv)
    bob = Peer(srv, "bob")
    bob.wait_seen(lambda e: body_of(e) == "stored 2", "the offline messages again")
    bob.sync()
    assert stored_bodies(bob) == ["stored 1", "stored 2"]
    bob.close()
    bob = Peer(srv, "bob", resource="again")
    bob.sync()
    assert stored_bodies(bob) == [], "delivered offline messages were not deleted"


# --------------------------------------------------------------------------
# 6. REST
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_rest_publish_fault(herald, kind):
    """docs/rest-api.md "Durability" under a storage fault: three POST
    /v1/nodes/feed/items pipelined on one keep-alive connection (one
    write), each a publish writing the items database once; with items:2
    the answers are 201, then 507 (full) or 500 (io) as problem+json with
    condition resource-constraint / internal-server-error, then 201. The
    event stream carries items 1 and 3 (and a 4th published afterwards),
    not 2; the items list holds exactly those. After a restart without
    faults: the same items."""
    srv, alice = rest_server(herald)
    alice.create("feed", {"max_items": 100})
    arm(srv, "items:2:%s" % kind)
    stream = EventStream(srv, "feed", alice.tok).wait_ready()
    before = storage_counters(srv)
    answers = pipeline(srv, [build_request("POST", items_path("feed"), alice.tok, {"n": k})
                             for k in (1, 2, 3)])
    check_rest_turns(counters_delta(before, storage_counters(srv)), "REST publish")
    assert [a.status for a in answers] == [201, HTTP_STATUS[kind], 201], answers
    assert_problem(answers[1], HTTP_STATUS[kind], CONDITION[kind], what="the faulted POST")
    ids = [answers[0].json()["id"], answers[2].json()["id"]]
    ids.append(alice.publish("feed", {"n": 4}))
    want = [(ids[2], {"n": 4}), (ids[1], {"n": 3}), (ids[0], {"n": 1})]  # newest first
    assert [(i["id"], i["json"]) for i in alice.all_items("feed")] == want
    assert [e.json()["id"] for e in stream.take(3)] == ids
    stream.close()

    disarm(srv)
    assert [(i["id"], i["json"]) for i in alice.all_items("feed")] == want


@pytest.mark.parametrize("kind", KINDS)
def test_rest_create_node_fault(herald, kind):
    """POST /v1/nodes under a storage fault: creating a node writes the node
    record once (nodes); three creates pipelined on one connection with
    nodes:2 get 201, 507/500 (problem+json), 201. The failed node does not
    exist (404, not listed) and can be created afterwards; after a restart
    without faults the two created nodes are there, the failed one is
    not."""
    srv, alice = rest_server(herald)
    arm(srv, "nodes:2:%s" % kind)
    before = storage_counters(srv)
    answers = pipeline(srv, [build_request("POST", "/v1/nodes", alice.tok, {"node": n})
                             for n in ("n1", "n2", "n3")])
    check_rest_turns(counters_delta(before, storage_counters(srv)), "REST create")
    assert [a.status for a in answers] == [201, HTTP_STATUS[kind], 201], answers
    assert_problem(answers[1], HTTP_STATUS[kind], CONDITION[kind], what="the faulted POST")

    def listed():
        return sorted(n["node"] for n in expect(alice.get("/v1/nodes"), 200).json()["nodes"])
    assert listed() == ["n1", "n3"]
    assert_problem(alice.get(items_path("n2")), 404, "item-not-found")
    alice.publish("n3", {"v": 3})

    disarm(srv)
    assert listed() == ["n1", "n3"]
    assert [i["json"] for i in alice.all_items("n3")] == [{"v": 3}]
    alice.create("n2")
    assert listed() == ["n1", "n2", "n3"]


# --------------------------------------------------------------------------
# 7. The CLI
# --------------------------------------------------------------------------

def cli_env(srv, env, *args, timeout=30):
    """`herald ARGS --data-dir D` with env added to its environment."""
    argv = [HERALD_BIN] + list(args) + ["--data-dir", srv.data_dir]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                       cwd=srv.workdir, env=dict(os.environ, **env))
    with open(srv.log_path, "ab") as f:
        f.write(("$ %s %s -> %d\n%s%s" % (
            " ".join("%s=%s" % kv for kv in env.items()), " ".join(argv), r.returncode,
            r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace"))).encode())
    return r


def check_cli_failure(r, kind, what):
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode not in (0, None), "%s with a %s fault exited 0: %s %s" % (
        what, kind, out, err)
    assert r.returncode > 0, "%s died of signal %d: %s" % (what, -r.returncode, err)
    for mark in SANITIZER_MARKS:
        assert mark not in err, "%s: %s" % (what, err)
    assert re.search(CLI_MESSAGE[kind], err, re.I), \
        "%s: the message does not say what went wrong (%s): %r" % (what, kind, err)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_cli_token_create_fault(herald, kind):
    """`herald token create` with tokens:1:KIND (its one tokens write fails)
    exits nonzero with a message naming the problem and prints no token;
    nothing is stored (token list is empty); run again without the
    variable it works and the token is accepted by the REST bridge."""
    srv = herald(users=USERS)
    r = cli_env(srv, {FAULTS_VAR: "tokens:1:%s" % kind}, "token", "create", "--jid", bare("alice"))
    out = check_cli_failure(r, kind, "herald token create")
    assert not any(TOKEN_RE.match(line.strip()) for line in out.splitlines()), \
        "a token was printed although it was not stored: %r" % out
    listed = srv.cli("token", "list")
    assert listed.returncode == 0 and not re.search(rb"^[0-9a-f]{16}\b", listed.stdout, re.M), \
        listed.stdout
    tok = new_token(srv, bare("alice"))
    expect(Rest(srv, tok).get("/v1/nodes"), 200, "the token made without faults")
    listed = srv.cli("token", "list").stdout.decode()
    assert re.findall(r"(?m)^([0-9a-f]{16})\b", listed) == [token_id(tok)], listed


@pytest.mark.parametrize("kind", KINDS)
def test_cli_user_add_fault(herald, kind):
    """`herald user add` with users:1:KIND (its one users write fails) exits
    nonzero with a message naming the problem; the account does not exist
    (not listed, cannot log in); run again without the variable it is
    created and can log in. The running server is not disturbed."""
    srv = herald(users={"alice": USERS["alice"]})
    r = cli_env(srv, {FAULTS_VAR: "users:1:%s" % kind}, "user", "add", bare("eve"),
                "--password", USERS["eve"])
    check_cli_failure(r, kind, "herald user add")
    listed = srv.cli("user", "list").stdout.decode()
    assert bare("eve") not in listed.split(), listed
    rs = RawStream(srv.port)
    try:
        assert rs.open() is not None
        rs.features()
        rs.starttls()
        assert rs.open() is not None
        rs.features()
        resp = rs.auth_plain("eve", USERS["eve"])
        assert resp is not None and resp.tag == q(NS_SASL, "failure"), \
            "eve logged in although her account was not stored: %s" % show(resp)
    finally:
        rs.close()
    srv.add_user("eve", USERS["eve"])
    assert bare("eve") in srv.cli("user", "list").stdout.decode().split()
    eve = Peer(srv, "eve")
    eve.close()
    assert srv.running()


def test_malformed_fault_spec_is_refused(tmp_path):
    """A typo in HERALD_TEST_FAULTS must not silently test nothing: an
    unknown database, a zero or missing N, an unknown kind make `herald
    serve` and the CLI refuse to run, saying so."""
    from e2e_helpers import HeraldServer
    for i, spec in enumerate(("itemz:1:full", "items:0:full", "items:x:io", "items:1:disk",
                              "items")):
        srv = HeraldServer(tmp_path / ("bad%d" % i), env={FAULTS_VAR: spec})
        os.makedirs(srv.workdir)
        try:
            with pytest.raises(AssertionError, match="exited with status"):
                srv.start()
        finally:
            srv.stop()
        assert srv.returncode not in (None, 0)
        assert FAULTS_VAR in log_since_last_start(srv).split("\n", 1)[1], srv.log_text()
        r = cli_env(srv, {FAULTS_VAR: spec}, "user", "list")
        assert r.returncode not in (0, None) and r.returncode > 0, (spec, r)
        assert FAULTS_VAR.encode() in r.stderr, (spec, r.stderr)
