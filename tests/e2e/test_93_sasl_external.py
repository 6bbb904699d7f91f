"""SASL EXTERNAL for clients with a certificate (XEP-0178, RFC 6120 6.3 and
13.7.1.4) and the [tls] protocol/cipher settings. Certificates come from
certs.py (openssl): a CA given as [c2s] client_ca_file with its CRL as
client_crl_file. Raw streams present the certificate after <proceed/>
(Python ssl with load_cert_chain); slixmpp (certfile/keyfile, mechanism
EXTERNAL) is a client nobody here wrote.

Covered: EXTERNAL offered only with a certificate that verifies, success
with an empty ('=') and an explicit authzid, bind to the certificate's JID,
identity from id-on-xmppAddr / CN / email (client_cert_identity), no
certificate / expired / other CA / revoked -> not offered and
<invalid-mechanism/> (the TLS handshake itself succeeds, PLAIN still works
on that stream), an authzid the certificate does not name ->
<invalid-authzid/>, a certificate naming two JIDs with authzid choosing
one, an unknown account or no usable identity -> <not-authorized/>, PLAIN
and SCRAM unchanged; [tls] min_version = TLSv1.3 refusing a TLS 1.2 client,
ciphers and ciphersuites applied."""
import contextlib
import ssl
import subprocess

import pytest

from certs import make_certs
from e2e_helpers import (DOMAIN, HERALD_BIN, NS_BIND, NS_SASL, NS_TLS, RawStream,
                         XClient, b64, q, run, sasl_condition, show, write_config)

PASSWORDS = {"alice": "wonderland", "bob": "builder"}
AUTH = {"failure_delay_ms": 50, "address_failures": 0, "account_failures": 0,
        "max_failures": 10}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def ext_server(herald, certs, identity=None, crl=True, users=PASSWORDS):
    c2s = {"client_ca_file": certs.ca, "allow_plaintext": False}
    if crl:
        c2s["client_crl_file"] = certs.crl
    if identity:
        c2s["client_cert_identity"] = identity
    return herald(config={"c2s": c2s, "auth": AUTH}, users=users)


def tls_context(cert=None, key=None, max_version=None, ciphers=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def mechanisms(feats):
    return [m.text for m in feats.iter(q(NS_SASL, "mechanism"))]


def starttls(s, ctx):
    """STARTTLS on a RawStream with our own context; raises ssl.SSLError
    (or OSError) if the handshake fails."""
    s.send("<starttls xmlns='%s'/>" % NS_TLS)
    el = s.next_element()
    assert el is not None and el.tag == q(NS_TLS, "proceed"), \
        "expected <proceed/>, got %s" % show(el)
    s.sock.settimeout(s.timeout)
    s.sock = ctx.wrap_socket(s.sock, server_hostname=DOMAIN)
    s.tls = True
    s._new_parser()


def handshake_fails(s, ctx):
    """STARTTLS whose TLS handshake must fail (the server refuses the
    client's versions or ciphers)."""
    try:
        starttls(s, ctx)
    except (ssl.SSLError, OSError):
        return
    raise AssertionError("the TLS handshake succeeded: %s %s" % (s.sock.version(),
                                                                 s.sock.cipher()))


def tls_stream(srv, certs=None, name=None, ctx=None):
    """A RawStream after STARTTLS, presenting client certificate ``name``
    (None: none); returns (stream, mechanisms offered after TLS)."""
    if ctx is None:
        ctx = tls_context(*((certs.cert(name), certs.key(name)) if name else ()))
    s = RawStream(srv.port)
    assert s.open() is not None, "no stream header from server"
    s.features()
    starttls(s, ctx)
    assert s.open() is not None, \
        "no stream header after TLS with client certificate %s: %r" % (name, s.text())
    return s, mechanisms(s.features())


@contextlib.contextmanager
def tls_session(srv, certs=None, name=None, ctx=None):
    """tls_stream() for the body, closed afterwards."""
    s, mechs = tls_stream(srv, certs, name, ctx)
    try:
        yield s, mechs
    finally:
        s.close()


def auth_external(s, authzid=None):
    """<auth mechanism='EXTERNAL'>: '=' for an empty authzid."""
    return s.auth("EXTERNAL", "=" if not authzid else b64(authzid))


def finish_login(s, resource="ext"):
    """After <success/>: restart the stream and bind; the bound JID."""
    assert s.open() is not None, "no stream header after SASL"
    feats = s.features()
    assert feats.find(q(NS_BIND, "bind")) is not None, show(feats)
    return s.bind(resource)


def expect_success(s, authzid=None):
    resp = auth_external(s, authzid)
    assert resp is not None and resp.tag == q(NS_SASL, "success"), \
        "EXTERNAL (authzid %r) failed: %s" % (authzid, show(resp))
    return finish_login(s)


def expect_failure(s, cond, authzid=None):
    resp = auth_external(s, authzid)
    assert sasl_condition(resp) == cond, \
        "EXTERNAL (authzid %r): expected <%s/>, got %s" % (authzid, cond, show(resp))


def plain_still_works(s, user="alice"):
    resp = s.auth_plain(user, PASSWORDS[user])
    assert resp is not None and resp.tag == q(NS_SASL, "success"), \
        "PLAIN after the EXTERNAL attempt failed: %s" % show(resp)
    jid = finish_login(s, "plain")
    assert jid.startswith("%s@%s/" % (user, DOMAIN)), jid


# --------------------------------------------------------------------------
# 1. Valid certificates
# --------------------------------------------------------------------------

def test_external_with_xmpp_addr(herald, certs):
    """XEP-0178 §3 with RFC 6120 13.7.1.4: alice's certificate (id-on-xmppAddr
    alice@localhost) -> EXTERNAL offered next to the password mechanisms;
    '=' (empty authzid) and authzid alice@localhost both succeed and bind
    alice@localhost/...; a certificate naming alice and bob binds bob with
    authzid bob@localhost."""
    srv = ext_server(herald, certs)
    with tls_session(srv, certs, "alice") as (s, mechs):
        assert "EXTERNAL" in mechs and "PLAIN" in mechs and "SCRAM-SHA-256" in mechs, mechs
        jid = expect_success(s)
        assert jid.startswith("alice@localhost/"), jid
        # the session is real: a ping round trip
        resp = s.iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN, iq_id="p1")
        assert resp is not None and resp.get("type") == "result", show(resp)
    with tls_session(srv, certs, "alice") as (s, mechs):
        assert expect_success(s, "alice@localhost").startswith("alice@localhost/")
    with tls_session(srv, certs, "alice_bob") as (s, mechs):
        assert "EXTERNAL" in mechs, mechs
        jid = expect_success(s, "bob@localhost")
        assert jid.startswith("bob@localhost/"), jid
    assert "EXTERNAL" in srv.log_text()


def test_external_without_initial_response(herald, certs):
    """RFC 4422 §3.3 / RFC 6120 §6.4.3: <auth mechanism='EXTERNAL'/> with no
    initial response gets an empty challenge ('='); the authzid (or '=')
    then comes in <response/>."""
    srv = ext_server(herald, certs)
    with tls_session(srv, certs, "alice") as (s, mechs):
        assert "EXTERNAL" in mechs, mechs
        resp = s.auth("EXTERNAL")
        assert resp is not None and resp.tag == q(NS_SASL, "challenge") and \
            (resp.text or "").strip() == "=", show(resp)
        s.send("<response xmlns='%s'>=</response>" % NS_SASL)
        resp = s.wait_element(lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")))
        assert resp is not None and resp.tag == q(NS_SASL, "success"), show(resp)
        assert finish_login(s).startswith("alice@localhost/")
    with tls_session(srv, certs, "alice") as (s, mechs):
        resp = s.auth("EXTERNAL")
        assert resp is not None and resp.tag == q(NS_SASL, "challenge"), show(resp)
        s.send("<response xmlns='%s'>%s</response>" % (NS_SASL, b64("bob@localhost")))
        resp = s.wait_element(lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")))
        assert sasl_condition(resp) == "invalid-authzid", show(resp)


def test_external_with_cn_and_email_identity(herald, certs):
    """client_cert_identity = cn: the certificate with only CN=alice logs in
    as alice@localhost, alice's xmppAddr certificate (CN=xmpp-client-1, no
    such account) is not-authorized. client_cert_identity = email: the
    certificate with email alice@localhost logs in as alice@localhost."""
    srv = ext_server(herald, certs, identity="cn")
    with tls_session(srv, certs, "alice_cn") as (s, mechs):
        assert "EXTERNAL" in mechs, mechs
        assert expect_success(s).startswith("alice@localhost/")
    with tls_session(srv, certs, "alice") as (s, mechs):
        assert "EXTERNAL" in mechs, mechs
        expect_failure(s, "not-authorized")

    srv2 = ext_server(herald, certs, identity="email")
    with tls_session(srv2, certs, "alice_email") as (s, mechs):
        assert "EXTERNAL" in mechs, mechs
        assert expect_success(s).startswith("alice@localhost/")


# --------------------------------------------------------------------------
# 2. Refusals
# --------------------------------------------------------------------------

def test_no_certificate_external_not_offered(herald, certs):
    """Without a client certificate EXTERNAL is not offered (and trying it
    is <invalid-mechanism/>); PLAIN and slixmpp's SCRAM work as before."""
    srv = ext_server(herald, certs)
    with tls_session(srv, certs, None) as (s, mechs):
        assert "EXTERNAL" not in mechs and "PLAIN" in mechs, mechs
        expect_failure(s, "invalid-mechanism")
        plain_still_works(s)

    async def body():
        c = XClient(srv, "alice@localhost/scram", "wonderland")
        await c.login()
        assert c.mech_used.startswith("SCRAM-"), c.mech_used
        assert "EXTERNAL" not in c.offered_mechs, c.offered_mechs
    run(body)


@pytest.mark.parametrize("name", ["expired", "foreign", "revoked"])
def test_unverified_certificate_external_not_offered(herald, certs, name):
    """A certificate that does not verify (expired; from another CA; revoked
    in client_crl_file): the TLS handshake succeeds, EXTERNAL is not offered,
    an attempt anyway is <invalid-mechanism/>, PLAIN works on that stream."""
    srv = ext_server(herald, certs)
    with tls_session(srv, certs, name) as (s, mechs):
        assert "EXTERNAL" not in mechs, "EXTERNAL offered for the %s certificate: %s" % (
            name, mechs)
        assert "PLAIN" in mechs, mechs
        expect_failure(s, "invalid-mechanism")
        plain_still_works(s)


def test_revoked_certificate_works_without_crl(herald, certs):
    """The CRL is what refuses the revoked certificate: without
    client_crl_file the same certificate is accepted (so the revoked case
    above does not pass for another reason)."""
    srv = ext_server(herald, certs, crl=False)
    with tls_session(srv, certs, "revoked") as (s, mechs):
        assert "EXTERNAL" in mechs, mechs
        assert expect_success(s).startswith("alice@localhost/")


def test_authzid_and_account_refusals(herald, certs):
    """RFC 6120 6.4.6 / XEP-0178 §3: bob's certificate with authzid
    alice@localhost and alice's with authzid bob@localhost ->
    <invalid-authzid/>; a certificate for ghost@localhost (no account) ->
    <not-authorized/>; the CN-only certificate under the default
    xmppaddr identity (no usable identity) -> <not-authorized/>. None of
    them leaves a session: the stream is still unauthenticated and PLAIN
    works on it."""
    srv = ext_server(herald, certs)
    for name, authzid, cond in (("bob", "alice@localhost", "invalid-authzid"),
                                ("alice", "bob@localhost", "invalid-authzid"),
                                ("ghost", None, "not-authorized"),
                                ("alice_cn", None, "not-authorized")):
        with tls_session(srv, certs, name) as (s, mechs):
            assert "EXTERNAL" in mechs, "%s: %s" % (name, mechs)
            expect_failure(s, cond, authzid)
            plain_still_works(s, "bob" if name == "bob" else "alice")


# --------------------------------------------------------------------------
# 3. slixmpp doing EXTERNAL
# --------------------------------------------------------------------------

def test_slixmpp_external(herald, certs):
    """slixmpp 1.8 (certfile/keyfile, sasl_mech EXTERNAL) logs in as alice
    with her certificate and gets a working session; with the expired
    certificate it finds no mechanism it may use and never gets a session."""
    srv = ext_server(herald, certs)

    async def body():
        c = XClient(srv, "alice@localhost/slix", "", mech="EXTERNAL")
        c.xmpp.certfile = certs.cert("alice")
        c.xmpp.keyfile = certs.key("alice")
        await c.login()
        assert c.mech_used == "EXTERNAL", c.mech_used
        assert c.jid == "alice@localhost/slix", c.jid
        await c.sync()
        assert "EXTERNAL" in c.offered_mechs, c.offered_mechs

        bad = XClient(srv, "alice@localhost/slix2", "", mech="EXTERNAL")
        bad.xmpp.certfile = certs.cert("expired")
        bad.xmpp.keyfile = certs.key("expired")
        kind = await bad.connect(timeout=10)
        assert kind != "session", "the expired certificate got a session"
        assert "EXTERNAL" not in bad.offered_mechs, bad.offered_mechs
    run(body)


# --------------------------------------------------------------------------
# 4. [tls] min_version, ciphers, ciphersuites
# --------------------------------------------------------------------------

def test_tls_min_version_13(herald, certs):
    """[tls] min_version = TLSv1.3: a client limited to TLS 1.2 fails the
    handshake; a TLS 1.3 client succeeds (and logs in); a value that is not
    TLSv1.2/TLSv1.3 is refused by check-config."""
    srv = herald(config={"tls": {"min_version": "TLSv1.3"}}, users=PASSWORDS)
    s = RawStream(srv.port)
    try:
        s.open()
        s.features()
        handshake_fails(s, tls_context(max_version=ssl.TLSVersion.TLSv1_2))
    finally:
        s.close()
    with tls_session(srv, ctx=tls_context()) as (s, mechs):
        assert s.sock.version() == "TLSv1.3", s.sock.version()
        plain_still_works(s)

    for value, ok in (("TLSv1.2", True), ("TLSv1.3", True), ("TLSv1.0", False),
                      ("SSLv3", False)):
        path = "%s.%s.ini" % (srv.config_path, value)
        write_config(path, {"tls": {"min_version": value}})
        r = subprocess.run([HERALD_BIN, "check-config", "--config", path], capture_output=True,
                           timeout=15, stdin=subprocess.DEVNULL)
        out = (r.stdout + r.stderr).decode(errors="replace")
        if ok:
            assert r.returncode == 0, "min_version = %s refused: %r" % (value, out)
        else:
            assert r.returncode != 0 and "min_version" in out, \
                "min_version = %s accepted or not named: %r" % (value, out)


def test_tls_ciphers_and_ciphersuites(herald, certs):
    """[tls] ciphers (TLS 1.2) and ciphersuites (TLS 1.3) are applied: a
    TLS 1.2 client offering everything negotiates the one configured cipher;
    one offering only another cipher fails; a TLS 1.3 client gets the one
    configured suite."""
    cipher12 = "ECDHE-ECDSA-AES128-GCM-SHA256"  # the generated key is EC P-256
    suite13 = "TLS_CHACHA20_POLY1305_SHA256"
    srv = herald(config={"tls": {"min_version": "TLSv1.2", "ciphers": cipher12,
                                 "ciphersuites": suite13}}, users=PASSWORDS)
    with tls_session(srv, ctx=tls_context(max_version=ssl.TLSVersion.TLSv1_2)) as (s, mechs):
        assert s.sock.version() == "TLSv1.2", s.sock.version()
        assert s.sock.cipher()[0] == cipher12, s.sock.cipher()
        plain_still_works(s)

    s = RawStream(srv.port)
    try:
        s.open()
        s.features()
        handshake_fails(s, tls_context(max_version=ssl.TLSVersion.TLSv1_2,
                                       ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"))
    finally:
        s.close()

    with tls_session(srv, ctx=tls_context()) as (s, mechs):
        assert s.sock.version() == "TLSv1.3", s.sock.version()
        assert s.sock.cipher()[0] == suite13, s.sock.cipher()
