"""Harness for the cluster end-to-end tests (docs/cluster.md, test_90_cluster.py).

* ``NatsServer`` / ``NatsCluster``: real ``nats-server`` processes (Debian's
  2.9.10) with JetStream, clustered over routes on free loopback ports, each
  with its own store directory under the test's tmp_path and its own log.
  ``NatsCluster.wait_ready`` polls the monitoring port (``/healthz`` and
  ``/jsz``) and then proves that the cluster can place and write an R3 stream
  (a probe stream created, written and deleted through the JetStream API), so
  that Herald never starts against a JetStream that is still electing its
  meta leader. Kill -9 and restart of one server.
* ``ClusterHerald``: ``HeraldServer`` (e2e_helpers) with a ``[cluster]``
  section, ``--https-port 0``, a start timeout long enough for the catch-up
  with the log, and a CLI (``herald user add``, ``herald token create``) that
  passes ``--config`` so that accounts and tokens go through the cluster.
* ``Cluster`` and ``cluster_fixture`` (the body of a test module's
  ``cluster`` fixture): 3 nats-servers and 3 Herald instances; kill -9 and
  restart of an instance; at teardown every Herald instance still running
  gets SIGTERM and must exit 0 (as the ``herald`` fixture of conftest.py
  checks), then the nats-servers stop. Herald logs go into failure reports
  through conftest's hook (``item._herald_servers``); nats-server logs, each
  server's clients and the streams and consumers as their leaders see them
  through ``_NatsReport``, a hook the fixture registers once.
* ``HERALD_E2E_SLOWDOWN`` (sanitizer builds) stretches the harness's own
  bounds, never the contract's (an answer within 10 s, an account on every
  instance within 5 s).
* ``HttpApi``: the REST API through ``http.client`` (keep-alive, no curl),
  answers as rest_helpers.Resp.
* ``Publisher`` / ``RestPublisher``: sustained publishing on a thread. The XMPP
  one keeps ``window`` publishes in flight on a RawStream; both record every
  item whose success answer arrived, every error answer and every request
  left without an answer.

Every wait is a poll with a deadline. Everything listens on 127.0.0.1.
"""
import collections
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from e2e_helpers import (DOMAIN, NS_CLIENT, NS_STANZAS, HeraldServer, RawStream, free_port,
                         local, ns_of, q, show, terminate)
from pubsub_helpers import PUBSUB, NS_PUBSUB, kill_hard, restart_after_kill
from rest_helpers import Resp, item_path, items_path, new_token, node_path

# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def _find_nats_server():
    found = shutil.which("nats-server")
    if found:
        return found
    for cand in ("/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


NATS_BIN = _find_nats_server()
NATS_READY_TIMEOUT = 30.0
LOG_STREAM = "HRD_herald_LOG"
NS_TEST = "urn:example:cluster"

# Sanitizer builds are several times slower (scripts/test sets 3 for ASan).
SLOWDOWN = float(os.environ.get("HERALD_E2E_SLOWDOWN", "1"))
# Connect, create or find the log stream, catch up with it, then listen.
HERALD_START_TIMEOUT = 30.0 * max(1.0, SLOWDOWN)
# Items per sustained test (CI default, halved under a sanitizer;
# HERALD_CLUSTER_ITEMS scales a long run, together with HERALD_E2E_TEST_TIMEOUT,
# conftest's per-test bound).
CLUSTER_ITEMS = int(os.environ.get("HERALD_CLUSTER_ITEMS", "1200" if SLOWDOWN <= 1 else "600"))


def scaled(seconds):
    """A harness bound for sustained publishing, grown with HERALD_CLUSTER_ITEMS
    and HERALD_E2E_SLOWDOWN (the contract's own bounds, such as 10 s for an
    answer, are not scaled)."""
    return seconds * max(1.0, CLUSTER_ITEMS / 1200.0) * max(1.0, SLOWDOWN)


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until it returns a true value or timeout passes; returns
    the last value of pred()."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def _http_get(port, path, timeout=2.0):
    """(status, body bytes) of a GET on 127.0.0.1:port, or (None, error)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, http.client.HTTPException) as e:
        return None, str(e).encode()


# --------------------------------------------------------------------------
# A minimal NATS client (protocol: docs.nats.io "Client Protocol"), enough
# for a request/reply on the JetStream API
# --------------------------------------------------------------------------

def nats_request(port, subject, payload, timeout=5.0):
    """Publishes payload (bytes, or an object sent as JSON) to subject with a
    fresh reply inbox and returns the reply: parsed JSON when it is JSON, else
    the bytes. A 503 status header (no responders) comes back as
    {"error": {"code": 503, ...}}. Raises OSError/TimeoutError on a dead
    server or no reply in time."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    inbox = "_INBOX.%s" % os.urandom(8).hex()
    deadline = time.monotonic() + timeout
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")

        def line():
            s.settimeout(max(0.01, deadline - time.monotonic()))
            ln = f.readline()
            if not ln:
                raise ConnectionError("nats-server on port %d closed the connection" % port)
            return ln

        def exact(n):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            out = f.read(n + 2)
            if len(out) < n + 2:
                raise ConnectionError("short read from nats-server on port %d" % port)
            return out[:n]

        if not line().startswith(b"INFO"):
            raise ConnectionError("no INFO from nats-server on port %d" % port)
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                  b'"no_responders":true,"protocol":1,"lang":"python","version":"0"}\r\n'
                  + ("SUB %s 1\r\nPUB %s %s %d\r\n" % (inbox, subject, inbox, len(data))).encode()
                  + data + b"\r\n")
        while True:
            ln = line()
            if ln.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif ln.startswith(b"-ERR"):
                raise ConnectionError("nats-server: %s" % ln.decode(errors="replace").strip())
            elif ln.startswith(b"MSG"):
                body = exact(int(ln.split()[-1]))
                try:
                    return json.loads(body)
                except ValueError:
                    return body
            elif ln.startswith(b"HMSG"):
                parts = ln.split()
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = exact(total)
                head, body = raw[:hlen], raw[hlen:]
                status = head.split(b"\r\n", 1)[0].split()
                if len(status) >= 2 and status[1] == b"503":
                    return {"error": {"code": 503, "description": "no responders"}}
                try:
                    return json.loads(body)
                except ValueError:
                    return body
    finally:
        s.close()


# --------------------------------------------------------------------------
# nats-server processes
# --------------------------------------------------------------------------

class NatsServer:
    """One nats-server with JetStream, a member of a route cluster. Its
    config file, store directory and log live in its own work directory."""

    def __init__(self, workdir, name, cluster_name):
        self.name = name
        self.cluster_name = cluster_name
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.store_dir = os.path.join(self.workdir, "store")
        self.config_path = os.path.join(self.workdir, "%s.conf" % name)
        self.log_path = os.path.join(self.workdir, "%s.log" % name)
        self.port = free_port()
        self.http_port = free_port()
        self.cluster_port = free_port()
        self.routes = []
        self.proc = None
        self.returncode = None

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def write_config(self):
        routes = ", ".join("nats-route://127.0.0.1:%d" % p for p in self.routes)
        text = ("server_name: %s\n"
                "listen: 127.0.0.1:%d\n"
                "http: 127.0.0.1:%d\n"
                "jetstream {\n  store_dir: \"%s\"\n}\n"
                "cluster {\n  name: %s\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n"
                % (self.name, self.port, self.http_port, self.store_dir, self.cluster_name,
                   self.cluster_port, routes))
        with open(self.config_path, "w") as f:
            f.write(text)

    def argv(self):
        return [NATS_BIN, "-c", self.config_path]

    def start(self, timeout=10.0):
        """Starts the process and waits until its client and monitoring ports
        accept connections (not until JetStream is ready: see NatsCluster)."""
        self.write_config()
        with open(self.log_path, "ab") as log:
            log.write(("$ %s\n" % " ".join(self.argv())).encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir)
        self.returncode = None

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("nats-server %s exited with %s at start:\n%s" % (
                    self.name, self.proc.returncode, self.log_text()[-3000:]))
            for p in (self.port, self.http_port):
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
                except OSError:
                    return False
            return True
        assert wait_until(up, timeout), "nats-server %s did not listen on %d/%d within %.0f s" % (
            self.name, self.port, self.http_port, timeout)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill_hard(self):
        """SIGKILL and reap."""
        self.proc.send_signal(signal.SIGKILL)
        self.returncode = self.proc.wait(timeout=10)

    def stop(self, timeout=10.0):
        """SIGTERM, bounded wait, SIGKILL as a last resort; returns the status."""
        if self.proc is None:
            return None
        terminate(self.proc, timeout)
        self.returncode = self.proc.returncode
        return self.returncode

    def healthz(self):
        """(HTTP status or None, body text) of /healthz. In 2.9.10 it answers
        503 "JetStream has not established contact with a meta leader" until
        the meta group has a leader, and 503 while a stream or consumer this
        server hosts is not current; ?js-enabled-only=true would say ok as
        soon as JetStream is merely enabled, so it is not used."""
        st, body = _http_get(self.http_port, "/healthz")
        return st, body.decode("utf-8", "replace")

    def jsz(self, query=""):
        st, body = _http_get(self.http_port, "/jsz" + query)
        if st != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def log_text(self, max_chars=20000):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "<no log>"
        if len(text) > max_chars:
            text = "[... %d earlier characters cut ...]\n" % (len(text) - max_chars) + \
                text[-max_chars:]
        return text


class NatsCluster:
    """Three (or n) nats-servers n1..nN clustered over routes, JetStream on."""

    def __init__(self, workdir, size=3, cluster_name="herald-e2e"):
        self.servers = [NatsServer(os.path.join(str(workdir), "n%d" % (i + 1)), "n%d" % (i + 1),
                                   cluster_name) for i in range(size)]
        for s in self.servers:
            s.routes = [o.cluster_port for o in self.servers if o is not s]

    @property
    def urls(self):
        return ",".join(s.url for s in self.servers)

    def by_name(self, name):
        for s in self.servers:
            if s.name == name:
                return s
        raise KeyError(name)

    def start(self, timeout=NATS_READY_TIMEOUT):
        for s in self.servers:
            s.start()
        self.wait_ready(timeout, probe=True)
        return self

    def _meta_ready(self, srv):
        """srv's view: /healthz ok and a meta leader with every peer current."""
        st, _ = srv.healthz()
        if st != 200:
            return False
        j = srv.jsz()
        meta = (j or {}).get("meta_cluster") or {}
        if not meta.get("leader") or meta.get("cluster_size") != len(self.servers):
            return False
        if meta.get("leader") == srv.name:
            reps = meta.get("replicas") or []
            return len(reps) == len(self.servers) - 1 and all(r.get("current") for r in reps)
        return True

    def wait_ready(self, timeout=NATS_READY_TIMEOUT, probe=False):
        """Waits until every running server reports JetStream healthy with a
        meta leader; with probe, also until an R3 stream can be created,
        written (quorum pub-ack) and deleted. Asserts, with the servers'
        state, when that does not happen in time."""
        deadline = time.monotonic() + timeout
        live = [s for s in self.servers if s.running()]
        ok = wait_until(lambda: all(self._meta_ready(s) for s in live),
                        max(0.1, deadline - time.monotonic()), 0.1)
        assert ok, "JetStream not ready within %.0f s: %s" % (timeout, self.describe())
        if not probe:
            return
        name = "PROBE_%s" % os.urandom(4).hex()
        last = None
        port = live[0].port
        while time.monotonic() < deadline:
            try:
                r = nats_request(port, "$JS.API.STREAM.CREATE." + name,
                                 {"name": name, "subjects": ["probe.%s" % name],
                                  "storage": "memory", "num_replicas": len(self.servers)})
                last = r
                if isinstance(r, dict) and "error" not in r:
                    ack = nats_request(port, "probe.%s" % name, b"x")
                    last = ack
                    if isinstance(ack, dict) and ack.get("seq") == 1:
                        nats_request(port, "$JS.API.STREAM.DELETE." + name, b"")
                        return
            except OSError as e:
                last = repr(e)
            time.sleep(0.2)
        raise AssertionError("JetStream could not create and write an R%d probe stream within "
                             "%.0f s: last answer %r; %s" % (len(self.servers), timeout, last,
                                                             self.describe()))

    def _views(self):
        """{server name: its /jsz with streams and consumers}, running servers."""
        views = {}
        for s in self.servers:
            if s.running():
                j = s.jsz("?accounts=true&streams=true&consumers=true")
                if j:
                    views[s.name] = j
        return views

    @staticmethod
    def _leader_details(views):
        """{stream: (its detail, {consumer: its detail})}, each detail as its
        RAFT leader reports it when that leader answered (a server outside a
        consumer's group reports zeros for it)."""
        def pick(items, key):
            out = {}
            for srv, detail in items:
                name = detail.get(key)
                if name not in out or (detail.get("cluster") or {}).get("leader") == srv:
                    out[name] = detail
            return out
        streams = [(n, st) for n, j in views.items() for acc in j.get("account_details") or []
                   for st in acc.get("stream_detail") or []]
        out = {}
        for name, st in pick(streams, "name").items():
            cons = [(n, c) for n, x in streams if x.get("name") == name
                    for c in x.get("consumer_detail") or []]
            out[name] = (st, pick(cons, "name"))
        return out

    def stream_info(self, stream=LOG_STREAM):
        """(the stream's detail, {consumer: detail}) from /jsz, or (None, {})."""
        return self._leader_details(self._views()).get(stream, (None, {}))

    def stream_leader(self, stream=LOG_STREAM, timeout=10.0):
        """The NatsServer leading the stream's RAFT group."""
        def leader():
            return ((self.stream_info(stream)[0] or {}).get("cluster") or {}).get("leader")
        name = wait_until(leader, timeout, 0.1)
        assert name, "no leader for stream %s within %.0f s: %s" % (stream, timeout,
                                                                    self.describe())
        return self.by_name(name)

    def busiest_consumer_leader(self, stream=LOG_STREAM, timeout=10.0):
        """The NatsServer leading the most consumers of the stream (ties: the
        first by name): killing it moves those consumers' deliveries."""
        def leaders():
            cons = self.stream_info(stream)[1]
            names = [(c.get("cluster") or {}).get("leader") for c in cons.values()]
            return names if names and all(names) else None
        names = wait_until(leaders, timeout, 0.1)
        assert names, "no leaders for the consumers of %s within %.0f s: %s" % (
            stream, timeout, self.describe())
        count = collections.Counter(names)
        return self.by_name(sorted(count, key=lambda n: (-count[n], n))[0])

    def clients(self):
        """{server name: [client connection names]} from each running
        server's /connz (a Herald instance names its connection after
        itself)."""
        out = {}
        for s in self.servers:
            if not s.running():
                continue
            st, body = _http_get(s.http_port, "/connz")
            try:
                conns = json.loads(body).get("connections") or [] if st == 200 else []
            except ValueError:
                conns = []
            out[s.name] = sorted(c.get("name") or "?" for c in conns)
        return out

    def describe(self):
        """A short state of every server, for assertion messages."""
        out = []
        for s in self.servers:
            if not s.running():
                out.append("%s: not running (status %s)" % (s.name, s.returncode))
                continue
            st, body = s.healthz()
            meta = ((s.jsz() or {}).get("meta_cluster")) or {}
            out.append("%s: healthz %s %s, meta leader %r size %r" % (
                s.name, st, body.strip()[:160], meta.get("leader"), meta.get("cluster_size")))
        return "; ".join(out)

    def jetstream_summary(self):
        """Streams and consumers, each as its RAFT leader sees it, for
        failure reports."""
        views = self._views()
        if not views:
            return "<no nats-server answers /jsz>"
        metas = {n: (j.get("meta_cluster") or {}).get("leader") for n, j in views.items()}
        lines = ["meta leader as seen by each server: %s; clients %s" % (json.dumps(metas),
                                                                         self.clients())]
        for name, (st, cons) in sorted(self._leader_details(views).items()):
            lines.append("stream %s: state %s cluster %s" % (
                name, json.dumps(st.get("state")), json.dumps(st.get("cluster"))))
            for cname, c in sorted(cons.items()):
                lines.append("  consumer %s: delivered %s ack_floor %s pending %s ack_pending %s "
                             "redelivered %s cluster %s" % (
                                 cname, json.dumps(c.get("delivered")),
                                 json.dumps(c.get("ack_floor")), c.get("num_pending"),
                                 c.get("num_ack_pending"), c.get("num_redelivered"),
                                 json.dumps(c.get("cluster"))))
        return "\n".join(lines)

    def restart(self, srv, timeout=NATS_READY_TIMEOUT):
        """Starts a killed server again on its ports and store, and waits until
        it is healthy (caught up with its streams) and the meta group whole."""
        assert not srv.running(), "%s is still running" % srv.name
        srv.start()
        deadline = time.monotonic() + timeout
        ok = wait_until(lambda: srv.healthz()[0] == 200, timeout, 0.1)
        assert ok, "restarted nats-server %s not healthy within %.0f s: %s" % (
            srv.name, timeout, self.describe())
        self.wait_ready(max(1.0, deadline - time.monotonic()))
        return srv

    def stop(self):
        return {s.name: rc for s, rc in _in_parallel(self.servers, lambda s: s.stop())}


# --------------------------------------------------------------------------
# Herald instances
# --------------------------------------------------------------------------

BASE_CONFIG = {
    # Raw-socket clients log in without TLS (as test_77_catchup.py does).
    "c2s": {"allow_plaintext": "true"},
    # Logins are retried while an account reaches an instance: no failure
    # delay and no budgets (the budgets are not what these tests are about).
    "auth": {"failure_delay_ms": "0", "address_failures": "0", "account_failures": "0"},
    # Sustained tests keep every item (node max_items "max").
    "pubsub": {"max_items_cap": "1000000"},
}


class ClusterHerald(HeraldServer):
    """A Herald instance with a [cluster] section (docs/cluster.md 9.1)."""

    def __init__(self, workdir, name, nats_urls, replicas=3, extra_config=None):
        config = {k: dict(v) for k, v in BASE_CONFIG.items()}
        for sec, kv in (extra_config or {}).items():
            config.setdefault(sec, {}).update(kv)
        config["cluster"] = {"name": name, "nats_urls": nats_urls, "replicas": replicas}
        super().__init__(workdir, name=name, config=config)
        self.https_port = 0   # --https-port 0: no HTTPS listener

    def start(self, timeout=HERALD_START_TIMEOUT):
        return super().start(timeout)

    def cli(self, *args, timeout=30):
        # `herald user add JID --password PW --config FILE --data-dir DIR`
        return super().cli(*(list(args) + ["--config", self.config_path]), timeout=timeout)


class Cluster:
    """3 nats-servers and 3 Herald instances (A, B, C = heralds[0..2])."""

    def __init__(self, workdir, instances=3, nats_size=3):
        self.workdir = str(workdir)
        self.nats = NatsCluster(os.path.join(self.workdir, "nats"), nats_size)
        self.heralds = []
        for i in range(instances):
            wd = os.path.join(self.workdir, "herald-%d" % (i + 1))
            os.makedirs(wd, exist_ok=True)
            self.heralds.append(ClusterHerald(wd, "herald-%d" % (i + 1), self.nats.urls))
        self.killed = set()   # Herald instances killed and not restarted

    def start(self):
        self.nats.start()
        errors = []

        def start_one(h):
            try:
                h.start()
            except BaseException as e:  # reported below, with the instance's name
                errors.append("%s: %s" % (h.name, e))
        threads = [threading.Thread(target=start_one, args=(h,)) for h in self.heralds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HERALD_START_TIMEOUT + 10)
        assert not errors, "cluster instances did not start: %s" % "; ".join(errors)
        return self

    # -- accounts and tokens -------------------------------------------------
    def add_user(self, user, password, via=0):
        """`herald user add --config` on instance `via`'s data directory."""
        return self.heralds[via].add_user(user, password)

    def add_users(self, users, via=0, timeout=5.0):
        """Creates the accounts through instance `via` and waits until each
        logs in on every instance."""
        for u, p in users.items():
            self.add_user(u, p, via)
        for h in self.heralds:
            for u, p in users.items():
                ok, why = login_eventually(h, u, p, timeout)
                assert ok, "account %s made through %s cannot log in on %s within %.0f s: %s" % (
                    u, self.heralds[via].name, h.name, timeout, why)

    def token(self, jid, via=0):
        return new_token(self.heralds[via], jid)

    # -- failures --------------------------------------------------------------
    def kill_herald(self, h):
        kill_hard(h)
        self.killed.add(h)

    def restart_herald(self, h, timeout=HERALD_START_TIMEOUT):
        restart_after_kill(h, timeout)
        self.killed.discard(h)
        return h

    # -- shutdown --------------------------------------------------------------
    def shutdown(self):
        """SIGTERM to every Herald instance at once (each must exit 0; one
        the test killed and did not restart is only reaped), then to the
        nats-servers. Returns the problems found."""
        rcs = _in_parallel([h for h in self.heralds if h.proc is not None],
                           lambda h: h.stop())
        problems = ["%s (port %d) exited with %r after SIGTERM, expected 0" % (h.name, h.port, rc)
                    for h, rc in rcs if h not in self.killed and rc != 0]
        self.nats.stop()
        return problems


def _in_parallel(objs, fn):
    """[(obj, fn(obj))], each call on its own thread (stopping processes one
    after the other would add their shutdown times)."""
    out = {}

    def one(o):
        try:
            out[id(o)] = fn(o)
        except Exception as e:  # reported as the result
            out[id(o)] = repr(e)
    threads = [threading.Thread(target=one, args=(o,)) for o in objs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return [(o, out.get(id(o), "no result within 60 s")) for o in objs]


def login_eventually(srv, user, password, timeout=5.0):
    """A plaintext PLAIN login (RawStream) retried until it succeeds or
    timeout passes: (True, None) or (False, the last SASL answer)."""
    last = None
    deadline = time.monotonic() + timeout
    while True:
        s = None
        try:
            s = RawStream(srv.port, timeout=5.0)
            assert s.open() is not None, "no stream header"
            s.features()
            resp = s.auth_plain(user, password)
            if resp is not None and local(resp.tag) == "success":
                return True, None
            last = show(resp)
        except (AssertionError, OSError) as e:
            last = repr(e)
        finally:
            if s is not None:
                s.close()
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(0.1)


# --------------------------------------------------------------------------
# REST through http.client
# --------------------------------------------------------------------------

class HttpApi:
    """The REST API of one instance as one token sees it, over one
    keep-alive http.client connection (re-opened after an error)."""

    def __init__(self, srv, tok, timeout=15.0):
        self.srv = srv
        self.tok = tok
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, timeout=None):
        """One request; returns a rest_helpers.Resp. Raises OSError /
        http.client.HTTPException (socket.timeout included) when no answer
        came."""
        headers = {"Authorization": "Bearer %s" % self.tok}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.srv.http_port,
                                                   timeout=timeout or self.timeout)
        else:
            self.conn.timeout = timeout or self.timeout
            if self.conn.sock is not None:
                self.conn.sock.settimeout(timeout or self.timeout)
        try:
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
            payload = r.read()
        except BaseException:
            self.close()
            raise
        resp = Resp(r.status, r.reason, r.getheaders(), payload, method, path)
        if (resp.header("Connection") or "").lower() == "close":
            self.close()
        return resp

    def create(self, node, config=None):
        body = {"node": node}
        if config:
            body["config"] = config
        r = self.request("POST", "/v1/nodes", body)
        assert r.status == 201, "create %r on %s: %r" % (node, self.srv.name, r)
        return r.json()

    def put_item(self, node, item_id, value):
        return self.request("PUT", item_path(node, item_id), value)

    def node(self, node):
        return self.request("GET", node_path(node))

    def items(self, node):
        """Every item of node, oldest first (newest-first pages of 500
        followed with "next"), as the item objects of docs/rest-api.md."""
        out, before = [], None
        for _ in range(10000):
            qs = "?max=500" + ("&before=%s" % before if before is not None else "")
            r = self.request("GET", items_path(node) + qs)
            assert r.status == 200, "items of %r on %s: %r" % (node, self.srv.name, r)
            body = r.json()
            out += body["items"]
            if body["next"] is None:
                return list(reversed(out))
            before = body["next"]
        raise AssertionError("paging of %r on %s does not end" % (node, self.srv.name))


def wait_node_everywhere(heralds, tok, node, timeout=5.0):
    """Waits until GET /v1/nodes/{node} answers 200 on every instance (a
    node made on one instance reaches the others when they apply it)."""
    for h in heralds:
        api = HttpApi(h, tok)
        try:
            ok = wait_until(lambda: api.node(node).status == 200, timeout)
        finally:
            api.close()
        assert ok, "node %r not visible on %s within %.0f s" % (node, h.name, timeout)


def item_list(srv, tok, node):
    """[(item id, seq)] of a node on one instance, oldest first."""
    api = HttpApi(srv, tok)
    try:
        return [(i["id"], i["seq"]) for i in api.items(node)]
    finally:
        api.close()


# --------------------------------------------------------------------------
# Sustained publishing
# --------------------------------------------------------------------------

def error_of(el):
    """(error type, defined condition) of an error stanza."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None, None
    for child in err:
        if ns_of(child.tag) == NS_STANZAS and local(child.tag) != "text":
            return err.get("type"), local(child.tag)
    return err.get("type"), None


class _Publishing(threading.Thread):
    """What both publishers record (see Publisher)."""

    def __init__(self, name, srv, node, prefix, count, answer_timeout):
        super().__init__(name=name, daemon=True)
        self.srv = srv
        self.node = node
        self.prefix = prefix
        self.count = count
        self.answer_timeout = answer_timeout
        self.acked = []
        self.errors = []
        self.hung = []
        self.unanswered = []
        self.latencies = []
        self.sent = 0
        self.sent_at = {}      # item id -> monotonic send time
        self.answered_at = {}  # item id -> monotonic answer time
        self.failure = None


class Publisher(_Publishing):
    """Publishes `count` items with distinct ids (prefix-00000, ...) to one
    node over a RawStream (plaintext PLAIN login), keeping up to `window`
    publishes in flight. Records:

    * acked: item ids whose <iq type='result'/> arrived, in arrival order;
    * errors: (item id, error type, condition, seconds) of error answers;
    * hung: item ids unanswered after answer_timeout on a live connection
      (the publisher stops there);
    * unanswered: item ids in flight when the connection ended;
    * latencies: seconds from send to answer, for every answer.
    """

    def __init__(self, srv, user, password, node, prefix, count, window=16,
                 answer_timeout=10.0):
        super().__init__("publisher-%s" % prefix, srv, node, prefix, count, answer_timeout)
        self.user = user
        self.password = password
        self.window = window
        self.connection_lost = False
        self.stopping = threading.Event()
        self.done = threading.Event()

    def item_id(self, n):
        return "%s-%05d" % (self.prefix, n)

    def run(self):
        s = None
        outstanding = {}  # iq id -> item id
        try:
            s = RawStream(self.srv.port, timeout=10.0)
            s.login(self.user, self.password, "pub-%s" % self.prefix, tls=False)
            while True:
                while (not self.stopping.is_set() and self.sent < self.count
                       and len(outstanding) < self.window):
                    iid = self.item_id(self.sent)
                    outstanding["p-" + iid] = iid
                    self.sent_at[iid] = time.monotonic()
                    s.send("<iq type='set' id='p-%s' to='%s'><pubsub xmlns='%s'><publish node='%s'>"
                           "<item id='%s'><entry xmlns='%s'>%d</entry></item></publish></pubsub>"
                           "</iq>" % (iid, PUBSUB, NS_PUBSUB, self.node, iid, NS_TEST, self.sent))
                    self.sent += 1
                if not outstanding and (self.sent >= self.count or self.stopping.is_set()):
                    break
                el = s.next_element(timeout=0.25)
                now = time.monotonic()
                if el is not None and el.tag == q(NS_CLIENT, "iq") and el.get("id") in outstanding:
                    iid = outstanding.pop(el.get("id"))
                    self.answered_at[iid] = now
                    lat = now - self.sent_at[iid]
                    self.latencies.append(lat)
                    if el.get("type") == "result":
                        self.acked.append(iid)
                    else:
                        etype, cond = error_of(el)
                        self.errors.append((iid, etype, cond, round(lat, 3)))
                    continue
                if s.closed:
                    self.connection_lost = True
                    self.unanswered = sorted(outstanding.values())
                    break
                late = sorted(i for i in outstanding.values()
                              if now - self.sent_at[i] > self.answer_timeout)
                if late:
                    self.hung = late
                    self.unanswered = sorted(outstanding.values())
                    break
        except Exception as e:  # reported by the test through .failure
            self.failure = "%s: %r" % (self.srv.name, e)
            self.unanswered = sorted(outstanding.values())
            if s is not None and s.closed:
                self.connection_lost = True
        finally:
            if s is not None:
                s.close()
            self.done.set()

    def stop(self):
        self.stopping.set()

    def summary(self):
        return ("%s on %s: sent %d, acked %d, errors %d %s, hung %d %s, unanswered %d, "
                "lost connection %s, max latency %.2f s, failure %s" % (
                    self.prefix, self.srv.name, self.sent, len(self.acked), len(self.errors),
                    self.errors[:3], len(self.hung), self.hung[:3], len(self.unanswered),
                    self.connection_lost, max(self.latencies or [0]), self.failure))


class RestPublisher(_Publishing):
    """Publishes `count` items one at a time with PUT
    /v1/nodes/{node}/items/{id} (http.client). Records acked (201/200),
    errors (item id, status, Retry-After, body, seconds), hung (no answer
    within answer_timeout) and latencies, like Publisher."""

    def __init__(self, srv, tok, node, prefix, count, answer_timeout=10.0):
        super().__init__("rest-publisher-%s" % prefix, srv, node, prefix, count, answer_timeout)
        self.api = HttpApi(srv, tok, timeout=answer_timeout)
        self.connection_lost = False
        self.stopping = threading.Event()
        self.done = threading.Event()

    def item_id(self, n):
        return "%s-%05d" % (self.prefix, n)

    def run(self):
        try:
            while self.sent < self.count and not self.stopping.is_set():
                iid = self.item_id(self.sent)
                self.sent += 1
                t0 = self.sent_at[iid] = time.monotonic()
                try:
                    r = self.api.put_item(self.node, iid, {"n": self.sent - 1})
                except (socket.timeout, TimeoutError):
                    self.hung.append(iid)
                    self.unanswered.append(iid)
                    break
                except (OSError, http.client.HTTPException) as e:
                    self.connection_lost = True
                    self.unanswered.append(iid)
                    self.failure = "%s: %r" % (self.srv.name, e)
                    break
                now = self.answered_at[iid] = time.monotonic()
                self.latencies.append(now - t0)
                if r.status in (200, 201):
                    self.acked.append(iid)
                else:
                    self.errors.append((iid, r.status, r.header("Retry-After"), r.body[:200],
                                        round(now - t0, 3)))
        except Exception as e:  # reported by the test through .failure
            self.failure = "%s: %r" % (self.srv.name, e)
        finally:
            self.api.close()
            self.done.set()

    def stop(self):
        self.stopping.set()

    def summary(self):
        return ("%s (REST) on %s: sent %d, acked %d, errors %d %s, hung %d, failure %s, "
                "max latency %.2f s" % (self.prefix, self.srv.name, self.sent, len(self.acked),
                                        len(self.errors), self.errors[:3], len(self.hung),
                                        self.failure, max(self.latencies or [0])))


def wait_acked(publishers, n, timeout):
    """Waits until the publishers together have n acknowledged items (or all
    finished); returns the total."""
    def total():
        t = sum(len(p.acked) for p in publishers)
        return t if (t >= n or all(p.done.is_set() for p in publishers)) else 0
    wait_until(total, timeout)
    return sum(len(p.acked) for p in publishers)


def join_all(publishers, timeout):
    deadline = time.monotonic() + timeout
    for p in publishers:
        p.join(max(0.1, deadline - time.monotonic()))
    alive = [p.name for p in publishers if p.is_alive()]
    assert not alive, "publishers still running after %.0f s: %s" % (
        timeout, [p.summary() for p in publishers])


# --------------------------------------------------------------------------
# Checking that every instance holds the same node
# --------------------------------------------------------------------------

def check_same_items(heralds, tok, node, acked, sent_ids, timeout=15.0):
    """Polls (up to timeout) until every instance lists the node's items
    identically and holds every acknowledged item, then asserts: every
    acknowledged item on every instance; no item twice; the same ids with
    the same sequences in the same order on every instance; sequences
    strictly increasing; nothing that was never sent. Returns the list."""
    acked = set(acked)
    lists = {}

    def converged():
        for h in heralds:
            lists[h.name] = item_list(h, tok, node)
        first = lists[heralds[0].name]
        return all(v == first for v in lists.values()) and \
            all(acked <= {i for i, _ in v} for v in lists.values())
    wait_until(converged, timeout, 0.25)
    for name, lst in lists.items():
        ids = [i for i, _ in lst]
        dup = sorted(i for i, k in collections.Counter(ids).items() if k > 1)
        assert not dup, "%s lists items twice: %s" % (name, dup[:10])
        lost = sorted(acked - set(ids))
        if lost:
            elsewhere = {n: len(set(lost) & {i for i, _ in v}) for n, v in lists.items()
                         if n != name}
            raise AssertionError("%d acknowledged items missing on %s (of %d acked), e.g. %s; "
                                 "of these, held by the other instances: %s; items listed: %s"
                                 % (len(lost), name, len(acked), lost[:10], elsewhere,
                                    {n: len(v) for n, v in lists.items()}))
        seqs = [s for _, s in lst]
        bad = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a]
        assert not bad, "sequences on %s do not increase: %s" % (name, bad[:5])
        phantom = sorted(set(ids) - set(sent_ids))
        assert not phantom, "%s holds items never sent: %s" % (name, phantom[:10])
    ref_name = heralds[0].name
    ref = lists[ref_name]
    for name, lst in lists.items():
        if lst != ref:
            raise AssertionError("%s and %s list %s differently: %s" % (
                ref_name, name, node, describe_difference(ref, lst)))
    return ref


def describe_difference(ref, other):
    """What differs between two [(id, seq)] lists, in words."""
    rs, os_ = dict(ref), dict(other)
    only_ref = [(i, rs[i]) for i, _ in ref if i not in os_]
    only_other = [(i, os_[i]) for i, _ in other if i not in rs]
    seqs = [(i, rs[i], os_[i]) for i, _ in ref if i in os_ and rs[i] != os_[i]]
    order = [i for i, _ in ref if i in os_] != [i for i, _ in other if i in rs]
    return ("%d vs %d items; only in the first %s; only in the second %s; %d ids with different "
            "sequences, e.g. (id, first, second) %s; common ids in a different order: %s" % (
                len(ref), len(other), only_ref[:5], only_other[:5], len(seqs), seqs[:5], order))


# --------------------------------------------------------------------------
# pytest: the fixture, and nats-server logs in failure reports
# --------------------------------------------------------------------------

class _NatsReport:
    """Adds a JetStream summary and every nats-server's log to the report of
    a failing test that used the cluster fixture (conftest.py does the same
    for Herald's logs through item._herald_servers)."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        nc = getattr(item, "_nats_cluster", None)
        if not rep.failed or nc is None:
            return
        try:
            rep.sections.append(("jetstream at %s" % rep.when, nc.jetstream_summary()))
        except Exception as e:  # pragma: no cover - diagnostics only
            rep.sections.append(("jetstream at %s" % rep.when, repr(e)))
        for s in nc.servers:
            rep.sections.append(("nats-server log: %s (port %d) at %s" % (s.name, s.port,
                                                                          rep.when),
                                 s.log_text()))


def cluster_fixture(request, tmp_path):
    """The body of a fixture (``yield from cluster_fixture(request,
    tmp_path)``): a started Cluster (3 nats-servers, 3 Herald instances); at
    teardown every Herald instance still running must exit 0 on SIGTERM."""
    pm = request.config.pluginmanager
    if not pm.has_plugin("herald-nats-report"):
        pm.register(_NatsReport(), "herald-nats-report")
    cl = Cluster(tmp_path)
    request.node._herald_servers = cl.heralds
    request.node._nats_cluster = cl.nats
    try:
        cl.start()
        yield cl
    finally:
        problems = cl.shutdown()
    assert not problems, "; ".join(problems)


__all__ = ["NATS_BIN", "CLUSTER_ITEMS", "DOMAIN", "LOG_STREAM", "NS_TEST", "Cluster",
           "ClusterHerald", "HttpApi", "NatsCluster", "NatsServer", "Publisher", "RestPublisher",
           "check_same_items", "cluster_fixture", "describe_difference", "error_of",
           "item_list", "join_all", "login_eventually", "nats_request", "scaled", "wait_acked",
           "wait_node_everywhere", "wait_until"]
