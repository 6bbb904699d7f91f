"""REST bridge, the event stream (docs/rest-api.md "Event stream"):
GET /v1/nodes/{node}/events read with curl -N (and a raw socket where the
reader's pace matters). Live item events (id: seq, event: item, data: the
item's JSON), resume with Last-Event-ID or ?last_event_id= (exactly the
stored items missed, oldest first, no duplicates, then live ones),
retract / purge / delete events, the end of the stream, access control and
shutdown with streams open."""
import json
import queue
import socket
import time

from rest_helpers import (EventStream, Rest, assert_problem,
                          build_request, expect, healthy, item_path, items_path, new_token,
                          node_path, pipeline, rest_server)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)


def check_item_event(ev, item_id=None, value=None, publisher="alice@localhost"):
    """An item event: event: item, id: the item's seq, data: the item."""
    assert ev.type == "item", ev
    data = ev.json()
    assert ev.id == str(data["seq"]), "event id %r is not the item's seq: %r" % (ev.id, data)
    if item_id is not None:
        assert data["id"] == item_id, (ev, item_id)
    if value is not None:
        assert data["json"] == value, ev
    assert data["publisher"] == publisher, ev
    return data


def test_live_item_events(herald):
    """The stream answers 200 text/event-stream; each item published after
    it began is one event (id = seq, event: item, data = the item as GET
    returns it), in publication order; items stored before it began are not
    sent (no Last-Event-ID)."""
    srv, alice = rest_server(herald)
    alice.create("live")
    old = alice.publish("live", {"old": True})
    s = EventStream(srv, "live", alice.tok).wait_ready()
    assert s.header("Cache-Control") == "no-store", s.headers
    ids = [alice.publish("live", {"n": i}) for i in range(3)]
    evs = s.take(3)
    for ev, item_id, i in zip(evs, ids, range(3)):
        data = check_item_event(ev, item_id, {"n": i})
        assert data == alice.item("live", item_id), "event data differs from GET of the item"
    seqs = [int(e.id) for e in evs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    assert old not in [e.json()["id"] for e in s.all]
    # PUT (replacing an item) is a new event with a new, higher seq.
    expect(alice.put(item_path("live", ids[0]), {"n": "again"}), 200)
    ev = s.next()
    data = check_item_event(ev, ids[0], {"n": "again"})
    assert data["seq"] > seqs[-1], ev
    assert s.pending() == [], "unexpected extra events"


def test_resume_with_last_event_id(herald):
    """Resume: read some events, disconnect, publish more while
    disconnected, reconnect with Last-Event-ID: <last id seen>: exactly the
    missed items arrive, oldest first, no duplicates, then live ones."""
    srv, alice = rest_server(herald)
    alice.create("feed", {"max_items": 100})
    s1 = EventStream(srv, "feed", alice.tok).wait_ready()
    first = [alice.publish("feed", {"n": i}) for i in range(3)]
    evs = s1.take(3)
    assert [check_item_event(e)["id"] for e in evs] == first
    last = evs[-1].id
    s1.close()  # disconnect
    missed = [alice.publish("feed", {"n": i}) for i in range(3, 7)]
    s2 = EventStream(srv, "feed", alice.tok, last_event_id=last).wait_ready()
    got = s2.take(4)
    assert [check_item_event(e)["id"] for e in got] == missed, got
    assert [e.json()["json"]["n"] for e in got] == [3, 4, 5, 6]
    assert int(got[0].id) > int(last)
    seqs = [int(e.id) for e in got]
    assert seqs == sorted(seqs), seqs
    live = alice.publish("feed", {"n": 7})
    ev = s2.next()
    # The next event is the live one: nothing was sent twice in between.
    check_item_event(ev, live, {"n": 7})
    assert s2.pending() == []
    # A second resume from the same point gets the same items again, then the live one.
    s3 = EventStream(srv, "feed", alice.tok, last_event_id=last).wait_ready()
    assert [e.json()["id"] for e in s3.take(5)] == missed + [live]


def test_resume_with_query_parameter(herald):
    """?last_event_id=N resumes like the header; N=0 replays every stored
    item from the oldest; an id at the newest item gives only live
    events."""
    srv, alice = rest_server(herald)
    alice.create("q")
    ids = [alice.publish("q", {"n": i}) for i in range(4)]
    seqs = [alice.item("q", i)["seq"] for i in ids]
    s = EventStream(srv, "q", alice.tok, query="last_event_id=%d" % seqs[1]).wait_ready()
    assert [e.json()["id"] for e in s.take(2)] == ids[2:]
    s0 = EventStream(srv, "q", alice.tok, query="last_event_id=0").wait_ready()
    assert [e.json()["id"] for e in s0.take(4)] == ids
    s_end = EventStream(srv, "q", alice.tok, query="last_event_id=%d" % seqs[-1]).wait_ready()
    live = alice.publish("q", {"n": "live"})
    for stream in (s, s0, s_end):
        check_item_event(stream.next(), live, {"n": "live"})
        assert stream.pending() == []


def test_resume_sees_only_stored_items(herald):
    """What happened while disconnected is replayed from storage only: a
    retracted item is not sent, an item republished with the same id comes
    once (at its new seq), and items evicted by max_items are gone."""
    srv, alice = rest_server(herald)
    alice.create("st", {"max_items": 4})
    s = EventStream(srv, "st", alice.tok).wait_ready()
    a = alice.publish("st", {"v": "a"}, "a")
    ev = s.take(1)[0]
    s.close()
    b = alice.publish("st", {"v": "b"}, "b")
    expect(alice.delete(item_path("st", b)), 204)
    alice.publish("st", {"v": "a2"}, "a")  # republished: new seq
    c = [alice.publish("st", {"v": "c%d" % i}) for i in range(4)]  # evicts the oldest
    stored = [i["id"] for i in alice.items("st")["items"]]
    assert stored == list(reversed(c)), stored  # 'a' (republished) was evicted too
    s2 = EventStream(srv, "st", alice.tok, last_event_id=ev.id).wait_ready()
    assert [e.json()["id"] for e in s2.take(4)] == c
    assert s2.pending() == []
    # And one where the republished item is still stored.
    alice.create("st2", {"max_items": 10})
    s = EventStream(srv, "st2", alice.tok).wait_ready()
    alice.publish("st2", {"v": 1}, "x")
    y = alice.publish("st2", {"v": 2}, "y")
    last = s.take(2)[-1].id
    s.close()
    alice.publish("st2", {"v": 3}, "x")
    expect(alice.delete(item_path("st2", y)), 204)
    z = alice.publish("st2", {"v": 4}, "z")
    s2 = EventStream(srv, "st2", alice.tok, last_event_id=last).wait_ready()
    evs = s2.take(2)
    assert [(e.json()["id"], e.json()["json"]) for e in evs] == [("x", {"v": 3}), (z, {"v": 4})]
    assert a == "a"


def test_retract_purge_delete_events(herald):
    """A retraction is event: retract with data {"id": ...}; a purge is
    event: purge; deleting the node sends event: delete and ends the
    stream (the server closes it)."""
    srv, alice = rest_server(herald)
    alice.create("grid/feeder-7")
    s = EventStream(srv, "grid/feeder-7", alice.tok).wait_ready()
    a = alice.publish("grid/feeder-7", {"a": 1})
    b = alice.publish("grid/feeder-7", {"b": 2})
    assert [e.json()["id"] for e in s.take(2)] == [a, b]
    expect(alice.delete(item_path("grid/feeder-7", a)), 204)
    ev = s.next()
    assert ev.type == "retract" and ev.json() == {"id": a}, ev
    expect(alice.post(node_path("grid/feeder-7", "purge")), 204)
    ev = s.next()
    assert ev.type == "purge", ev
    c = alice.publish("grid/feeder-7", {"c": 3})
    check_item_event(s.next(), c, {"c": 3})  # the stream goes on after a purge
    assert not s.ended.is_set()
    expect(alice.delete(node_path("grid/feeder-7")), 204)
    ev = s.next()
    assert ev.type == "delete", ev
    assert s.wait_ended(10), "the stream did not end after event: delete"
    assert s.pending() == [], s.pending()
    assert s.proc.wait(5) == 0, "curl did not see a clean end of the stream"


def test_several_streams_and_readers(herald):
    """Several streams on one node (different tokens, one JID each) get the
    same events; a read-only token may stream an open node."""
    srv, alice = rest_server(herald)
    alice.create("fan")
    bob_tok = new_token(srv, "bob@localhost", scope="read")
    streams = [EventStream(srv, "fan", tok).wait_ready()
               for tok in (alice.tok, bob_tok, bob_tok)]
    ids = [alice.publish("fan", {"n": i}) for i in range(3)]
    for s in streams:
        assert [check_item_event(e)["id"] for e in s.take(3)] == ids


def test_stream_errors(herald):
    """No stream without a token (401), without the read scope (403), for
    an unknown node (404), for a JID the access model excludes (403), or
    with a Last-Event-ID that is not a number (400); all as problem+json."""
    srv, alice = rest_server(herald)
    alice.create("closed", {"access_model": "whitelist"})
    alice.create("open")
    path = node_path("open", "events")
    assert_problem(Rest(srv).get(path), 401, "not-authorized")
    pub_only = Rest(srv, new_token(srv, "alice@localhost", scope="publish"))
    assert_problem(pub_only.get(path), 403, "forbidden")
    assert_problem(alice.get(node_path("nowhere", "events")), 404, "item-not-found")
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    assert_problem(bob.get(node_path("closed", "events")), 403, "not-allowed", "closed-node")
    for bad in ("abc", "-1", "1.5", "7x", "18446744073709551615"):
        r = alice.get(path, headers=["Last-Event-ID: %s" % bad])
        assert_problem(r, 400, "bad-request", what="Last-Event-ID %r" % bad)
    assert_problem(alice.get(path + "?last_event_id=x"), 400, "bad-request")


def test_many_stored_items_replayed_in_order(herald):
    """Resume replays a long backlog (more than one storage read batch)
    oldest first without gaps or repeats, then goes live."""
    srv, alice = rest_server(herald)
    alice.create("backlog", {"max_items": 1000})
    n = 150
    answers = pipeline(srv, [build_request("POST", items_path("backlog"), alice.tok, {"n": i})
                             for i in range(n)])
    assert [a.status for a in answers] == [201] * n
    ids = [json.loads(a.body)["id"] for a in answers]
    s = EventStream(srv, "backlog", alice.tok, last_event_id=0).wait_ready()
    evs = s.take(n, timeout=30)
    assert [e.json()["id"] for e in evs] == ids
    assert [e.json()["json"]["n"] for e in evs] == list(range(n))
    live = alice.publish("backlog", {"n": n})
    check_item_event(s.next(), live)


def parse_sse(data):
    """[(event, id, data)] of a complete SSE text (blocks ending in a blank line)."""
    out = []
    for block in data.split("\n\n"):
        fields, datas = {}, []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                datas.append(value)
            else:
                fields[name] = value
        if datas:
            out.append((fields.get("event", "message"), fields.get("id"), "\n".join(datas)))
    return out


def test_slow_reader_misses_nothing(herald):
    """A reader that does not read while many large items are published
    (far more than the write-queue bound, [c2s] max_outq_bytes) is paced or
    closed, never fed without bound; reading on, and resuming with the
    last id if the server closed the stream, yields every item exactly once
    in order."""
    srv, alice = rest_server(herald, config={"c2s": {"max_outq_bytes": 65536}})
    alice.create("firehose", {"max_items": 1000})
    n, blob = 120, "x" * 20000
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.http_port))
    sock.sendall(build_request("GET", node_path("firehose", "events"), alice.tok))
    head = b""
    sock.settimeout(10)
    while b"retry:" not in head:
        chunk = sock.recv(1)
        assert chunk, "stream closed before it began: %r" % head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    # 2.4 MB of events while the reader sleeps.
    answers = pipeline(srv, [build_request("POST", items_path("firehose"), alice.tok,
                                           {"n": i, "blob": blob}) for i in range(n)],
                       timeout=30)
    assert [a.status for a in answers] == [201] * n
    ids = [json.loads(a.body)["id"] for a in answers]
    got = []
    deadline = time.monotonic() + 40
    buf = head
    # Read the rest of the first stream.
    items, closed = read_raw_stream_after(sock, buf, n, deadline)
    sock.close()
    got += items
    reconnects = 0
    while len(got) < n and time.monotonic() < deadline:
        reconnects += 1
        assert reconnects < 50, "too many reconnects"
        last = got[-1][1] if got else "0"
        s = EventStream(srv, "firehose", alice.tok, last_event_id=last).wait_ready()
        more = s.take(n - len(got), timeout=max(1, deadline - time.monotonic()))
        got += [(e.type, e.id, e.data) for e in more]
        s.close()
    got_ids = [json.loads(d)["id"] for _, _, d in got]
    assert got_ids == ids, "missing or repeated items: %d received of %d" % (len(got_ids), n)
    assert all(json.loads(d)["json"]["blob"] == blob for _, _, d in got)


def read_raw_stream_after(sock, initial, want, deadline):
    buf = initial
    while time.monotonic() < deadline:
        body = buf.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
        complete = body[:body.rfind("\n\n") + 2] if "\n\n" in body else ""
        items = [e for e in parse_sse(complete) if e[0] == "item"]
        if len(items) >= want:
            return items, False
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except OSError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
    body = buf.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
    complete = body[:body.rfind("\n\n") + 2] if "\n\n" in body else ""
    return [e for e in parse_sse(complete) if e[0] == "item"], True


def test_shutdown_with_open_streams(herald):
    """SIGTERM with event streams open: the server ends them and exits 0."""
    srv, alice = rest_server(herald)
    alice.create("s")
    streams = [EventStream(srv, "s", alice.tok).wait_ready() for _ in range(3)]
    alice.publish("s", {"x": 1})
    for s in streams:
        s.take(1)
    rc = srv.stop()
    assert rc == 0, "herald exited with %r with event streams open" % rc
    for s in streams:
        assert s.wait_ended(10), "a stream stayed open after the server stopped"


def test_head_of_event_stream_has_no_body(herald):
    """RFC 9110 9.3.2: HEAD of the events route answers like GET without
    content: the head, and no event-stream bytes, also when an item is
    published right after the head arrived."""
    srv, alice = rest_server(herald)
    alice.create("h")
    sock = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    sock.sendall(build_request("HEAD", node_path("h", "events"), alice.tok))
    data = b""
    published = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if b"\r\n\r\n" in data and not published:
            # The head is complete: an item now must not show up either, and
            # anything within a second more is a body.
            alice.publish("h", {"after": "head"})
            published = True
            deadline = min(deadline, time.monotonic() + 1)
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    assert b"text/event-stream" in head, head
    assert body == b"", "HEAD answer carries a body: %r" % body


def collect(stream, n, timeout=5.0):
    """Up to n events, stopping early when the server ended the stream."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        try:
            out.append(stream.events.get(timeout=0.1))
        except queue.Empty:
            if stream.ended.is_set() and stream.events.empty():
                break
    return out


def test_item_larger_than_write_queue_bound(herald):
    """docs: a stream is closed when its reader "falls behind by more than
    the connection's write-queue bound", and a client resuming with
    Last-Event-ID misses nothing still stored. An item whose event alone is
    larger than [c2s] max_outq_bytes (here 16 KiB, the smallest allowed,
    with the default max_payload_size of 64 KiB) must still reach a reader
    that is not behind at all: otherwise every resume is closed on that
    same item and the consumer never gets past it."""
    srv, alice = rest_server(herald, config={"c2s": {"max_outq_bytes": 16384}})
    alice.create("big")
    s = EventStream(srv, "big", alice.tok).wait_ready()
    big = alice.publish("big", {"blob": "y" * 20000})
    small = alice.publish("big", {"small": True})
    before_big = str(alice.item("big", big)["seq"] - 1)
    got = collect(s, 2)
    attempts = 1
    while len(got) < 2 and attempts < 4:
        attempts += 1
        last = got[-1].id if got else before_big
        s = EventStream(srv, "big", alice.tok, last_event_id=last).wait_ready()
        got += collect(s, 2 - len(got))
    assert [e.json()["id"] for e in got] == [big, small], (
        "after %d connections the stream delivered %r; it ends each time on the %d-byte "
        "event of item %s" % (attempts, [e.json()["id"] for e in got], 20000, big))
    healthy(srv)
