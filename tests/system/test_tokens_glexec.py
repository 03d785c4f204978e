"""A job holding a proxy and a bearer token, through the gLExec stand-in as pilotid-alice
(issue 15): gLExec copies the proxy, the token comes on the wrapper's standard input.

The pilot (pilotid-pilot) has a token of its own in BEARER_TOKEN and BEARER_TOKEN_FILE; the
job's token comes from the ``token-file`` source with ``token_with_proxy`` (Alice's proxy
beside it, which gLExec authenticates).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pilotid.identity.testissuer import TestIssuer
from tests.system.glexec_node import give_to_pilot, standin_fixture  # noqa: F401 - a fixture
from tests.system.test_run_glexec import PANDA_ID, site  # noqa: F401 - site is a fixture

ISSUER = TestIssuer("https://atlas-auth.example.org/", key_id="glexec1")
#: Site setup lines, run by the wrapper as the target: what the payload gets for its token.
TOKEN_REPORT = [
    "echo \"token-file=${BEARER_TOKEN_FILE-unset}\"",
    "stat -c 'token-owner=%U token-mode=%a' \"${BEARER_TOKEN_FILE-/none}\" ||"
    " echo token-owner=none",
    "echo \"token-sha256=$(sha256sum < \"${BEARER_TOKEN_FILE-/none}\" | cut -d' ' -f1)\"",
    "echo \"bearer-token=${BEARER_TOKEN-unset}\"",
    "if cat \"$PILOT_TOKEN\" >/dev/null 2>&1; then echo pilot-token=readable;"
    " else echo pilot-token=unreadable; fi",
]


def test_payload_gets_its_own_token_copy_beside_glexecs_proxy_copy(site):  # noqa: F811
    """The payload reads BEARER_TOKEN_FILE: its own 0600 copy of the job's token, the
    target's, in the work directory; no BEARER_TOKEN value; the pilot's token unreadable."""
    (site.base / "tokens").mkdir()
    tokens = give_to_pilot(site.base / "tokens", 0o700)
    raw = ISSUER.token("alice-0001", groups=["/atlas"])
    (tokens / f"{PANDA_ID}.bt").write_text(raw + "\n")
    give_to_pilot(tokens / f"{PANDA_ID}.bt")
    pilot_raw = ISSUER.token("the-pilot", groups=["/atlas/pilot"])
    pilot_token = site.base / "bt_pilot"
    pilot_token.write_text(pilot_raw)
    give_to_pilot(pilot_token)
    jwks = ISSUER.write_jwks(site.base / "atlas.jwks")
    jwks.chmod(0o644)
    setup = [line.replace("$PILOT_TOKEN", str(pilot_token)) for line in TOKEN_REPORT]
    queue = site.queue(credential_source="token-file", token_with_proxy=True,
                       token_file=str(tokens / "{panda_id}.bt"),
                       token_issuers={ISSUER.url: str(jwks)}, setup=setup)
    run = site.run(queue=queue, env={"BEARER_TOKEN": pilot_raw,
                                     "BEARER_TOKEN_FILE": str(pilot_token)})
    assert run.returncode == 0, run.log
    seen = run.reported()
    assert seen["token-file"].startswith(str(site.workdir) + "/"), seen
    assert seen["token-file"] != str(pilot_token)
    assert (seen["token-owner"], seen["token-mode"]) == ("pilotid-alice", "600")
    assert seen["token-sha256"] == hashlib.sha256((raw + "\n").encode()).hexdigest()
    assert seen["bearer-token"] == "unset"
    assert seen["pilot-token"] == "unreadable"
    assert not list(Path(site.workdir).glob(".pilotid-proxy-*")), "handover directory left"
