"""The command-line clients (docs/cli.md): `herald pub`, `herald sub`,
`herald node`, `herald backup` and `herald restore`, run as real processes
against a real server over its REST API (and slixmpp for an XMPP publish).

What it shows: pub -> sub round trips with JSON and XML payloads and ids
(the ids and seqs pub prints are the ones sub prints); sub receiving an
item published over XMPP; --since resume, retract/purge/delete events, a
reconnect with Last-Event-ID across a server restart; --timeout; the exit
codes (1 refused with the problem's text, 2 usage, 3 unreachable, 4
timeout); node create/list (paged)/info/config/purge/delete; a backup taken
while items are being published, restored into a fresh data directory that
a new server then serves, and restore's refusals (running server, existing
store, a file that is not a backup). `herald pub --jid` publishes over XMPP
(STARTTLS with the server's certificate verified, SASL PLAIN) and `herald
sub` sees the item over REST; node has no XMPP transport and refuses its
options (`herald sub --jid` is in test_104_cli_xmpp.py)."""
import fcntl
import json
import os
import queue
import subprocess
import threading
import time
from xml.sax.saxutils import escape

import pytest

from e2e_helpers import HERALD_BIN, HeraldServer, free_port, run
from pubsub_helpers import must_publish, ps_client
from rest_helpers import Rest, expect, item_path, new_token, rest_server

NS_JSON = "urn:xmpp:json:0"
SLOWDOWN = float(os.environ.get("HERALD_E2E_SLOWDOWN", "1"))
WAIT = 20.0 * SLOWDOWN


def url(srv):
    return "http://127.0.0.1:%d" % srv.http_port


def cli(srv, tok, *args, stdin=None, timeout=WAIT):
    """Runs `herald ARGS --url ... --token TOK`; returns CompletedProcess
    with text stdout/stderr."""
    argv = [HERALD_BIN] + list(args)
    if srv is not None:
        argv += ["--url", url(srv)]
    if tok is not None:
        argv += ["--token", tok]
    env = dict(os.environ)
    env.pop("HERALD_TOKEN", None)
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=env)


def ok(r, what):
    assert r.returncode == 0, "%s: exit %d\nstdout: %s\nstderr: %s" % (
        what, r.returncode, r.stdout, r.stderr)
    return r


def pub_lines(r):
    """`herald pub` output: [(id, seq)]."""
    out = []
    for line in r.stdout.splitlines():
        item_id, seq = line.split("\t")
        out.append((item_id, int(seq)))
    return out


class Sub:
    """A running `herald sub` whose stdout lines and stderr lines are read by
    threads into queues (bounded waits)."""

    def __init__(self, srv, tok, node, *args):
        argv = [HERALD_BIN, "sub", node, "-v", "--url", url(srv), "--token", tok] + list(args)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, stdin=subprocess.DEVNULL)
        self.out, self.err = queue.Queue(), queue.Queue()
        self.err_lines = []
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def wait_err(self, needle, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "herald sub never said %r; stderr: %s" % (needle, self.err_lines)
            try:
                line = self.err.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, "herald sub ended before saying %r; stderr: %s" % (
                needle, self.err_lines)
            self.err_lines.append(line)
            if needle in line:
                return line

    def wait_open(self):
        self.wait_err("stream open")

    def line(self, timeout=WAIT):
        try:
            line = self.out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("herald sub printed no line within %.0f s" % timeout)
        assert line is not None, "herald sub's stdout ended"
        return json.loads(line)

    def finish(self, timeout=WAIT):
        rc = self.proc.wait(timeout=timeout)
        while True:
            try:
                line = self.err.get(timeout=timeout)
            except queue.Empty:
                break
            if line is None:
                break
            self.err_lines.append(line)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def subs():
    started = []
    yield started
    for s in started:
        s.kill()


def start_sub(subs, *args):
    s = Sub(*args)
    subs.append(s)
    s.wait_open()
    return s


# --------------------------------------------------------------------------
# pub -> sub
# --------------------------------------------------------------------------

def test_pub_sub_round_trip(herald, subs):
    """Items published with `herald pub` (JSON by argument, XML with --id,
    JSON from stdin, --count with ids) are printed by `herald sub --count N`
    as REST items with the ids and seqs pub printed; a live sub started
    before the publishes sees them as they come and exits 0 at --count."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "grid/feeder-7"), "node create")
    live = start_sub(subs, srv, tok, "grid/feeder-7", "--count", "6")
    published = []
    r = ok(cli(srv, tok, "pub", "grid/feeder-7", '{"kW": 3.5, "site": "north"}'), "pub json")
    published += pub_lines(r)
    xml = "<reading xmlns='urn:example:grid'><kW>4.25</kW></reading>"
    r = ok(cli(srv, tok, "pub", "grid/feeder-7", xml, "--id", "r-1"), "pub xml")
    published += pub_lines(r)
    r = ok(cli(srv, tok, "pub", "grid/feeder-7", "-", "--id", "from-stdin",
               stdin='  {"tags": ["a<b", "caf\u00e9"]}\n'), "pub stdin")
    published += pub_lines(r)
    r = ok(cli(srv, tok, "pub", "grid/feeder-7", '{"n": 1}', "--id", "batch", "--count", "3"),
           "pub --count")
    published += pub_lines(r)
    assert [p[0] for p in published[1:]] == ["r-1", "from-stdin", "batch-1", "batch-2",
                                             "batch-3"], published
    seqs = [p[1] for p in published]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6, published

    got = [live.line() for _ in range(6)]
    assert live.finish() == 0, live.err_lines
    assert [(g["id"], g["seq"]) for g in got] == published, (got, published)
    assert got[0]["json"] == {"kW": 3.5, "site": "north"} and "xml" not in got[0], got[0]
    assert got[1]["xml"] == xml and "json" not in got[1], got[1]
    assert got[2]["json"] == {"tags": ["a<b", "caf\u00e9"]}, got[2]
    assert all(g["publisher"] == "alice@localhost" for g in got), got

    # The same from storage: --since 0 --count 6, then exit 0.
    r = ok(cli(srv, tok, "sub", "grid/feeder-7", "--since", "0", "--count", "6"), "sub --since 0")
    stored = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(g["id"], g["seq"]) for g in stored] == published, stored
    # What pub says matches what the server stores.
    item = expect(alice.get(item_path("grid/feeder-7", "r-1")), 200).json()
    assert item["seq"] == published[1][1], item


def test_sub_receives_slixmpp_publish(herald, subs):
    """An item published over XMPP (slixmpp, to pubsub.localhost) is printed
    by a running `herald sub`: a XEP-0335 JSON container as "json", another
    element as "xml"."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "alerts"), "node create")
    s = start_sub(subs, srv, tok, "alerts", "--count", "2")
    value = {"level": "high", "n": 7}
    atom = "<entry xmlns='http://www.w3.org/2005/Atom'><title>Breaker</title></entry>"

    async def body():
        xalice = await ps_client(srv, "alice", "wonderland")
        await must_publish(xalice, "alerts", "x-1",
                           "<json xmlns='%s'>%s</json>" % (NS_JSON, escape(json.dumps(value))))
        await must_publish(xalice, "alerts", "x-2", atom)
    run(body)
    first, second = s.line(), s.line()
    assert s.finish() == 0, s.err_lines
    assert first["id"] == "x-1" and first["json"] == value, first
    assert first["publisher"].startswith("alice@localhost"), first
    assert second["id"] == "x-2" and second["xml"].startswith("<entry"), second
    assert "Breaker" in second["xml"] and second["seq"] > first["seq"], second


def test_sub_since_events_and_end(herald, subs):
    """--since SEQ resumes after SEQ; a live sub prints retract, purge and
    delete as {"event": ...} lines and exits 0 when the node is deleted."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "feed"), "node create")
    pubs = [pub_lines(ok(cli(srv, tok, "pub", "feed", '{"i": %d}' % i), "pub"))[0]
            for i in range(5)]
    r = ok(cli(srv, tok, "sub", "feed", "--since", str(pubs[1][1]), "--count", "3"), "--since")
    got = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(g["id"], g["seq"]) for g in got] == pubs[2:], (got, pubs)
    assert [g["json"]["i"] for g in got] == [2, 3, 4], got

    s = start_sub(subs, srv, tok, "feed")
    expect(alice.delete(item_path("feed", pubs[0][0])), 204)
    ok(cli(srv, tok, "node", "purge", "feed"), "purge")
    ok(cli(srv, tok, "node", "delete", "feed"), "delete")
    assert s.line() == {"event": "retract", "id": pubs[0][0]}
    assert s.line() == {"event": "purge"}
    assert s.line() == {"event": "delete"}
    assert s.finish() == 0, s.err_lines


def test_sub_reconnects_with_last_event_id(herald, subs):
    """A stream dropped by a server restart is resumed with Last-Event-ID
    (said on stderr): the item published while the server was back is
    printed once, after the one before, and --count ends it with 0."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "durable"), "node create")
    first = pub_lines(ok(cli(srv, tok, "pub", "durable", '{"k": 1}'), "pub"))[0]
    s = start_sub(subs, srv, tok, "durable", "--since", "0", "--count", "2", "--retries", "20")
    assert s.line()["id"] == first[0]
    srv.restart()
    line = s.wait_err("reconnecting")
    assert "Last-Event-ID: %d" % first[1] in line, line
    second = pub_lines(ok(cli(srv, tok, "pub", "durable", '{"k": 2}'), "pub after restart"))[0]
    got = s.line()
    assert (got["id"], got["seq"]) == second and got["json"] == {"k": 2}, got
    assert s.finish() == 0, s.err_lines


def test_sub_timeout(herald):
    """--timeout: exit 4 with fewer than --count items (those that came are
    printed), and without --count when nothing came."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "quiet"), "node create")
    ok(cli(srv, tok, "pub", "quiet", '{"only": 1}', "--id", "only"), "pub")
    # The stored item must come within the timeout: a few seconds, not one,
    # so that a loaded machine does not make it flaky.
    secs = str(int(3 * SLOWDOWN))
    r = cli(srv, tok, "sub", "quiet", "--since", "0", "--count", "2", "--timeout", secs)
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == ["only"], r.stdout
    assert "timed out after %s s with 1 of 2 items" % secs in r.stderr, r.stderr
    r = cli(srv, tok, "sub", "quiet", "--timeout", "1")
    assert r.returncode == 4 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert "no item arrived" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# Errors and usage
# --------------------------------------------------------------------------

def test_exit_codes_and_messages(herald):
    """1 with the problem's title/detail for a refusal (bad token, unknown
    node, bad JSON), 3 when nothing answers or https's certificate does not
    verify (it does with --cacert), 2 for usage errors (no token, missing
    arguments, XMPP options where there is no XMPP transport or without
    --jid)."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "n"), "node create")
    r = cli(srv, "0123456789abcdef.not-a-real-token", "pub", "n", "{}")
    assert r.returncode == 1 and "401 Unauthorized" in r.stderr, r
    r = cli(srv, "0123456789abcdef.not-a-real-token", "sub", "n", "--count", "1")
    assert r.returncode == 1 and "401 Unauthorized" in r.stderr, r
    r = cli(srv, tok, "pub", "missing", "{}")
    assert r.returncode == 1 and "404 Not Found: no such node" in r.stderr, r
    r = cli(srv, tok, "sub", "missing", "--count", "1")
    assert r.returncode == 1 and "404" in r.stderr, r
    r = cli(srv, tok, "pub", "n", "{not json")
    assert r.returncode == 1 and "400 Bad Request" in r.stderr, r
    r = cli(srv, tok, "node", "info", "missing")
    assert r.returncode == 1 and "no such node" in r.stderr, r

    dead = "http://127.0.0.1:%d" % free_port()
    for args in (["pub", "n", "{}"], ["sub", "n", "--retries", "1"], ["node", "list"]):
        r = subprocess.run([HERALD_BIN] + args + ["--url", dead, "--token", tok],
                           capture_output=True, text=True, timeout=WAIT)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        assert "Couldn't connect" in r.stderr or "Connection refused" in r.stderr, r.stderr

    # https: the server's self-signed certificate verifies with --cacert
    # only (or is not checked with --insecure).
    https = ["--url", "https://127.0.0.1:%d" % srv.https_port, "--token", tok]
    cacert = os.path.join(srv.data_dir, "tls", "cert.pem")
    for extra, code in ((["--cacert", cacert], 0), ([], 3), (["--insecure"], 0)):
        r = subprocess.run([HERALD_BIN, "node", "list"] + https + extra, capture_output=True,
                           text=True, timeout=WAIT)
        assert r.returncode == code, (extra, r.returncode, r.stderr)
        assert code != 0 or r.stdout.split("\t")[0] == "n", r.stdout
        assert code != 3 or "certificate" in r.stderr, r.stderr

    r = cli(srv, None, "pub", "n", "{}")
    assert r.returncode == 2 and "HERALD_TOKEN" in r.stderr, r
    # HERALD_TOKEN is the default token.
    r = subprocess.run([HERALD_BIN, "pub", "n", "{}", "--url", url(srv)], capture_output=True,
                       text=True, timeout=WAIT, env=dict(os.environ, HERALD_TOKEN=tok))
    ok(r, "pub with HERALD_TOKEN")
    assert r.returncode == 0
    r = cli(srv, tok, "pub", "n")
    assert r.returncode == 2 and "PAYLOAD" in r.stderr, r
    r = cli(srv, tok, "node", "frobnicate", "n")
    assert r.returncode == 2, r
    # node has no XMPP transport: said, not faked (sub has: test_104).
    r = cli(srv, tok, "node", "list", "--jid", "alice@localhost", "--password", "x")
    assert r.returncode == 2 and "no XMPP transport" in r.stderr, r
    r = cli(srv, tok, "sub", "n", "--port", "5222")
    assert r.returncode == 2 and "need --jid" in r.stderr, r
    r = cli(None, None, "pub", "n", "{}", "--jid", "alice@localhost")
    assert r.returncode == 2 and "HERALD_PASSWORD" in r.stderr, r
    for cmd in ("pub", "sub", "node", "backup", "restore"):
        r = subprocess.run([HERALD_BIN, cmd, "--help"], capture_output=True, text=True,
                           timeout=WAIT)
        assert r.returncode == 0 and ("Usage: herald %s" % cmd) in r.stdout, r
        assert "Example" in r.stdout and "Exit status" in r.stdout, r.stdout
    r = subprocess.run([HERALD_BIN, "--help"], capture_output=True, text=True, timeout=WAIT)
    for cmd in ("pub", "sub", "node", "backup", "restore"):
        assert "\n  %s " % cmd in r.stdout, r.stdout


def test_pub_lease(herald):
    """--lease SECONDS publishes with ?lease=; the item reads back with a
    "lease" object (docs/leases.md). Skipped only when this server's API
    document has no lease route, i.e. leases are not built in."""
    srv, alice = rest_server(herald)
    api = expect(alice.get("/v1/openapi.json"), 200).json()
    if not any(p.endswith("/lease") for p in api.get("paths", {})):
        pytest.skip("this server has no leases (no .../lease route in /v1/openapi.json)")
    ok(cli(srv, alice.tok, "node", "create", "services"), "node create")
    r = ok(cli(srv, alice.tok, "pub", "services", '{"up": true}', "--id", "host1",
               "--lease", "30"), "pub --lease")
    assert pub_lines(r)[0][0] == "host1", r.stdout
    item = expect(alice.get(item_path("services", "host1")), 200).json()
    assert item["lease"]["seconds"] == 30, item
    assert 0 < item["lease"]["remaining"] <= 30, item


# --------------------------------------------------------------------------
# herald node
# --------------------------------------------------------------------------

def test_node_commands(herald):
    """create (named, with --set; and server-named), list across pages (text
    and --json), info (text and --json), config --set (a list field by
    repetition), purge, delete."""
    srv = herald(config={"pubsub": {"node_page_size": "2"}},
                 users={"alice": "wonderland", "bob": "builder"})
    tok = new_token(srv, "alice@localhost")
    alice = Rest(srv, tok)
    r = ok(cli(srv, tok, "node", "create", "n1", "--set", "max_items=5",
               "--set", "pubsub#title=First"), "create n1")
    assert r.stdout.strip() == "n1", r.stdout
    for n in ("n2", "n3", "n4", "n5"):
        ok(cli(srv, tok, "node", "create", n), "create " + n)
    r = ok(cli(srv, tok, "node", "create"), "create, server-named")
    auto = r.stdout.strip()
    assert auto and auto not in ("n1", "n2"), r.stdout
    ok(cli(srv, tok, "pub", "n1", '{"a": 1}'), "pub")
    ok(cli(srv, tok, "pub", "n1", '{"a": 2}'), "pub")

    r = ok(cli(srv, tok, "node", "list"), "list")
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [x[0] for x in rows] == ["n1", "n2", "n3", "n4", "n5", auto], rows
    assert rows[0] == ["n1", "leaf", "2"], rows
    r = ok(cli(srv, tok, "node", "list", "--json"), "list --json")
    doc = json.loads(r.stdout)
    assert [n["node"] for n in doc["nodes"]] == ["n1", "n2", "n3", "n4", "n5", auto], doc
    assert doc["nodes"][0] == {"node": "n1", "type": "leaf", "items": 2}, doc

    r = ok(cli(srv, tok, "node", "info", "n1"), "info")
    assert "affiliation  owner" in r.stdout and "items        2" in r.stdout, r.stdout
    info = json.loads(ok(cli(srv, tok, "node", "info", "n1", "--json"), "info --json").stdout)
    assert info["config"]["max_items"] == 5 and info["config"]["title"] == "First", info

    r = ok(cli(srv, tok, "node", "config", "n1", "--set", "max_items=1",
               "--set", "access_model=whitelist"), "config --set")
    assert any(line.split() == ["max_items", "1"] for line in r.stdout.splitlines()), r.stdout
    got = expect(alice.get("/v1/nodes/n1"), 200).json()
    assert got["config"]["max_items"] == 1 and got["config"]["access_model"] == "whitelist", got
    assert got["items"] == 1, got
    r = ok(cli(srv, tok, "node", "config", "n1", "--json"), "config show")
    assert json.loads(r.stdout)["config"]["max_items"] == 1
    r = cli(srv, tok, "node", "config", "n1", "--set", "no_such_field=1")
    assert r.returncode == 1 and "no_such_field" in r.stderr, r

    # bob may not reconfigure alice's node: 403 with the problem's text.
    bob = new_token(srv, "bob@localhost")
    r = cli(srv, bob, "node", "delete", "n2")
    assert r.returncode == 1 and "403" in r.stderr, r

    ok(cli(srv, tok, "node", "purge", "n1"), "purge")
    assert expect(alice.get("/v1/nodes/n1"), 200).json()["items"] == 0
    ok(cli(srv, tok, "node", "delete", "n1"), "delete")
    expect(alice.get("/v1/nodes/n1"), 404)
    r = ok(cli(srv, tok, "node", "list"), "list after delete")
    assert [x.split("\t")[0] for x in r.stdout.splitlines()] == ["n2", "n3", "n4", "n5", auto]


# --------------------------------------------------------------------------
# backup / restore
# --------------------------------------------------------------------------

def test_backup_while_publishing_then_restore(herald, tmp_path):
    """A backup taken while `herald pub --count` keeps publishing is one
    consistent snapshot: restored into a fresh data directory, a new server
    serves a prefix of the publishes with no gap (every item published
    before the backup began, seqs 1..K with K between that and the end), and
    the token still works there. restore refuses a running server's
    directory, an existing store without --force, and a file that is not a
    backup; backup refuses to overwrite without --force; a server does not
    start while the directory's lock is held exclusively (a restore)."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "log", "--set", "max_items=10000"), "node create")
    before = pub_lines(ok(cli(srv, tok, "pub", "log", '{"phase": "before"}', "--count", "20"),
                          "pub before"))
    total = 400
    pub = subprocess.Popen([HERALD_BIN, "pub", "log", '{"phase": "during"}', "--count",
                            str(total), "--url", url(srv), "--token", tok],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the publisher is under way (its first line), then copy.
        first = pub.stdout.readline()
        assert first, "herald pub printed nothing: %s" % pub.stderr.read()
        backup = str(tmp_path / "herald.mdb")
        r = ok(subprocess.run([HERALD_BIN, "backup", backup, "--data-dir", srv.data_dir],
                              capture_output=True, text=True, timeout=WAIT), "backup")
        assert "wrote %s" % backup in r.stderr, r.stderr
        rest, err = pub.communicate(timeout=WAIT * 3)
    finally:
        if pub.poll() is None:
            pub.kill()
            pub.wait()
    assert pub.returncode == 0, err
    during = pub_lines(subprocess.CompletedProcess([], 0, first + rest, ""))
    assert len(during) == total
    r = subprocess.run([HERALD_BIN, "backup", backup, "--data-dir", srv.data_dir],
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 1 and "--force" in r.stderr, r

    # restore: refused on the running server's directory.
    r = subprocess.run([HERALD_BIN, "restore", backup, "--data-dir", srv.data_dir, "--force"],
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 1 and "a server is running" in r.stderr, r
    # refused: not a backup.
    junk = tmp_path / "junk.mdb"
    junk.write_bytes(b"not lmdb at all\n" * 512)
    fresh = HeraldServer(tmp_path / "restored", name="restored")
    os.makedirs(fresh.workdir)
    r = subprocess.run([HERALD_BIN, "restore", str(junk), "--data-dir", fresh.data_dir],
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 1 and "not a Herald backup" in r.stderr, r
    assert not os.path.exists(os.path.join(fresh.data_dir, "data.mdb"))
    r = ok(subprocess.run([HERALD_BIN, "restore", backup, "--data-dir", fresh.data_dir],
                          capture_output=True, text=True, timeout=WAIT), "restore")
    assert "restored" in r.stderr, r.stderr
    r = subprocess.run([HERALD_BIN, "restore", backup, "--data-dir", fresh.data_dir],
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 1 and "--force" in r.stderr, r
    ok(subprocess.run([HERALD_BIN, "restore", backup, "--data-dir", fresh.data_dir, "--force"],
                      capture_output=True, text=True, timeout=WAIT), "restore --force")

    # A server does not start while a restore holds the directory's lock
    # (taken here as restore takes it: flock, exclusive).
    with open(os.path.join(fresh.data_dir, "herald.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = subprocess.run(fresh.argv(), capture_output=True, text=True, timeout=WAIT)
        assert r.returncode == 1 and "being restored" in r.stderr, (r.returncode, r.stderr)
    fresh.start()
    try:
        # While it runs, restore refuses its directory too.
        r = subprocess.run([HERALD_BIN, "restore", backup, "--data-dir", fresh.data_dir,
                            "--force"], capture_output=True, text=True, timeout=WAIT)
        assert r.returncode == 1 and "a server is running" in r.stderr, r
        r = ok(cli(fresh, tok, "sub", "log", "--since", "0", "--count", "20"), "sub restored")
        items = [json.loads(line) for line in r.stdout.splitlines()]
        assert [(i["id"], i["seq"]) for i in items] == before, items
        page = expect(Rest(fresh, tok).get("/v1/nodes/log"), 200).json()
        k = page["items"]
        published = before + during
        assert len(before) + 1 <= k <= len(published), (k, len(published))
        r = ok(cli(fresh, tok, "sub", "log", "--since", "0", "--count", str(k)), "sub all")
        got = [(i["id"], i["seq"]) for i in map(json.loads, r.stdout.splitlines())]
        assert got == published[:k], "the backup is not a prefix of the publishes"
    finally:
        rc = fresh.stop()
    assert rc == 0, "the server on the restored directory exited with %r" % rc


# --------------------------------------------------------------------------
# herald pub over XMPP
# --------------------------------------------------------------------------

def test_pub_over_xmpp_sub_over_rest(herald, subs):
    """`herald pub --jid` logs in over XMPP (STARTTLS verified against the
    server's certificate with --cacert, SASL PLAIN) and publishes JSON (as a
    XEP-0335 container) and XML items, with and without ids; `herald sub`
    prints them over REST. A wrong password and a refused publish exit 1
    with the condition; an unverifiable certificate (no --cacert) exits 3;
    nothing listening exits 3."""
    srv, alice = rest_server(herald)
    tok = alice.tok
    ok(cli(srv, tok, "node", "create", "x/feed"), "node create")
    live = start_sub(subs, srv, tok, "x/feed", "--count", "3")
    cacert = os.path.join(srv.data_dir, "tls", "cert.pem")
    xmpp = ["--jid", "alice@localhost", "--host", "127.0.0.1", "--port", str(srv.port)]

    def xpub(*args, password="wonderland", extra=("--cacert", cacert)):
        argv = [HERALD_BIN, "pub"] + list(args) + xmpp + list(extra)
        return subprocess.run(argv, capture_output=True, text=True, timeout=WAIT,
                              env=dict(os.environ, HERALD_PASSWORD=password))

    r = ok(xpub("x/feed", '{"via": "xmpp", "n": [1, 2]}'), "pub over XMPP")
    first_id, seq = r.stdout.strip().split("\t")
    assert first_id and seq == "-", r.stdout
    xml = "<t xmlns='urn:example:t'>a &amp; b</t>"
    r = ok(xpub("x/feed", xml, "--id", "xi", "--count", "2"), "pub XML over XMPP")
    assert r.stdout.splitlines() == ["xi-1\t-", "xi-2\t-"], r.stdout
    got = [live.line() for _ in range(3)]
    assert live.finish() == 0, live.err_lines
    assert [g["id"] for g in got] == [first_id, "xi-1", "xi-2"], got
    assert got[0]["json"] == {"via": "xmpp", "n": [1, 2]}, got[0]
    assert got[1]["xml"] == xml and got[2]["xml"] == xml, got
    assert all(g["publisher"] == "alice@localhost" for g in got), got

    r = xpub("x/feed", "{}", password="wrong")
    assert r.returncode == 1 and "not-authorized" in r.stderr, r
    r = xpub("missing", "{}")
    assert r.returncode == 1 and "item-not-found" in r.stderr, r
    r = xpub("x/feed", "{}", extra=())
    assert r.returncode == 3 and "does not verify" in r.stderr, r
    r = xpub("x/feed", "<unclosed")
    assert r.returncode == 1 and "well-formed" in r.stderr, r
    dead = [HERALD_BIN, "pub", "x/feed", "{}", "--jid", "alice@localhost", "--host",
            "127.0.0.1", "--port", str(free_port()), "--insecure"]
    r = subprocess.run(dead, capture_output=True, text=True, timeout=WAIT,
                       env=dict(os.environ, HERALD_PASSWORD="wonderland"))
    assert r.returncode == 3, r
    # Nothing more arrived than the three good items.
    r = ok(cli(srv, tok, "sub", "x/feed", "--since", "0", "--count", "3"), "sub stored")
    assert len(r.stdout.splitlines()) == 3
    assert expect(alice.get("/v1/nodes/x%2Ffeed"), 200).json()["items"] == 3
