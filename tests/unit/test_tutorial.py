"""docs/tutorial.rst against the real commands: every ``pilotid`` command line of its
console blocks is one the command accepts, and the outputs it shows for ``pilotid policy``,
``pilotid testca``, ``pilotid testissuer`` and ``pilotid token-info`` are what they print
(tests/system/test_tutorial.py does the node's)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pilotid import cli
from tests.tutorial_blocks import tutorial_commands, tutorial_queue, unmatched

REPO = Path(__file__).resolve().parents[2]
PILOTID_COMMANDS = [c for c in tutorial_commands() if c.text.startswith("pilotid ")]


def by_start(start: str):
    found = [c for c in PILOTID_COMMANDS if c.text.startswith(start) and c.output]
    assert found, f"the tutorial shows no output of {start}"
    return found[0]


def run_pilotid(text: str, replace: "dict[str, str]" = None) -> subprocess.CompletedProcess:
    argv = shlex.split(text, comments=True)[1:]
    for page, real in (replace or {}).items():
        argv = [a.replace(page, real) for a in argv]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pilotid", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", PILOTID_COMMANDS, ids=lambda c: c.text[:60])
def test_every_pilotid_command_of_the_tutorial_is_accepted(command):
    argv = shlex.split(command.text, comments=True)[1:]
    cli.build_parser().parse_args(argv)  # SystemExit(2) where an option no longer exists


def test_tutorial_shows_what_pilotid_policy_prints():
    command = by_start("pilotid policy")
    done = run_pilotid(command.text)
    assert done.returncode == 0, done.stderr
    missing, extra = unmatched(command.output, (done.stdout + done.stderr).splitlines(), {})
    assert (missing, extra) == ([], [])


def test_tutorial_shows_what_pilotid_testca_prints(tmp_path):
    command = by_start("pilotid testca")
    kit = str(tmp_path / "proxies")
    done = run_pilotid(command.text, {"/home/pilot/proxies": kit})
    assert done.returncode == 0, done.stderr
    missing, extra = unmatched(command.output, (done.stdout + done.stderr).splitlines(),
                               {kit: "/home/pilot/proxies"})
    assert (missing, extra) == ([], [])


def test_tutorial_shows_what_pilotid_testissuer_prints(tmp_path):
    command = by_start("pilotid testissuer")
    kit = str(tmp_path / "tokens")
    done = run_pilotid(command.text, {"/home/pilot/tokens": kit})
    assert done.returncode == 0, done.stderr
    missing, extra = unmatched(command.output, (done.stdout + done.stderr).splitlines(),
                               {kit: "/home/pilot/tokens"})
    assert (missing, extra) == ([], [])


def test_tutorial_shows_what_token_info_verify_prints_for_its_queue(tmp_path):
    """The tutorial's token, made by its testissuer command, verified against its queue."""
    kit, queues = str(tmp_path / "tokens"), str(tmp_path / "queues.json")
    assert run_pilotid(by_start("pilotid testissuer").text,
                       {"/home/pilot/tokens": kit}).returncode == 0
    settings = json.loads(json.dumps(tutorial_queue("ANALY_TOKENS")).replace(
        "/home/pilot/tokens", kit))
    Path(queues).write_text(json.dumps({"queues": {"ANALY_TOKENS": settings}}))
    command = by_start("pilotid token-info")
    done = run_pilotid(command.text, {"/home/pilot/tokens": kit,
                                      "/etc/pilotid/queues.json": queues})
    assert done.returncode == 0, done.stderr
    missing, extra = unmatched(command.output, (done.stdout + done.stderr).splitlines(),
                               {kit: "/home/pilot/tokens"})
    assert (missing, extra) == ([], [])
