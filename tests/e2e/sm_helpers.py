"""Helpers for test_75_sm_clients.py: XEP-0198 stream management driven by
clients nobody here wrote (slixmpp's xep_0198 plugin, aioxmpp's
StanzaStream, Profanity).

* ``SMClient``: an XClient (slixmpp) with the xep_0198 plugin registered
  and every stream-management event recorded (enabled, resumed, failed,
  session_start count, disconnects), plus a way to reconnect and wait for
  the outcome.
* ``hard_cut_socket``: ends a TCP connection with a reset (SO_LINGER 0),
  without </stream:stream>, as when a network path dies.
* ``CutProxy``: a TCP relay between a client and Herald that can reset
  every connection through it at once (both sides get RST), so that a client
  whose socket we do not own (aioxmpp, Profanity) sees a real network
  failure, not a local close.
* ``LogRecorder``: collects a Python logger's records (slixmpp and aioxmpp
  report inconsistent ack counters through logging only).
* ``wait_log``: waits for a line in the server's log.
"""
import asyncio
import logging
import os
import select
import socket
import struct
import threading
import time

from e2e_helpers import DOMAIN, XClient

NS_SM = "urn:xmpp:sm:3"
NS_DELAY = "urn:xmpp:delay"


def hard_cut_socket(sock):
    """Resets the connection: the peer gets RST, no closing stream."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class CutProxy:
    """Listens on a free loopback port and relays each connection to
    127.0.0.1:target. cut() resets every relayed connection (SO_LINGER 0 on
    both sockets), as a dying network path would; new connections are
    relayed as before. Runs in its own thread (works with any client)."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.peer = {}  # socket -> its partner
        self.upstream = set()  # the sockets connected to the server
        self.stalled = False  # server-to-client bytes are discarded
        self.discarded = 0
        self.frozen = {}  # pairs no longer relayed nor read (a silent path)
        self.accepted = 0
        self._cmds = []
        self._done = threading.Event()
        self._rd, self._wr = os.pipe()
        self._lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, name="cutproxy", daemon=True)
        self.thread.start()

    def _drop(self, s, reset):
        other = self.peer.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            self.peer.pop(x, None)
            self.upstream.discard(x)
            self.frozen.pop(x, None)
            if reset:
                hard_cut_socket(x)
            try:
                x.close()
            except OSError:
                pass

    def _run(self):
        while not self._stop:
            socks = [self.lsock, self._rd] + [x for x in self.peer if x not in self.frozen]
            try:
                readable, _, _ = select.select(socks, [], [], 0.5)
            except (OSError, ValueError):
                readable = []
            for s in readable:
                if s is self._rd:
                    os.read(self._rd, 64)
                    with self._lock:
                        cmds, self._cmds = self._cmds, []
                    for c in cmds:
                        if c == "stall":
                            self.stalled = True
                        elif c == "freeze":
                            for x in self.peer:
                                self.frozen[x] = True
                        elif c == "cut":
                            for x in list(self.peer):
                                if x in self.peer:
                                    self._drop(x, True)
                            self.stalled = False
                            self.frozen.clear()
                        self._done.set()
                elif s is self.lsock:
                    c, _ = self.lsock.accept()
                    try:
                        u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                    except OSError:
                        hard_cut_socket(c)
                        c.close()
                        continue
                    self.peer[c] = u
                    self.upstream.add(u)
                    self.peer[u] = c
                    self.accepted += 1
                elif s in self.peer:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self._drop(s, False)
                        continue
                    if self.stalled and s in self.upstream:
                        self.discarded += len(data)
                        continue
                    try:
                        self.peer[s].sendall(data)
                    except OSError:
                        self._drop(s, True)
        for x in list(self.peer):
            if x in self.peer:
                self._drop(x, True)
        self.frozen.clear()
        self.lsock.close()

    def _command(self, cmd, timeout=5.0):
        self._done.clear()
        with self._lock:
            self._cmds.append(cmd)
        os.write(self._wr, b"x")
        assert self._done.wait(timeout), "the proxy thread did not answer"

    def connections(self):
        return len(self.peer) // 2

    def stall(self):
        """From now on, what the server sends is lost on the way (the
        client's bytes still reach the server): a path that dies in one
        direction first. cut() ends it."""
        self._command("stall")

    def freeze(self):
        """The current connections go silent: nothing is relayed any more in
        either direction, and a client that closes its end is not noticed
        by the server (a NAT or a radio link that died). New connections
        are relayed normally; cut() or close() resets the frozen ones."""
        self._command("freeze")

    def cut(self):
        """Resets every relayed connection, both sides; new connections are
        relayed normally."""
        self._command("cut")

    def close(self):
        self._stop = True
        os.write(self._wr, b"x")
        self.thread.join(5)
        os.close(self._rd)
        os.close(self._wr)


def wait_log(srv, needle, timeout=10.0, count=1):
    """Waits until `needle` occurs at least `count` times in the server log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.log_text(max_chars=10**7).count(needle) >= count:
            return True
        time.sleep(0.05)
    return False


async def await_log(srv, needle, timeout=10.0, count=1):
    """wait_log without blocking the event loop (clients keep reading)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.log_text(max_chars=10**7).count(needle) >= count:
            return True
        await asyncio.sleep(0.05)
    return False


class LogRecorder(logging.Handler):
    """Records the messages of a logger (and its children) at `level` or above."""

    def __init__(self, name, level=logging.WARNING):
        super().__init__(level)
        self.records = []
        self.logger = logging.getLogger(name)
        self.old_level = self.logger.level

    def emit(self, record):
        try:
            self.records.append("%s: %s" % (record.levelname, record.getMessage()))
        except Exception:  # pragma: no cover - diagnostics only
            self.records.append(repr(record))

    def __enter__(self):
        self.logger.addHandler(self)
        if self.logger.level == logging.NOTSET or self.logger.level > self.level:
            self.logger.setLevel(self.level)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.old_level)


class SMClient(XClient):
    """slixmpp with its own XEP-0198 plugin (enable with resume, <r/> every
    `window` stanzas sent, answers the server's <r/>, <resume/> on
    reconnect). Records the plugin's events in order."""

    def __init__(self, server, jid, password, window=5):
        super().__init__(server, jid, password)
        x = self.xmpp
        x.register_plugin("xep_0198")
        self.sm = x.plugin["xep_0198"]
        self.sm.window = window
        self.sm.window_counter = window
        self.events = []  # ('session_start'|'sm_enabled'|'session_resumed'|'sm_failed'|...)
        self.enabled = []  # the <enabled/> stanzas
        self.resumed = []  # the <resumed/> stanzas
        self.failed = []  # the <failed/> stanzas
        self.acked = []  # stanzas the server acknowledged (stanza_acked)
        self.inbox = []  # every received message, in order (also type error)
        self._waiters = []
        for ev in ("session_start", "sm_enabled", "session_resumed", "sm_failed",
                   "disconnected", "session_end", "stream_error"):
            x.add_event_handler(ev, self._recorder(ev))
        x.add_event_handler("stanza_acked", self.acked.append)
        x.add_event_handler("message", self.inbox.append)

    def _recorder(self, name):
        def rec(data):
            self.events.append(name)
            if name == "sm_enabled":
                self.enabled.append(data)
            elif name == "session_resumed":
                self.resumed.append(data)
            elif name == "sm_failed":
                self.failed.append(data)
            for w in list(self._waiters):
                if not w.done() and name in w.names:
                    w.set_result(name)
        return rec

    async def wait_event(self, *names, timeout=10.0):
        """Waits for the next of the named events; returns its name or None."""
        fut = asyncio.get_running_loop().create_future()
        fut.names = names
        self._waiters.append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._waiters.remove(fut)

    def cut(self):
        """Resets the TCP connection under slixmpp without a closing stream."""
        t = self.xmpp.transport
        assert t is not None, "not connected"
        hard_cut_socket(t.get_extra_info("socket"))
        t.abort()

    async def reconnect(self, *outcomes, timeout=15.0):
        """Connects again (slixmpp resumes if it has an SM id); returns the
        first of `outcomes` that happens."""
        waiter = asyncio.ensure_future(self.wait_event(*outcomes, timeout=timeout))
        await asyncio.sleep(0)
        self.xmpp.connect(("127.0.0.1", self.port))
        return await waiter

    def bodies(self):
        return [m["body"] for m in self.inbox if m["type"] != "error"]

    async def wait_bodies(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.bodies()) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.bodies()


def delay_stamp(msg):
    """The XEP-0203 <delay/> stamp of a slixmpp message, or None."""
    d = msg.xml.find("{%s}delay" % NS_DELAY)
    return None if d is None else d.get("stamp")


__all__ = ["DOMAIN", "NS_SM", "NS_DELAY", "SMClient", "CutProxy", "LogRecorder", "hard_cut_socket",
           "wait_log", "await_log", "delay_stamp"]
