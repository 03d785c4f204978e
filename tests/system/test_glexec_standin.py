"""The gLExec stand-in keeps gLExec's documented contract (so the switcher tests are honest).

Each call runs the installed stand-in as the unprivileged pilot account.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from pilotid.identity.credfile import write_private
from pilotid.identity.testca import make_proxy
from tests.system import node
from tests.system.glexec_node import (  # noqa: F401 - fixture
    STANDIN,
    give_to_pilot,
    standin_fixture,
    work_dir,
    write_proxy,
)


@pytest.fixture
def base(shared_tmp, standin):
    return shared_tmp


@pytest.fixture
def cert(base, users):
    return write_proxy(base, users.alice, "x509up_alice")


def glexec(cert, *command, who=node.PILOT, cwd="/", **env):
    """Run the stand-in as ``who`` with GLEXEC_CLIENT_CERT=cert; return the CompletedProcess."""
    full = {"GLEXEC_CLIENT_CERT": str(cert)}
    full.update(env)
    return node.run_as(who, [str(STANDIN), *command], env=full, cwd=Path(cwd), timeout=60)


def test_target_gets_a_wiped_environment(cert):
    done = glexec(cert, "/usr/bin/env", LANG="C.UTF-8", FOO="bar", LD_PRELOAD="/x.so",
                  MALLOC_CHECK_="3", GLEXEC_EXTRA="kept")
    env = dict(line.split("=", 1) for line in done.stdout.decode().splitlines())
    assert done.returncode == 0, done.stderr
    assert env["LANG"] == "C.UTF-8" and env["GLEXEC_EXTRA"] == "kept"
    assert "FOO" not in env and "LD_PRELOAD" not in env and "MALLOC_CHECK_" not in env
    assert (env["USER"], env["LOGNAME"], env["HOME"]) == (node.ALICE, node.ALICE,
                                                          f"/home/{node.ALICE}")
    assert env["PATH"] == "/usr/bin:/bin"
    assert "X509_USER_PROXY" not in env  # nothing asked to be copied


def test_switches_uid_gid_and_groups_for_real(cert):
    done = glexec(cert, "/usr/bin/id")
    alice = node.account(node.ALICE)
    assert done.stdout.decode().startswith(f"uid={alice.uid}({node.ALICE}) gid={alice.gid}")


@pytest.mark.parametrize("command", ["id", "usr/bin/id", "/nonexistent/id"])
def test_relative_or_missing_command_is_a_client_error(cert, command):
    assert glexec(cert, command).returncode == 201


def test_symlinked_command_is_a_client_error(cert, base):
    link = base / "id-link"
    link.symlink_to("/usr/bin/id")
    assert glexec(cert, str(link)).returncode == 201


def test_command_without_execute_bits_cannot_be_executed(cert, base):
    script = base / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    assert glexec(cert, str(script)).returncode == 126


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o4600, 0o660])
def test_client_cert_wider_than_0700_is_a_client_error(cert, mode):
    cert.chmod(mode)
    assert glexec(cert, "/usr/bin/id").returncode == 201


def test_client_cert_0700_is_accepted(cert):
    cert.chmod(0o700)
    assert glexec(cert, "/usr/bin/id").returncode == 0


def test_client_cert_with_an_acl_is_a_client_error(cert):
    subprocess.run(["setfacl", "-m", f"u:{node.ALICE}:r", str(cert)], check=True)
    done = glexec(cert, "/usr/bin/id")
    assert done.returncode == 201 and b"0640" in done.stderr


def test_client_cert_not_owned_by_the_caller_is_a_client_error(cert):
    bob = node.account(node.BOB)
    os.chown(cert, bob.uid, bob.gid)
    cert.chmod(0o644)  # readable, so ownership is what is refused
    done = glexec(cert, "/usr/bin/id")
    assert done.returncode == 201 and b"owned by" in done.stderr


def test_symlinked_relative_or_missing_client_cert_is_a_client_error(cert, base):
    link = base / "cert-link"
    link.symlink_to(cert)
    os.lchown(link, *_pilot_ids())
    assert glexec(link, "/usr/bin/id").returncode == 201
    assert glexec(os.path.relpath(cert, "/"), "/usr/bin/id").returncode == 201
    assert glexec(base / "missing", "/usr/bin/id").returncode == 201
    assert node.run_as(node.PILOT, [str(STANDIN), "/usr/bin/id"], cwd=Path("/")).returncode == 201


def _pilot_ids():
    pilot = node.account(node.PILOT)
    return pilot.uid, pilot.gid


def test_client_cert_whose_key_does_not_match_is_a_client_error(base, users):
    key = re.compile(rb"-----BEGIN RSA PRIVATE KEY-----.*?-----END RSA PRIVATE KEY-----\n", re.S)
    other_key = key.search(make_proxy(users.bob, bits=1024)).group(0)
    mixed = key.sub(lambda _: other_key, make_proxy(users.alice, bits=1024))
    cert = give_to_pilot(write_private(base / "mixed", mixed))
    done = glexec(cert, "/usr/bin/id")
    assert done.returncode == 201 and b"does not match" in done.stderr


def test_expired_proxy_is_an_authorisation_error(base, users):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    cert = write_proxy(base, users.alice, "expired", not_after=past)
    assert glexec(cert, "/usr/bin/id").returncode == 203


def test_legacy_proxy_maps_like_an_rfc_proxy(base, users):
    cert = write_proxy(base, users.alice, "legacy", rfc=False)
    assert glexec(cert, "/usr/bin/id", "-un").stdout.decode().strip() == node.ALICE


def test_unmapped_dn_is_an_authorisation_error(base, users):
    cert = write_proxy(base, users.eve, "eve")
    done = glexec(cert, "/usr/bin/id")
    assert done.returncode == 203 and b"not in the grid-mapfile" in done.stderr


def test_caller_outside_the_pilot_group_is_an_authorisation_error(base, users):
    cert = write_proxy(base, users.alice, "alice-own")
    alice = node.account(node.ALICE)
    os.chown(cert, alice.uid, alice.gid)
    assert glexec(cert, "/usr/bin/id", who=node.ALICE).returncode == 203


def test_source_proxy_is_copied_to_the_target_owned_by_it_0600(cert, base):
    workdir = work_dir(base)
    target = workdir / "target-proxy"
    done = glexec(cert, "/usr/bin/printenv", "X509_USER_PROXY", GLEXEC_SOURCE_PROXY=str(cert),
                  GLEXEC_TARGET_PROXY=str(target))
    assert done.stdout.decode().strip() == str(target)
    info = os.stat(target)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (node.account(node.ALICE).uid, 0o600)
    assert target.read_bytes() == cert.read_bytes()


def test_a_second_call_refreshes_the_target_proxy(cert, base, users):
    workdir = work_dir(base)
    target = workdir / "target-proxy"
    glexec(cert, "/bin/true", GLEXEC_SOURCE_PROXY=str(cert), GLEXEC_TARGET_PROXY=str(target))
    renewed = write_proxy(base, users.alice, "renewed")
    done = glexec(cert, "/bin/true", GLEXEC_SOURCE_PROXY=str(renewed),
                  GLEXEC_TARGET_PROXY=str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == renewed.read_bytes()


def test_target_location_the_target_cannot_write_is_a_client_error(cert, base):
    closed = base / "closed"
    closed.mkdir()
    give_to_pilot(closed, 0o755)
    done = glexec(cert, "/bin/true", GLEXEC_SOURCE_PROXY=str(cert),
                  GLEXEC_TARGET_PROXY=str(closed / "proxy"))
    assert done.returncode == 201 and b"not accessible" in done.stderr


def test_working_directory_the_target_cannot_enter_is_a_client_error(cert, base):
    private = base / "private"
    private.mkdir()
    give_to_pilot(private, 0o700)
    assert glexec(cert, "/bin/true", cwd=private).returncode == 201


@pytest.mark.parametrize("status, answer", [(201, 204), (202, 204), (203, 204), (204, 204),
                                            (0, 0), (5, 5), (126, 126), (200, 200)])
def test_command_status_passes_through_except_201_to_204(cert, status, answer):
    assert glexec(cert, "/bin/bash", "-c", f"exit {status}").returncode == answer


def test_command_killed_by_a_signal_makes_glexec_die_of_it(cert):
    done = glexec(cert, "/bin/bash", "-c", "kill -USR1 $$")
    assert done.returncode == -signal.SIGUSR1


def test_callers_umask_reaches_the_target(cert, base):
    workdir = work_dir(base)
    umask_then_glexec = f"umask 077; exec {STANDIN} /bin/bash -c umask"
    done = node.run_as(node.PILOT, ["/bin/sh", "-c", umask_then_glexec],
                       env={"GLEXEC_CLIENT_CERT": str(cert)}, cwd=workdir)
    assert done.stdout.decode().strip() == "0077", done.stderr
