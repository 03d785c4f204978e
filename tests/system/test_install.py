"""``make install``, the documented way onto a Debian 12 node: a virtualenv under PREFIX
and the ``pilotid`` command linked into BINDIR, which the unprivileged pilot account runs.

Root installs into a fresh prefix under /tmp (wheels come from pip's cache, else PyPI);
the pilot account then runs the command found on its PATH.  The prefix is removed after.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pilotid import __version__
from tests.system import node


@pytest.fixture(scope="module")
def installed(real_node):
    """(prefix, bindir) of a ``make install`` done as root."""
    base = node.make_shared_dir("pilotid-install-")
    prefix, bindir = base / "pilotid", base / "bin"
    try:
        done = subprocess.run(["make", "-s", "-C", str(node.REPO), "install",
                               f"PREFIX={prefix}", f"BINDIR={bindir}"],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        yield prefix, bindir
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pilot_runs(bindir, *argv: str) -> subprocess.CompletedProcess:
    return node.run_as(node.PILOT, list(argv), env={"PATH": f"{bindir}:/usr/bin:/bin"},
                       cwd=bindir, text=True)


def test_pilot_account_runs_the_installed_command_from_its_path(installed):
    prefix, bindir = installed
    done = pilot_runs(bindir, "pilotid", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pilotid {__version__}"
    assert (bindir / "pilotid").resolve() == (prefix / "bin" / "pilotid").resolve()


def test_pilot_account_gets_the_help_of_the_installed_command(installed):
    _, bindir = installed
    done = pilot_runs(bindir, "pilotid", "--help")
    assert done.returncode == 0, done.stderr
    assert "exit status" in done.stdout


def test_installed_command_imports_the_copy_in_the_prefix_not_the_checkout(installed):
    prefix, bindir = installed
    done = pilot_runs(bindir, str(prefix / "bin" / "python"), "-c",
                      "import pilotid; print(pilotid.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(prefix) + "/")
