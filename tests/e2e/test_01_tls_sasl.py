"""STARTTLS and SASL login (RFC 6120 sections 5 and 6)."""
from e2e_helpers import (DOMAIN, NS_BIND, NS_SASL, NS_TLS, NS_STREAM, RawStream, XClient,
                         b64, local, q, run, sasl_condition, show)

ALICE = {"alice": "wonderland"}


def test_scram_sha256_login_over_starttls_and_bind(herald):
    """RFC 6120 5.4 (STARTTLS), 6.4 + RFC 7677 (SCRAM-SHA-256), 7 (bind):
    slixmpp negotiates TLS, authenticates with SCRAM-SHA-256 (server signature
    verified) and binds the requested resource."""
    srv = herald(users=ALICE)

    async def body():
        c = XClient(srv, "alice@localhost/desk", "wonderland", mech="SCRAM-SHA-256")
        await c.login()
        assert c.xmpp.is_connected()
        assert c.xmpp.socket is not None and hasattr(c.xmpp.socket, "version"), \
            "stream is not TLS-protected"
        assert c.mech_used == "SCRAM-SHA-256"
        assert c.mutual_auth is True, "server's SCRAM signature (v=) was not verified"
        assert c.jid == "alice@localhost/desk"
        assert {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} <= c.offered_mechs, c.offered_mechs
        await c.sync()
    run(body)


def test_default_client_picks_scram_sha256(herald):
    """RFC 7677 section 1 / RFC 6120 6.3.3: with the mechanisms the server offers,
    an unconstrained client chooses SCRAM-SHA-256 and succeeds."""
    srv = herald(users=ALICE)

    async def body():
        c = XClient(srv, "alice@localhost/any", "wonderland")
        await c.login()
        assert c.mech_used == "SCRAM-SHA-256", c.offered_mechs
    run(body)


def test_scram_sha1_login_over_tls(herald):
    """RFC 6120 6.4 + RFC 5802 (SCRAM-SHA-1): login and bind work over TLS."""
    srv = herald(users=ALICE)

    async def body():
        c = XClient(srv, "alice@localhost/sha1", "wonderland", mech="SCRAM-SHA-1")
        await c.login()
        assert c.mech_used == "SCRAM-SHA-1"
        assert c.mutual_auth is True
        assert c.jid == "alice@localhost/sha1"
    run(body)


def test_plain_login_over_tls(herald):
    """RFC 6120 6.4 + RFC 4616 (PLAIN) over TLS: login and bind work."""
    srv = herald(users=ALICE)

    async def body():
        c = XClient(srv, "alice@localhost/plain", "wonderland", mech="PLAIN")
        await c.login()
        assert c.mech_used == "PLAIN"
        assert c.jid == "alice@localhost/plain"
        await c.sync()
    run(body)


def test_plain_login_raw_tls(herald):
    """RFC 6120 5.4.3.3 (<proceed/>), 6.4.6 (<success/>), 7.6 (bind result),
    4.7.3 (a fresh stream id for each restarted stream): the exact elements,
    driven by hand over a TLS-upgraded socket."""
    srv = herald(users=ALICE)
    s = RawStream(srv.port)
    try:
        hdr = s.open()
        assert hdr is not None and hdr.tag == q(NS_STREAM, "stream")
        assert hdr.get("from") == DOMAIN, "stream header 'from' should be the domain"
        assert hdr.get("id"), "stream header lacks an id (RFC 6120 4.7.3)"
        assert hdr.get("version") == "1.0"
        s.features()
        ids = [hdr.get("id")]
        s.starttls()
        ids.append(s.open().get("id"))
        feats = s.features()
        mechs = [m.text for m in feats.iter(q(NS_SASL, "mechanism"))]
        assert "PLAIN" in mechs and "SCRAM-SHA-256" in mechs, show(feats)
        assert feats.find(q(NS_TLS, "starttls")) is None, "STARTTLS offered again after TLS"
        ok = s.auth_plain("alice", "wonderland")
        assert ok is not None and ok.tag == q(NS_SASL, "success"), show(ok)
        ids.append(s.open().get("id"))
        assert len(set(ids)) == 3 and all(ids), "stream ids not renewed on restart: %s" % ids
        feats = s.features()
        assert feats.find(q(NS_BIND, "bind")) is not None, show(feats)
        assert feats.find(q(NS_SASL, "mechanisms")) is None, "SASL offered again after auth"
        assert s.bind("raw") == "alice@localhost/raw"
    finally:
        s.close()


def test_only_starttls_offered_before_tls(herald):
    """RFC 6120 5.3.1 / 5.4.1 and 6.4.1 (mechanisms depend on the security
    layer), 6.5.3 <encryption-required/>: before TLS the features are exactly
    <starttls><required/></starttls>, no SASL mechanisms (so no PLAIN), and
    PLAIN tried anyway fails with <encryption-required/>."""
    srv = herald(users=ALICE)
    s = RawStream(srv.port)
    try:
        assert s.open() is not None
        feats = s.features()
        children = list(feats)
        assert [c.tag for c in children] == [q(NS_TLS, "starttls")], show(feats)
        assert children[0].find(q(NS_TLS, "required")) is not None, show(feats)
        assert b"PLAIN" not in bytes(s.raw)
        # Trying PLAIN anyway fails with <encryption-required/> (RFC 6120 6.5.3).
        resp = s.auth_plain("alice", "wonderland", timeout=5)
        assert sasl_condition(resp) == "encryption-required", show(resp)
    finally:
        s.close()


def test_plain_without_tls_gets_encryption_required(herald):
    """RFC 6120 6.5.3 <encryption-required/>: with require_tls = false and
    allow_plaintext = false, STARTTLS is optional, PLAIN is not offered in the
    clear, and PLAIN in the clear fails with <encryption-required/>."""
    srv = herald(config={"c2s": {"require_tls": False, "allow_plaintext": False}}, users=ALICE)
    s = RawStream(srv.port)
    try:
        s.open()
        feats = s.features()
        tls = feats.find(q(NS_TLS, "starttls"))
        assert tls is not None, show(feats)
        assert tls.find(q(NS_TLS, "required")) is None, "STARTTLS still required: %s" % show(feats)
        mechs = [m.text for m in feats.iter(q(NS_SASL, "mechanism"))]
        assert "PLAIN" not in mechs, "PLAIN offered without TLS: %s" % mechs
        resp = s.auth_plain("alice", "wonderland")
        assert sasl_condition(resp) == "encryption-required", show(resp)
    finally:
        s.close()


def test_allow_plaintext_offers_plain_and_logs_in(herald):
    """RFC 6120 5.3.1 (STARTTLS optional) and 6.4: with --allow-plaintext,
    PLAIN is offered before TLS and a cleartext login and bind succeed."""
    srv = herald(allow_plaintext=True, users=ALICE)
    s = RawStream(srv.port)
    try:
        s.open()
        feats = s.features()
        tls = feats.find(q(NS_TLS, "starttls"))
        assert tls is None or tls.find(q(NS_TLS, "required")) is None, show(feats)
        mechs = [m.text for m in feats.iter(q(NS_SASL, "mechanism"))]
        assert "PLAIN" in mechs, show(feats)
        ok = s.auth_plain("alice", "wonderland")
        assert ok is not None and ok.tag == q(NS_SASL, "success"), show(ok)
        s.open()
        s.features()
        assert s.bind("clear") == "alice@localhost/clear"
    finally:
        s.close()


def test_scram_exchange_raw(herald):
    """RFC 5802 section 5 / RFC 6120 6.4.2-6.4.6: SCRAM-SHA-256 by hand: the
    server's first message echoes our nonce and carries salt and iteration
    count (>= 4096, RFC 7677 section 4); the success carries v=<server signature>
    that matches what we compute."""
    import base64
    import hashlib
    import hmac
    srv = herald(users=ALICE)
    s = RawStream(srv.port)
    try:
        s.open()
        s.features()
        s.starttls()
        s.open()
        s.features()
        cnonce = "e2eclientnonce0123456789"
        first_bare = "n=alice,r=" + cnonce
        ch = s.auth("SCRAM-SHA-256", b64("n,," + first_bare))
        assert ch is not None and ch.tag == q(NS_SASL, "challenge"), show(ch)
        server_first = base64.b64decode(ch.text).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce), server_first
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        assert iters >= 4096, server_first
        salted = hashlib.pbkdf2_hmac("sha256", b"wonderland", salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = "c=" + b64("n,,") + ",r=" + attrs["r"]
        auth_msg = ",".join([first_bare, server_first, without_proof]).encode()
        sig = hmac.new(stored, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        s.send("<response xmlns='%s'>%s</response>"
               % (NS_SASL, b64(without_proof + ",p=" + base64.b64encode(proof).decode())))
        ok = s.wait_element(lambda e: local(e.tag) in ("success", "failure", "challenge"))
        assert ok is not None and ok.tag == q(NS_SASL, "success"), show(ok)
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        want_v = base64.b64encode(hmac.new(server_key, auth_msg, "sha256").digest()).decode()
        final = base64.b64decode(ok.text or "").decode()
        assert final == "v=" + want_v, "server-final %r, expected v=%s" % (final, want_v)
    finally:
        s.close()


def test_plain_without_initial_response(herald):
    """RFC 6120 6.4.2 (no initial response: the server sends an empty
    challenge) and 6.4.3: <auth mechanism='PLAIN'/> with no data gets an
    empty <challenge/>; the credentials in <response/> then succeed."""
    srv = herald(users=ALICE)
    s = RawStream(srv.port)
    try:
        s.open()
        s.features()
        s.starttls()
        s.open()
        s.features()
        ch = s.auth("PLAIN", None)
        assert ch is not None and ch.tag == q(NS_SASL, "challenge"), show(ch)
        assert not (ch.text or "").strip() or ch.text.strip() == "=", show(ch)
        s.send("<response xmlns='%s'>%s</response>" % (NS_SASL, b64("\0alice\0wonderland")))
        ok = s.wait_element(lambda e: local(e.tag) in ("success", "failure", "challenge"))
        assert ok is not None and ok.tag == q(NS_SASL, "success"), show(ok)
    finally:
        s.close()
