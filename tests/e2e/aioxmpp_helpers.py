"""aioxmpp clients for the end-to-end tests (test_71_carbons.py,
test_72_blocking.py): a second XMPP library, written by people who never saw
Herald, next to slixmpp.

``AioClient`` logs in with STARTTLS (certificate checks off: the server's
certificate is self-signed) on the server's loopback port, keeps every
message it receives in order (``msgs``, an im_helpers.Inbox of stanzas whose
``.xml`` is an ElementTree element, like slixmpp's), and can send available
presence. The stream runs until ``close()``; run() in e2e_helpers bounds the
whole test.
"""
import asyncio
import xml.etree.ElementTree as ET

import aioxmpp
import aioxmpp.blocking
import aioxmpp.carbons
import aioxmpp.connector
import aioxmpp.dispatcher
import aioxmpp.ping
import aioxmpp.security_layer
import aioxmpp.xml

from e2e_helpers import DOMAIN
from im_helpers import PASSWORDS, Inbox


class _Received:
    """An Inbox entry: the aioxmpp stanza and its XML as ElementTree."""

    def __init__(self, stanza):
        self.stanza = stanza
        self.xml = ET.fromstring(aioxmpp.xml.serialize_single_xso(stanza))


class AioClient:
    def __init__(self, srv, user, resource):
        self.name = "%s@%s/%s (aioxmpp)" % (user, DOMAIN, resource)
        jid = aioxmpp.JID.fromstr("%s@%s/%s" % (user, DOMAIN, resource))
        sec = aioxmpp.make_security_layer(PASSWORDS[user], no_verify=True)
        self.client = aioxmpp.Client(
            jid, sec,
            override_peer=[("127.0.0.1", srv.port, aioxmpp.connector.STARTTLSConnector())])
        self.msgs = Inbox(self, "message")
        self._cm = None

    @property
    def jid(self):
        return str(self.client.local_jid)

    def _on_message(self, msg):
        self.msgs.put(_Received(msg))

    async def login(self, timeout=15.0):
        self._cm = self.client.connected()
        await asyncio.wait_for(self._cm.__aenter__(), timeout)
        disp = self.client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher)
        for t in aioxmpp.MessageType:
            disp.register_callback(t, None, self._on_message)
        return self

    async def presence(self):
        await self.client.send(aioxmpp.Presence(type_=aioxmpp.PresenceType.AVAILABLE))
        await self.sync()

    async def sync(self):
        """A ping round trip: the server has handled what was sent before."""
        await aioxmpp.ping.ping(self.client, aioxmpp.JID.fromstr(DOMAIN))

    async def close(self):
        if self._cm is not None:
            cm, self._cm = self._cm, None
            try:
                await asyncio.wait_for(cm.__aexit__(None, None, None), 5)
            except Exception:
                self.client.stop()
