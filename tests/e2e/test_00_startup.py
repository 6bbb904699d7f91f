"""Start-up, data directory, TLS certificate, configuration handling."""
import os
import ssl
import stat
import subprocess

from e2e_helpers import (HERALD_BIN, NS_SASL, RawStream, XClient, q, run, sasl_condition,
                         show, write_config)


def presented_cert_der(port):
    """The DER certificate the server presents after STARTTLS."""
    s = RawStream(port)
    try:
        s.open()
        s.features()
        s.starttls()
        return s.sock.getpeercert(binary_form=True)
    finally:
        s.close()


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_first_start_creates_data_dir_and_certificate(herald):
    """RFC 6120 13.7.1 (server certificate; the brief: self-signed on first
    start): DIR, DIR/tls/cert.pem and DIR/tls/key.pem are created, the key
    is private to the owner, the certificate names the domain and is the
    one presented in STARTTLS; a restart reuses it and keeps the accounts."""
    srv = herald(users={"alice": "wonderland"})
    cert = os.path.join(srv.data_dir, "tls", "cert.pem")
    key = os.path.join(srv.data_dir, "tls", "key.pem")
    assert os.path.isfile(cert) and os.path.isfile(key)
    assert stat.S_IMODE(os.stat(key).st_mode) & 0o077 == 0, oct(os.stat(key).st_mode)
    assert stat.S_IMODE(os.stat(srv.data_dir).st_mode) & 0o077 == 0, \
        "data dir mode %o" % stat.S_IMODE(os.stat(srv.data_dir).st_mode)
    decoded = ssl._ssl._test_decode_cert(cert)
    names = [v for k, v in decoded.get("subjectAltName", ()) if k == "DNS"]
    names += [v for rdn in decoded.get("subject", ()) for k, v in rdn if k == "commonName"]
    assert "localhost" in names, decoded
    der = pem_to_der(cert)
    assert presented_cert_der(srv.port) == der

    srv.restart()
    assert pem_to_der(cert) == der, "certificate regenerated on restart"
    assert presented_cert_der(srv.port) == der

    async def body():
        c = XClient(srv, "alice@localhost/after-restart", "wonderland")
        await c.login()
    run(body)


def test_logs_on_stderr_not_stdout(herald):
    """No RFC applies (Herald's operational contract: logs go to stderr): a
    session's worth of activity leaves stdout empty and the log on stderr."""
    srv = herald(users={"alice": "wonderland"})

    async def body():
        c = XClient(srv, "alice@localhost/r", "wonderland")
        await c.login()
        await c.sync()
    run(body)
    assert srv.stdout_text() == "", srv.stdout_text()
    with open(srv.log_path, "rb") as f:
        assert b"alice@localhost" in f.read(), "the login is not in the stderr log"


def test_configured_certificate_is_used(herald, tmp_path):
    """RFC 6120 5.4.3.3 / 13.7.1 with [tls] cert and key: the configured
    certificate is the one presented."""
    cert = str(tmp_path / "mycert.pem")
    key = str(tmp_path / "mykey.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o600)
    srv = herald(config={"tls": {"cert": cert, "key": key}}, users={"alice": "wonderland"})
    assert presented_cert_der(srv.port) == pem_to_der(cert)

    async def body():
        c = XClient(srv, "alice@localhost/r", "wonderland")
        await c.login()
    run(body)


def test_bad_config_refused(tmp_path):
    """No RFC applies (Herald's configuration contract, docs/configuration.md:
    unknown options are errors, values are range-checked): `herald serve`
    exits nonzero naming the bad setting, without listening."""
    cases = {
        "unknown-key": ({"c2s": {"no_such_option": "1"}}, "no_such_option"),
        "out-of-range": ({"c2s": {"max_stanza_size": "12"}}, "max_stanza_size"),
        "bad-bool": ({"c2s": {"require_tls": "perhaps"}}, "require_tls"),
    }
    for name, (cfg, word) in cases.items():
        path = str(tmp_path / ("%s.ini" % name))
        write_config(path, cfg)
        r = subprocess.run([HERALD_BIN, "serve", "--config", path, "--data-dir",
                            str(tmp_path / ("data-" + name)), "--c2s-port", "0"],
                           capture_output=True, timeout=15, stdin=subprocess.DEVNULL)
        err = (r.stderr + r.stdout).decode(errors="replace")
        assert r.returncode != 0, "%s: accepted (%s)" % (name, err)
        assert word in err, "%s: message does not name %s: %r" % (name, word, err)


def test_mechanisms_setting(herald):
    """RFC 6120 6.4.1 (the server offers its mechanisms) and 6.5.5
    <invalid-mechanism/>: with [auth] mechanisms = SCRAM-SHA-256 only that is
    offered; PLAIN and SCRAM-SHA-1 are refused; SCRAM-SHA-256 works."""
    srv = herald(config={"auth": {"mechanisms": "SCRAM-SHA-256", "failure_delay_ms": 50}},
                 users={"alice": "wonderland"})
    s = RawStream(srv.port)
    try:
        s.open()
        s.features()
        s.starttls()
        s.open()
        feats = s.features()
        mechs = [m.text for m in feats.iter(q(NS_SASL, "mechanism"))]
        assert mechs == ["SCRAM-SHA-256"], show(feats)
        assert sasl_condition(s.auth_plain("alice", "wonderland")) == "invalid-mechanism"
        resp = s.auth("SCRAM-SHA-1", "biwsbj1hbGljZSxyPWFiY2RlZmdoaWprbG1ub3A=")
        assert sasl_condition(resp) == "invalid-mechanism", show(resp)
    finally:
        s.close()

    async def body():
        c = XClient(srv, "alice@localhost/r", "wonderland")
        await c.login()
        assert c.mech_used == "SCRAM-SHA-256"
        assert c.offered_mechs == {"SCRAM-SHA-256"}
    run(body)
