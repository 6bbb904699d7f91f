"""Configurable service discovery (XEP-0030) on the server JID: [disco]
features and items add to disco#info and disco#items of the domain;
[disco_node:NAME] sections answer disco#info / disco#items with node=NAME;
an unknown node is <item-not-found/>; a malformed entry keeps `herald serve`
from starting, naming the file and line on stderr."""
import re
import subprocess

from e2e_helpers import (DOMAIN, HERALD_BIN, NS_DISCO_INFO, RawStream, free_port, q, show,
                         stanza_error_condition)

NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NODE = "http://openadr.org/openadr2"
NODE_FEATURE = NODE + "#vtn"
PUBSUB = "pubsub.%s" % DOMAIN

CONFIG = {
    "disco": {"features": "%s urn:example:x" % NODE,
              "items": "events.localhost, vtn.localhost"},
    "disco_node:%s" % NODE: {"features": "%s urn:example:node-only" % NODE_FEATURE,
                             "items": "events.localhost"},
    "disco_node:second": {"features": "urn:example:second",
                          "items": "a@vtn.localhost/r, b.localhost"},
}


def login(srv):
    s = RawStream(srv.port)
    s.login("alice", "wonderland", "disco")
    return s


def query(s, ns, node=None, iq_id=None):
    """A disco query to the server JID; returns (iq, query element)."""
    node_attr = "" if node is None else " node='%s'" % node
    resp = s.iq("<query xmlns='%s'%s/>" % (ns, node_attr), to=DOMAIN, iq_id=iq_id)
    assert resp is not None, "no answer to disco %s node=%s" % (ns, node)
    return resp, resp.find(q(ns, "query"))


def info(s, node=None, iq_id=None):
    resp, qel = query(s, NS_DISCO_INFO, node, iq_id)
    assert resp.get("type") == "result" and qel is not None, show(resp)
    assert resp.get("from") == DOMAIN, show(resp)
    return qel, [f.get("var") for f in qel.findall(q(NS_DISCO_INFO, "feature"))]


def items(s, node=None, iq_id=None):
    resp, qel = query(s, NS_DISCO_ITEMS, node, iq_id)
    assert resp.get("type") == "result" and qel is not None, show(resp)
    assert resp.get("from") == DOMAIN, show(resp)
    return qel, [i.get("jid") for i in qel.findall(q(NS_DISCO_ITEMS, "item"))]


def test_disco_features_and_items_of_server(herald):
    """XEP-0030 §3.1 / §4.1: [disco] features appear in disco#info of
    localhost next to the built-in ones (disco#info itself); [disco] items
    (comma list) appear in disco#items next to pubsub.localhost; a node's
    own features do not leak to the root."""
    srv = herald(config=CONFIG, users={"alice": "wonderland"})
    s = login(srv)
    try:
        qel, feats = info(s, iq_id="i1")
        for f in (NODE, "urn:example:x", NS_DISCO_INFO):
            assert f in feats, "%s missing from disco#info: %s" % (f, show(qel))
        assert NODE_FEATURE not in feats and "urn:example:node-only" not in feats, show(qel)
        assert len(feats) == len(set(feats)), "duplicate features: %s" % feats
        assert qel.findall(q(NS_DISCO_INFO, "identity")), "no identity: %s" % show(qel)

        qel, jids = items(s, iq_id="i2")
        for j in ("events.localhost", "vtn.localhost", PUBSUB):
            assert j in jids, "%s missing from disco#items: %s" % (j, show(qel))
        assert "a@vtn.localhost/r" not in jids, show(qel)
    finally:
        s.close()


def test_disco_nodes(herald):
    """XEP-0030 §3.2 / §4.2: disco#info and disco#items with node=NAME
    answer from the [disco_node:NAME] section (the query echoes the node);
    a node whose name is a URL works; items may be full JIDs."""
    srv = herald(config=CONFIG, users={"alice": "wonderland"})
    s = login(srv)
    try:
        qel, feats = info(s, node=NODE, iq_id="n1")
        assert qel.get("node") == NODE, show(qel)
        assert NODE_FEATURE in feats and "urn:example:node-only" in feats, show(qel)
        assert "urn:example:x" not in feats and "urn:example:second" not in feats, show(qel)

        qel, jids = items(s, node=NODE, iq_id="n2")
        assert qel.get("node") == NODE, show(qel)
        assert jids == ["events.localhost"], show(qel)

        qel, feats = info(s, node="second", iq_id="n3")
        assert qel.get("node") == "second", show(qel)
        assert "urn:example:second" in feats and NODE_FEATURE not in feats, show(qel)
        qel, jids = items(s, node="second", iq_id="n4")
        assert sorted(jids) == ["a@vtn.localhost/r", "b.localhost"], show(qel)
    finally:
        s.close()


def test_unknown_node_is_item_not_found(herald):
    """XEP-0030 §3.2 / §7: disco#info and disco#items for a node that is
    not configured get <item-not-found/> (with and without [disco]
    configured, and for a prefix of a configured node's name)."""
    for cfg in (CONFIG, None):
        srv = herald(config=cfg, users={"alice": "wonderland"})
        s = login(srv)
        try:
            for ns in (NS_DISCO_INFO, NS_DISCO_ITEMS):
                for node in ("nope", "http://openadr.org/", NODE + "x"):
                    resp, _ = query(s, ns, node=node)
                    assert resp.get("type") == "error", "%s node=%s: %s" % (ns, node, show(resp))
                    assert stanza_error_condition(resp) == "item-not-found", show(resp)
        finally:
            s.close()
        srv.stop()


def _refused(tmp_path, name, text, bad_line):
    """Writes text as an INI file and runs `herald serve` with it; asserts a
    nonzero exit naming the file and bad_line (1-based) on stderr."""
    path = str(tmp_path / ("%s.ini" % name))
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([HERALD_BIN, "serve", "--config", path, "--data-dir",
                        str(tmp_path / ("data-" + name)), "--c2s-port", str(free_port()),
                        "--http-port", str(free_port()), "--https-port", str(free_port()),
                        "--s2s-port", "0", "--bind", "127.0.0.1"],
                       capture_output=True, timeout=15, stdin=subprocess.DEVNULL)
    err = r.stderr.decode(errors="replace")
    assert r.returncode != 0, "%s: herald accepted the configuration: %r" % (name, err)
    assert path in err, "%s: stderr does not name the file %s: %r" % (name, path, err)
    assert re.search(r"(%s:%d\b)|(line %d\b)" % (re.escape(path), bad_line, bad_line), err), \
        "%s: stderr does not name line %d: %r" % (name, bad_line, err)
    return err


def test_malformed_disco_entry_refused(tmp_path):
    """A disco item that is not a JID ([disco] items 'user@', a node's
    items '@localhost' and 'a@b@c') keeps herald from starting; stderr
    names the file and the line. The same entries without the bad item
    pass `herald check-config` (the check is not blanket)."""
    cases = {
        "item-no-domain": ("[server]\ndomain = localhost\n\n[disco]\n"
                           "features = urn:example:x\nitems = vtn.localhost user@\n", 6),
        "node-item-empty-local": ("[disco]\nitems = vtn.localhost\n\n"
                                  "[disco_node:n1]\nfeatures = urn:example:y\n"
                                  "items = @localhost\n", 6),
        "node-item-bad-domain": ("[disco_node:n2]\n; comment\nitems = a@b@c\n", 3),
    }
    for name, (text, line) in cases.items():
        _refused(tmp_path, name, text, line)
    ok = str(tmp_path / "ok.ini")
    with open(ok, "w") as f:
        f.write("[disco]\nfeatures = urn:example:x\nitems = vtn.localhost a@b.localhost/r\n"
                "[disco_node:n1]\nfeatures = urn:example:y\nitems = b.localhost\n")
    r = subprocess.run([HERALD_BIN, "check-config", "--config", ok],
                       capture_output=True, timeout=15, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "a valid [disco] configuration is refused: %r" % (
        (r.stdout + r.stderr).decode(errors="replace"))
