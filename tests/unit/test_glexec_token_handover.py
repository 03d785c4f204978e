"""A proxy gLExec copies itself beside a bearer token the wrapper stores from its standard
input (issue 15): what the handover says and what the wrapper then does."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.wrapper import WrapperSpec, credential_exports, render_wrapper
from pilotid.strategies.base import switch_copy_handover
from pilotid.values import ProxyHandover

WORKDIR = Path("/pool/job-7")
GLEXEC_COPY = WORKDIR / "user.proxy"
ALICE = SimpleNamespace(uid=1002)


def _handover(token_path) -> ProxyHandover:
    credential = SimpleNamespace(token_path=token_path)
    return switch_copy_handover(GLEXEC_COPY, ALICE, WORKDIR, credential)  # type: ignore[arg-type]


def test_without_a_token_nothing_comes_on_standard_input():
    assert _handover(None) == ProxyHandover(GLEXEC_COPY, from_stdin=False)


def test_the_token_goes_in_a_handover_directory_of_its_own_beside_glexecs_copy():
    handover = _handover(Path("/tmp/pilotid-job-7-x/bearer-token-1"))
    assert handover.from_stdin and handover.proxy_by_switch and handover.carries_proxy
    assert handover.payload_proxy == GLEXEC_COPY
    assert handover.payload_token is not None
    assert handover.payload_token.name == "bt"
    assert handover.payload_token.parent.parent == WORKDIR
    assert handover.payload_token.parent.name.startswith(".pilotid-proxy-1002-")
    assert handover.stdin_place == handover.payload_token


def test_the_wrapper_stores_only_the_token_and_exports_both_file_names():
    handover = _handover(Path("/tmp/pilotid-job-7-x/bearer-token-1"))
    script = render_wrapper(WrapperSpec(
        command=PayloadCommand(argv=("/bin/true",)), workdir=WORKDIR, handover=handover,
        marker=WORKDIR / ".marker", environment=()))
    assert "_pilotid_bt" in script
    assert "_pilotid_pem" not in script  # gLExec's copy is never overwritten from stdin
    assert "builtin exec </dev/null" in script
    assert f"_pilotid_proxy={GLEXEC_COPY}\n" in script
    assert credential_exports(handover) == ('X509_USER_PROXY="$_pilotid_proxy" '
                                            'BEARER_TOKEN_FILE="$_pilotid_token"')


def test_a_sudo_handover_stores_from_its_proxys_place():
    handover = ProxyHandover(WORKDIR / "h" / "x509up", from_stdin=True,
                             payload_token=WORKDIR / "h" / "bt")
    assert handover.stdin_place == WORKDIR / "h" / "x509up"
