"""XEP-0060 §6.3 (configure subscription options) with a third client
library: xmpp.js (@xmpp/client, pinned in tests/xmppjs/package-lock.json;
`npm ci --prefix tests/xmppjs`), over TCP with STARTTLS (the server's
default; the self-signed certificate is accepted through
NODE_TLS_REJECT_UNAUTHORIZED=0) and SASL SCRAM-SHA-1.

tests/xmppjs/suboptions.js logs in an owner and a subscriber, creates a node,
subscribes, and checks the subscription options form (see the checks named
in EXPECTED_CHECKS). It prints a JSON report and exits 0 only when every
check passed.

Without tests/xmppjs/node_modules the test is skipped, unless
HERALD_REQUIRE_NODE is set (CI, scripts/test), in which case it fails."""
import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
XMPPJS_DIR = os.path.join(ROOT, "tests", "xmppjs")
SCRIPT = os.path.join(XMPPJS_DIR, "suboptions.js")
USERS = {"alice": "wonderland", "bob": "builder"}

# Every check suboptions.js must report (so a script that silently stops
# early cannot pass).
EXPECTED_CHECKS = [
    "options-get-has-deliver (§6.3.2, §6.3.4)",
    "deliver-perhaps-refused (§6.3.6.2)",
    "deliver-empty-refused (§6.3.6.2)",
    "deliver-2-refused (§6.3.6.2)",
    "unknown-field-refused (§6.3.6.2)",
    "omitted-deliver-kept (§6.3.5)",
    "deliver-false-then-true (§6.3.5, §6.3.6.1)",
]


def require_node():
    return os.environ.get("HERALD_REQUIRE_NODE", "") not in ("", "0")


def node_binary():
    """The node executable, or a skip/failure when the xmpp.js client is not
    installed (failure when HERALD_REQUIRE_NODE is set)."""
    if not os.path.isdir(os.path.join(XMPPJS_DIR, "node_modules", "@xmpp", "client")):
        if require_node():
            pytest.fail("HERALD_REQUIRE_NODE is set but tests/xmppjs/node_modules (with "
                        "@xmpp/client) is missing (run: npm ci --prefix tests/xmppjs)")
        pytest.skip("tests/xmppjs/node_modules missing (npm ci --prefix tests/xmppjs)")
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed but tests/xmppjs/node_modules exists"
    return node


def test_subscription_options_with_xmppjs(herald):
    """XEP-0060 §6.3 through xmpp.js: (1) §6.3.2/§6.3.4 the options request
    returns a pubsub#subscribe_options form (type form) with a boolean
    pubsub#deliver, on by default; (2) §6.3.6.2 submitting pubsub#deliver =
    'perhaps', an empty <value/> or '2' is refused with <bad-request/> +
    <invalid-options xmlns='...pubsub#errors'/> and changes nothing;
    (3) likewise a form with an unknown field (pubsub#bogus), alone or next
    to a valid pubsub#deliver; (4) §6.3.5 deliver=false is accepted, and a
    later form holding only FORM_TYPE leaves it false (options get);
    (5) with deliver=false a publication is not notified (a later marker
    notification on another node comes first), after deliver=true it is."""
    node = node_binary()
    srv = herald(users=USERS)
    env = dict(os.environ)
    env.update({
        "NODE_TLS_REJECT_UNAUTHORIZED": "0",  # Herald's self-signed certificate
        "NODE_NO_WARNINGS": "1",
        "HERALD_PORT": str(srv.port),
        "HERALD_DOMAIN": "localhost",
        "HERALD_PUBSUB": "pubsub.localhost",
        "OWNER_USER": "alice",
        "OWNER_PASSWORD": USERS["alice"],
        "SUBSCRIBER_USER": "bob",
        "SUBSCRIBER_PASSWORD": USERS["bob"],
    })
    try:
        out = subprocess.run([node, SCRIPT], cwd=XMPPJS_DIR, env=env, capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("suboptions.js did not finish within 60 s; output so far:\n%s\n%s"
                             % (e.stdout, e.stderr))
    try:
        report = json.loads(out.stdout)
    except ValueError:
        raise AssertionError("suboptions.js (exit %d) printed no JSON report:\n%s\n%s"
                             % (out.returncode, out.stdout[-3000:], out.stderr[-3000:]))
    assert "error" not in report, "the xmpp.js scenario could not run: %s\n%s" % (
        report["error"], out.stderr[-3000:])
    names = [c["name"] for c in report["checks"]]
    assert names == EXPECTED_CHECKS, "suboptions.js reported checks %s, expected %s" % (
        names, EXPECTED_CHECKS)
    failed = ["%s: %s" % (c["name"], c["detail"]) for c in report["checks"] if not c["ok"]]
    assert not failed, "xmpp.js subscription-options checks failed:\n  " + "\n  ".join(failed)
    assert report["ok"] is True and out.returncode == 0, (out.returncode, out.stdout, out.stderr)
