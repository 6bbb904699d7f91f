"""Operating a cluster (docs/cluster.md section 9): adding an instance and
restoring one from a backup, with three nats-servers and three running
instances (cluster_helpers.Cluster).

1. a fourth instance started with an empty data directory applies the
   whole log before it listens, and then serves every account and item
   with the same sequences;
2. a backup of a running instance's LMDB (`mdb_copy`, Debian's lmdb-utils,
   while it serves) started as a new instance catches up from the backup's
   applied position: it serves the items published after the backup too,
   and the accounts made after it;
3. a storage failure on one instance only stops that instance's applying
   (never a skipped entry); restarted, it catches up.
"""
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from cluster_helpers import (NATS_BIN, ClusterHerald, HttpApi, cluster_fixture, item_list,
                             login_eventually, wait_until)
from im_helpers import PASSWORDS

pytestmark = pytest.mark.skipif(
    NATS_BIN is None,
    reason="nats-server is not installed (not on PATH nor in /usr/sbin): the cluster tests "
           "need it (Debian package nats-server)")

MDB_COPY = shutil.which("mdb_copy")


@pytest.fixture
def cluster(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def metric(srv, name):
    """A metric of the instance's /metrics, as a number."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.http_port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise AssertionError("%s has no %s" % (srv.name, name))


def applied(srv):
    """The instance's herald_cluster_applied_seq (/metrics)."""
    return metric(srv, "herald_cluster_applied_seq")


def publish(api, node, first, n):
    for i in range(first, first + n):
        r = api.put_item(node, "item-%03d" % i, {"n": i})
        assert r.status in (200, 201), "publish %d through %s: %r" % (i, api.srv.name, r)


def new_instance(cluster, tmp_path, name, data_from=None):
    wd = tmp_path / name
    wd.mkdir()
    h = ClusterHerald(str(wd), name, cluster.nats.urls)
    if data_from is not None:
        shutil.copytree(data_from, h.data_dir)
    cluster.heralds.append(h)  # stopped (and checked) with the others at teardown
    return h


def test_new_instance_applies_the_whole_log(cluster, tmp_path):
    a = cluster.heralds[0]
    cluster.add_users({"alice": PASSWORDS["alice"]})
    tok = cluster.token("alice@localhost")
    api = HttpApi(a, tok)
    api.create("ops-feed", {"max_items": 100})
    publish(api, "ops-feed", 0, 40)
    api.close()
    want = item_list(a, tok, "ops-feed")
    assert len(want) == 40

    d = new_instance(cluster, tmp_path, "herald-4")
    d.start()
    # It listens only once it has applied the log as it was at its start.
    assert item_list(d, tok, "ops-feed") == want
    ok, why = login_eventually(d, "alice", PASSWORDS["alice"], 5)
    assert ok, why


@pytest.mark.skipif(MDB_COPY is None, reason="mdb_copy (Debian lmdb-utils) is not installed")
def test_backup_restored_as_new_instance_catches_up(cluster, tmp_path):
    a = cluster.heralds[0]
    cluster.add_users({"alice": PASSWORDS["alice"]})
    tok = cluster.token("alice@localhost")
    api = HttpApi(a, tok)
    api.create("backup-feed", {"max_items": 100})
    publish(api, "backup-feed", 0, 30)

    # A consistent copy of a serving instance's store (an LMDB read txn).
    backup = str(tmp_path / "backup")
    os.makedirs(backup)
    r = subprocess.run([MDB_COPY, a.data_dir, backup], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()

    publish(api, "backup-feed", 30, 30)
    api.close()
    cluster.add_users({"bob": PASSWORDS["bob"]})
    want = item_list(a, tok, "backup-feed")
    assert len(want) == 60

    restored = new_instance(cluster, tmp_path, "herald-restored", data_from=backup)
    restored.start()
    assert item_list(restored, tok, "backup-feed") == want, (
        "the restored instance does not serve what was published after its backup")
    ok, why = login_eventually(restored, "bob", PASSWORDS["bob"], 5)
    assert ok, "an account made after the backup: %s" % why
    # Same log position as the instance it was copied from, once idle.
    assert wait_until(lambda: applied(restored) == applied(a), 10), (
        "applied positions differ: %s %s, restored %s" % (a.name, applied(a), applied(restored)))


def test_storage_failure_on_one_instance_stops_it(cluster):
    """An apply that fails on one instance only (its storage full, here by
    fault injection: docs/testing.md) must not be skipped there: that
    instance stops applying, says so (/healthz 503, metric, log) and,
    restarted without the fault, applies the entry from its committed
    position and serves it; the other instances acknowledge and serve it
    meanwhile."""
    a, _, c = cluster.heralds
    cluster.add_users({"alice": PASSWORDS["alice"]})
    tok = cluster.token("alice@localhost")
    api = HttpApi(a, tok)
    api.create("fault-feed", {"max_items": 100})
    wait_until(lambda: item_list(c, tok, "fault-feed") == [], 5)

    # C again, now with the first write to its items database failing.
    assert c.stop() == 0
    c.env["HERALD_TEST_FAULTS"] = "items:1:full"
    c.proc = None
    c.returncode = None
    c.start()
    r = api.put_item("fault-feed", "x1", {"n": 1})
    assert r.status == 201, r
    assert wait_until(lambda: metric(c, "herald_cluster_apply_failed") == 1, 10), (
        "instance C did not stop applying after its storage failed")
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/healthz" % c.http_port, timeout=5)
        raise AssertionError("/healthz of C answered 200 after its apply failed")
    except urllib.error.HTTPError as e:
        assert e.code == 503, e.code
    assert "stops applying" in c.log_text()
    # Later entries are not applied past the failed one.
    r = api.put_item("fault-feed", "x2", {"n": 2})
    assert r.status == 201, r
    api.close()
    want = item_list(a, tok, "fault-feed")
    assert [i for i, _ in want] == ["x1", "x2"], want

    assert c.stop() == 0, "an instance that stopped applying still exits 0 on SIGTERM"
    del c.env["HERALD_TEST_FAULTS"]
    c.proc = None
    c.returncode = None
    c.start()
    assert item_list(c, tok, "fault-feed") == want
    assert metric(c, "herald_cluster_apply_failed") == 0
