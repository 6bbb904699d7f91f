"""Message routing between accounts (RFC 6120 section 8, RFC 6121 section 8)."""
from e2e_helpers import XClient, run

USERS = {"alice": "wonderland", "bob": "builder"}


def test_two_accounts_exchange_messages(herald):
    """RFC 6121 8.5.3.1 (full JID, resource online) and RFC 6120 8.1.2.1
    (server stamps 'from'): alice and bob exchange chat messages both ways;
    body, type and the sender's full JID as 'from' arrive intact."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a1", "wonderland")
        bob = XClient(srv, "bob@localhost/b1", "builder")
        await alice.login()
        await bob.login()
        await alice.presence()
        await bob.presence()
        alice.send_message("bob@localhost/b1", "hello bob \u2603 <&>")
        m = await bob.expect_message()
        assert m["body"] == "hello bob \u2603 <&>"
        assert m["from"] == "alice@localhost/a1"
        assert m["type"] == "chat"
        assert m["to"].bare == "bob@localhost"
        bob.send_message("alice@localhost/a1", "hi alice")
        m = await alice.expect_message()
        assert m["body"] == "hi alice"
        assert m["from"] == "bob@localhost/b1"
        # Several messages keep their order (RFC 6120 10.1, in-order processing).
        for i in range(20):
            alice.send_message("bob@localhost/b1", "n%d" % i)
        got = [(await bob.expect_message())["body"] for _ in range(20)]
        assert got == ["n%d" % i for i in range(20)]
    run(body)


def test_server_stamps_from_over_spoofed_value(herald):
    """RFC 6120 8.1.2.1: the server stamps 'from' with the sender's full JID;
    a forged 'from' never reaches the recipient (the server may instead close
    the stream with <invalid-from/>, RFC 6120 4.9.3.9)."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a1", "wonderland")
        bob = XClient(srv, "bob@localhost/b1", "builder")
        await alice.login()
        await bob.login()
        await bob.presence()
        alice.send_message("bob@localhost/b1", "forged", mfrom="eve@localhost/evil")
        alice.send_message("bob@localhost/b1", "marker")
        seen = []
        while True:
            try:
                m = await bob.expect_message(timeout=3)
            except AssertionError:
                break
            seen.append((m["body"], str(m["from"])))
            if m["body"] == "marker":
                break
        for b, frm in seen:
            assert frm == "alice@localhost/a1", "delivered with from=%s: %r" % (frm, seen)
        if "invalid-from" not in alice.stream_errors:
            assert ("forged", "alice@localhost/a1") in seen, seen
    run(body)


def test_message_to_bare_jid_single_resource(herald):
    """RFC 6121 8.5.2.1.1: a chat or normal message to the bare JID reaches
    the account's one available resource."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a1", "wonderland")
        bob = XClient(srv, "bob@localhost/only", "builder")
        await alice.login()
        await bob.login()
        await bob.presence()
        alice.send_message("bob@localhost", "to your bare jid", mtype="chat")
        m = await bob.expect_message()
        assert m["body"] == "to your bare jid" and m["from"] == "alice@localhost/a1"
        alice.send_message("bob@localhost", "normal type", mtype="normal")
        m = await bob.expect_message()
        assert m["body"] == "normal type"
    run(body)


def test_message_to_offline_full_jid_goes_to_bare(herald):
    """RFC 6121 8.5.3.2.1: a message to a full JID whose resource is not online
    is handled as if sent to the bare JID: the available resource gets it."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a1", "wonderland")
        bob = XClient(srv, "bob@localhost/here", "builder")
        await alice.login()
        await bob.login()
        await bob.presence(priority=1)
        alice.send_message("bob@localhost/not-here", "find me")
        m = await bob.expect_message()
        assert m["body"] == "find me" and m["from"] == "alice@localhost/a1"
    run(body)


def test_message_to_offline_or_unknown_user_service_unavailable(herald):
    """RFC 6121 8.5.1 (no such account) and 8.5.2.2.1 with XEP-0160 §3 (no
    available resource and offline storage full: [im] max_offline_messages =
    0): the sender gets a message error <service-unavailable/> from the
    addressed JID."""
    srv = herald(users=USERS, config={"im": {"max_offline_messages": 0}})

    async def body():
        alice = XClient(srv, "alice@localhost/a1", "wonderland")
        await alice.login()
        await alice.presence()
        for to in ("nobody@localhost", "bob@localhost", "bob@localhost/gone"):
            alice.send_message(to, "anyone there?")
            err = await alice.expect_message_error()
            assert err["error"]["condition"] == "service-unavailable", (to, err)
            assert err["type"] == "error"
            assert err["from"].bare == to.split("/")[0], (to, err)
    run(body)


def test_message_to_remote_domain_remote_server_not_found(herald):
    """RFC 6120 8.3.3.16 <remote-server-not-found/> (no server-to-server):
    a message to another domain bounces with that error."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a1", "wonderland")
        await alice.login()
        alice.send_message("someone@example.org", "far away")
        err = await alice.expect_message_error()
        assert err["error"]["condition"] == "remote-server-not-found", err
        assert err["from"].bare == "someone@example.org"
    run(body)
