"""A terminal client written by nobody here: sendxmpp (Debian package
sendxmpp, Perl, Net::XMPP) sends messages that slixmpp receives.

sendxmpp reads its account from a file (-f, mode 600) and the message from
another file (-m; a file without a trailing newline gives an exact body).
Missing sendxmpp is a failure, not a skip: scripts/install-deps installs it.
"""
import asyncio
import datetime
import os
import shutil
import subprocess

from e2e_helpers import DOMAIN, run
from im_helpers import PASSWORDS, body_of, delay_of, im_client, parse_stamp, show, users

SENDXMPP_TIMEOUT = 30
BODY = "Hello Bob \u2014 from sendxmpp: <tags> & \"quotes\" 'too' \u00fcn\u00efc\u00f8d\u00e9"


def sendxmpp_path():
    path = shutil.which("sendxmpp")
    assert path, "sendxmpp not found: install the Debian package sendxmpp (scripts/install-deps)"
    return path


async def run_sendxmpp(srv, workdir, to, body, tls, resource="term"):
    """Runs sendxmpp as alice (account file and message file in workdir);
    returns (exit status, combined output)."""
    rc_path = os.path.join(workdir, "sendxmpprc")
    with open(rc_path, "w") as f:
        f.write("username: alice\njserver: 127.0.0.1\nport: %d\npassword: %s\n"
                "component: %s\n" % (srv.port, PASSWORDS["alice"], DOMAIN))
    os.chmod(rc_path, 0o600)
    msg_path = os.path.join(workdir, "message.txt")
    with open(msg_path, "wb") as f:
        f.write(body.encode("utf-8"))
    argv = [sendxmpp_path(), "-f", rc_path, "-r", resource, "-m", msg_path]
    if tls:
        argv += ["-t", "-n"]  # STARTTLS, certificate not verified (self-signed)
    argv.append(to)
    proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), SENDXMPP_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError("sendxmpp did not finish within %d s: %s"
                             % (SENDXMPP_TIMEOUT, out.decode("utf-8", "replace")[-4000:]))
    return proc.returncode, out.decode("utf-8", "replace")


def _check(m, frm_full):
    el = m.xml
    assert body_of(el) == BODY, "body differs: %r != %r" % (body_of(el), BODY)
    frm = el.get("from") or ""
    assert frm in (frm_full, frm_full.split("/")[0]), "from %r, expected alice: %s" % (
        frm, show(el))


def test_sendxmpp_plaintext_to_online_bob(herald, tmp_path):
    """RFC 6121 5.1 / 8.5.2.1.1 with an independent client: sendxmpp logs in
    as alice without TLS (server started with --allow-plaintext) and sends
    a chat message to bob's bare JID; bob, online with slixmpp, receives
    exactly that body from alice."""
    srv = herald(users=users("alice", "bob"), allow_plaintext=True)

    async def body():
        b = await im_client(srv, "bob", "sl", roster=False)
        rc, out = await run_sendxmpp(srv, str(tmp_path), "bob@localhost", BODY, tls=False)
        assert rc == 0, "sendxmpp exited %d:\n%s" % (rc, out[-4000:])
        m = await b.msgs.expect(lambda el: body_of(el) is not None, timeout=10,
                                what="the message from sendxmpp")
        _check(m, "alice@localhost/term")
        assert delay_of(m.xml) is None, "a live message has no delay: %s" % show(m.xml)
        # The same stanza through slixmpp's 'message' event (XClient.messages).
        ev = await b.expect_message()
        assert ev["body"] == BODY and ev["type"] == "chat", ev
    run(body)


def test_sendxmpp_starttls_to_online_bob(herald, tmp_path):
    """RFC 6120 5 (STARTTLS) and RFC 6121 8.5.2.1.1 with an independent
    client: the same over STARTTLS (sendxmpp -t -n; the certificate is
    self-signed) on a server that requires TLS; bob receives the exact body
    from alice."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        b = await im_client(srv, "bob", "sl", roster=False)
        rc, out = await run_sendxmpp(srv, str(tmp_path), "bob@localhost", BODY, tls=True)
        assert rc == 0, "sendxmpp exited %d:\n%s" % (rc, out[-4000:])
        m = await b.msgs.expect(lambda el: body_of(el) is not None, timeout=10,
                                what="the message from sendxmpp")
        _check(m, "alice@localhost/term")
    run(body)


def test_sendxmpp_to_offline_bob_is_stored(herald, tmp_path):
    """XEP-0160 / RFC 6121 8.5.2.2.1 with an independent client: sendxmpp's
    message to bob while bob is offline is stored and delivered with a
    XEP-0203 delay when bob (slixmpp) next sends initial presence."""
    srv = herald(users=users("alice", "bob"), allow_plaintext=True)

    async def body():
        t0 = datetime.datetime.now(datetime.timezone.utc)
        rc, out = await run_sendxmpp(srv, str(tmp_path), "bob@localhost", BODY, tls=False)
        assert rc == 0, "sendxmpp exited %d:\n%s" % (rc, out[-4000:])
        t1 = datetime.datetime.now(datetime.timezone.utc)
        b = await im_client(srv, "bob", "sl", roster=False)
        m = await b.msgs.expect(lambda el: body_of(el) is not None, timeout=10,
                                what="the stored message from sendxmpp")
        _check(m, "alice@localhost/term")
        d = delay_of(m.xml)
        assert d is not None and d.get("from") == DOMAIN, show(m.xml)
        stamp = parse_stamp(d.get("stamp") or "")
        slack = datetime.timedelta(seconds=1.5)
        assert t0 - slack <= stamp <= t1 + slack, (stamp, t0, t1)
    run(body)
