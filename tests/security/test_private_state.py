"""Issue 13, item 6, on the real node (real sudo, pilotid-alice then pilotid-bob in one
work directory): pilotid's private state is out of the payload's reach, and no copy of a
user's credential outlives the job in the work directory."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from tests.security.scene import BOB_DN
from tests.security.test_world_mode import world_workdir


def key_line(proxy: Path) -> bytes:
    """The first base64 line of ``proxy``'s private key: found in any copy of it."""
    lines = proxy.read_bytes().splitlines()
    return lines[next(i for i, line in enumerate(lines) if b"PRIVATE KEY" in line) + 1]


def files_holding(top: Path, needle: bytes) -> list:
    """Every regular file under ``top`` (read as root) that holds ``needle``."""
    found = []
    for root, _, names in os.walk(top):
        for name in names:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(str(path))
    return found


def test_a_renamed_private_directory_leaves_no_proxy_for_the_next_user(scene):
    """alice's payload renames the pilot's private directory and her proxy's handover
    directory; her job ends with no copy of her proxy in the work directory, and bob's job
    there next cannot read one."""
    scene.transformation("runAthena", "#!/bin/bash\nfor name in .pilotid .pilotid-proxy-*; "
                                      "do mv \"$name\" \"moved$name\" 2>/dev/null; done; true\n")
    first = scene.run()
    assert first.outcome == "succeeded", first.why()
    alice_key = key_line(scene.proxies["alice"])
    assert not files_holding(first.workdir, alice_key), first.why()
    scene.transformation("runAthena", "#!/bin/bash\nfind . -type f ! -name dump.txt "
                                      "-exec cat {} + > dump.txt 2>/dev/null; true\n")
    second = scene.run(scene.job(prodUserID=BOB_DN), workdir=first.workdir,
                       proxy_file=str(scene.proxies["bob"]))
    assert second.outcome == "succeeded", second.why()
    assert alice_key not in (first.workdir / "dump.txt").read_bytes()


def test_a_hard_link_to_the_users_proxy_copy_does_not_outlive_the_job(scene):
    """alice's payload hard-links its proxy copy into the work directory (top and a
    subdirectory): both names go with the copy, reported."""
    scene.transformation("runAthena", "#!/bin/bash\nmkdir -p keep && "
                                      "ln \"$X509_USER_PROXY\" kept.pem && "
                                      "ln \"$X509_USER_PROXY\" keep/kept.pem\n")
    run = scene.run()
    assert run.outcome == "succeeded", run.why()
    assert not files_holding(run.workdir, key_line(scene.proxies["alice"])), run.why()
    assert run.stderr.count("a hard link the payload made to its proxy copy") == 2
    scene.check_aftermath(run)


DEEP_LINK = ("#!/bin/bash\ncopy=$(realpath \"$X509_USER_PROXY\") && name=$(printf 'd%.0s' {1..250})"
             " && for _ in $(seq 40); do mkdir \"$name\" && cd \"$name\" || exit 1; done"
             " && ln \"$copy\" kept.pem\n")


def test_a_hard_link_to_the_proxy_copy_below_path_max_does_not_outlive_the_job(scene):
    """alice's payload hard-links its proxy copy 40 levels of 250-byte names down (10 kB of
    path, more than PATH_MAX): the link goes too, reported."""
    scene.transformation("runAthena", DEEP_LINK)
    run = scene.run()
    assert run.outcome == "succeeded", run.why()
    left = subprocess.run(["find", str(run.workdir), "-name", "kept.pem"], capture_output=True,
                          text=True, check=True).stdout
    assert not left, run.why()
    assert run.stderr.count("a hard link the payload made to its proxy copy") == 1, run.why()
    assert "outside the work directory" not in run.stderr, run.why()
    scene.check_aftermath(run)


RENAME_COPIES = ("#!/bin/bash\nmkdir kept && mv \"$X509_USER_PROXY\" kept/x509up && "
                 "mv \"$BEARER_TOKEN_FILE\" kept/bt 2>/dev/null; true\n")


def test_a_proxy_copy_renamed_out_of_its_handover_directory_does_not_outlive_the_job(scene):
    """alice's payload renames its proxy copy to ``kept/x509up``: the copy goes, found by
    the identity the wrapper wrote in its marker, and is reported."""
    scene.transformation("runAthena", RENAME_COPIES)
    run = scene.run()
    assert run.outcome == "succeeded", run.why()
    assert not files_holding(run.workdir, key_line(scene.proxies["alice"])), run.why()
    assert "removed kept/x509up, a credential copy the payload moved" in run.stderr, \
        run.why()
    scene.check_aftermath(run)


def test_a_proxy_copy_renamed_out_of_the_wrappers_own_directory_goes_in_world_mode(scene):
    """The same in world mode, where the copy is in the wrapper's own directory; moved to
    a directory of alice's that the pilot cannot write, the pilot has it removed as alice."""
    scene.transformation("runAthena", "#!/bin/bash\nmkdir kept && mv \"$X509_USER_PROXY\" "
                                      "kept/x509up && chmod 755 kept\n")
    run = scene.run(workdir=world_workdir(scene), sandbox="world")
    assert run.outcome == "succeeded", run.why()
    assert not files_holding(run.workdir, key_line(scene.proxies["alice"])), run.why()
    assert "removing kept/x509up, a credential copy the payload moved, as its owner" in \
        run.stderr, run.why()


def test_a_work_directory_holding_another_jobs_handover_directory_is_refused(scene):
    """A job that did not end cleanly left alice's handover directory with her copy; bob's
    job there is refused before anything is opened to bob."""
    workdir = scene.workdir()
    left = workdir / ".pilotid-proxy-1002-0123456789abcdef"
    left.mkdir(mode=0o700)
    copy = left / "x509up"
    copy.write_bytes(scene.proxies["alice"].read_bytes())
    for path in (left, copy):
        os.chown(path, *_ids("pilotid-pilot"))
    scene.transformation("runAthena", "#!/bin/bash\ncat .pilotid-proxy-*/x509up > got.txt\n")
    run = scene.run(scene.job(prodUserID=BOB_DN), workdir=workdir,
                    proxy_file=str(scene.proxies["bob"]))
    assert (run.outcome, run.error_code) == ("setup_failed", 26), run.why()
    assert ".pilotid-proxy-1002-0123456789abcdef" in run.result["error"]
    assert not (workdir / "got.txt").exists()
    acl = subprocess.run(["getfacl", "-cpn", str(workdir)], capture_output=True,
                         text=True, check=True).stdout
    assert "user:" not in acl.replace("user::", ""), acl


def _ids(name: str) -> tuple:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid
