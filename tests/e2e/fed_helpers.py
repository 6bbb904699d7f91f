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

Every wait is bounded.
"""
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath

from e2e_helpers import NS_CLIENT, NS_PING, NS_STANZAS, XClient, local, ns_of, q, show
from im_helpers import Inbox

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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
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
        self.presences = Inbox(self, "presence")
        self.pushes = Inbox(self, "roster push")
        self.msgs = Inbox(self, "message")
        x.register_handler(Callback("fed-presence", MatchXPath("{%s}presence" % NS_CLIENT),
                                    self.presences.put))
        x.register_handler(Callback("fed-push", StanzaPath("iq@type=set/roster"), self.pushes.put))
        x.register_handler(Callback("fed-message", MatchXPath("{%s}message" % NS_CLIENT),
                                    self.msgs.put))

    async def connect(self, timeout=15.0):
        self._outcome = asyncio.get_running_loop().create_future()
        self.xmpp.connect((self.host, self.port))
        try:
            kind = await asyncio.wait_for(asyncio.shield(self._outcome), timeout)
        except asyncio.TimeoutError:
            kind = "timeout"
        self.offered_mechs = set(self.xmpp["feature_mechanisms"].mech_list)
        return kind

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


def start_herald(workdir, name="herald", routes=None, s2s=None, extra=None, users=None):
    """A HeraldServer for herald.test: c2s on a free port of 127.0.0.1
    (plaintext allowed for the test clients), s2s on 127.0.0.1:5269. Fails
    with the server's log when it does not start (e.g. a binary without s2s)."""
    from e2e_helpers import HeraldServer
    os.makedirs(str(workdir), exist_ok=True)
    srv = HeraldServer(workdir, name=name, domain=HERALD_DOMAIN, s2s_port=S2S_PORT,
                       bind=HERALD_IP, allow_plaintext=True,
                       config=herald_config(workdir, routes, s2s, extra))
    try:
        srv.start(timeout=10)
    except AssertionError as e:
        srv.stop()
        raise AssertionError("%s\n(the binary needs the [s2s] support of issue 15)\n"
                             "----- herald log -----\n%s" % (e, srv.log_text(8000)))
    for user, pw in (users or {}).items():
        srv.add_user(user, pw)
    return srv


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
