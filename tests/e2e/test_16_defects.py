"""Defects found in use (issue 10): the first-start certificate's names, the
CLI's silent default data directory, the per-address connection limit on
loopback, and service discovery of the pubsub service and of one's own
account. Each test drives the real binary: curl, node and openssl for the
certificate, subprocess for the CLI, raw sockets and slixmpp for XMPP."""
import ipaddress
import os
import re
import shutil
import ssl
import subprocess

import pytest

from e2e_helpers import (DOMAIN, HERALD_BIN, NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_STREAM,
                         NS_STREAM_ERR, RawStream, XClient, q, run, show,
                         stanza_error_condition)

USERS = {"alice": "wonderland", "bob": "builder"}
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
PUBSUB = "pubsub.%s" % DOMAIN


# --------------------------------------------------------------------------
# 1. The self-signed certificate names the domain, localhost, 127.0.0.1, ::1
# --------------------------------------------------------------------------

def cert_path(srv):
    return os.path.join(srv.data_dir, "tls", "cert.pem")


def openssl_sans(path):
    """The subjectAltName entries as openssl prints them: {('DNS', name),
    ('IP', normalized address)}."""
    r = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", path],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and "Subject Alternative Name" in lines[0], r.stdout
    sans = set()
    for entry in ",".join(lines[1:]).split(","):
        entry = entry.strip()
        if not entry:
            continue
        kind, _, value = entry.partition(":")
        if kind == "DNS":
            sans.add(("DNS", value))
        elif kind == "IP Address":
            sans.add(("IP", str(ipaddress.ip_address(value))))
        else:
            sans.add((kind, value))
    return sans


def python_sans(path):
    """The same entries through Python's own certificate decoder."""
    decoded = ssl._ssl._test_decode_cert(path)
    sans = set()
    for kind, value in decoded.get("subjectAltName", ()):
        if kind == "IP Address":
            sans.add(("IP", str(ipaddress.ip_address(value.strip()))))
        else:
            sans.add((kind, value))
    return sans


def curl_healthz(srv, cacert, host="127.0.0.1", resolve=None):
    """curl over HTTPS with certificate verification on (no -k). Returns the
    CompletedProcess."""
    argv = ["curl", "-sS", "--max-time", "10"]
    if cacert:
        argv += ["--cacert", cacert]
    if resolve:
        argv += ["--resolve", "%s:%d:127.0.0.1" % (resolve, srv.https_port)]
    argv.append("https://%s:%d/healthz" % (host, srv.https_port))
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def test_self_signed_cert_names_domain_localhost_and_loopback_ips(herald):
    """RFC 6125 §6.4 / RFC 5280 §4.2.1.6: clients match a host name against
    dNSName entries and an IP literal against iPAddress entries, never the
    CN. The certificate made on first start for the default domain holds
    DNS:localhost, IP:127.0.0.1 and IP:::1 (read with openssl and with
    Python's decoder), and curl trusting just that file (--cacert, no -k)
    gets /healthz over HTTPS by IP and by name; without it, verification
    fails."""
    srv = herald()
    path = cert_path(srv)
    want = {("DNS", "localhost"), ("IP", "127.0.0.1"), ("IP", "::1")}
    assert openssl_sans(path) == want
    assert python_sans(path) == want

    r = curl_healthz(srv, path)
    assert r.returncode == 0, "curl --cacert %s failed: %s" % (path, r.stderr)
    assert r.stdout.strip() == "ok", r.stdout
    r = curl_healthz(srv, path, host="localhost", resolve="localhost")
    assert r.returncode == 0, r.stderr
    # The check is real: the system store does not know this certificate.
    r = curl_healthz(srv, None)
    assert r.returncode == 60, "curl without --cacert: %d %s" % (r.returncode, r.stderr)


def test_self_signed_cert_names_the_configured_domain(herald):
    """A configured domain is a DNS SAN next to the loopback names; curl
    reaching the server as https://example.org:PORT (resolved to loopback)
    verifies, while a name not in the certificate does not."""
    srv = herald(extra_args=["--domain", "example.org"])
    path = cert_path(srv)
    want = {("DNS", "example.org"), ("DNS", "localhost"), ("IP", "127.0.0.1"), ("IP", "::1")}
    assert openssl_sans(path) == want
    assert python_sans(path) == want
    r = curl_healthz(srv, path, host="example.org", resolve="example.org")
    assert r.returncode == 0, r.stderr
    r = curl_healthz(srv, path, host="other.example", resolve="other.example")
    assert r.returncode == 60, "a name outside the certificate verified: %d %s" % (
        r.returncode, r.stderr)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_self_signed_cert_trusted_by_node_extra_ca_certs(herald):
    """The README's recipe for Node: NODE_EXTRA_CA_CERTS=<cert> makes
    https.get to 127.0.0.1 verify (rejectUnauthorized stays on)."""
    srv = herald()
    script = ("require('https').get('https://127.0.0.1:%d/healthz', r => {"
              " let b=''; r.on('data', d => b += d);"
              " r.on('end', () => { console.log(r.statusCode, b.trim()); }); })"
              ".on('error', e => { console.error(e.code || e.message); process.exit(3); });"
              % srv.https_port)
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=cert_path(srv))
    r = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["200", "ok"], (r.stdout, r.stderr)
    env.pop("NODE_EXTRA_CA_CERTS")
    r = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 3, "node trusted the certificate without NODE_EXTRA_CA_CERTS: %s" % (
        r.stdout)


# --------------------------------------------------------------------------
# 2. `herald user|token` say which data directory they use
# --------------------------------------------------------------------------

DEFAULT_NOTE = "herald: using data directory ./herald-data (default; --data-dir to change)"


def herald_cli(cwd, *args, stdin=None):
    r = subprocess.run([HERALD_BIN, *args], cwd=str(cwd), capture_output=True, text=True,
                       timeout=60, input=stdin)
    return r


@pytest.mark.parametrize("args", [("user", "list"), ("token", "list")])
def test_cli_list_names_default_data_dir_and_creates_nothing(tmp_path, args):
    """`herald user list` / `herald token list` with no --data-dir in a
    directory without a store: stderr names ./herald-data as the default in
    use and warns that it holds no store; nothing is listed, the exit
    status is 0 (there is nothing), and no store or directory is made."""
    r = herald_cli(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert DEFAULT_NOTE in lines, r.stderr
    assert any("warning" in l and "no store" in l and "data.mdb" in l for l in lines), r.stderr
    assert not os.path.exists(tmp_path / "herald-data"), os.listdir(tmp_path)


@pytest.mark.parametrize("args,message", [
    (("user", "del", "alice@localhost"), "no such account: alice@localhost"),
    (("user", "passwd", "alice@localhost", "--password", "x"), "no such account: alice@localhost"),
    (("token", "create", "--jid", "alice@localhost"), "no such account: alice@localhost"),
    (("token", "revoke", "0123456789abcdef"), "no token with id 0123456789abcdef"),
])
def test_cli_changes_on_missing_store_fail_without_creating_one(tmp_path, args, message):
    """Commands that change existing records fail (status 1) on a data
    directory without a store, after the same note and warning, and do not
    create an empty store as a side effect."""
    r = herald_cli(tmp_path, *args)
    assert r.returncode == 1, r.stderr
    assert DEFAULT_NOTE in r.stderr.splitlines(), r.stderr
    assert "no store" in r.stderr and message in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "herald-data" / "data.mdb")


def test_cli_add_warns_then_creates_store(tmp_path):
    """`herald user add` on the default data directory with no store: the
    note, a warning that a new store is being created, then the account is
    there; a second command names the directory but no longer warns."""
    r = herald_cli(tmp_path, "user", "add", "alice@localhost", "--password", "pw")
    assert r.returncode == 0, r.stderr
    assert DEFAULT_NOTE in r.stderr.splitlines(), r.stderr
    assert "warning" in r.stderr and "creating one" in r.stderr, r.stderr
    assert os.path.isfile(tmp_path / "herald-data" / "data.mdb")
    r = herald_cli(tmp_path, "user", "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["alice@localhost"], r.stdout
    assert DEFAULT_NOTE in r.stderr.splitlines() and "warning" not in r.stderr, r.stderr
    r = herald_cli(tmp_path, "user", "import", "-", stdin="bob@localhost pw\n")
    assert r.returncode == 0, r.stderr
    assert DEFAULT_NOTE in r.stderr.splitlines() and "warning" not in r.stderr, r.stderr


def test_cli_data_dir_from_config_or_option(tmp_path):
    """The note names a data directory that comes from --config with the
    file; an explicit --data-dir needs no note, but an empty one is still
    warned about."""
    store = tmp_path / "store"
    conf = tmp_path / "h.ini"
    conf.write_text("[server]\ndata_dir = %s\n" % store)
    r = herald_cli(tmp_path, "user", "add", "alice@localhost", "--password", "pw",
                   "--config", str(conf))
    assert r.returncode == 0, r.stderr
    assert ("herald: using data directory %s (from %s; --data-dir to change)" % (store, conf)
            in r.stderr.splitlines()), r.stderr
    r = herald_cli(tmp_path, "user", "list", "--data-dir", str(store))
    assert r.returncode == 0 and r.stdout.split() == ["alice@localhost"], (r.stdout, r.stderr)
    assert "using data directory" not in r.stderr and "warning" not in r.stderr, r.stderr
    empty = tmp_path / "typo"
    r = herald_cli(tmp_path, "token", "list", "--data-dir", str(empty))
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and str(empty) in r.stderr, r.stderr
    assert not os.path.exists(empty)


# --------------------------------------------------------------------------
# 3. Connection limits: loopback exempt by default, refusals name the limit
# --------------------------------------------------------------------------

def stream_error_text(s):
    """The <text/> of the stream error received on RawStream s, or None."""
    for el in s.seen:
        if el.tag == q(NS_STREAM, "error"):
            t = el.find(q(NS_STREAM_ERR, "text"))
            return None if t is None else t.text
    m = re.search(r"<text[^>]*>([^<]*)</text>", s.text())
    return m.group(1) if m else None


def open_stream(srv, source):
    """A stream from source; (RawStream, served) where served means stream
    features came (a refused stream gets a stream error instead)."""
    s = RawStream(srv.port, source=source, timeout=10)
    if s.open(wait=True) is None:
        return s, False
    el = s.next_element(timeout=10)
    return s, el is not None and el.tag == q(NS_STREAM, "features")


def refused(srv, source):
    """Opens one more stream from source, expecting a refusal; returns
    (condition, text) of its stream error after the server closed it."""
    s = RawStream(srv.port, source=source, timeout=10)
    try:
        s.open(wait=True)
        s.read_until_closed(timeout=10)
        assert s.closed, "the refused connection was not closed: %r" % s.text()
        assert not any(e.tag == q(NS_STREAM, "features") for e in s.seen), s.text()
        return s.stream_error(), stream_error_text(s)
    finally:
        s.close()


def test_loopback_exempt_from_per_ip_limit_by_default(herald):
    """With the default c2s.max_connections_per_ip (100) and
    c2s.limit_loopback off, a backend on this host opens 110 streams from
    127.0.0.1 and 6 from 127.0.0.2 with max_connections_per_ip = 3 on a
    second server: every one is served."""
    srv = herald()
    conns = []
    try:
        for i in range(110):
            s, ok = open_stream(srv, "127.0.0.1")
            conns.append(s)
            assert ok, "loopback stream %d of 110 refused: %r" % (i + 1, s.text()[-500:])
    finally:
        for s in conns:
            s.close()
    small = herald(config={"c2s": {"max_connections_per_ip": 3}})
    conns = []
    try:
        for i in range(6):
            s, ok = open_stream(small, "127.0.0.2")
            conns.append(s)
            assert ok, "stream %d of 6 from 127.0.0.2 refused: %r" % (i + 1, s.text()[-500:])
    finally:
        for s in conns:
            s.close()
    assert "max_connections_per_ip" not in small.log_text()


def test_limit_loopback_refusal_names_the_limit(herald):
    """RFC 6120 §4.9.3.14 <policy-violation/> with an explanatory <text/>
    (§4.9.2): with c2s.limit_loopback = true and max_connections_per_ip = 3,
    the fourth stream from 127.0.0.2 gets <policy-violation/> whose text
    names the setting and its value, the log says 'refused 127.0.0.2:
    c2s.max_connections_per_ip (3) reached', and another address is still
    served."""
    srv = herald(config={"c2s": {"max_connections_per_ip": 3, "limit_loopback": True}})
    conns = []
    try:
        for i in range(3):
            s, ok = open_stream(srv, "127.0.0.2")
            conns.append(s)
            assert ok, "stream %d of 3 refused: %r" % (i + 1, s.text())
        cond, text = refused(srv, "127.0.0.2")
        assert cond == "policy-violation", cond
        assert text is not None and "c2s.max_connections_per_ip (3) reached" in text, text
        s, ok = open_stream(srv, "127.0.0.3")
        conns.append(s)
        assert ok, "another address was refused too"
    finally:
        for s in conns:
            s.close()
    assert "refused 127.0.0.2: c2s.max_connections_per_ip (3) reached" in srv.log_text()


def test_total_limit_refusal_names_the_limit(herald):
    """RFC 6120 §4.9.3.17 <resource-constraint/>: over c2s.max_connections
    (which applies to loopback too) the refused stream's <text/> and the log
    name c2s.max_connections and its value."""
    srv = herald(config={"c2s": {"max_connections": 3}})
    conns = []
    result = None
    try:
        # The start-up probe's connection may still be closing: open until
        # one is refused, which must happen by the fourth.
        for _ in range(4):
            s = RawStream(srv.port, timeout=10)
            s.open(wait=True)
            el = s.next_element(timeout=10)
            if el is not None and el.tag == q(NS_STREAM, "features"):
                conns.append(s)
                continue
            s.read_until_closed(timeout=10)
            result = (s.stream_error(), stream_error_text(s))
            s.close()
            break
    finally:
        for s in conns:
            s.close()
    assert result is not None, "four connections served with c2s.max_connections = 3"
    assert conns, "not even one connection was served"
    cond, text = result
    assert cond == "resource-constraint", cond
    assert text is not None and "c2s.max_connections (3) reached" in text, text
    assert "refused 127.0.0.1: c2s.max_connections (3) reached" in srv.log_text()


# --------------------------------------------------------------------------
# 4. disco#items on the server lists the pubsub service
# --------------------------------------------------------------------------

def disco_client(srv, user, password):
    c = XClient(srv, "%s@localhost/disco" % user, password)
    c.xmpp.register_plugin("xep_0030")
    return c


def test_disco_items_on_server_lists_pubsub_service(herald):
    """XEP-0030 §4.1 and XEP-0060 §5.1 (a client discovers the pubsub service
    among the server's items): slixmpp's xep_0030 get_items on the domain
    returns pubsub.localhost, and disco#info on that item answers with the
    pubsub/service identity (it is the real service)."""
    srv = herald(users=USERS)

    async def body():
        alice = disco_client(srv, "alice", "wonderland")
        await alice.login()
        res = await alice.xmpp["xep_0030"].get_items(jid=DOMAIN, local=False, timeout=10)
        items = res["disco_items"]["items"]
        assert [str(j) for j, _node, _name in items] == [PUBSUB], items
        info = await alice.xmpp["xep_0030"].get_info(jid=PUBSUB, local=False, timeout=10)
        idents = {(c, t) for c, t, _lang, _name in info["disco_info"]["identities"]}
        assert ("pubsub", "service") in idents, idents
    run(body)


def test_disco_items_raw_and_configured_pubsub_jid(herald):
    """The same as raw XML, with [pubsub] jid = events.localhost: the item
    is <item jid='events.localhost'/> in a disco#items result from the
    domain; an item-not-found for a node of the server is unchanged; and
    disco#items to one's own bare JID does not list the service (the
    account has no items)."""
    srv = herald(config={"pubsub": {"jid": "events.localhost"}}, users=USERS)
    s = RawStream(srv.port)
    try:
        s.login("alice", "wonderland", "raw")
        resp = s.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=DOMAIN, iq_id="items-1")
        assert resp is not None and resp.get("type") == "result", show(resp)
        assert resp.get("from") == DOMAIN, show(resp)
        query = resp.find(q(NS_DISCO_ITEMS, "query"))
        assert query is not None, show(resp)
        assert [i.get("jid") for i in query.findall(q(NS_DISCO_ITEMS, "item"))] == \
            ["events.localhost"], show(resp)
        resp = s.iq("<query xmlns='%s' node='x'/>" % NS_DISCO_ITEMS, to=DOMAIN, iq_id="items-2")
        assert resp is not None and stanza_error_condition(resp) == "item-not-found", show(resp)
        resp = s.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="alice@localhost", iq_id="items-3")
        assert resp is not None and resp.get("type") == "result", show(resp)
        query = resp.find(q(NS_DISCO_ITEMS, "query"))
        assert query is not None and len(list(query)) == 0, show(resp)
        resp = s.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="events.localhost", iq_id="info-1")
        assert resp is not None and resp.get("type") == "result", show(resp)
    finally:
        s.close()


# --------------------------------------------------------------------------
# 5. disco#info to one's own bare JID describes the account
# --------------------------------------------------------------------------

def identities(query):
    return {(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO, "identity"))}


def features(query):
    return {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}


def test_disco_info_own_bare_jid_answers_for_account(herald):
    """XEP-0030 §3.1 with RFC 6121 §8.5.2.1.3 (the server answers an iq to a
    bare JID on behalf of the account): slixmpp's get_info on its own bare
    JID gets identity account/registered and the disco#info feature, from
    the bare JID, and not the server's identity or features; disco#info to
    the domain still answers as the server."""
    srv = herald(users=USERS)

    async def body():
        alice = disco_client(srv, "alice", "wonderland")
        await alice.login()
        res = await alice.xmpp["xep_0030"].get_info(jid="alice@localhost", local=False,
                                                     timeout=10)
        assert str(res["from"]) == "alice@localhost", res
        idents = {(c, t) for c, t, _lang, _name in res["disco_info"]["identities"]}
        # With PEP (XEP-0163 §6.1) the account is a pubsub/pep service too.
        assert idents == {("account", "registered"), ("pubsub", "pep")}, idents
        feats = set(res["disco_info"]["features"])
        assert NS_DISCO_INFO in feats and NS_PING not in feats, feats
        res = await alice.xmpp["xep_0030"].get_info(jid=DOMAIN, local=False, timeout=10)
        idents = {(c, t) for c, t, _lang, _name in res["disco_info"]["identities"]}
        assert ("server", "im") in idents and ("account", "registered") not in idents, idents
        assert {NS_PING, NS_DISCO_INFO} <= set(res["disco_info"]["features"]), res
    run(body)


def test_disco_info_bare_jid_raw(herald):
    """Raw XML: disco#info to alice@localhost from alice's session is a
    result from alice@localhost with <identity category='account'
    type='registered'/>; with no 'to' and to the domain it is the server
    (category='server' type='im'); to another account's bare JID it is that
    account's PEP service; a node on the account is <item-not-found/>."""
    srv = herald(users=USERS)
    s = RawStream(srv.port)
    try:
        jid = s.login("alice", "wonderland", "raw")
        resp = s.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="alice@localhost", iq_id="i-1")
        assert resp is not None and resp.get("type") == "result", show(resp)
        assert resp.get("from") == "alice@localhost" and resp.get("to") == jid, show(resp)
        query = resp.find(q(NS_DISCO_INFO, "query"))
        assert query is not None, show(resp)
        assert identities(query) == {("account", "registered"), ("pubsub", "pep")}, show(resp)
        assert NS_DISCO_INFO in features(query), show(resp)
        # Case and form of the address do not matter: 'to' is prepared first.
        resp = s.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="Alice@LocalHost", iq_id="i-2")
        assert resp is not None and resp.get("type") == "result", show(resp)
        assert identities(resp.find(q(NS_DISCO_INFO, "query"))) == {("account", "registered"),
                                                                  ("pubsub", "pep")}
        for to, iq_id in ((None, "i-3"), (DOMAIN, "i-4")):
            resp = s.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=to, iq_id=iq_id)
            assert resp is not None and resp.get("type") == "result", show(resp)
            query = resp.find(q(NS_DISCO_INFO, "query"))
            assert ("server", "im") in identities(query), show(resp)
            assert {NS_PING, NS_DISCO_INFO} <= features(query), show(resp)
        # Another account's bare JID: the server answers for its PEP service
        # (XEP-0163 §6.1), not with the server's identity.
        resp = s.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="bob@localhost", iq_id="i-5")
        assert resp is not None and resp.get("type") == "result", show(resp)
        assert ("pubsub", "pep") in identities(resp.find(q(NS_DISCO_INFO, "query"))), show(resp)
        assert ("server", "im") not in identities(resp.find(q(NS_DISCO_INFO, "query")))
        resp = s.iq("<query xmlns='%s' node='n'/>" % NS_DISCO_INFO, to="alice@localhost",
                    iq_id="i-6")
        assert resp is not None and stanza_error_condition(resp) == "item-not-found", show(resp)
        assert resp.tag == q(NS_CLIENT, "iq")
    finally:
        s.close()
