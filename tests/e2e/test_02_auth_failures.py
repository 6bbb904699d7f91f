"""SASL failure cases (RFC 6120 6.4.5 and 6.5)."""
import time

from e2e_helpers import NS_SASL, RawStream, XClient, b64, q, run, sasl_condition, show

ALICE = {"alice": "wonderland"}


def tls_stream(srv):
    s = RawStream(srv.port)
    s.open()
    s.features()
    s.starttls()
    s.open()
    s.features()
    return s


def test_wrong_password_not_authorized_raw(herald):
    """RFC 6120 6.5.10 <not-authorized/>: PLAIN with a wrong password gets
    exactly <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>
    </failure>, delayed by [auth] failure_delay_ms; the right password then
    still works on the same stream (RFC 6120 6.4.5 allows retries)."""
    srv = herald(config={"auth": {"failure_delay_ms": 600}}, users=ALICE)
    s = tls_stream(srv)
    try:
        t0 = time.monotonic()
        resp = s.auth_plain("alice", "wrong-password")
        elapsed = time.monotonic() - t0
        assert sasl_condition(resp) == "not-authorized", show(resp)
        assert elapsed >= 0.5, "failure came after %.3f s; failure_delay_ms is 600" % elapsed
        ok = s.auth_plain("alice", "wonderland")
        assert ok is not None and ok.tag == q(NS_SASL, "success"), show(ok)
    finally:
        s.close()


def test_wrong_password_scram_slixmpp(herald):
    """RFC 6120 6.5.10 via a real client: SCRAM-SHA-256 with a wrong password
    ends in <not-authorized/> and no session."""
    srv = herald(config={"auth": {"failure_delay_ms": 100}}, users=ALICE)

    async def body():
        c = XClient(srv, "alice@localhost/x", "not-the-password", mech="SCRAM-SHA-256")
        kind = await c.connect()
        assert kind != "session" and not c.session_started
        assert c.auth_failures == ["not-authorized"], (kind, c.auth_failures)
    run(body)


def test_unknown_user_not_authorized(herald):
    """RFC 6120 6.5.10: an unknown user gets <not-authorized/>, the same as a
    wrong password (no account enumeration), with both PLAIN and SCRAM."""
    srv = herald(config={"auth": {"failure_delay_ms": 100}}, users=ALICE)
    s = tls_stream(srv)
    try:
        resp = s.auth_plain("nosuchuser", "whatever")
        assert sasl_condition(resp) == "not-authorized", show(resp)
    finally:
        s.close()

    async def body():
        c = XClient(srv, "ghost@localhost/x", "whatever", mech="SCRAM-SHA-256")
        kind = await c.connect()
        assert kind != "session"
        assert c.auth_failures == ["not-authorized"], (kind, c.auth_failures)
    run(body)


def test_too_many_failures_policy_violation(herald):
    """RFC 6120 4.9.3.14 <policy-violation/> with [auth] max_failures: after
    max_failures failed attempts the stream is closed with a policy-violation
    stream error; earlier attempts get <not-authorized/>."""
    srv = herald(config={"auth": {"failure_delay_ms": 50, "max_failures": 3}}, users=ALICE)
    s = tls_stream(srv)
    try:
        conditions = []
        for attempt in range(1, 5):
            resp = s.auth_plain("alice", "bad%d" % attempt)
            if resp is None or resp.tag != q(NS_SASL, "failure"):
                break
            conditions.append(sasl_condition(resp))
            if s.stream_error() is not None:
                break
        assert conditions[:2] == ["not-authorized", "not-authorized"], conditions
        assert len(conditions) <= 3, "still answering after %d failures" % len(conditions)
        s.read_until_closed(timeout=10)
        assert s.stream_error() == "policy-violation", s.text()[-1500:]
        assert s.stream_ended, "no </stream:stream> after the stream error"
        assert s.closed, "server did not close the connection"
    finally:
        s.close()
    # A fresh connection may still log in: the limit is per stream.
    s2 = RawStream(srv.port)
    try:
        assert s2.login("alice", "wonderland", "again") == "alice@localhost/again"
    finally:
        s2.close()


def test_invalid_mechanism(herald):
    """RFC 6120 6.5.5 <invalid-mechanism/>: an unsupported mechanism name."""
    srv = herald(config={"auth": {"failure_delay_ms": 50}}, users=ALICE)
    s = tls_stream(srv)
    try:
        resp = s.auth("X-NO-SUCH-MECH", b64("abc"))
        assert sasl_condition(resp) == "invalid-mechanism", show(resp)
    finally:
        s.close()


def test_bad_base64_rejected(herald):
    """RFC 6120 6.5.2 <incorrect-encoding/> (the RFC's condition for bad
    base64; the project brief named <malformed-request/>, so either is
    accepted here): invalid base64 in <auth/> fails and does not log in."""
    srv = herald(config={"auth": {"failure_delay_ms": 50}}, users=ALICE)
    s = tls_stream(srv)
    try:
        resp = s.auth("PLAIN", "!!!not*base64***")
        assert sasl_condition(resp) in ("incorrect-encoding", "malformed-request"), show(resp)
        ok = s.auth_plain("alice", "wonderland")
        assert ok is not None and ok.tag == q(NS_SASL, "success"), show(ok)
    finally:
        s.close()


def test_malformed_request(herald):
    """RFC 6120 6.5.8 <malformed-request/>: valid base64 whose content is not
    a PLAIN message (no NUL separators) and a SCRAM client-first-message
    without the GS2 header."""
    srv = herald(config={"auth": {"failure_delay_ms": 50}}, users=ALICE)
    s = tls_stream(srv)
    try:
        resp = s.auth("PLAIN", b64("no-separators-at-all"))
        assert sasl_condition(resp) == "malformed-request", show(resp)
        resp = s.auth("SCRAM-SHA-256", b64("this is not scram"))
        assert sasl_condition(resp) == "malformed-request", show(resp)
    finally:
        s.close()


def test_abort_gives_aborted(herald):
    """RFC 6120 6.4.4 / 6.5.1 <aborted/>: <abort/> during a SCRAM exchange."""
    srv = herald(config={"auth": {"failure_delay_ms": 50}}, users=ALICE)
    s = tls_stream(srv)
    try:
        ch = s.auth("SCRAM-SHA-256", b64("n,,n=alice,r=abcdefghijklmnop"))
        assert ch is not None and ch.tag == q(NS_SASL, "challenge"), show(ch)
        s.send("<abort xmlns='%s'/>" % NS_SASL)
        resp = s.wait_element(lambda e: e.tag == q(NS_SASL, "failure"))
        assert sasl_condition(resp) == "aborted", show(resp)
        # A new attempt on the same stream works.
        ok = s.auth_plain("alice", "wonderland")
        assert ok is not None and ok.tag == q(NS_SASL, "success"), show(ok)
    finally:
        s.close()


def test_authzid_of_another_user_refused(herald):
    """RFC 6120 6.3.8 (authorization identity) and 6.5.6 <invalid-authzid/>:
    alice's valid credentials with authzid bob@localhost must not log in as
    bob (nor as alice)."""
    srv = herald(config={"auth": {"failure_delay_ms": 50}},
                 users={"alice": "wonderland", "bob": "builder"})
    s = tls_stream(srv)
    try:
        resp = s.auth("PLAIN", b64("bob@localhost\0alice\0wonderland"))
        assert resp is not None and resp.tag != q(NS_SASL, "success"), \
            "alice authenticated with authzid bob: %s" % show(resp)
        assert sasl_condition(resp) in ("invalid-authzid", "not-authorized"), show(resp)
    finally:
        s.close()
