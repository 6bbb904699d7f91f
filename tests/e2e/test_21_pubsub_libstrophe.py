"""XEP-0060 publish-subscribe with a second, independent client library:
libstrophe (C), besides slixmpp.

The client is tests/e2e/clients/strophe_pubsub.c, built by CMake as
``strophe_pubsub`` next to the ``herald`` binary (when pkg-config finds
libstrophe; CI installs libstrophe-dev, so a missing binary is a failure,
not a skip). It logs in alice and bob over STARTTLS + SASL, and checks node
creation with a configure form (pubsub#max_items=5), subscription, eight
acknowledged publishes with in-order headline notifications, retrieval of
the five newest items oldest-first, a notified retract and a notified node
deletion, then a clean disconnect. It exits 0 only if every step verified.
"""
import os
import subprocess

from e2e_helpers import HERALD_BIN

USERS = {"alice": "wonderland", "bob": "builder"}
CLIENT_TIMEOUT = 40  # the client bounds itself at 20 s; this is a backstop


def strophe_client():
    path = os.path.join(os.path.dirname(os.path.abspath(HERALD_BIN)), "strophe_pubsub")
    assert os.path.isfile(path) and os.access(path, os.X_OK), (
        "libstrophe test client not found at %s: build it with CMake (target strophe_pubsub, "
        "built when pkg-config finds libstrophe; install libstrophe-dev, see "
        "scripts/install-deps)" % path)
    return path


def test_pubsub_flow_with_libstrophe(herald):
    """XEP-0060 §8.1.3 (create and configure), §6.1 (subscribe), §7.1
    (publish, notification with payload), §6.5 (retrieve items, max_items
    honoured, oldest first), §7.2 (retract with notify), §8.4 (delete with
    notification), all through libstrophe against the real server."""
    client = strophe_client()
    srv = herald(users=USERS)
    env = dict(os.environ, STROPHE_PUBSUB_DEBUG="1")
    try:
        r = subprocess.run([client, str(srv.port)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=CLIENT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("strophe_pubsub did not finish within %d s\n[stdout]\n%s\n[stderr]\n%s"
                             % (CLIENT_TIMEOUT,
                                (e.stdout or b"").decode("utf-8", "replace"),
                                (e.stderr or b"").decode("utf-8", "replace")[-20000:]))
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    failures = "\n".join(line for line in err.splitlines() if line.startswith("strophe_pubsub:"))
    assert r.returncode == 0, (
        "libstrophe pubsub client exited with %d\n[failures]\n%s\n[progress]\n%s\n"
        "[libstrophe log, last 20000 characters]\n%s"
        % (r.returncode, failures or "<none reported>", out, err[-20000:]))
    assert "PASS:" in out, "client exited 0 without reporting PASS:\n%s" % out
    assert srv.running(), "herald is no longer running after the libstrophe scenario"
