"""A tiny authoritative DNS server for the s2s SRV tests (test_99_s2s_srv.py).

``FakeDNS(ip, port, srv, a)`` answers UDP queries on ip:port from two
tables: SRV records, ``srv = {"_xmpp-server._tcp.b.test": [(prio, weight,
port, "xmpp.b.test."), ...]}``, and IPv4 addresses, ``a = {"xmpp.b.test":
"127.0.0.31"}`` (names case-insensitive, with or without the trailing dot;
the tables may be replaced while it runs):

* an SRV question for a name in ``srv``: NOERROR, AA, one SRV answer per
  tuple, in the table's order; an A question for a name in ``a``: its address;
* any other question for a name in either table: NOERROR with no answer
  (NODATA: e.g. AAAA);
* anything else: NXDOMAIN.

Messages are encoded by hand (RFC 1035 4.1, RFC 2782): the question is echoed
as received, answers point at it (a compression pointer to offset 12), the
SRV target is written uncompressed. Only standard queries with one question
are answered (others: FORMERR / NOTIMP). Answers are small, so TCP is not
served (glibc only retries over TCP when an answer comes back truncated).
``queries`` lists every (name, type) asked, in order. One daemon thread;
close() stops it within 0.2 s.
"""
import socket
import struct
import threading

T_A, T_AAAA, T_SRV = 1, 28, 33
C_IN = 1
RCODE_OK, RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_NOTIMP = 0, 1, 3, 4
TYPE_NAMES = {T_A: "A", T_AAAA: "AAAA", T_SRV: "SRV"}


def _norm(name):
    return name.rstrip(".").lower()


def encode_name(name):
    out = b""
    for label in _norm(name).split("."):
        if label:
            raw = label.encode("ascii")
            assert len(raw) < 64, "DNS label too long: %r" % label
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_question(msg):
    """(name, qtype, qclass, end offset) of the first question (no
    compression in questions)."""
    i, labels = 12, []
    while True:
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    if i + 4 > len(msg):
        raise ValueError("short question")
    qtype, qclass = struct.unpack("!HH", msg[i:i + 4])
    return ".".join(labels), qtype, qclass, i + 4


def srv_rdata(prio, weight, port, target):
    return struct.pack("!HHH", prio, weight, port) + encode_name(target)


def answer(query, srv, a=None, ttl=5):
    """The response to one query message (bytes), or None to stay silent."""
    if len(query) < 12:
        return None
    qid, flags, qd, _, _, _ = struct.unpack("!HHHHHH", query[:12])
    if flags & 0x8000:
        return None  # a response: not for us
    opcode = (flags >> 11) & 0xF
    rd = flags & 0x0100

    def header(rcode, qdcount, ancount):
        f = 0x8000 | (opcode << 11) | 0x0400 | rd | rcode  # QR, AA, RD copied
        return struct.pack("!HHHHHH", qid, f, qdcount, ancount, 0, 0)

    if opcode != 0 or qd != 1:
        return header(RCODE_NOTIMP if opcode else RCODE_FORMERR, 0, 0)
    try:
        name, qtype, qclass, end = parse_question(query)
    except (ValueError, IndexError, struct.error):
        return header(RCODE_FORMERR, 0, 0)
    question = query[12:end]
    srv_table = {_norm(k): v for k, v in dict(srv).items()}
    a_table = {_norm(k): v for k, v in dict(a or {}).items()}
    key = _norm(name)
    if key not in srv_table and key not in a_table:
        return header(RCODE_NXDOMAIN, 1, 0) + question
    answers = []
    if qclass == C_IN and qtype == T_SRV and key in srv_table:
        answers = [(T_SRV, srv_rdata(*r)) for r in srv_table[key]]
    elif qclass == C_IN and qtype == T_A and key in a_table:
        answers = [(T_A, socket.inet_aton(a_table[key]))]
    out = header(RCODE_OK, 1, len(answers)) + question
    for rtype, rdata in answers:
        out += struct.pack("!HHHIH", 0xC00C, rtype, C_IN, ttl, len(rdata)) + rdata
    return out


class FakeDNS:
    def __init__(self, ip="127.0.0.53", port=53, srv=None, a=None):
        self.srv = dict(srv or {})
        self.a = dict(a or {})
        self.queries = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self._loop, name="fake-dns", daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            try:
                name, qtype, _, _ = parse_question(data)
                with self.lock:
                    self.queries.append((_norm(name), TYPE_NAMES.get(qtype, str(qtype))))
            except (ValueError, IndexError, struct.error):
                pass
            resp = answer(data, self.srv, self.a)
            if resp is not None:
                try:
                    self.sock.sendto(resp, addr)
                except OSError:
                    pass

    def asked(self, name, qtype="SRV"):
        with self.lock:
            return (_norm(name), qtype) in self.queries

    def clear(self):
        with self.lock:
            self.queries.clear()

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        self.sock.close()
