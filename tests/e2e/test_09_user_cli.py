"""`herald user ...` against a running server (account store shared with the
server; logins use RFC 6120 section 6 SASL)."""
from e2e_helpers import XClient, run


def test_user_added_while_running_can_log_in(herald):
    """RFC 6120 6.4 with an account created by `herald user add` while the
    server runs: the server sees it at once (SCRAM-SHA-256 and PLAIN)."""
    srv = herald()

    async def before():
        c = XClient(srv, "dave@localhost/r", "pw-dave", mech="SCRAM-SHA-256")
        kind = await c.connect()
        assert kind != "session" and c.auth_failures == ["not-authorized"], \
            (kind, c.auth_failures)
    run(before)
    srv.add_user("dave", "pw-dave")

    async def after():
        for mech in ("SCRAM-SHA-256", "PLAIN"):
            c = XClient(srv, "dave@localhost/" + mech, "pw-dave", mech=mech)
            await c.login()
            assert c.jid == "dave@localhost/" + mech
            await c.close()
    run(after)


def test_user_del_then_login_fails(herald):
    """RFC 6120 6.5.10: after `herald user del` the account's login fails with
    <not-authorized/>; other accounts are untouched."""
    srv = herald(config={"auth": {"failure_delay_ms": 100}},
                 users={"erin": "pw-erin", "frank": "pw-frank"})

    async def works():
        c = XClient(srv, "erin@localhost/r", "pw-erin")
        await c.login()
    run(works)
    r = srv.cli("user", "del", "erin@localhost")
    assert r.returncode == 0, r.stderr

    async def fails():
        c = XClient(srv, "erin@localhost/r", "pw-erin", mech="SCRAM-SHA-256")
        kind = await c.connect()
        assert kind != "session" and c.auth_failures == ["not-authorized"], \
            (kind, c.auth_failures)
        c2 = XClient(srv, "erin@localhost/r2", "pw-erin", mech="PLAIN")
        kind = await c2.connect()
        assert kind != "session" and c2.auth_failures == ["not-authorized"], \
            (kind, c2.auth_failures)
        other = XClient(srv, "frank@localhost/r", "pw-frank")
        await other.login()
    run(fails)


def test_user_passwd_changes_password(herald):
    """RFC 6120 6.4: after `herald user passwd` the old password fails and
    the new one works, with SCRAM (new salted credentials) and PLAIN."""
    srv = herald(config={"auth": {"failure_delay_ms": 100}}, users={"gina": "old-pw"})
    r = srv.cli("user", "passwd", "gina@localhost", "--password", "new-pw")
    assert r.returncode == 0, r.stderr

    async def body():
        old = XClient(srv, "gina@localhost/o", "old-pw", mech="SCRAM-SHA-256")
        kind = await old.connect()
        assert kind != "session" and old.auth_failures == ["not-authorized"]
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"):
            c = XClient(srv, "gina@localhost/" + mech, "new-pw", mech=mech)
            await c.login()
            await c.close()
    run(body)


def test_user_list_and_errors(herald):
    """RFC 7622 3.3 (localpart: no spaces, no '@'; not empty) for the
    account CLI: `herald user list` prints one JID per line; `user add` of
    an existing user or a malformed JID, and `user del` of an unknown user,
    fail with a nonzero status and a message."""
    srv = herald(users={"henry": "pw1", "iris": "pw2"})
    r = srv.cli("user", "list")
    assert r.returncode == 0, r.stderr
    lines = [l.strip() for l in r.stdout.decode().splitlines() if l.strip()]
    assert sorted(lines) == ["henry@localhost", "iris@localhost"], lines

    r = srv.cli("user", "add", "henry@localhost", "--password", "again")
    assert r.returncode != 0, "adding an existing user succeeded"
    assert (r.stderr + r.stdout).strip(), "no error message for an existing user"

    for bad in ("no spaces allowed@localhost", "@localhost", "a@b@localhost"):
        r = srv.cli("user", "add", bad, "--password", "x")
        assert r.returncode != 0, "bad JID %r accepted" % bad
        assert (r.stderr + r.stdout).strip(), "no error message for bad JID %r" % bad

    r = srv.cli("user", "del", "nobody@localhost")
    assert r.returncode != 0, "deleting an unknown user succeeded"

    # The failed add did not change henry's password.
    async def body():
        c = XClient(srv, "henry@localhost/r", "pw1")
        await c.login()
    run(body)


def test_user_import_from_stdin(herald):
    """`herald user import -`: one 'JID PASSWORD' per line (passwords may hold
    blanks), comments and blank lines skipped, existing accounts counted and
    left unchanged, bad lines reported with exit status 1; the imported
    accounts log in at once on the running server."""
    import subprocess
    from e2e_helpers import HERALD_BIN
    srv = herald(users={"gina": "pw-gina"})
    lines = "# bulk\n\nhal@localhost pw hal 1\nivy@localhost pw-ivy\ngina@localhost changed\n" \
            "not a jid@\n"
    r = subprocess.run([HERALD_BIN, "user", "import", "-", "--data-dir", srv.data_dir],
                       input=lines.encode(), capture_output=True, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "2 created, 1 already existed, 1 lines skipped" in err, err
    assert "line 6" in err, err

    async def logins():
        for jid, pw in (("hal@localhost/r", "pw hal 1"), ("ivy@localhost/r", "pw-ivy"),
                        ("gina@localhost/r", "pw-gina")):
            c = XClient(srv, jid, pw)
            await c.login()
            await c.close()
    run(logins)
