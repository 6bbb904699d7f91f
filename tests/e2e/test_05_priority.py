"""Bare-JID delivery by presence priority (RFC 6121 8.5.2.1.1 and 4.7.2.3)."""
from e2e_helpers import XClient, run

USERS = {"alice": "wonderland", "bob": "builder"}


async def login_all(srv, *specs):
    """specs: (jid, password, priority or None for 'no presence sent')."""
    clients = []
    for jid, pw, prio in specs:
        c = XClient(srv, jid, pw)
        await c.login()
        if prio is not None:
            await c.presence(priority=prio)
        clients.append(c)
    return clients


def test_bare_jid_goes_to_highest_priority_only(herald):
    """RFC 6121 8.5.2.1.1: a message to the bare JID goes to the available
    resource with the highest priority (5), not the lower one (1)."""
    srv = herald(users=USERS)

    async def body():
        alice, low, high = await login_all(
            srv, ("alice@localhost/a", "wonderland", 0),
            ("bob@localhost/low", "builder", 1), ("bob@localhost/high", "builder", 5))
        alice.send_message("bob@localhost", "for the best")
        m = await high.expect_message()
        assert m["body"] == "for the best" and m["from"] == "alice@localhost/a"
        await low.assert_no_message(1.0)
        # Priority changes are honoured: low becomes the highest.
        await low.presence(priority=10)
        alice.send_message("bob@localhost", "now for low")
        assert (await low.expect_message())["body"] == "now for low"
        await high.assert_no_message(1.0)
    run(body)


def test_bare_jid_tie_goes_to_all_top_resources(herald):
    """RFC 6121 8.5.2.1.1 (ties: deliver to all of the highest priority):
    two resources at 5 both get the message, the one at 1 does not."""
    srv = herald(users=USERS)

    async def body():
        alice, t1, t2, low = await login_all(
            srv, ("alice@localhost/a", "wonderland", 0),
            ("bob@localhost/t1", "builder", 5), ("bob@localhost/t2", "builder", 5),
            ("bob@localhost/low", "builder", 1))
        alice.send_message("bob@localhost", "for both")
        assert (await t1.expect_message())["body"] == "for both"
        assert (await t2.expect_message())["body"] == "for both"
        await low.assert_no_message(1.0)
    run(body)


def test_negative_priority_never_gets_bare_jid_messages(herald):
    """RFC 6121 4.7.2.3 / 8.5.2.1.1: a resource with negative priority never
    receives messages to the bare JID; with only negative-priority resources
    the sender gets <service-unavailable/>; a full-JID message still reaches
    the negative-priority resource (RFC 6121 8.5.3.1)."""
    # Offline storage is off so that "nobody available" shows as an error.
    srv = herald(users=USERS, config={"im": {"max_offline_messages": 0}})

    async def body():
        alice, neg = await login_all(
            srv, ("alice@localhost/a", "wonderland", 0), ("bob@localhost/neg", "builder", -1))
        alice.send_message("bob@localhost", "bare to negative")
        err = await alice.expect_message_error()
        assert err["error"]["condition"] == "service-unavailable", err
        await neg.assert_no_message(0.5)
        alice.send_message("bob@localhost/neg", "full to negative")
        m = await neg.expect_message()
        assert m["body"] == "full to negative"
        # With a priority-0 resource added, it gets the bare message; neg does not.
        zero = XClient(srv, "bob@localhost/zero", "builder")
        await zero.login()
        await zero.presence(priority=0)
        alice.send_message("bob@localhost", "bare again")
        assert (await zero.expect_message())["body"] == "bare again"
        await neg.assert_no_message(1.0)
    run(body)


def test_unavailable_resource_not_a_bare_jid_target(herald):
    """RFC 6121 8.5.2.1.1 ('available resources' only): a resource that has
    not sent initial presence gets no bare-JID messages; when it is the only
    one, the sender gets <service-unavailable/>."""
    # Offline storage is off so that "nobody available" shows as an error.
    srv = herald(users=USERS, config={"im": {"max_offline_messages": 0}})

    async def body():
        alice, silent = await login_all(
            srv, ("alice@localhost/a", "wonderland", 0), ("bob@localhost/silent", "builder", None))
        alice.send_message("bob@localhost", "nobody available")
        err = await alice.expect_message_error()
        assert err["error"]["condition"] == "service-unavailable", err
        await silent.assert_no_message(0.5)
        avail = XClient(srv, "bob@localhost/avail", "builder")
        await avail.login()
        await avail.presence(priority=0)
        alice.send_message("bob@localhost", "for the available one")
        assert (await avail.expect_message())["body"] == "for the available one"
        await silent.assert_no_message(1.0)
    run(body)


def test_full_jid_bypasses_priority(herald):
    """RFC 6121 8.5.3.1: a message to a full JID goes to that resource only,
    even when another resource has a higher priority."""
    srv = herald(users=USERS)

    async def body():
        alice, low, high = await login_all(
            srv, ("alice@localhost/a", "wonderland", 0),
            ("bob@localhost/low", "builder", 1), ("bob@localhost/high", "builder", 5))
        alice.send_message("bob@localhost/low", "just for low")
        m = await low.expect_message()
        assert m["body"] == "just for low" and m["from"] == "alice@localhost/a"
        await high.assert_no_message(1.0)
    run(body)
