"""What a ``pilotid`` command imports: only what it needs (a pilot pays start-up per job).

Each command runs in a fresh interpreter, as a pilot starts it; the test reads that
interpreter's ``sys.modules`` at the end.  Which modules, never how long: timings are the
benchmark's (``benchmarks/run.py``, ``docs/performance.md``).  Runs as any user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Set

import pytest

from pilotid.identity.credfile import write_private
from pilotid.identity.testca import TestCA, make_proxy
from tests.conftest import ALICE_DN

REPO = Path(__file__).resolve().parents[2]

#: Runs ``pilotid.cli.main(argv)`` and writes the names in ``sys.modules`` to the file
#: named by the first argument.
PROBE = """
import json, sys
from pilotid.cli import main
try:
    status = main(sys.argv[2:])
except SystemExit as done:
    status = done.code
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "modules": sorted(sys.modules)}, out)
"""

TLS = ("OpenSSL", "ssl", "_ssl")
MYPROXY = ("pilotid.identity.myproxy", "pilotid.identity.myproxy_channel",
           "pilotid.identity.myproxy_wire", "pilotid.identity.myproxy_credentials",
           "pilotid.identity.myproxy_trustroots")


def imported_by(argv: List[str], tmp_path: Path) -> Set[str]:
    """The modules a fresh ``pilotid <argv>`` has imported when it ends (status 0)."""
    report = tmp_path / "modules.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", PROBE, str(report), *argv], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert report.exists(), done.stderr
    found = json.loads(report.read_text())
    assert found["status"] in (0, None), done.stderr
    return set(found["modules"])


def loaded(modules: Set[str], names) -> List[str]:
    """Those of ``modules`` that are one of ``names`` or inside one of them."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture(scope="module")
def help_modules(tmp_path_factory) -> Set[str]:
    return imported_by(["--help"], tmp_path_factory.mktemp("help"))


@pytest.fixture(scope="module")
def file_noop_run_modules(tmp_path_factory) -> Set[str]:
    """A real job on a queue with the no-op switcher and the file credential source."""
    base = tmp_path_factory.mktemp("run")
    ca = TestCA(bits=1024)
    proxy = write_private(base / "x509up", make_proxy(ca.issue(ALICE_DN, bits=1024), bits=1024))
    trf = base / "trf"
    trf.mkdir()
    (trf / "runAthena").write_text("#!/bin/true\n")
    (trf / "runAthena").chmod(0o755)
    (base / "queues.json").write_text(json.dumps({"queues": {"Q": {
        "switcher": "noop", "credential_source": "file", "proxy_file": str(proxy),
        "transformation_dirs": [str(trf)], "syslog_address": None}}}))
    (base / "job.json").write_text(json.dumps({
        "PandaID": 1, "transformation": "runAthena-00-00-11", "jobPars": "",
        "prodUserID": ALICE_DN}))
    (base / "work").mkdir()
    return imported_by(["-q", "run", "--queues", str(base / "queues.json"), "--queue", "Q",
                        "--job", str(base / "job.json"), "--workdir", str(base / "work"),
                        "--json"], base)


def test_help_imports_no_tls_and_no_cryptography(help_modules):
    assert loaded(help_modules, TLS + ("cryptography", "asn1crypto")) == []


def test_help_imports_no_strategy_launcher_or_plugin_machinery(help_modules):
    assert loaded(help_modules, ("pilotid.launcher", "pilotid.factory", "pilotid.identity",
                                 "pilotid.strategies", "pilotid.payloads", "zope",
                                 "importlib.metadata")) == []


def test_run_on_a_file_noop_queue_imports_no_tls(file_noop_run_modules):
    assert "pilotid.launcher" in file_noop_run_modules  # the job did run
    assert loaded(file_noop_run_modules, TLS) == []


def test_run_on_a_file_noop_queue_imports_no_myproxy_client(file_noop_run_modules):
    assert loaded(file_noop_run_modules, MYPROXY) == []


def test_run_on_a_file_noop_queue_imports_no_other_switcher(file_noop_run_modules):
    assert loaded(file_noop_run_modules, ("pilotid.strategies.sudo",
                                          "pilotid.strategies.glexec")) == []


def test_run_without_voms_attributes_imports_no_voms_parser(file_noop_run_modules):
    assert loaded(file_noop_run_modules, ("pilotid.identity.voms", "asn1crypto.cms")) == []


def test_each_subcommand_is_found_in_the_module_that_adds_it():
    from pilotid import cli

    everything = cli.build_parser()
    names = set(everything._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert names == set(cli.COMMAND_MODULES)
    for name in names:
        only = cli.build_parser(name)._subparsers._group_actions[0].choices  # type: ignore
        assert name in only


def test_run_imports_no_other_subcommand(file_noop_run_modules):
    assert loaded(file_noop_run_modules, ("pilotid.commands.myproxy",
                                          "pilotid.commands.policy",
                                          "pilotid.commands.proxy_info")) == []


#: Runs ``pilotid.__main__.main()`` (the console script's entry) with ``sys.argv[2:]`` and
#: writes the names in ``sys.modules`` to the file named by the first argument.
ENTRY_PROBE = """
import sys
report, sys.argv = sys.argv[1], ["pilotid", *sys.argv[2:]]
from pilotid.__main__ import main
status = main()
modules = sorted(sys.modules)
import json
with open(report, "w") as out:
    json.dump({"status": status, "modules": modules}, out)
"""

#: What the client of an agent must not pay for: the command line, logging, the error
#: tree (typing), and everything a run itself needs.
HEAVY_FOR_THE_CLIENT = ("argparse", "logging", "json", "pilotid.cli", "pilotid.commands",
                        "pilotid.errors", "pilotid.launcher", "pilotid.factory",
                        "pilotid.identity", "pilotid.agent.server", "pilotid.agent.child",
                        "cryptography", "asn1crypto", "zope", "importlib.metadata") + TLS


def test_run_through_an_agent_imports_only_the_client(tmp_path):
    """``pilotid run`` with ``PILOTID_AGENT`` (here naming no agent: it ends at once with
    error 78) imports the client and the protocol, none of the command line's modules."""
    report = tmp_path / "modules.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), PILOTID_AGENT=str(tmp_path / "none"))
    done = subprocess.run([sys.executable, "-c", ENTRY_PROBE, str(report), "run", "--json"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    found = json.loads(report.read_text())
    assert found["status"] == 78, done.stderr
    modules = set(found["modules"])
    assert "pilotid.agent.client" in modules
    assert loaded(modules, HEAVY_FOR_THE_CLIENT) == []


#: The standard modules the client does without (the C modules under them suffice):
#: ``signal`` and ``socket`` import ``enum`` and ``selectors``, ``re`` (which the script pip
#: writes for a console-script entry point imports) ``enum`` too: several ms of each job.
STANDARD_FOR_THE_CLIENT = ("signal", "socket", "enum", "selectors", "array", "collections",
                           "re")


def importtime_modules(argv: List[str], env: dict, cwd: Path) -> Set[str]:
    """The modules ``python -S -X importtime ARGV`` imported, as its report names them
    (``-S``: not what ``site`` imports, which differs between virtualenvs)."""
    done = subprocess.run([sys.executable, "-S", "-X", "importtime", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and not line.endswith("imported package")}


def test_the_pilotid_command_through_an_agent_imports_no_standard_module_of_its_own(tmp_path):
    """The ``pilotid`` command as installed (``bin/pilotid``) with ``PILOTID_AGENT``
    (naming no agent: it ends at once with 78) imports, beyond what the interpreter's own
    start imports, the client and none of the Python modules around ``_signal`` and
    ``_socket``, nor ``re``."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PILOTID_AGENT=str(tmp_path / "none"))
    start = importtime_modules(["-c", "pass"], env, tmp_path)
    added = importtime_modules([str(REPO / "bin" / "pilotid"), "run", "--json"], env,
                               tmp_path) - start
    assert "pilotid.agent.client" in added
    assert loaded(added, STANDARD_FOR_THE_CLIENT) == []
