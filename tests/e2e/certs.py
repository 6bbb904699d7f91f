"""Test certificates made with the `openssl` command line (OpenSSL 3.0's
`req`, `ca`, `x509`), for SASL EXTERNAL (XEP-0178) and TLS tests.

``make_certs(directory)`` creates, in that directory:

* ``ca``: a CA (``ca.pem``, ``ca.key``) managed by ``openssl ca`` (its
  index, serial and CRL number live beside it) and ``crl.pem``, a CRL of
  that CA listing the ``revoked`` certificate;
* ``other_ca``: a second, unrelated CA;
* ``server``: a server certificate for localhost (DNS SAN) from ``ca``;
* client certificates from ``ca`` (each ``NAME.pem`` + ``NAME.key``),
  valid from yesterday for 30 days unless said otherwise:

  ``alice``        id-on-xmppAddr alice@localhost (CN names no account)
  ``alice_cn``     only CN=alice, no subjectAltName
  ``alice_email``  rfc822Name SAN and emailAddress alice@localhost, no xmppAddr
  ``alice_bob``    id-on-xmppAddr alice@localhost and bob@localhost
  ``bob``          id-on-xmppAddr bob@localhost
  ``ghost``        id-on-xmppAddr ghost@localhost (no such account in the tests)
  ``expired``      id-on-xmppAddr alice@localhost, valid 2020-01-01 .. 2020-02-01
  ``revoked``      id-on-xmppAddr alice@localhost, revoked in crl.pem
  ``foreign``      id-on-xmppAddr alice@localhost, signed by ``other_ca``

id-on-xmppAddr is the otherName 1.3.6.1.5.5.7.8.5 with a UTF8String value
(RFC 6120 section 13.7.1.4). Keys are EC P-256, unencrypted.
"""
import os
import subprocess
import textwrap

XMPP_ADDR_OID = "1.3.6.1.5.5.7.8.5"


def xmpp_addr(jid):
    return "otherName:%s;UTF8:%s" % (XMPP_ADDR_OID, jid)


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed (%d): %s%s" % (
            " ".join(args), r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace")))
    return r.stdout.decode(errors="replace")


def _ca_config(cadir):
    return textwrap.dedent("""\
        [ca]
        default_ca = CA_default

        [CA_default]
        dir = {d}
        database = {d}/index.txt
        new_certs_dir = {d}/newcerts
        certificate = {d}/ca.pem
        private_key = {d}/ca.key
        serial = {d}/serial
        crlnumber = {d}/crlnumber
        default_md = sha256
        default_days = 30
        default_crl_days = 30
        policy = policy_any
        unique_subject = no
        copy_extensions = none
        email_in_dn = yes
        preserve = yes

        [policy_any]
        commonName = optional
        emailAddress = optional

        [req]
        distinguished_name = req_dn
        prompt = no

        [req_dn]
        CN = unused

        [v3_ca]
        basicConstraints = critical, CA:true
        keyUsage = critical, keyCertSign, cRLSign
        subjectKeyIdentifier = hash
        """).format(d=cadir)


class CA:
    def __init__(self, directory, name, cn):
        self.dir = os.path.join(directory, name)
        os.makedirs(os.path.join(self.dir, "newcerts"))
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca.key")
        self.config = os.path.join(self.dir, "ca.cnf")
        with open(self.config, "w") as f:
            f.write(_ca_config(self.dir))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.dir, "crlnumber"), "w") as f:
            f.write("1000\n")
        _run(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "3650",
              "-subj", "/CN=%s" % cn, "-config", self.config, "-extensions", "v3_ca"], self.dir)

    def issue(self, directory, name, subject, san=None, eku="clientAuth",
              startdate=None, enddate=None):
        """Makes NAME.key and NAME.pem in directory, signed by this CA;
        returns (cert, key). ``san`` is an openssl subjectAltName value
        (or None for no SAN); dates are openssl's YYYYMMDDHHMMSSZ."""
        key = os.path.join(directory, name + ".key")
        csr = os.path.join(directory, name + ".csr")
        cert = os.path.join(directory, name + ".pem")
        ext = os.path.join(directory, name + ".ext")
        _run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", key, "-out", csr, "-subj", subject,
              "-config", self.config], directory)
        lines = ["[ext]", "basicConstraints = critical, CA:false",
                 "keyUsage = critical, digitalSignature, keyAgreement",
                 "extendedKeyUsage = %s" % eku,
                 "authorityKeyIdentifier = keyid"]
        if san:
            lines.append("subjectAltName = %s" % san)
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        args = ["ca", "-batch", "-config", self.config, "-in", csr, "-out", cert, "-notext",
                "-extfile", ext, "-extensions", "ext"]
        if startdate:
            args += ["-startdate", startdate]
        else:
            # Valid from a day ago: no clock-skew surprises on the server.
            args += ["-startdate", _days_ago(1)]
        if enddate:
            args += ["-enddate", enddate]
        else:
            args += ["-days", "30"]
        _run(args, directory)
        os.chmod(key, 0o600)
        return cert, key

    def revoke(self, cert):
        _run(["ca", "-batch", "-config", self.config, "-revoke", cert,
              "-crl_reason", "keyCompromise"], self.dir)

    def gencrl(self, path):
        _run(["ca", "-batch", "-config", self.config, "-gencrl", "-out", path], self.dir)
        return path


def _days_ago(n):
    import datetime
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=n)
    return t.strftime("%Y%m%d%H%M%SZ")


class Certs:
    """Paths of everything make_certs created. ``client[NAME]`` is
    (cert, key)."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.client = {}

    def cert(self, name):
        return self.client[name][0]

    def key(self, name):
        return self.client[name][1]


def make_certs(directory):
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    c = Certs(directory)
    ca = CA(directory, "ca", "Herald Test CA")
    other = CA(directory, "other_ca", "Some Other CA")
    c.ca, c.ca_key = ca.cert, ca.key
    c.other_ca = other.cert

    c.server_cert, c.server_key = ca.issue(directory, "server", "/CN=localhost",
                                           san="DNS:localhost, IP:127.0.0.1",
                                           eku="serverAuth")
    issue = lambda name, subject, san=None, **kw: c.client.__setitem__(  # noqa: E731
        name, ca.issue(directory, name, subject, san, **kw))
    issue("alice", "/CN=xmpp-client-1", xmpp_addr("alice@localhost"))
    issue("alice_cn", "/CN=alice")
    issue("alice_email", "/CN=xmpp-client-2/emailAddress=alice@localhost",
          "email:alice@localhost")
    issue("alice_bob", "/CN=xmpp-client-3",
          "%s, %s" % (xmpp_addr("alice@localhost"), xmpp_addr("bob@localhost")))
    issue("bob", "/CN=xmpp-client-4", xmpp_addr("bob@localhost"))
    issue("ghost", "/CN=xmpp-client-5", xmpp_addr("ghost@localhost"))
    issue("expired", "/CN=xmpp-client-6", xmpp_addr("alice@localhost"),
          startdate="20200101000000Z", enddate="20200201000000Z")
    issue("revoked", "/CN=xmpp-client-7", xmpp_addr("alice@localhost"))
    c.client["foreign"] = other.issue(directory, "foreign", "/CN=xmpp-client-8",
                                      xmpp_addr("alice@localhost"))
    ca.revoke(c.cert("revoked"))
    c.crl = ca.gencrl(os.path.join(directory, "crl.pem"))
    return c


def verify(certs, name, crl=True):
    """`openssl verify` of a client certificate against the test CA (with
    the CRL when crl): (ok, output)."""
    args = ["verify", "-CAfile", certs.ca, "-purpose", "sslclient"]
    if crl:
        args += ["-crl_check", "-CRLfile", certs.crl]
    args.append(certs.cert(name))
    r = subprocess.run(["openssl"] + args, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")


if __name__ == "__main__":  # self-check: python3 certs.py DIR
    import sys
    import tempfile
    d = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="herald-certs-")
    cs = make_certs(d)
    for n in sorted(cs.client):
        print(n, verify(cs, n))
