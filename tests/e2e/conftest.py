"""Fixtures for Herald's end-to-end tests.

Run with:  HERALD_BIN=/work/main/build/herald /usr/bin/python3 -m pytest -q tests/e2e

Every test gets its own server process (the ``herald`` factory fixture), on a
free loopback port with a fresh data directory. At teardown the server is
sent SIGTERM and must exit with status 0 (under AddressSanitizer a leak makes
that status nonzero, on purpose). The server's log is attached to the report
of a failing test only.
"""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from e2e_helpers import HERALD_BIN, HeraldServer  # noqa: E402

PER_TEST_TIMEOUT = int(os.environ.get("HERALD_E2E_TEST_TIMEOUT", "90"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes several seconds")
    config.addinivalue_line("markers", "once: spends its time waiting on the server's timers; "
                            "scripts/test runs it once, in the sanitizer pass")


def pytest_collection_modifyitems(session, config, items):
    if not (os.path.isfile(HERALD_BIN) and os.access(HERALD_BIN, os.X_OK)):
        if "HERALD_BIN" in os.environ:
            raise pytest.UsageError("HERALD_BIN=%s is not an executable file" % HERALD_BIN)
        skip = pytest.mark.skip(reason="herald binary not found at %s (set HERALD_BIN)"
                                % HERALD_BIN)
        for item in items:
            item.add_marker(skip)


class _TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A hard per-test bound, so that a hung server cannot hang the suite."""
    def on_alarm(signum, frame):
        raise _TestTimeout("test exceeded %d s" % PER_TEST_TIMEOUT)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(PER_TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in getattr(item, "_herald_servers", []):
            rep.sections.append(("herald log: %s (port %d) at %s" % (srv.name, srv.port, rep.when),
                                 srv.log_text()))


@pytest.fixture
def herald(request, tmp_path):
    """Factory: herald(config=None, allow_plaintext=False, users={}, env={})
    starts a server and returns its HeraldServer. ``config`` is {'section':
    {k: v}}. ``users`` maps local part to password, created with `herald
    user add` once the server runs. ``env`` is added to the server process's
    environment (not to the CLI's)."""
    servers = []
    request.node._herald_servers = servers

    def start(config=None, allow_plaintext=False, users=None, extra_args=(), env=None):
        name = "herald%d" % len(servers)
        workdir = tmp_path / name
        workdir.mkdir()
        srv = HeraldServer(workdir, name=name, config=config,
                           allow_plaintext=allow_plaintext, extra_args=extra_args, env=env)
        servers.append(srv)
        srv.start()
        for user, password in (users or {}).items():
            srv.add_user(user, password)
        return srv

    yield start

    problems = []
    for srv in servers:
        rc = srv.stop()
        if rc != 0:
            problems.append("%s (port %d) exited with %r after SIGTERM, expected 0"
                            % (srv.name, srv.port, rc))
    assert not problems, "; ".join(problems)
