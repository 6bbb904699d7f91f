"""Graceful shutdown: every stream is closed (RFC 6120 4.4, and 4.9.3.19
<system-shutdown/> if the server says why) and the process exits 0."""
import signal

import pytest

from e2e_helpers import RawStream


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_streams_and_exits_zero(herald, sig):
    """RFC 6120 4.4 (closing a stream with </stream:stream>): on SIGTERM/SIGINT
    an authenticated TLS stream and an unauthenticated cleartext stream both
    get </stream:stream> (a stream error, if any, must be system-shutdown)
    and a TCP close, and herald exits with status 0."""
    srv = herald(users={"alice": "wonderland"})
    authed = RawStream(srv.port)
    fresh = RawStream(srv.port)
    try:
        assert authed.login("alice", "wonderland", "shut") == "alice@localhost/shut"
        assert fresh.open() is not None
        fresh.features()
        srv.signal(sig)
        for name, s in (("authenticated", authed), ("unauthenticated", fresh)):
            data = s.read_until_closed(timeout=10)
            assert s.stream_ended, "%s stream got no </stream:stream>: %r" % (name, data[-500:])
            assert s.stream_error() in (None, "system-shutdown"), s.text()[-500:]
            assert s.closed, "%s stream was not closed" % name
            s.close()  # our side of the TCP close (the server lingers until then)
        rc = srv.wait(timeout=15)
        assert rc == 0, "herald exited with %r after %s" % (rc, sig.name)
    finally:
        authed.close()
        fresh.close()
