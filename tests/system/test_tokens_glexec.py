"""A job holding a proxy and a bearer token, through the gLExec stand-in as pilotid-alice
(issue 15): gLExec copies the proxy, the token comes on the wrapper's standard input.

The pilot (pilotid-pilot) has a token of its own in BEARER_TOKEN and BEARER_TOKEN_FILE; the
job's token comes from the ``token-file`` source with ``token_with_proxy`` (Alice's proxy
beside it, which gLExec authenticates).  A token refreshed while the payload runs is renamed
over the payload's copy in the handover directory, as through sudo.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pilotid.identity.testissuer import TestIssuer
from tests.system import node
from tests.system.glexec_node import give_to_pilot, standin_fixture  # noqa: F401 - a fixture
from tests.system.test_run_glexec import (  # noqa: F401 - site is a fixture
    PANDA_ID,
    finished,
    pilot_running,
    site,
    wait_until,
)

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

#: Site setup lines that wait (60 s at most) for the payload's token copy to change, then
#: report the first token and the one it reads at the same path now.
REFRESH_SETUP = [
    "first=$(cat \"$BEARER_TOKEN_FILE\"); : > refresh-started; now=$first; i=0",
    "while [ \"$now\" = \"$first\" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1));"
    " now=$(cat \"$BEARER_TOKEN_FILE\"); done",
    "echo \"first-sha256=$(printf '%s' \"$first\" | sha256sum | cut -d' ' -f1)\"",
    "echo \"token-sha256=$(printf '%s' \"$now\" | sha256sum | cut -d' ' -f1)\"",
    "stat -c 'token-owner=%U' \"$BEARER_TOKEN_FILE\"",
    "echo \"token-acl=$(getfacl -cnp \"$BEARER_TOKEN_FILE\" | grep . | paste -sd, -)\"",
]


def token_queue(on, raw: str, **fields) -> Path:
    """A token-file queue of the site ``on`` with ``token_with_proxy``, whose job token is
    ``raw``, in a directory of the pilot's (0700)."""
    (on.base / "tokens").mkdir(exist_ok=True)
    tokens = give_to_pilot(on.base / "tokens", 0o700)
    (tokens / f"{PANDA_ID}.bt").write_text(raw + "\n")
    give_to_pilot(tokens / f"{PANDA_ID}.bt")
    jwks = ISSUER.write_jwks(on.base / "atlas.jwks")
    jwks.chmod(0o644)
    return on.queue(credential_source="token-file", token_with_proxy=True,
                    token_file=str(tokens / "{panda_id}.bt"),
                    token_issuers={ISSUER.url: str(jwks)}, **fields)


def test_payload_gets_its_own_token_copy_beside_glexecs_proxy_copy(site):  # noqa: F811
    """The payload reads BEARER_TOKEN_FILE: its own 0600 copy of the job's token, the
    target's, in the work directory; no BEARER_TOKEN value; the pilot's token unreadable."""
    raw = ISSUER.token("alice-0001", groups=["/atlas"])
    pilot_raw = ISSUER.token("the-pilot", groups=["/atlas/pilot"])
    pilot_token = site.base / "bt_pilot"
    pilot_token.write_text(pilot_raw)
    give_to_pilot(pilot_token)
    setup = [line.replace("$PILOT_TOKEN", str(pilot_token)) for line in TOKEN_REPORT]
    queue = token_queue(site, raw, setup=setup)
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


def test_a_newer_token_is_renamed_over_the_payloads_copy_through_glexec(site):  # noqa: F811
    """The job's token has 400 s left, under token_refresh_threshold (600 s): while the
    payload runs, the source gets a newer one, which the pilot renames over the copy the
    target stored in the handover directory; the payload reads it at the same path.  The
    new copy is the pilot's, 0600 with the access entry ``u:pilotid-alice:r``: readable by
    the two of them alone, as through sudo."""
    old = ISSUER.token("alice-0001", groups=["/atlas"], lifetime=400)
    new = ISSUER.token("alice-0001", groups=["/atlas"], lifetime=3600)
    queue = token_queue(site, old, setup=REFRESH_SETUP, proxy_refresh_interval=1)
    job_token = site.base / "tokens" / f"{PANDA_ID}.bt"
    with pilot_running(site, queue, site.job()) as pilot:
        assert wait_until(lambda: (site.workdir / "refresh-started").exists(), timeout=60), \
            "the payload never started"
        staging = job_token.with_suffix(".new")
        staging.write_text(new + "\n")
        give_to_pilot(staging)
        os.replace(staging, job_token)
        stdout, stderr = pilot.communicate(timeout=120)
    run = finished(pilot.returncode, stdout, stderr, site.workdir)
    assert run.returncode == 0, run.log
    seen = run.reported()
    assert seen["first-sha256"] == hashlib.sha256(old.encode()).hexdigest(), run.log
    assert seen["token-sha256"] == hashlib.sha256(new.encode()).hexdigest(), run.log
    alice = node.account(node.ALICE).uid
    assert seen["token-owner"] == node.PILOT
    assert seen["token-acl"] == f"user::rw-,user:{alice}:r--,group::---,mask::r--,other::---"
    assert "renewed bearer token" in run.log
