"""Run one payload the way the launcher does, as the (unprivileged) pilot account.

Used by test_sandbox_sudo.py: ``python sandbox_driver.py CONFIG`` with ``CONFIG`` a JSON
object (workdir, target, argv, pem, mode).  As the pilot it writes the wrapper, opens the
work directory to the target, makes the proxy's handover directory (in world mode the
wrapper makes a directory of its own instead), runs ``sudo -n -u <target> -- <wrapper>``
with the proxy on standard input, notes what the payload left (world-writable paths),
removes the wrapper's own directory as the target, reclaims the work directory and prints a
JSON report on stdout; logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

from pilotid.identity.accounts import Account
from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.marker import read_marker
from pilotid.payloads.targetdir import TargetDirectory
from pilotid.payloads.wrapper import WrapperSpec, write_wrapper
from pilotid.values import ProxyHandover
from pilotid.workdir import (
    acl_supported,
    grant_target_access,
    make_handover_directory,
    reclaim,
)


def world_writable(top: Path) -> list:
    found = []
    for root, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = Path(root) / name
            try:
                info = path.lstat()
            except PermissionError:  # in a directory the pilot may list but not search
                continue
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & stat.S_IWOTH:
                found.append(str(path.relative_to(top)))
    if top.stat().st_mode & stat.S_IWOTH:
        found.append(".")
    return found


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="driver: %(levelname)s %(name)s %(message)s")
    config = json.loads(sys.argv[1])
    work = Path(config["workdir"])
    target = Account.by_name(config["target"])
    token = secrets.token_hex(6)
    mode = config.get("mode", "acl")
    if mode == "acl-or-world":
        mode = "acl" if acl_supported(work) else "world"
    wrapper = work / f".pilotid-wrapper-{token}.sh"
    marker = work / f".pilotid-marker-{token}"
    own = (TargetDirectory(work / f".pilotid-target-{token}-", target) if mode == "world"
           else None)
    spec = WrapperSpec(
        command=PayloadCommand(argv=tuple(config["argv"])),
        workdir=work, handover=ProxyHandover(work / f".pilotid-proxy-{token}" / "x509up", True),
        marker=marker, environment=tuple(os.environ.items()),
        umask=0 if mode == "world" else 0o022,
        target_directory=None if own is None else own.prefix)
    write_wrapper(spec, wrapper)
    # the work directory's parent (the pilot's 0700 home here) is its work root
    grant = grant_target_access(work, target, config.get("mode", "acl"), work_root=work.parent)
    try:
        if own is None:
            make_handover_directory(spec.handover.payload_proxy, grant)
        run = subprocess.run(["sudo", "-n", "-u", target.name, "--", str(wrapper)],
                             input=config["pem"].encode(), capture_output=True, timeout=120)
        during = world_writable(work)
        found = read_marker(marker) if own is None else own.read()[0]
        if own is not None:
            subprocess.run(["sudo", "-n", "-u", target.name, "--", "/bin/rm", "-rf", "--",
                            *map(str, own.made())], check=True)
    finally:
        reclaim(grant)
    report = {
        "mode": grant.mode, "payload_umask": grant.payload_umask(0o022),
        "returncode": run.returncode,
        "stdout": run.stdout.decode(errors="replace"),
        "stderr": run.stderr.decode(errors="replace"),
        "marker": None if found is None else {"uid": found.uid, "status": found.payload_status,
                                              "signal": found.signal, "error": found.error},
        "world_writable": during, "proxy": str(spec.handover.payload_proxy),
        "parents": [str(p.path) for p in grant.parents],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
