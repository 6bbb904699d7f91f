"""Cluster mode over TLS to NATS (docs/cluster.md section 9: [cluster]
tls_ca): one nats-server with JetStream that requires TLS, its certificate
signed by a CA made here (openssl), and one Herald instance with
replicas = 1.

1. with tls_ca naming the CA, the instance starts, `herald user add
   --config` and `herald cluster status` work over TLS, and a REST publish
   is acknowledged and readable;
2. without tls_ca (the server's certificate cannot be verified) the
   instance refuses to start, saying why, and `herald cluster status`
   exits 1.
"""
import json
import os
import subprocess
import time
import urllib.request

import pytest

from cluster_helpers import NATS_BIN
from e2e_helpers import HeraldServer, free_port

pytestmark = pytest.mark.skipif(
    NATS_BIN is None,
    reason="nats-server is not installed (not on PATH nor in /usr/sbin): the cluster tests "
           "need it (Debian package nats-server)")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=30)


def make_pki(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=herald test CA",
            cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext", cwd=d)


@pytest.fixture
def tls_nats(tmp_path):
    d = str(tmp_path)
    make_pki(d)
    port = free_port()
    conf = os.path.join(d, "nats.conf")
    with open(conf, "w") as f:
        f.write('port: %d\nhost: 127.0.0.1\njetstream { store_dir: "%s/js" }\n'
                'tls { cert_file: "%s/srv.pem", key_file: "%s/srv.key" }\n' % (port, d, d, d))
    log = open(os.path.join(d, "nats.log"), "wb")
    proc = subprocess.Popen([NATS_BIN, "-c", conf], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while True:
        with open(os.path.join(d, "nats.log"), "rb") as f:
            if b"Server is ready" in f.read():
                break
        assert proc.poll() is None, "nats-server exited: %s" % open(
            os.path.join(d, "nats.log")).read()
        assert time.monotonic() < deadline, "nats-server did not become ready"
        time.sleep(0.1)
    yield {"url": "nats://127.0.0.1:%d" % port, "ca": os.path.join(d, "ca.pem"), "dir": d}
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def instance(tmp_path, name, nats, tls=True):
    cluster = {"name": name, "nats_urls": nats["url"], "replicas": 1}
    if tls:
        cluster["tls_ca"] = nats["ca"]
    wd = tmp_path / name
    wd.mkdir()
    return HeraldServer(wd, name=name, config={"cluster": cluster})


def test_instance_over_tls(tls_nats, tmp_path, request):
    srv = instance(tmp_path, "herald-tls", tls_nats)
    request.node._herald_servers = [srv]
    srv.start(timeout=40)
    try:
        jid = srv.add_user("zed", "zebra-crossing")
        r = srv.cli("token", "create", "--jid", jid, "--config", srv.config_path)
        assert r.returncode == 0, r.stderr.decode()
        token = r.stdout.decode().strip().splitlines()[-1]
        r = srv.cli("cluster", "status", "--config", srv.config_path)
        out = r.stdout.decode()
        assert r.returncode == 0 and "HRD_herald_LOG" in out and "herald-herald-tls" in out, (
            r.returncode, out, r.stderr.decode())

        def call(method, path, body=None):
            req = urllib.request.Request(
                "http://127.0.0.1:%d%s" % (srv.http_port, path), method=method,
                data=json.dumps(body).encode() if body is not None else None,
                headers={"Authorization": "Bearer " + token,
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        assert call("POST", "/v1/nodes", {"node": "tls-feed"})[0] == 201
        status, body = call("POST", "/v1/nodes/tls-feed/items", {"kW": 3.5})
        assert status == 201, body
        status, items = call("GET", "/v1/nodes/tls-feed/items")
        assert [it["json"] for it in items["items"]] == [{"kW": 3.5}], items
    finally:
        assert srv.stop() == 0


def test_unverifiable_nats_refused(tls_nats, tmp_path, request):
    srv = instance(tmp_path, "herald-notls", tls_nats, tls=False)
    request.node._herald_servers = [srv]
    with pytest.raises(AssertionError, match="exited with status 1"):
        srv.start(timeout=60)
    assert "cluster" in srv.log_text() and "NATS" in srv.log_text(), srv.log_text()
    r = srv.cli("cluster", "status", "--config", srv.config_path)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert b"NATS" in r.stderr, r.stderr
