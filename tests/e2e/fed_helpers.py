"""Helpers for the server-to-server (federation) end-to-end tests,
test_95_s2s_prosody.py and test_96_s2s_ejabberd.py.

Three XMPP servers share the loopback interface, each on its own address:

  herald.test    127.0.0.1  (Herald, its pubsub service pubsub.herald.test)
  prosody.test   127.0.0.2  (Debian's Prosody 0.12, pubsub component pubsub.prosody.test)
  ejabberd.test  127.0.0.3  (Debian's ejabberd 23.01, mod_pubsub at pubsub.ejabberd.test)

* ``hosts_mapped()``: a context manager that appends these names to /etc/hosts
  and puts the original file back byte for byte afterwards (also when the
  body raises). Prosody (libunbound with ``hoststxt``) and ejabberd (Erlang's
  inetrc ``hosts_file``) read it; neither has a DNS server to ask (their DNS
  queries go to 127.0.0.1:53, where nothing answers, so SRV lookups fail at
  once and they fall back to the A record from /etc/hosts on port 5269).
* ``make_cert()``: a self-signed certificate made with ``openssl req`` for a
  domain and its pubsub subdomain.
* ``ProsodyPeer`` / ``EjabberdPeer``: one server process each, with its own
  configuration, certificate, data and log under the test's directory,
  listening for c2s on IP:5222 and s2s on IP:5269 of its own address only.
  start() / stop() / add_user() / log_text(); ``c2s`` is the (host, port)
  for clients; ``startup_seconds`` how long the last start() took.
* ``FClient``: an XClient (e2e_helpers) that connects to a given address for a
  given domain, with ordered inboxes (im_helpers.Inbox) of every presence,
  roster push and message it receives.
* ``start_s2s_herald()``: a Herald for any domain and loopback address with
  s2s on port 5269 (also used by test_97 and test_98).
* The fixtures' bodies (``running_peer``, ``herald_factory``) and the interop
  scenarios that test_95 and test_96 share, each taking the peer's clients:
  ``message_both_ways``, ``disco_both_ways``, ``subscribe``, ``assert_mutual``,
  ``goes_offline``, ``pubsub_round``, ``bounce``; ``run_clients`` runs one
  with alice on Herald and a user of the peer.

Every wait is bounded.
"""
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid

from e2e_helpers import (NS_CLIENT, NS_PING, NS_STANZAS, HeraldServer, XClient, local, ns_of, q,
                         run, show, terminate)
from im_helpers import attach_inboxes

HERALD_DOMAIN = "herald.test"
HERALD_IP = "127.0.0.1"
PROSODY_DOMAIN = "prosody.test"
PROSODY_IP = "127.0.0.2"
EJABBERD_DOMAIN = "ejabberd.test"
EJABBERD_IP = "127.0.0.3"
S2S_PORT = 5269
C2S_PORT = 5222

HOSTS = [
    (HERALD_IP, HERALD_DOMAIN, "pubsub." + HERALD_DOMAIN),
    (PROSODY_IP, PROSODY_DOMAIN, "pubsub." + PROSODY_DOMAIN),
    (EJABBERD_IP, EJABBERD_DOMAIN, "pubsub." + EJABBERD_DOMAIN),
]

NS_ROSTER = "jabber:iq:roster"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"

PROSODY_BIN = "/usr/bin/prosody"
PROSODYCTL_BIN = "/usr/bin/prosodyctl"
EJABBERDCTL_BIN = "/usr/sbin/ejabberdctl"
# Log levels of the peers (debug shows every s2s element; set lower to save disk).
PROSODY_LOG_LEVEL = os.environ.get("HERALD_FED_PROSODY_LOG", "debug")
EJABBERD_LOG_LEVEL = os.environ.get("HERALD_FED_EJABBERD_LOG", "info")


def is_root():
    return os.geteuid() == 0


def uid(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# --------------------------------------------------------------------------
# /etc/hosts
# --------------------------------------------------------------------------

HOSTS_FILE = "/etc/hosts"
HOSTS_MARK = b"# herald federation tests (tests/e2e/fed_helpers.py)\n"


@contextlib.contextmanager
def hosts_mapped(entries=HOSTS, path=HOSTS_FILE):
    """Appends "IP name..." lines to /etc/hosts for the body; restores the
    original bytes afterwards, whatever happens."""
    with open(path, "rb") as f:
        original = f.read()
    # A run killed with SIGKILL cannot have restored the file: drop its block.
    if HOSTS_MARK in original:
        original = original[:original.index(HOSTS_MARK)]
    add = "".join("%s %s\n" % (e[0], " ".join(e[1:])) for e in entries)
    sep = b"" if original.endswith(b"\n") or not original else b"\n"
    try:
        with open(path, "wb") as f:
            f.write(original + sep + HOSTS_MARK + add.encode())
        yield
    finally:
        with open(path, "wb") as f:
            f.write(original)


def resolves(name, ip):
    try:
        return socket.gethostbyname(name) == ip
    except OSError:
        return False


# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------

def make_cert(directory, domain, extra_names=()):
    """A self-signed EC certificate for domain and pubsub.domain (and
    extra_names) made with `openssl req`; returns (cert_path, key_path)."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "%s.crt" % domain)
    key = os.path.join(directory, "%s.key" % domain)
    names = [domain, "pubsub." + domain] + list(extra_names)
    san = ",".join("DNS:%s" % n for n in names)
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                        "-subj", "/CN=%s" % domain, "-addext", "subjectAltName=%s" % san,
                        "-keyout", key, "-out", cert],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, "openssl req failed: %s" % r.stderr.decode(errors="replace")
    os.chmod(key, 0o644)  # read by the peers' unprivileged users
    return cert, key


# --------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------

def _wait_listen(host, port, proc, deadline, what):
    while True:
        if proc.poll() is not None:
            raise AssertionError("%s exited with status %s while starting" % (what, proc.returncode))
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("%s did not listen on %s:%d in time" % (what, host, port))
        time.sleep(0.05)


def _tail(path, max_chars):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_chars))
            data = f.read()
    except OSError:
        return "<no log at %s>" % path
    text = data.decode("utf-8", "replace")
    if size > max_chars:
        text = "[... %d earlier bytes cut ...]\n" % (size - max_chars) + text
    return text


class Peer:
    """Common parts of the two peers. ``name`` and ``port`` are what
    conftest prints above log_text() when a test fails."""
    kind = "?"
    domain = "?"
    ip = "?"

    def __init__(self, workdir):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = self.kind
        self.port = C2S_PORT
        self.s2s_port = S2S_PORT
        self.proc = None
        self.startup_seconds = None
        self.cert, self.key = make_cert(os.path.join(self.workdir, "certs"), self.domain)

    @property
    def c2s(self):
        return (self.ip, self.port)

    @property
    def pubsub(self):
        return "pubsub." + self.domain

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def jid(self, user):
        return "%s@%s" % (user, self.domain)


class ProsodyPeer(Peer):
    """Prosody 0.12 as prosody.test on 127.0.0.2 (c2s 5222, s2s 5269), with
    `Component "pubsub.prosody.test" "pubsub"`; s2s over STARTTLS, dialback
    with self-signed certificates (s2s_secure_auth = false)."""
    kind = "prosody"
    domain = PROSODY_DOMAIN
    ip = PROSODY_IP

    def __init__(self, workdir, admins=(), secure_auth=False, log_level=PROSODY_LOG_LEVEL):
        super().__init__(workdir)
        self.admins = list(admins)
        self.secure_auth = secure_auth
        self.log_level = log_level
        self.data = os.path.join(self.workdir, "data")
        os.makedirs(self.data, exist_ok=True)
        self.log_path = os.path.join(self.workdir, "prosody.log")
        self.out_path = os.path.join(self.workdir, "prosody.out")
        self.config = os.path.join(self.workdir, "prosody.cfg.lua")
        self.resolv = os.path.join(self.workdir, "resolv.conf")
        self.write_config()

    def write_config(self):
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        admins = ", ".join('"%s"' % self.jid(a) if "@" not in a else '"%s"' % a for a in self.admins)
        with open(self.config, "w") as f:
            f.write("""-- Herald federation tests: Prosody as %(domain)s on %(ip)s only
run_as_root = %(root)s
pidfile = "%(dir)s/prosody.pid"
data_path = "%(data)s"
admins = { %(admins)s }
use_ipv6 = false
network_backend = "epoll"
modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", "pubsub" }
modules_disabled = { "offline" }
c2s_ports = { %(c2s)d }
c2s_interfaces = { "%(ip)s" }
s2s_ports = { %(s2s)d }
s2s_interfaces = { "%(ip)s" }
component_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
s2s_require_encryption = true
s2s_secure_auth = %(secure)s
s2s_timeout = 15
authentication = "internal_hashed"
storage = "internal"
ssl = { certificate = "%(cert)s"; key = "%(key)s"; }
-- No DNS server here: names come from /etc/hosts, DNS queries fail at once.
unbound = { hoststxt = "/etc/hosts"; resolvconf = "%(resolv)s"; }
log = { { levels = { min = "%(level)s" }, to = "file", filename = "%(log)s" } }
VirtualHost "%(domain)s"
Component "pubsub.%(domain)s" "pubsub"
""" % {"domain": self.domain, "ip": self.ip, "root": "true" if is_root() else "false",
                "dir": self.workdir, "data": self.data, "admins": admins, "c2s": self.port,
                "s2s": self.s2s_port, "secure": "true" if self.secure_auth else "false",
                "cert": self.cert, "key": self.key, "resolv": self.resolv,
                "level": self.log_level, "log": self.log_path})

    def start(self, timeout=20.0):
        assert not self.running(), "prosody already running"
        t0 = time.monotonic()
        out = open(self.out_path, "ab")
        self.proc = subprocess.Popen([PROSODY_BIN, "-F", "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     cwd=self.workdir)
        out.close()
        deadline = t0 + timeout
        _wait_listen(self.ip, self.port, self.proc, deadline, "prosody (c2s)")
        _wait_listen(self.ip, self.s2s_port, self.proc, deadline, "prosody (s2s)")
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout=5.0):
        """SIGTERM; Prosody 0.12.3 sometimes fails its own shutdown with
        sessions open (see scripts/bench-compare), so SIGKILL after timeout."""
        if self.proc is None:
            return None
        terminate(self.proc, timeout)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def add_user(self, user, password):
        r = subprocess.run([PROSODYCTL_BIN, "--config", self.config, "register", user,
                            self.domain, password], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "prosodyctl register %s failed (%d): %s %s" % (
            user, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
        return self.jid(user)

    def log_text(self, max_chars=60000):
        return _tail(self.log_path, max_chars) + "\n[stdout/stderr]\n" + _tail(self.out_path, 4000)


class EjabberdPeer(Peer):
    """ejabberd 23.01 as ejabberd.test on 127.0.0.3 (c2s 5222, s2s 5269),
    mod_pubsub at pubsub.ejabberd.test, s2s STARTTLS required, dialback
    (mod_s2s_dialback) with self-signed certificates. Runs as the ejabberd
    user (setpriv) with ``ejabberdctl foreground``; Erlang distribution on a
    free loopback port, no epmd."""
    kind = "ejabberd"
    domain = EJABBERD_DOMAIN
    ip = EJABBERD_IP

    def __init__(self, workdir, admins=(), log_level=EJABBERD_LOG_LEVEL, starttls="required"):
        super().__init__(workdir)
        self.admins = list(admins)
        self.log_level = log_level
        self.starttls = starttls
        self.etc = os.path.join(self.workdir, "etc")
        self.spool = os.path.join(self.workdir, "spool")
        self.logs = os.path.join(self.workdir, "logs")
        for d in (self.etc, self.spool, self.logs):
            os.makedirs(d, exist_ok=True)
        self.log_path = os.path.join(self.logs, "ejabberd.log")
        self.out_path = os.path.join(self.workdir, "ejabberd.out")
        self.node = "heraldfed%d@localhost" % os.getpid()
        self.dist_port = self._free_port()
        self.pid = None
        self.write_config()

    @staticmethod
    def _free_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        return p

    def write_config(self):
        admins = "".join("        - %s\n" % (a if "@" in a else self.jid(a)) for a in self.admins)
        acl_admin = ("  admin:\n    user:\n" + admins) if admins else ""
        with open(os.path.join(self.etc, "ejabberd.yml"), "w") as f:
            f.write("""# Herald federation tests: ejabberd as %(domain)s on %(ip)s only
hosts:
  - %(domain)s
loglevel: %(level)s
log_rotate_count: 0
certfiles:
  - "%(cert)s"
  - "%(key)s"
ca_file: "%(cert)s"
listen:
  -
    port: %(c2s)d
    ip: "%(ip)s"
    module: ejabberd_c2s
    shaper: none
    access: c2s
    starttls: true
    starttls_required: false
  -
    port: %(s2s)d
    ip: "%(ip)s"
    module: ejabberd_s2s_in
    shaper: none
s2s_use_starttls: %(starttls)s
s2s_access: all
s2s_dns_timeout: 1
s2s_dns_retries: 1
s2s_timeout: 60
s2s_max_retry_delay: 5
outgoing_s2s_families:
  - ipv4
outgoing_s2s_port: %(s2s)d
outgoing_s2s_timeout: 10
auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
%(acl_admin)saccess_rules:
  c2s:
    allow: all
  pubsub_createnode:
    allow: local
shaper_rules:
  max_user_sessions: 10
modules:
  mod_disco: {}
  mod_roster: {}
  mod_ping: {}
  mod_s2s_dialback: {}
  mod_pubsub:
    host: "pubsub.%(domain)s"
    access_createnode: pubsub_createnode
    plugins:
      - flat
""" % {"domain": self.domain, "ip": self.ip, "level": self.log_level, "cert": self.cert,
                "key": self.key, "c2s": self.port, "s2s": self.s2s_port,
                "starttls": self.starttls, "acl_admin": acl_admin})
        with open(os.path.join(self.etc, "ejabberdctl.cfg"), "w") as f:
            f.write('ERLANG_NODE=%s\nERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\n'
                    "INET_DIST_INTERFACE=127.0.0.1\n" % self.node)
        # Erlang's resolver: names from /etc/hosts; DNS only at 127.0.0.1:53,
        # where nothing answers (no waiting for an unreachable name server).
        with open(os.path.join(self.etc, "inetrc"), "w") as f:
            f.write('{lookup, ["file", "dns"]}.\n{hosts_file, "/etc/hosts"}.\n'
                    '{nameserver, {127,0,0,1}, 53}.\n{timeout, 200}.\n{retry, 1}.\n')

    def _cmd(self, *args):
        cmd = [EJABBERDCTL_BIN, "--config-dir", self.etc, "--spool", self.spool,
               "--logs", self.logs] + list(args)
        env = dict(os.environ, ERL_DIST_PORT=str(self.dist_port))
        if is_root():
            env["HOME"] = "/var/lib/ejabberd"
            cmd = ["setpriv", "--reuid=ejabberd", "--regid=ejabberd", "--init-groups"] + cmd
        return cmd, env

    def _chown(self):
        if is_root():
            subprocess.run(["chown", "-R", "ejabberd:ejabberd", self.workdir], check=True)
            d = self.workdir
            # The ejabberd user must be able to reach the work directory.
            while d not in ("/", ""):
                mode = os.stat(d).st_mode
                if not mode & 0o001:
                    os.chmod(d, mode | 0o011)
                d = os.path.dirname(d)

    def _find_beam(self):
        spool = self.spool.encode()
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"beam.smp") and spool in b" ".join(argv) \
                    and self.node.split("@")[0].encode() in b" ".join(argv):
                return int(p)
        return None

    def start(self, timeout=45.0):
        assert not self.running(), "ejabberd already running"
        self._chown()
        t0 = time.monotonic()
        cmd, env = self._cmd("foreground")
        out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     env=env, cwd=self.workdir, start_new_session=True)
        out.close()
        deadline = t0 + timeout
        _wait_listen(self.ip, self.port, self.proc, deadline, "ejabberd (c2s)")
        _wait_listen(self.ip, self.s2s_port, self.proc, deadline, "ejabberd (s2s)")
        # The listeners open before the modules; "is started" follows them.
        while "is started in the node" not in _tail(self.log_path, 20000):
            if self.proc.poll() is not None:
                raise AssertionError("ejabberd exited with status %s while starting"
                                     % self.proc.returncode)
            if time.monotonic() > deadline:
                raise AssertionError("ejabberd did not log 'is started' within %.0f s" % timeout)
            time.sleep(0.1)
        self.pid = self._find_beam()
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout=15.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            pid = self.pid or self._find_beam()
            try:
                if pid:
                    os.kill(pid, signal.SIGTERM)
                else:
                    os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        rc = self.proc.returncode
        self.proc = None
        self.pid = None
        return rc

    def ctl(self, *args, timeout=30):
        cmd, env = self._cmd(*args)
        return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.workdir)

    def add_user(self, user, password):
        r = self.ctl("register", user, self.domain, password)
        assert r.returncode == 0, "ejabberdctl register %s failed (%d): %s %s" % (
            user, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
        return self.jid(user)

    def log_text(self, max_chars=60000):
        text = _tail(self.log_path, max_chars)
        err = os.path.join(self.logs, "error.log")
        if os.path.exists(err):
            text += "\n[error.log]\n" + _tail(err, 8000)
        return text + "\n[stdout/stderr]\n" + _tail(self.out_path, 4000)


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

class FClient(XClient):
    """XClient for user@domain at host:port (a Herald, Prosody or ejabberd
    c2s listener), certificate verification off, no roster automation
    (auto_authorize None, auto_subscribe False: the test answers every
    subscription itself). Inboxes: ``presences``, ``pushes``, ``msgs``
    (every message stanza, errors and pubsub events included)."""

    def __init__(self, host, port, jid, password, resource="r"):
        if "/" not in jid:
            jid = "%s/%s" % (jid, resource)
        super().__init__(port, jid, password)
        self.host = host
        self.domain = jid.split("@", 1)[1].split("/", 1)[0]
        self.name = jid
        x = self.xmpp
        x.default_domain = self.domain
        domain = self.domain

        async def dns(d, port_=None):
            return [(domain, host, port)]
        x.get_dns_records = dns
        x.auto_authorize = None
        x.auto_subscribe = False
        attach_inboxes(self, "fed")

    async def sync(self):
        await self.iq("<ping xmlns='%s'/>" % NS_PING, to=self.domain)

    @property
    def bare(self):
        return self.xmpp.boundjid.bare

    async def online(self, roster=True):
        """Login, roster request (an interested resource), initial presence."""
        await self.login()
        if roster:
            await asyncio.wait_for(self.xmpp.get_roster(), 10)
        self.xmpp.send_presence()
        await self.sync()
        return self

    def send_raw(self, xml):
        self.xmpp.send_raw(xml)


async def fclient(host, port, jid, password, resource="r", roster=True):
    """A logged-in FClient that has requested its roster and sent presence."""
    c = FClient(host, port, jid, password, resource)
    return await c.online(roster)


# --------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------

def bare_of(jid):
    return (jid or "").split("/", 1)[0]


def error_condition(el):
    """The defined condition of a stanza's <error/> child (any namespace of
    the stanza), or None."""
    for err in el:
        if local(err.tag) != "error":
            continue
        for child in err:
            if ns_of(child.tag) == NS_STANZAS and local(child.tag) != "text":
                return local(child.tag)
    return None


def error_text(el):
    for err in el:
        if local(err.tag) == "error":
            for child in err:
                if local(child.tag) == "text":
                    return child.text
    return None


def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else b.text


def is_msg(frm_bare=None, body=None, mid=None, mtype=None):
    def pred(el):
        if frm_bare is not None and bare_of(el.get("from")) != frm_bare:
            return False
        if body is not None and body_of(el) != body:
            return False
        if mid is not None and el.get("id") != mid:
            return False
        if mtype is not None and el.get("type", "normal") != mtype:
            return False
        return True
    return pred


def is_presence(ptype=None, frm_bare=None):
    def pred(el):
        if ptype is not None and el.get("type", "available") != ptype:
            return False
        if frm_bare is not None and bare_of(el.get("from")) != frm_bare:
            return False
        return True
    return pred


def is_push_for(jid, subscription=None):
    def pred(el):
        for item in el.iter(q(NS_ROSTER, "item")):
            if item.get("jid") == jid and (subscription is None
                                           or item.get("subscription", "none") == subscription):
                return True
        return False
    return pred


async def roster_items(c):
    """{jid: (subscription, ask)} from a fresh roster get."""
    r = await c.iq("<query xmlns='%s'/>" % NS_ROSTER, to=None, itype="get")
    assert r["type"] == "result", "roster get failed: %s" % r
    out = {}
    for item in r.xml.iter(q(NS_ROSTER, "item")):
        out[item.get("jid")] = (item.get("subscription", "none"), item.get("ask"))
    return out


def event_items(el, node=None):
    """[(item id, first payload element)] of a pubsub event message, or []."""
    out = []
    ev = el.find(q(NS_PUBSUB_EVENT, "event"))
    if ev is None:
        return out
    for items in ev.findall(q(NS_PUBSUB_EVENT, "items")):
        if node is not None and items.get("node") != node:
            continue
        for item in items.findall(q(NS_PUBSUB_EVENT, "item")):
            payload = list(item)
            out.append((item.get("id"), payload[0] if payload else None))
    return out


def is_event(frm, node, item_id=None):
    def pred(el):
        if el.get("from") != frm:
            return False
        ids = [i for i, _ in event_items(el, node)]
        return bool(ids) and (item_id is None or item_id in ids)
    return pred


async def pubsub_iq(c, service, inner, itype="set", timeout=15.0, ns=NS_PUBSUB):
    return await c.iq("<pubsub xmlns='%s'>%s</pubsub>" % (ns, inner), to=service,
                      itype=itype, timeout=timeout)


def iq_ok(resp, what):
    assert resp["type"] == "result", "%s failed: %s" % (what, show(resp.xml))
    return resp


def peers_tail(*servers, chars=6000):
    """Last lines of each server's log, for assertion messages."""
    parts = []
    for s in servers:
        if s is None:
            continue
        parts.append("----- %s log (last %d chars) -----\n%s" % (s.name, chars, s.log_text(chars)))
    return "\n".join(parts)


# --------------------------------------------------------------------------
# Herald as herald.test
# --------------------------------------------------------------------------

def herald_config(workdir, routes=None, s2s=None, extra=None):
    """The INI sections of a federating Herald: [tls] with a certificate for
    herald.test and pubsub.herald.test made here, [s2s] with connect_timeout
    5 (plus ``s2s``), a static route [s2s:DOMAIN] host=IP port=5269 for each
    of ``routes`` ({domain: ip}; none: the names resolve through /etc/hosts)."""
    cert, key = make_cert(os.path.join(str(workdir), "certs"), HERALD_DOMAIN)
    cfg = {"tls": {"cert": cert, "key": key},
           "s2s": dict({"connect_timeout": 5}, **(s2s or {}))}
    for dom, ip in (routes or {}).items():
        cfg["s2s:%s" % dom] = {"host": ip, "port": S2S_PORT}
    for sec, kv in (extra or {}).items():
        cfg.setdefault(sec, {}).update(kv)
    return cfg


def start_s2s_herald(workdir, domain, ip, config, users=None, name="herald"):
    """A started HeraldServer for ``domain``: c2s on a free port of ``ip``
    (plaintext allowed for the test clients), s2s on ip:5269, ``users``
    ({user: password}) added. Fails with the server's log when it does not
    start (e.g. a binary without s2s)."""
    os.makedirs(str(workdir), exist_ok=True)
    srv = HeraldServer(workdir, name=name, domain=domain, s2s_port=S2S_PORT, bind=ip,
                       allow_plaintext=True, config=config)
    try:
        srv.start(timeout=10)
    except AssertionError as e:
        srv.stop()
        raise AssertionError("%s\n(the binary needs the [s2s] support of issue 15)\n"
                             "----- %s log -----\n%s" % (e, name, srv.log_text(8000)))
    for user, pw in (users or {}).items():
        srv.add_user(user, pw)
    return srv


def start_herald(workdir, name="herald", routes=None, s2s=None, extra=None, users=None):
    """start_s2s_herald for herald.test on 127.0.0.1 with herald_config()."""
    return start_s2s_herald(workdir, HERALD_DOMAIN, HERALD_IP,
                            herald_config(workdir, routes, s2s, extra), users, name)


class SilentPeer:
    """A TCP listener that accepts s2s connections and never answers: a peer
    that is reachable but does not authenticate (remote-server-timeout)."""

    def __init__(self, ip, port=S2S_PORT):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.accepted = []

        self.received = b""

    def poll(self):
        """Accepts what is waiting and reads what was sent; returns the
        number of connections accepted so far."""
        try:
            while True:
                c, _ = self.sock.accept()
                c.setblocking(False)
                self.accepted.append(c)
        except (BlockingIOError, OSError):
            pass
        for c in self.accepted:
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    self.received += d
            except (BlockingIOError, OSError):
                pass
        return len(self.accepted)

    def close(self):
        for c in self.accepted:
            c.close()
        self.sock.close()


# --------------------------------------------------------------------------
# Fixtures' bodies and interop scenarios shared by the Prosody and ejabberd
# tests (test_95, test_96): each takes the peer (or its clients)
# --------------------------------------------------------------------------

# Every account of the interop tests: alice and bob on Herald; pat, pia, pim on
# Prosody; ed, eva on ejabberd.
PW = {"alice": "alice-pw", "bob": "bob-pw", "pat": "pat-pw", "pia": "pia-pw", "pim": "pim-pw",
      "ed": "ed-pw", "eva": "eva-pw"}
T = 12.0  # bound for one s2s round trip (connection set-up included)


def running_peer(peer, users=()):
    """Generator body of a module fixture: with /etc/hosts mapped, starts the
    peer (ProsodyPeer or EjabberdPeer), adds ``users`` (passwords from PW),
    yields it and stops it afterwards."""
    with hosts_mapped():
        try:
            peer.start()
            print("%s started in %.2f s" % (peer.kind, peer.startup_seconds))
            for user in users:
                peer.add_user(user, PW[user])
            yield peer
        finally:
            peer.stop()


def herald_factory(request, tmp_path, peer, routes=None):
    """Generator body of the ``fed`` fixture: yields start(s2s=None,
    name='herald'), which starts Herald as herald.test with alice and bob.
    The peer is (re)started if a test stopped it, before and after; every
    Herald must exit 0 on SIGTERM."""
    if not peer.running():
        peer.start()
    servers = [peer]
    request.node._herald_servers = servers  # conftest prints their logs on failure

    def start(s2s=None, name="herald"):
        srv = start_herald(tmp_path / name, name=name, routes=routes, s2s=s2s,
                           users={"alice": PW["alice"], "bob": PW["bob"]})
        servers.insert(0, srv)
        return srv

    yield start
    problems = []
    for srv in servers:
        if srv is peer:
            continue
        rc = srv.stop()
        if rc != 0:
            problems.append("%s exited with %r after SIGTERM, expected 0" % (srv.name, rc))
    if not peer.running():
        peer.start()
    assert not problems, "; ".join(problems)


def herald_client(h, user, resource="r"):
    return fclient(HERALD_IP, h.port, "%s@%s" % (user, HERALD_DOMAIN), PW[user], resource)


def peer_client(peer, user, resource="r"):
    return fclient(peer.ip, peer.port, peer.jid(user), PW[user], resource)


def run_clients(h, peer, peer_user, scenario, timeout=60):
    """Runs ``await scenario(alice, remote)`` (e2e_helpers.run) with alice
    logged in on the Herald h and ``peer_user`` on the peer."""
    async def main():
        return await scenario(await herald_client(h, "alice"), await peer_client(peer, peer_user))
    return run(main, timeout)


def user_of(c):
    return c.bare.split("@", 1)[0]


async def message_both_ways(a, b, timeout=T, strict=True):
    """A chat message from a to b, b's reply to a's full JID: from, to and id
    as sent. strict: also the type, b's bare JID as the first 'to', and no
    error on either side."""
    mid, body = uid("m"), "hello %s " % b.domain.split(".")[0] + uid()
    a.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
               % (b.bare, mid, body))
    m = (await b.msgs.expect(is_msg(body=body), timeout=timeout,
                             what="%s's message" % user_of(a))).xml
    assert m.get("from") == a.jid and m.get("id") == mid, show(m)
    # and back, to a's full JID
    mid2, body2 = uid("m"), "hello %s " % a.domain.split(".")[0] + uid()
    b.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
               % (a.jid, mid2, body2))
    r = (await a.msgs.expect(is_msg(body=body2), timeout=timeout,
                             what="%s's reply" % user_of(b))).xml
    assert r.get("from") == b.jid and r.get("to") == a.jid and r.get("id") == mid2, show(r)
    if not strict:
        return
    assert bare_of(m.get("to")) == b.bare and m.get("type") == "chat", show(m)
    assert r.get("type") == "chat", show(r)
    # nothing bounced on either side
    await a.msgs.expect_none(lambda el: el.get("type") == "error", wait=0.5, what="an error")
    await b.msgs.expect_none(lambda el: el.get("type") == "error", wait=0.1, what="an error")


async def disco_both_ways(alice, remote, peer_features=(), timeout=T):
    """disco#info from a Herald user to the peer's domain and from the peer's
    user to herald.test: results from the right domain; the peer lists
    ``peer_features``, Herald a server identity."""
    query = "<query xmlns='http://jabber.org/protocol/disco#info'/>"
    r = await alice.iq(query, to=remote.domain, timeout=timeout)
    assert r["type"] == "result" and r["from"].full == remote.domain, show(r.xml)
    feats = {f.get("var") for f in r.xml.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert set(peer_features) <= feats, show(r.xml)
    r = await remote.iq(query, to=HERALD_DOMAIN, timeout=timeout)
    assert r["type"] == "result" and r["from"].full == HERALD_DOMAIN, show(r.xml)
    ids = list(r.xml.iter("{http://jabber.org/protocol/disco#info}identity"))
    assert ids and ids[0].get("category") == "server", show(r.xml)


async def subscribe(frm, to, timeout=T, sent=None, approved=None):
    """frm asks for to's presence, to approves (RFC 6121 3.1): to receives the
    request, frm the approval and then to's available presence from to's full
    JID. ``sent`` and ``approved``: coroutine functions awaited right after
    frm's request and after frm has the approval (e.g. frm's roster pushes)."""
    frm.send_raw("<presence to='%s' type='subscribe'/>" % to.bare)
    if sent:
        await sent()
    await to.presences.expect(is_presence("subscribe", frm.bare), timeout=timeout,
                              what="%s's subscription request" % user_of(frm))
    to.send_raw("<presence to='%s' type='subscribed'/>" % frm.bare)
    await frm.presences.expect(is_presence("subscribed", to.bare), timeout=timeout,
                               what="%s's approval" % user_of(to))
    if approved:
        await approved()
    av = (await frm.presences.expect(is_presence("available", to.bare), timeout=timeout,
                                     what="%s's available presence" % user_of(to))).xml
    assert av.get("from") == to.jid, show(av)


async def assert_mutual(a, b):
    """Both rosters say subscription 'both' for the other."""
    for c, other in ((a, b), (b, a)):
        items = await roster_items(c)
        assert items.get(other.bare, (None,))[0] == "both", \
            "%s's roster: %s" % (user_of(c), items)


async def goes_offline(leaver, watcher, timeout=T):
    """leaver logs out; watcher receives its unavailable presence."""
    await leaver.close()
    await watcher.presences.expect(is_presence("unavailable", leaver.bare), timeout=timeout,
                                   what="%s's unavailable presence" % user_of(leaver))


async def pubsub_round(owner, subscriber, service, timeout=T):
    """owner creates a node on ``service``, subscriber subscribes (answer
    from the service, 'subscribed'), owner publishes an item (one
    urn:example:fed entry with a title): subscriber gets the notification
    (to its JID, that item, that title) and the item in an items request.
    Returns (node, word, subscription element, payload, items) for the
    callers' own checks."""
    node = uid("fed-node")
    iq_ok(await pubsub_iq(owner, service, "<create node='%s'/>" % node), "create")
    r = iq_ok(await pubsub_iq(subscriber, service, "<subscribe node='%s' jid='%s'/>"
                              % (node, subscriber.bare), timeout=timeout), "remote subscribe")
    assert r["from"].full == service, show(r.xml)
    sub = r.xml.find(".//{%s}subscription" % NS_PUBSUB)
    assert sub is not None and sub.get("subscription") == "subscribed", show(r.xml)

    item_id, word = uid("item"), uid("w")
    iq_ok(await pubsub_iq(owner, service,
                          "<publish node='%s'><item id='%s'><entry xmlns='urn:example:fed'>"
                          "<title>%s</title></entry></item></publish>" % (node, item_id, word)),
          "publish")
    ev = (await subscriber.msgs.expect(is_event(service, node, item_id), timeout=timeout,
                                       what="the notification")).xml
    assert bare_of(ev.get("to")) == subscriber.bare, show(ev)
    (iid, payload), = event_items(ev, node)
    assert payload is not None and payload.findtext("{urn:example:fed}title") == word, show(ev)

    r = iq_ok(await pubsub_iq(subscriber, service, "<items node='%s'/>" % node, itype="get",
                              timeout=timeout), "remote items")
    items = r.xml.findall(".//{%s}item" % NS_PUBSUB)
    assert [i.get("id") for i in items] == [item_id], show(r.xml)
    return node, word, sub, payload, items


def item_title(item):
    return item.findtext("{urn:example:fed}entry/{urn:example:fed}title")


async def bounce(c, to, body, timeout):
    """c sends a chat message to ``to``; an error comes back within timeout
    with the message's id, from ``to``. Returns (error element, seconds)."""
    mid = uid("m")
    t0 = time.monotonic()
    c.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, mid, body))
    err = (await c.msgs.expect(lambda el: el.get("type") == "error", timeout=timeout,
                               what="a bounce from %s" % to)).xml
    dt = time.monotonic() - t0
    assert err.get("id") == mid and err.get("from") == to, show(err)
    return err, dt
