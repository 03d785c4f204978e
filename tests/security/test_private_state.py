"""Issue 13, item 6, on the real node (real sudo, pilotid-alice then pilotid-bob in one
work directory): pilotid's private state is out of the payload's reach, and no copy of a
user's credential outlives the job in the work directory."""

from __future__ import annotations

import os
from pathlib import Path

from tests.security.scene import BOB_DN


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
