"""Runs AS THE PILOT for test_credential_modes.py: one job, watching every file it creates.

``python creation_driver.py CONFIG``: CONFIG is a JSON object (queues, queue, job,
workdir, cache_dir).  Before anything of pilotid runs, it wraps ``os.open`` (to ``fstat``
each new file the moment it exists: its mode at creation, not at the end) and installs an
audit hook on ``open`` (to see files opened for writing by any other way, such as
``builtins.open``).  Then it runs the job through ``PayloadLauncher`` and stores a
credential in a ``CredentialCache`` (what a MyProxy fetch does), and prints one JSON
object: every file opened for writing, how, and its mode right after the open.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

OPENED = []
_real_open = os.open
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT


def watched_open(path, flags, mode=0o777, *, dir_fd=None):
    fd = _real_open(path, flags, mode, dir_fd=dir_fd)
    if flags & _WRITE and not flags & getattr(os, "O_PATH", 0):
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            OPENED.append({"via": "os.open", "path": os.fsdecode(path), "flags": flags,
                           "mode_arg": mode, "mode_after": stat.S_IMODE(info.st_mode),
                           "excl": bool(flags & os.O_EXCL),
                           "nofollow": bool(flags & os.O_NOFOLLOW)})
    return fd


def audit(event, args):
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        writing = (isinstance(flags, int) and flags & _WRITE) or \
            (isinstance(mode, str) and any(c in mode for c in "wax+"))
        if writing and not isinstance(path, int):
            OPENED.append({"via": "audit", "path": os.fsdecode(path), "mode": mode,
                           "flags": flags})


def main() -> int:
    config = json.loads(sys.argv[1])
    os.open = watched_open
    sys.addaudithook(audit)
    from pilotid.factory import build_launcher
    from pilotid.identity.sources import CredentialCache
    from pilotid.payloads.job import JobSpec
    from pilotid.queuefile import load_queue

    launcher = build_launcher(load_queue(config["queues"], config["queue"]))
    result = launcher.run(JobSpec.from_description(config["job"]), Path(config["workdir"]))
    proxy = Path(config["proxy"]).read_bytes()
    cache = CredentialCache(Path(config["cache_dir"]))
    cache.get(CredentialCache.key("server", "user", None, None), 0, lambda: proxy)
    print(json.dumps({"outcome": result.outcome, "error": result.error, "opened": OPENED}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
